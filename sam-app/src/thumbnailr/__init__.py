"""Thumbnailr: a photo-thumbnail API. The core knows no AWS; adapters and handlers do."""
