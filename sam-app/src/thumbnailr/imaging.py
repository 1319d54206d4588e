"""The imaging core: check uploaded photos and make thumbnails. Pillow only.

Pure: no AWS, no environment variables, no files, so it is tested and
benchmarked on a laptop exactly as it runs in Lambda.

Three concerns shape the code:

* Safety. An upload is untrusted. We read only the header first and refuse a
  format we do not serve or a pixel count over the limit *before* decoding, so a
  "decompression bomb" (a small file declaring a huge image) never gets its
  pixels allocated. Every Pillow error becomes :class:`ImageRejected`.
* Speed. Lambda bills by the millisecond, and decoding dominates. For JPEG we
  ask libjpeg to decode at 1/2, 1/4 or 1/8 scale in the DCT (``Image.draft``),
  which skips most of the work; several sizes share one decode, and each smaller
  thumbnail is made from the next larger one rather than from the whole photo.
* Colour. Thumbnails are untagged sRGB without metadata, so embedded ICC
  profiles are applied, CMYK is converted with the right polarity, 16-bit grey is
  scaled rather than clipped and transparency is kept (PNG, WebP) or laid on
  white (JPEG).

Animated PNG and WebP are accepted; their thumbnail is the first frame, and only
the first frame is decoded and checked.
"""

from __future__ import annotations

import functools
import io
import re
import struct
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageCms, UnidentifiedImageError

__all__ = [
    "ALLOWED_FORMATS",
    "MAX_JPEG_SCANS",
    "MAX_PIXELS",
    "ImageInfo",
    "ImageRejected",
    "inspect_image",
    "jpeg_scans",
    "make_thumbnail",
    "make_thumbnails",
]

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP")
MAX_PIXELS = 40_000_000  # 40 megapixels
# Pixels bound memory, not time: a progressive JPEG is decoded once per scan, and a small file can hold
# thousands of them (the "scan bomb": 24,000 in 2 MB). libjpeg's progressive script writes 10 scans (6 for
# grey); 40 leaves room for other encoders. Measured: a 36 MP JPEG costs ~0.15 s per scan even at 1/8 scale.
MAX_JPEG_SCANS = 40
# What decoding one photo may take (s), inside the upload check's 30 s timeout: past it, rejected. Making
# thumbnails decodes at a larger scale, so the worker (30 s too) allows more.
DECODE_BUDGET_S = 8.0
THUMBNAIL_DECODE_BUDGET_S = 20.0
_DECODE_CHUNK = 16 * 1024  # Pillow feeds the decoder this much at a time: the budget is checked between chunks

# Pillow calls a JPEG with extra pictures (phones store depth maps and previews
# that way) "MPO"; it is a JPEG and decodes as one.
_FORMAT_ALIASES = {"MPO": "JPEG"}

# What Pillow raises on bad input, besides the OSError family. Its plugins parse
# with struct and index into headers, so a malformed file can surface as any of
# these; all of them mean "this file is broken", never "our code is broken".
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, KeyError, ZeroDivisionError)

_ORIENTATION_TAG = 0x0112
# EXIF orientation -> the transpose that makes the image upright, as ImageOps.exif_transpose.
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = {5, 6, 7, 8}

_RESAMPLE = Image.Resampling.BICUBIC  # ImageOps.fit's default: sharp enough, cheaper than LANCZOS
# When the crop region is much larger than the box (PNG and WebP have no DCT
# scaling), box-average by an integer factor first (Image.reduce), leaving at
# least 1.5x for the bicubic pass. Measured on a 12 MP photo against a LANCZOS
# reference: 45 dB PSNR (2.0: 46 dB, no reduce: 47 dB) in 70% of 2.0's time, 45% of no reduce's.
_REDUCING_GAP = 1.5
_JPEG_QUALITY = 85
# Encoder effort, measured on a 512x512 photo thumbnail (ms, KB):
_SAVE_OPTIONS = {
    # optimize=True (per-image Huffman tables): 2% smaller for twice the time (1.5 -> 3.5).
    "JPEG": {"quality": _JPEG_QUALITY, "optimize": False},
    # zlib level 3 instead of Pillow's 6: 9% larger, 45% less time (108 -> 61).
    "PNG": {"compress_level": 3},
    # method 2 instead of libwebp's 4: 5% larger, 55% less time (49 -> 21).
    "WEBP": {"quality": 80, "method": 2},
}
_MAX_BOX_SIDE = 4096  # a thumbnail, not a poster: bounds the memory a caller can ask for


class ImageRejected(Exception):
    """The upload is not an image we accept; ``reason`` says why in one human sentence."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ImageInfo:
    """What a photo looks like once displayed: size after EXIF orientation, and format."""

    width: int
    height: int
    format: str


@dataclass(frozen=True)
class _Colour:
    """What the source says about its colours; thumbnails lose the metadata, so we keep it here."""

    icc_profile: bytes | None
    cmyk_inverted: bool  # Adobe CMYK JPEGs store inverted ink values


# --------------------------------------------------------------------------- public API


def inspect_image(data: bytes, max_pixels: int = MAX_PIXELS, budget_s: float = DECODE_BUDGET_S) -> ImageInfo:
    """Check that ``data`` is a whole JPEG, PNG or WebP of at most ``max_pixels`` and describe it.

    Size and format are checked from the header before any pixel is decoded;
    then the image is decoded to prove it is complete. For JPEG that decode is
    at 1/8 scale: every byte is still read and entropy-decoded, so truncation is
    caught, for an eighth of the work.

    A JPEG with more than MAX_JPEG_SCANS scans is refused from its markers, before decoding, and a decode
    that takes over ``budget_s`` seconds is stopped and refused.

    Raises ImageRejected with a reason such as "not an image".
    """
    with _open(data, max_pixels, budget_s) as img:
        width, height = img.size
        _decode(img, scale=8)
        orientation = _orientation(img)  # after decoding: a PNG may keep EXIF after the pixels
        if orientation in _SWAPS_AXES:
            width, height = height, width
        return ImageInfo(width, height, _format_of(img))


def make_thumbnail(data: bytes, width: int, height: int, format: str) -> bytes:
    """Return ``data`` as an upright ``width`` x ``height`` thumbnail, centre-cropped, encoded as ``format``.

    Raises ValueError for bad arguments and ImageRejected for a bad image.
    """
    return make_thumbnails(data, [(width, height)], format)[0]


def make_thumbnails(data: bytes, sizes: Sequence[tuple[int, int]], format: str) -> list[bytes]:
    """Return one thumbnail per (width, height) in ``sizes``, like :func:`make_thumbnail`, decoding once.

    The photo is decoded at the smallest JPEG DCT scale that still serves the
    largest box; each thumbnail is made from the smallest image already at hand
    that covers it (a 256x256 from the 512x512, not from the photo).
    """
    output_format = _check_format_argument(format)
    boxes = [_check_box(size) for size in sizes]
    if not boxes:
        return []
    with _open(data, MAX_PIXELS, THUMBNAIL_DECODE_BUDGET_S) as img:
        is_jpeg = _format_of(img) == "JPEG"
        if not is_jpeg:
            _decode(img, scale=1)  # no DCT scaling to choose, and PNG may keep EXIF after the pixels
        orientation = _orientation(img)
        # Work in the file's stored orientation and turn only the small results
        # upright: a centre crop is symmetric, so crop-then-turn equals turn-then-crop.
        stored_boxes = [(h, w) if orientation in _SWAPS_AXES else (w, h) for w, h in boxes]
        if is_jpeg:
            _decode(img, scale=_dct_scale(img.size, stored_boxes))
        colour = _Colour(img.info.get("icc_profile"), cmyk_inverted="adobe" in img.info)
        # Inside the with: closing the file frees the decoded pixels too.
        thumbs = _fit_all(_resampleable(img), stored_boxes)
    return [_encode(_finish(thumb, orientation, colour, output_format), output_format) for thumb in thumbs]


# --------------------------------------------------------------------------- argument checks


def _check_format_argument(format: object) -> str:
    """Return the output format upper-cased, or raise ValueError."""
    if not isinstance(format, str) or format.upper() not in ALLOWED_FORMATS:
        raise ValueError(f"format must be one of {', '.join(ALLOWED_FORMATS)}, not {format!r}")
    return format.upper()


def _check_box(size: object) -> tuple[int, int]:
    """Return ``size`` as (width, height) of positive ints, or raise ValueError."""
    if not (isinstance(size, tuple | list) and len(size) == 2):
        raise ValueError(f"a thumbnail size is a (width, height) pair, not {size!r}")
    for side in size:
        # bool is an int subclass; True x False is a mistake, not a 1x0 box.
        if isinstance(side, bool) or not isinstance(side, int) or not 1 <= side <= _MAX_BOX_SIDE:
            raise ValueError(f"thumbnail width and height must be whole numbers from 1 to {_MAX_BOX_SIDE}, not {size!r}")
    return size[0], size[1]


# --------------------------------------------------------------------------- opening and decoding


class _OverBudget(Exception):
    """Decoding took longer than its budget."""


class _BudgetedBytes(io.BytesIO):
    """The file Pillow decodes from: once armed (decoding starts), a read past the deadline stops the decode."""

    def __init__(self, data: bytes, budget_s: float) -> None:
        super().__init__(data)
        self.budget_s = budget_s
        self.deadline = float("inf")

    def arm(self) -> None:
        self.deadline = time.monotonic() + self.budget_s

    def read(self, size: int | None = -1) -> bytes:
        if time.monotonic() > self.deadline:
            raise _OverBudget(self.budget_s)
        return super().read(size)


def jpeg_scans(data: bytes) -> int:
    """How many scans (SOS markers) a JPEG holds, read from its markers without decoding.

    Segments before a scan carry their length; a scan's entropy-coded data runs to the next marker that is
    neither a stuffed 0xFF00 nor a restart marker (RST0-7). Stops counting past MAX_JPEG_SCANS.
    """
    scans, pos, end = 0, 2, len(data)
    while pos + 4 <= end and scans <= MAX_JPEG_SCANS:
        if data[pos] != 0xFF:
            pos = data.find(b"\xff", pos)  # garbage between segments: the decoder skips it too
            if pos < 0:
                break
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # EOI
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # no length
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        pos += 2 + length
        if marker != 0xDA:
            continue
        scans += 1
        while True:  # skip the entropy-coded data
            pos = data.find(b"\xff", pos)
            if pos < 0 or pos + 1 >= end:
                return scans
            following = data[pos + 1]
            if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
                pos += 1 if following == 0xFF else 2
                continue
            break
    return scans


@contextmanager
def _open(data: bytes, max_pixels: int, budget_s: float = DECODE_BUDGET_S) -> Iterator[Image.Image]:
    """Open ``data`` lazily (header only) and refuse it if the format, the size or (JPEG) the scan count is wrong."""
    if not data:
        raise ImageRejected("not an image")
    try:
        # Pillow warns between MAX_IMAGE_PIXELS and twice that and raises above;
        # as an error the warning stops Image.open before anything is allocated.
        # (catch_warnings is process-wide, fine for Lambda's one request at a time.)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(_BudgetedBytes(data, budget_s))
    except UnidentifiedImageError:
        # Pillow could not parse the header. If the file starts like one of our
        # formats it is a broken one, and saying so helps the uploader more.
        raise ImageRejected("image is truncated or corrupt" if _has_allowed_magic(data) else "not an image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(_bomb_reason(str(exc), max_pixels)) from None
    except _DECODE_ERRORS:
        raise ImageRejected("image is truncated or corrupt") from None
    with img:
        _check_header(img, max_pixels)
        if _format_of(img) == "JPEG" and (scans := jpeg_scans(data)) > MAX_JPEG_SCANS:
            raise ImageRejected(f"JPEG has {scans} scans: over {MAX_JPEG_SCANS} scans is more than any camera or encoder writes: "
                                "too slow to decode safely")
        img.decodermaxblock = _DECODE_CHUNK
        yield img


def _has_allowed_magic(data: bytes) -> bool:
    """Whether ``data`` starts with the signature of a JPEG, PNG or WebP file."""
    return data.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def _check_header(img: Image.Image, max_pixels: int) -> None:
    """Refuse a format outside ALLOWED_FORMATS or a declared size over ``max_pixels``."""
    if _format_of(img) not in ALLOWED_FORMATS:
        raise ImageRejected(f"format {img.format} is not allowed ({', '.join(ALLOWED_FORMATS)})")
    width, height = img.size
    if width < 1 or height < 1:
        raise ImageRejected("image has no pixels")
    if width * height > max_pixels:
        raise ImageRejected(_too_large(width * height, max_pixels))


def _format_of(img: Image.Image) -> str:
    return _FORMAT_ALIASES.get(img.format, img.format)


def _too_large(pixels: int, limit: int) -> str:
    megapixels = f"{pixels / 1e6:.1f}" if pixels >= 100_000 else f"{pixels / 1e6:.2g}"
    return f"image is {megapixels} megapixels, over the {limit / 1e6:g} megapixel limit"


def _bomb_reason(message: str, max_pixels: int) -> str:
    """Reason for an image Pillow itself refused as a decompression bomb."""
    # Pillow's message, stable for years: "Image size (400000000 pixels) exceeds limit of ..."
    found = re.search(r"\((\d+) pixels\)", message)
    limit = min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels)
    return _too_large(int(found.group(1)), limit) if found else "image is too large to open safely"


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation (1 to 8), 1 when absent or nonsense.

    Call it after a PNG is decoded: to find EXIF stored after the pixels Pillow
    decodes the PNG, and a broken one must fail in _decode, not be swallowed here.
    """
    try:
        value = img.getexif().get(_ORIENTATION_TAG, 1)
    except _DECODE_ERRORS:
        return 1  # broken EXIF: the pixels may be fine, show them as stored
    return value if value in _UPRIGHT else 1


def _dct_scale(size: tuple[int, int], boxes: Sequence[tuple[int, int]]) -> int:
    """The largest JPEG DCT scale (8, 4, 2 or 1) that decodes every box's crop region at box size or more.

    ImageOps.fit crops the largest region of the box's shape: for a W x H image
    that region is ``room`` times the box, room = min(W / box_w, H / box_h).
    Decoding at 1/scale keeps it at least box-sized while scale <= room.
    """
    width, height = size
    room = min(min(width / box_w, height / box_h) for box_w, box_h in boxes)
    return next((scale for scale in (8, 4, 2) if scale <= room), 1)


def _decode(img: Image.Image, scale: int) -> None:
    """Decode the pixels; a JPEG at 1/``scale`` size in the DCT. Broken data => ImageRejected."""
    try:
        if scale > 1 and _format_of(img) == "JPEG":
            width, height = img.size
            # draft() picks the largest scale that keeps the image at least the
            # size we pass; W // scale x H // scale makes that exactly ``scale``
            # (or less for an image under 8 pixels wide: never 0, draft divides by it).
            img.draft("RGB", (max(1, width // scale), max(1, height // scale)))
        if isinstance(img.fp, _BudgetedBytes):
            img.fp.arm()
        img.load()
    except _OverBudget as over:
        raise ImageRejected(f"image takes over {over.args[0]:g} s to decode: too slow to check safely") from None
    except _DECODE_ERRORS:
        raise ImageRejected("image is truncated or corrupt") from None


# --------------------------------------------------------------------------- pixels


def _resampleable(img: Image.Image) -> Image.Image:
    """The decoded image in a mode Image.resize handles correctly, alpha and CMYK kept for later.

    Palette indices cannot be averaged, 16-bit grey would be clipped to white by
    convert("L"), and a transparency key would be lost in resampling, so those
    become L, RGB or RGBA here. CMYK stays CMYK until colour management.
    """
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # Scale 0..65535 to 0..255 (point() on these modes is a linear map).
        return img.point(lambda value: value / 256).convert("L")
    if mode in ("P", "PA", "L", "RGB", "1") and "transparency" in img.info:
        return img.convert("RGBA")  # applies the tRNS key or palette alpha
    if mode in ("P", "PA"):
        return img.convert("RGBA" if mode == "PA" else "RGB")
    if mode == "1":
        return img.convert("L")
    if mode in ("L", "LA", "RGB", "RGBA", "CMYK"):
        return img
    return img.convert("RGB")  # anything exotic a plugin might hand us


def _fit_all(source: Image.Image, boxes: Sequence[tuple[int, int]]) -> list[Image.Image]:
    """Fit ``source`` to every box, each from the smallest finished thumbnail that covers it."""
    done: dict[tuple[int, int], Image.Image] = {}
    # Largest first, so smaller boxes can start from a finished one.
    for box in sorted(set(boxes), key=lambda b: b[0] * b[1], reverse=True):
        done[box] = _fit(_best_start(source, done, box), box)
    return [done[box] for box in boxes]


def _best_start(source: Image.Image, done: dict[tuple[int, int], Image.Image], box: tuple[int, int]) -> Image.Image:
    """The smallest finished thumbnail with the box's shape and at least its size, else ``source``.

    A thumbnail of the same aspect ratio is exactly the centre crop the smaller
    box needs, already reduced, so resizing it costs a fraction of the work.
    """
    width, height = box
    covering = [
        thumb
        for (w, h), thumb in done.items()
        if w * height == h * width and w >= width and h >= height
    ]
    return min(covering, key=lambda thumb: thumb.width, default=source)


def _fit(img: Image.Image, box: tuple[int, int]) -> Image.Image:
    """Scale and centre-crop ``img`` to fill ``box``, as ImageOps.fit does."""
    width, height = img.size
    box_w, box_h = box
    if width * box_h > box_w * height:  # wider than the box: crop the sides
        crop_w, crop_h = box_w * height / box_h, height
    else:  # taller (or the same shape): crop top and bottom
        crop_w, crop_h = width, box_h * width / box_w
    left, top = (width - crop_w) / 2, (height - crop_h) / 2
    crop = (left, top, left + crop_w, top + crop_h)
    return img.resize(box, _RESAMPLE, box=crop, reducing_gap=_REDUCING_GAP)


def _finish(thumb: Image.Image, orientation: int, colour: _Colour, output_format: str) -> Image.Image:
    """Turn the thumbnail upright, make it sRGB, and flatten alpha onto white for JPEG."""
    if orientation in _UPRIGHT:
        thumb = thumb.transpose(_UPRIGHT[orientation])
    thumb = _to_srgb(thumb, colour)
    if output_format == "JPEG" and thumb.mode == "RGBA":
        # JPEG has no alpha; converting would show the hidden colour of
        # transparent pixels (often black), so composite on white instead.
        background = Image.new("RGB", thumb.size, "white")
        background.paste(thumb, mask=thumb.getchannel("A"))
        thumb = background
    return thumb


def _to_srgb(img: Image.Image, colour: _Colour) -> Image.Image:
    """``img`` as RGB or RGBA in sRGB: ICC profile applied, CMYK polarity fixed."""
    if img.mode == "CMYK" and not colour.cmyk_inverted:
        # Pillow reads every CMYK JPEG as Adobe's inverted kind; one without the
        # Adobe marker stores plain ink values, so undo that inversion.
        img = ImageChops.invert(img)
    target = "RGBA" if img.mode in ("LA", "RGBA") else "RGB"
    transform = _srgb_transform(colour.icc_profile, img.mode) if colour.icc_profile else None
    if transform is not None:
        try:
            return ImageCms.applyTransform(img, transform)
        except (ImageCms.PyCMSError, ValueError):
            pass  # fall back to plain conversion, as for an unusable profile
    return img if img.mode == target else img.convert(target)


@functools.lru_cache(maxsize=16)
def _srgb_transform(icc_profile: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """A transform from the embedded profile to sRGB, or None if not needed or not usable.

    Cached: phones tag every photo with the same few profiles (Display P3, sRGB).
    """
    if mode not in ("RGB", "RGBA", "CMYK"):
        return None  # grey profiles are rare; plain conversion is close enough
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        if "srgb" in (source.profile.profile_description or "").lower() and mode != "CMYK":
            return None  # already sRGB: untagged output means the same
        return ImageCms.buildTransform(
            source,
            _SRGB,
            mode,
            "RGBA" if mode == "RGBA" else "RGB",
            renderingIntent=ImageCms.Intent.PERCEPTUAL,
        )
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None  # a broken or mismatched profile: plain conversion beats a rejection


_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _encode(img: Image.Image, output_format: str) -> bytes:
    """Encode ``img`` with no metadata: no EXIF (GPS!), no ICC, no text chunks."""
    # Pillow's PNG writer falls back to img.info for an ICC profile and more; ours
    # are fresh images, so emptying info is safe and strips everything.
    img.info = {}
    buffer = io.BytesIO()
    img.save(buffer, output_format, **_SAVE_OPTIONS[output_format])
    return buffer.getvalue()
