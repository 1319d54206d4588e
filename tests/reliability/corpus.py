"""A corpus of hostile or odd photo files, made here in memory, each with what the app must do with it.

Every sample is small (bombs are a few hundred bytes to a few hundred KB that *declare* huge
images). ``expect`` is ``"rejected"`` (with the reason the photo record must carry), ``"ready"``
(with the size and format ``GET /photos`` must report and thumbnails to make and check: size,
format, upright, colours) or ``"either"`` (a file a decoder may reasonably accept or refuse: it
must not crash anything, and if accepted its thumbnails must be right).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image, ImageChops, ImageCms

from benchmarks.photos import encode as encode_photo, realistic_photo
from tests.unit.test_imaging import (
    BLUE,
    GREEN,
    GREY,
    RED,
    WHITE,
    YELLOW,
    camera_jpeg,
    encode,
    jpeg_declaring,
    jpeg_segments,
    near,
    png_declaring,
    quadrants,
    rgb_at,
    without_segment,
)

BOMB = "megapixel limit"  # "image is N megapixels, over the M megapixel limit"
CORRUPT = "image is truncated or corrupt"
NOT_IMAGE = "not an image"

Check = Callable[[bytes], None]


@dataclass
class Thumb:
    """A thumbnail to ask for and what must be true of its bytes (size and format are always checked)."""

    width: int
    height: int
    format: str
    check: Check | None = None


@dataclass
class Sample:
    name: str
    data: bytes
    content_type: str  # what the uploader claims (the presigned POST's Content-Type)
    expect: str  # rejected | ready | either
    reason: str | None = None  # rejected: a part of the photo's reason
    info: tuple[int, int, str] | None = None  # ready: (width, height, format) as GET /photos says
    thumbs: list[Thumb] = field(default_factory=list)


# --------------------------------------------------------------------------- checks


def colour_at(x: float, y: float, expected: tuple[int, ...], tolerance: int = 40) -> Check:
    def check(data: bytes) -> None:
        actual = rgb_at(data, x, y)[: len(expected)]
        assert near(actual, expected, tolerance), f"colour at ({x}, {y}) is {actual}, expected {expected}"
    return check


def all_of(*checks: Check) -> Check:
    def check(data: bytes) -> None:
        for c in checks:
            c(data)
    return check


def upright_quadrants(data: bytes) -> None:
    """Red top-left, green top-right, blue bottom-left, yellow bottom-right: any turn or flip shows."""
    all_of(colour_at(0.15, 0.15, RED), colour_at(0.85, 0.15, GREEN),
           colour_at(0.15, 0.85, BLUE), colour_at(0.85, 0.85, YELLOW))(data)


def alpha_at(x: float, y: float, alpha: int) -> Check:
    def check(data: bytes) -> None:
        assert rgb_at(data, x, y)[3] == alpha
    return check


# --------------------------------------------------------------------------- file makers


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_zero_bomb(side: int) -> bytes:
    """A *real* PNG bomb: a whole ``side`` x ``side`` greyscale image of zeros, compressed (~1000:1)."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    compressor = zlib.compressobj(9)
    row = b"\0" * (1 + side)
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


def gif_declaring(width: int, height: int) -> bytes:
    data = bytearray(encode(Image.new("P", (8, 8), 1), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)  # logical screen
    image = data.index(b"\x2c")  # image descriptor
    data[image + 5 : image + 9] = struct.pack("<HH", width, height)
    return bytes(data)


def webp_declaring(width: int, height: int) -> bytes:
    """A lossless 1x1 WebP behind a VP8X header whose canvas claims ``width`` x ``height``."""
    small = encode(Image.new("RGB", (1, 1), RED), "WEBP", lossless=True)
    bitstream = small[12:]  # the VP8L chunk
    vp8x = b"VP8X" + struct.pack("<I", 10) + bytes(4) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + vp8x + bitstream
    return b"RIFF" + struct.pack("<I", len(body)) + body


def webp_lossy_declaring(width: int, height: int) -> bytes:
    """A lossy WebP whose VP8 frame header claims ``width`` x ``height`` (at most 16383)."""
    data = bytearray(encode(Image.new("RGB", (16, 16), RED), "WEBP", quality=50))
    start = data.index(b"\x9d\x01\x2a") + 3  # the VP8 key frame start code, then 14-bit sizes
    data[start : start + 4] = struct.pack("<HH", width, height)
    return bytes(data)


def png_with_chunk(img: Image.Image, kind: bytes, body: bytes) -> bytes:
    data = encode(img, "PNG")
    end = data.index(b"IEND") - 4
    return data[:end] + _chunk(kind, body) + data[end:]


def jpeg_with_comments(img: Image.Image, count: int, size: int = 65_000) -> bytes:
    data = encode(img, "JPEG", quality=90)
    com = b"".join(b"\xff\xfe" + struct.pack(">H", size + 2) + (b"A" * size) for _ in range(count))
    return data[:2] + com + data[2:]


def jpeg_with_sof_size(img: Image.Image, width: int, height: int) -> bytes:
    data = bytearray(encode(img, "JPEG", quality=90))
    for offset, marker, _ in jpeg_segments(bytes(data)):
        if marker == 0xC0:
            data[offset + 5 : offset + 9] = struct.pack(">HH", height, width)
            return bytes(data)
    raise AssertionError("no SOF0")


def palette_half_transparent() -> bytes:
    img = Image.new("P", (64, 32), 0)
    img.putpalette([0, 0, 0, 255, 0, 0])
    img.paste(1, (32, 0, 64, 32))
    return encode(img, "PNG", transparency=0)


def animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (40, 40), colour) for colour in (RED, BLUE, GREEN)]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0,
                  **({"lossless": True} if fmt == "WEBP" else {}))


# --------------------------------------------------------------------------- the corpus


def build() -> list[Sample]:
    photo = realistic_photo(160, 120, seed=11)
    photo_jpeg = encode_photo(photo, "JPEG", quality=88)
    photo_png = encode(photo, "PNG")
    photo_webp = encode(photo, "WEBP", quality=80)
    q = quadrants(64, 48)
    red = Image.new("RGB", (32, 32), RED)
    cmyk_red = Image.new("CMYK", (48, 48), (0, 255, 255, 0))

    samples = [
        # ---- decompression bombs: refused from the header, before any pixel is allocated
        Sample("bomb-png-real-64mp", png_zero_bomb(8000), "image/png", "rejected", BOMB),
        Sample("bomb-png-header-400mp", png_declaring(20_000, 20_000), "image/png", "rejected", BOMB),
        Sample("bomb-png-header-4gp", png_declaring(65_535, 65_535), "image/png", "rejected", BOMB),
        Sample("bomb-jpeg-header-400mp", jpeg_declaring(20_000, 20_000), "image/jpeg", "rejected", BOMB),
        Sample("bomb-jpeg-header-4gp", jpeg_declaring(65_535, 65_535), "image/jpeg", "rejected", BOMB),
        Sample("bomb-gif-header-4gp", gif_declaring(65_535, 65_535), "image/png", "rejected"),
        Sample("bomb-webp-vp8x-268mp", webp_declaring(16_384, 16_384), "image/webp", "rejected"),
        Sample("bomb-webp-vp8-268mp", webp_lossy_declaring(16_383, 16_383), "image/webp", "rejected"),
        # ---- dimensions that lie
        # Pillow decodes both without an error (the PNG's zlib stream ends cleanly after one row, libjpeg
        # only warns of a premature end) and fills the missing rows: accepted, with the declared size.
        Sample("lie-png-bigger-than-data", png_declaring(640, 480), "image/png", "either", CORRUPT,
               info=(640, 480, "PNG"), thumbs=[Thumb(64, 48, "PNG")]),
        Sample("lie-jpeg-sof-bigger", jpeg_with_sof_size(red, 3000, 2000), "image/jpeg", "either", CORRUPT,
               info=(3000, 2000, "JPEG"), thumbs=[Thumb(60, 40, "JPEG")]),
        Sample("lie-jpeg-sof-zero", jpeg_with_sof_size(red, 0, 0), "image/jpeg", "rejected"),
        Sample("lie-webp-vp8-smaller", webp_lossy_declaring(4, 4), "image/webp", "either",
               info=(4, 4, "WEBP"), thumbs=[Thumb(8, 8, "WEBP")]),
        # ---- truncated and corrupt
        Sample("truncated-jpeg-half", photo_jpeg[: len(photo_jpeg) // 2], "image/jpeg", "rejected", CORRUPT),
        Sample("truncated-jpeg-no-eoi", photo_jpeg[:-2], "image/jpeg", "rejected", CORRUPT),
        Sample("truncated-png-half", photo_png[: len(photo_png) // 2], "image/png", "rejected", CORRUPT),
        Sample("truncated-webp-half", photo_webp[: len(photo_webp) // 2], "image/webp", "rejected", CORRUPT),
        Sample("truncated-header-only", photo_png[:40], "image/png", "rejected", CORRUPT),
        Sample("corrupt-png-middle", photo_png[:800] + bytes(64) + photo_png[864:], "image/png", "rejected", CORRUPT),
        Sample("corrupt-jpeg-huffman", _corrupt_huffman(photo_jpeg), "image/jpeg", "rejected", CORRUPT),
        Sample("corrupt-jpeg-magic-then-noise", b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8, "image/jpeg", "rejected"),
        # ---- not images at all, with image names
        # (an empty file never gets this far: the form's content-length-range starts at 1 byte, so S3 refuses it
        # with EntityTooSmall and stores nothing, tests/local_cloud/test_s3_checks.py; the upload function's own
        # answer to an empty object is tested against moto in tests/integration/test_handlers.py)
        Sample("text-file", b"hello, I am a photo, honest\n" * 10, "image/jpeg", "rejected", NOT_IMAGE),
        Sample("html-file", b"<!doctype html><script>alert(document.cookie)</script>", "image/png", "rejected", NOT_IMAGE),
        Sample("svg-file", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="9" height="9"/></svg>',
               "image/png", "rejected", NOT_IMAGE),
        Sample("pdf-file", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", "image/jpeg", "rejected", NOT_IMAGE),
        Sample("bmp-as-jpeg", encode(red, "BMP"), "image/jpeg", "rejected"),
        Sample("tiff-as-png", encode(red, "TIFF"), "image/png", "rejected"),
        Sample("gif-animated", animated("GIF"), "image/png", "rejected"),
        # ---- polyglots
        Sample("polyglot-gif-javascript", b"GIF89a/*\x01\x00\x01\x00\x00\x00\x00*/=alert(1);//;", "image/png", "rejected"),
        Sample("polyglot-jpeg-plus-zip", encode(red, "JPEG") + _zip_bytes(), "image/jpeg", "ready",
               info=(32, 32, "JPEG"), thumbs=[Thumb(16, 16, "PNG", colour_at(0.5, 0.5, RED))]),
        Sample("polyglot-png-with-html-text", png_with_chunk(red, b"tEXt", b"Comment\0<script>alert(1)</script>"),
               "image/png", "ready", info=(32, 32, "PNG"), thumbs=[Thumb(8, 8, "JPEG", colour_at(0.5, 0.5, RED))]),
        # ---- huge metadata
        Sample("metadata-jpeg-3mb-comments", jpeg_with_comments(red, 48), "image/jpeg", "ready",
               info=(32, 32, "JPEG"), thumbs=[Thumb(20, 10, "WEBP", colour_at(0.5, 0.5, RED))]),
        Sample("metadata-png-2mb-ztxt-bomb", png_with_chunk(red, b"zTXt", b"Comment\0\0" + zlib.compress(b"A" * 20_000_000, 9)),
               "image/png", "either", CORRUPT, info=(32, 32, "PNG"), thumbs=[Thumb(8, 8, "PNG", colour_at(0.5, 0.5, RED))]),
        Sample("metadata-broken-icc", encode(Image.new("RGB", (32, 32), (200, 60, 30)), "PNG", icc_profile=b"not ICC" * 1000),
               "image/png", "ready", info=(32, 32, "PNG"), thumbs=[Thumb(8, 8, "PNG", colour_at(0.5, 0.5, (200, 60, 30), 4))]),
        Sample("metadata-srgb-icc-jpeg", encode(red, "JPEG", quality=95,
               icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()),
               "image/jpeg", "ready", info=(32, 32, "JPEG"), thumbs=[Thumb(8, 8, "PNG", colour_at(0.5, 0.5, RED))]),
        # ---- colour modes
        Sample("cmyk-adobe-jpeg", encode(cmyk_red, "JPEG"), "image/jpeg", "ready", info=(48, 48, "JPEG"),
               thumbs=[Thumb(16, 16, "JPEG", colour_at(0.5, 0.5, RED, 60)), Thumb(16, 16, "PNG", colour_at(0.5, 0.5, RED, 60))]),
        Sample("cmyk-plain-jpeg", without_segment(encode(ImageChops.invert(cmyk_red), "JPEG"), 0xEE), "image/jpeg", "ready",
               info=(48, 48, "JPEG"), thumbs=[Thumb(16, 16, "JPEG", colour_at(0.5, 0.5, RED, 60))]),
        Sample("grey-16bit-png", encode(Image.new("I;16", (48, 48), 0x8080), "PNG"), "image/png", "ready",
               info=(48, 48, "PNG"), thumbs=[Thumb(24, 24, "WEBP", colour_at(0.5, 0.5, GREY, 6))]),
        Sample("grey-jpeg", encode(Image.new("L", (40, 30), 128), "JPEG"), "image/jpeg", "ready",
               info=(40, 30, "JPEG"), thumbs=[Thumb(20, 15, "PNG", colour_at(0.5, 0.5, GREY, 6))]),
        Sample("palette-transparent-png", palette_half_transparent(), "image/png", "ready", info=(64, 32, "PNG"),
               thumbs=[Thumb(32, 16, "PNG", all_of(alpha_at(0.1, 0.5, 0), colour_at(0.9, 0.5, (*RED, 255)))),
                       Thumb(32, 16, "JPEG", all_of(colour_at(0.1, 0.5, WHITE, 8), colour_at(0.9, 0.5, RED)))]),
        Sample("rgba-webp", encode(_half_clear("RGBA"), "WEBP", lossless=True), "image/webp", "ready", info=(40, 40, "WEBP"),
               thumbs=[Thumb(20, 20, "WEBP", all_of(alpha_at(0.1, 0.5, 0), colour_at(0.9, 0.5, BLUE)))]),
        Sample("la-png", encode(_half_clear("LA"), "PNG"), "image/png", "ready", info=(40, 40, "PNG"),
               thumbs=[Thumb(20, 20, "JPEG", colour_at(0.1, 0.5, WHITE, 8))]),
        Sample("animated-png", animated("PNG"), "image/png", "ready", info=(40, 40, "PNG"),
               thumbs=[Thumb(10, 10, "PNG", colour_at(0.5, 0.5, RED))]),
        Sample("animated-webp", animated("WEBP"), "image/webp", "ready", info=(40, 40, "WEBP"),
               thumbs=[Thumb(10, 10, "JPEG", colour_at(0.5, 0.5, RED))]),
        Sample("progressive-jpeg", encode(q, "JPEG", quality=95, progressive=True), "image/jpeg", "ready",
               info=(64, 48, "JPEG"), thumbs=[Thumb(32, 24, "PNG", upright_quadrants)]),
        Sample("one-pixel-png", encode(Image.new("RGB", (1, 1), BLUE), "PNG"), "image/png", "ready", info=(1, 1, "PNG"),
               thumbs=[Thumb(64, 64, "JPEG", colour_at(0.5, 0.5, BLUE))]),
        Sample("extreme-aspect-png", encode(Image.new("RGB", (4000, 1), GREEN), "PNG"), "image/png", "ready",
               info=(4000, 1, "PNG"), thumbs=[Thumb(32, 32, "PNG", colour_at(0.5, 0.5, GREEN))]),
        Sample("wrong-content-type-png-as-jpeg", encode(q, "PNG"), "image/jpeg", "ready", info=(64, 48, "PNG"),
               thumbs=[Thumb(32, 24, "WEBP", upright_quadrants)]),
        Sample("mpo-phone-jpeg", encode(photo, "MPO", save_all=True, append_images=[photo.rotate(90)]), "image/jpeg", "ready",
               info=(160, 120, "JPEG"), thumbs=[Thumb(40, 30, "JPEG")]),
    ]
    # ---- every EXIF orientation: the thumbnail must be upright whatever the camera stored
    for orientation in range(1, 9):
        samples.append(Sample(
            f"exif-orientation-{orientation}", camera_jpeg(q, orientation), "image/jpeg", "ready",
            info=(64, 48, "JPEG"), thumbs=[Thumb(32, 24, "PNG", upright_quadrants)],
        ))
    odd = bytearray(camera_jpeg(q, 1))
    samples.append(Sample("exif-orientation-invalid-99", _with_orientation_value(bytes(odd), 99), "image/jpeg", "ready",
                          info=(64, 48, "JPEG"), thumbs=[Thumb(32, 24, "PNG", upright_quadrants)]))
    names = [s.name for s in samples]
    assert len(names) == len(set(names)), "sample names must be unique"
    return samples


def _corrupt_huffman(jpeg: bytes) -> bytes:
    data = bytearray(jpeg)
    offset = next(offset for offset, marker, _ in jpeg_segments(bytes(data)) if marker == 0xC4)
    data[offset + 4 : offset + 24] = b"\xff" * 20
    return bytes(data)


def _zip_bytes() -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("evil.sh", "#!/bin/sh\necho pwned\n")
    return buffer.getvalue()


def _half_clear(mode: str) -> Image.Image:
    img = Image.new(mode, (40, 40), (0, 0) if mode == "LA" else (0, 0, 0, 0))
    img.paste((0, 255) if mode == "LA" else (*BLUE, 255), (20, 0, 40, 40))
    return img


def _with_orientation_value(jpeg: bytes, value: int) -> bytes:
    """The same JPEG with its EXIF Orientation (stored as 1) set to ``value`` (out of range for 99)."""
    marker = b"\x01\x12\x00\x03\x00\x00\x00\x01"  # tag 0x0112, SHORT, count 1 (big-endian EXIF)
    at = jpeg.find(marker)
    little = False
    if at < 0:
        marker = b"\x12\x01\x03\x00\x01\x00\x00\x00"
        at = jpeg.find(marker)
        little = True
    assert at >= 0, "no orientation tag"
    value_at = at + len(marker)
    packed = struct.pack("<H" if little else ">H", value)
    return jpeg[:value_at] + packed + jpeg[value_at + 2 :]
