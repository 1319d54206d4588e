"""Deterministic, photo-like test images made in memory.

Flat colours compress to almost nothing and decode unrealistically fast, so a
benchmark on them says little about real photos. These images have what real
photos have: smooth gradients (sky, skin), mid-frequency texture (foliage),
hard edges (buildings) and sensor noise, so their JPEG/PNG/WebP sizes and
decode times are in the range of a phone camera's.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["encode", "realistic_photo", "with_orientation"]


def realistic_photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """Return an RGB photo-like image of ``width`` x ``height``, the same for the same seed."""
    rng = np.random.default_rng(seed)
    photo = _smooth_field(rng, width, height, cells=(16, 12))  # light and sky: gradients
    texture = _smooth_field(rng, width, height, cells=(max(1, width // 24), max(1, height // 24)))
    photo = Image.blend(photo, texture, 0.25)  # foliage-like mid frequencies
    grain = _smooth_field(rng, width, height, cells=(max(1, width // 5), max(1, height // 5)))
    photo = Image.blend(photo, grain, 0.2)  # fine detail (grass, fabric)
    _draw_shapes(photo, rng, count=40)  # hard edges: buildings, objects
    return _add_noise(photo, rng, sigma=4.0)


def encode(img: Image.Image, format: str, **kw) -> bytes:
    """Encode ``img`` as ``format`` (e.g. "JPEG", quality=90) and return the bytes."""
    buf = io.BytesIO()
    img.save(buf, format, **kw)
    return buf.getvalue()


def with_orientation(img: Image.Image, orientation: int) -> bytes:
    """JPEG (q90) of ``img`` with an EXIF Orientation tag, as a camera held sideways writes it."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", quality=90, exif=exif.tobytes())


def _smooth_field(rng: np.random.Generator, width: int, height: int, cells: tuple[int, int]) -> Image.Image:
    """Random colours on a coarse grid, upscaled bicubically into smooth gradients."""
    coarse = rng.integers(0, 256, size=(cells[1], cells[0], 3), dtype=np.uint8)
    return Image.fromarray(coarse, "RGB").resize((width, height), Image.Resampling.BICUBIC)


def _draw_shapes(img: Image.Image, rng: np.random.Generator, count: int) -> None:
    """Draw ``count`` translucent rectangles and ellipses: sharp edges JPEG must spend bits on."""
    width, height = img.size
    overlay = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for _ in range(count):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1 = min(width, x0 + int(rng.integers(width // 40, width // 4)))
        y1 = min(height, y0 + int(rng.integers(height // 40, height // 4)))
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3)) + (int(rng.integers(120, 230)),)
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x0, y0, x1, y1), fill=colour)
    img.paste(overlay, (0, 0), overlay)


def _add_noise(img: Image.Image, rng: np.random.Generator, sigma: float) -> Image.Image:
    """Add Gaussian sensor noise, row band by row band to keep the float buffers small."""
    pixels = np.asarray(img, dtype=np.uint8).copy()
    band = 256
    for top in range(0, pixels.shape[0], band):
        rows = pixels[top : top + band]
        noise = rng.standard_normal(rows.shape, dtype=np.float32) * sigma
        rows[...] = np.clip(rows + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")
