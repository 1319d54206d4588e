"""In-memory fakes of the ports: the core's tests run without AWS, moto or the network."""

from __future__ import annotations

import copy
from typing import Any

from thumbnailr.model import Photo, PhotoMissing, QuotaCharge, QuotaExceeded, Thumbnail
from thumbnailr.ports import CommandDispatcher, ObjectStore, PhotoRepository, ThumbnailRepository


class FakePhotos(PhotoRepository):
    def __init__(self):
        self.items: dict[str, Photo] = {}

    def add(self, photo: Photo) -> None:
        self.items[photo.photo_id] = copy.copy(photo)

    def get(self, photo_id: str) -> Photo | None:
        photo = self.items.get(photo_id)
        return copy.copy(photo) if photo else None

    def mark_ready(self, photo_id, width, height, format):
        photo = self.items[photo_id]
        if photo.status != "pending":
            return False
        photo.status, photo.width, photo.height, photo.format, photo.reason = "ready", width, height, format, None
        return True

    def mark_rejected(self, photo_id, reason):
        photo = self.items[photo_id]
        if photo.status != "pending":
            return False
        photo.status, photo.reason, photo.width, photo.height, photo.format = "rejected", reason, None, None, None
        return True

    def pending_since(self, before):
        return [copy.copy(p) for p in self.items.values() if p.status == "pending" and p.created_at < before]


class FakeThumbnails(ThumbnailRepository):
    def __init__(self):
        self.items: dict[str, Thumbnail] = {}
        self.used: dict[tuple[str, str], int] = {}

    def add(self, thumbnail: Thumbnail, charge: QuotaCharge) -> Thumbnail:
        if thumbnail.thumbnail_id in self.items:
            return copy.copy(self.items[thumbnail.thumbnail_id])
        key = (charge.user_id, charge.month)
        if self.used.get(key, 0) >= charge.limit:
            raise QuotaExceeded("monthly quota reached")
        self.used[key] = self.used.get(key, 0) + 1
        self.items[thumbnail.thumbnail_id] = copy.copy(thumbnail)
        return thumbnail

    def get(self, thumbnail_id):
        item = self.items.get(thumbnail_id)
        return copy.copy(item) if item else None

    def start_attempt(self, thumbnail_id):
        self.items[thumbnail_id].attempts += 1
        return self.items[thumbnail_id].attempts

    def mark_ready(self, thumbnail_id):
        if self.items[thumbnail_id].status != "pending":
            return False
        self.items[thumbnail_id].status = "ready"
        return True

    def mark_failed(self, thumbnail_id, reason):
        item = self.items[thumbnail_id]
        if item.status != "pending":
            return False
        item.status, item.reason, item.refund = "failed", reason, "due"
        return True

    def refund(self, thumbnail):
        item = self.items[thumbnail.thumbnail_id]
        if item.refund != "due":
            return "already"
        key = (item.owner, item.quota_month)
        if self.used.get(key, 0) <= 0:
            item.refund = "skipped: the counter was at 0"
            return "skipped"
        self.used[key] -= 1
        item.refund = "done"
        return "done"

    def unsettled(self, before):
        return [copy.copy(t) for t in self.items.values()
                if (t.status == "pending" and t.created_at < before) or t.refund == "due"]


class FakeStore(ObjectStore):
    def __init__(self):
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.writes = 0
        self.fail_reads = 0  # how many next reads raise a transient error

    def read(self, key):
        if self.fail_reads:
            self.fail_reads -= 1
            raise TimeoutError("S3 did not answer")
        if key not in self.objects:
            raise PhotoMissing(key)
        return self.objects[key][0]

    def write(self, key, data, content_type):
        self.writes += 1
        self.objects[key] = (data, content_type)

    def write_new(self, key, data, content_type):
        if key in self.objects:
            return False
        self.write(key, data, content_type)
        return True

    def exists(self, key):
        return key in self.objects

    def delete(self, key):
        self.objects.pop(key, None)

    def presign_get(self, key, expires_in):
        return f"https://example.test/{key}?expires={expires_in}"

    def presign_post(self, key, content_type, max_bytes, expires_in) -> dict[str, Any]:
        return {"url": "https://example.test/", "fields": {"key": key, "Content-Type": content_type}}


class FakeDispatcher(CommandDispatcher):
    def __init__(self, fail: bool = False):
        self.sent: list[dict] = []
        self.fail = fail

    def send(self, command):
        if self.fail:
            raise ConnectionError("SNS is down")
        self.sent.append(command)
