"""Unit tests of thumbnailr.imaging: sizes, crops, orientation, colours, and what gets rejected.

Every image is made here, small, so the whole file runs in a few seconds.
"""

from __future__ import annotations

import io
import struct
import time
import warnings
import zlib

import pytest
from PIL import Image, ImageChops, ImageCms, ImageFile, ImageOps, ImageStat, JpegImagePlugin

from benchmarks.photos import realistic_photo
from thumbnailr import imaging
from thumbnailr.imaging import (
    ALLOWED_FORMATS,
    MAX_PIXELS,
    ImageInfo,
    ImageRejected,
    inspect_image,
    make_thumbnail,
    make_thumbnails,
)

RED, GREEN, BLUE, YELLOW, GREY, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (128, 128, 128), (255, 255, 255)

# The transpose that turns an upright picture into what a camera stores with
# each EXIF orientation: the inverse of what the viewer applies.
STORED_AS = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


# --------------------------------------------------------------------------- helpers


def encode(img: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **options)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def rgb_at(data: bytes, x: float, y: float) -> tuple[int, ...]:
    """The colour at a fraction (x, y) of the decoded image's width and height."""
    img = decode(data)
    img = img.convert("RGBA" if img.mode in ("RGBA", "LA") else "RGB")
    return img.getpixel((int(x * (img.width - 1)), int(y * (img.height - 1))))


def near(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 40) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def quadrants(width: int, height: int) -> Image.Image:
    """Red top-left, green top-right, blue bottom-left, yellow bottom-right: any turn or flip shows."""
    img = Image.new("RGB", (width, height))
    half_w, half_h = width // 2, height // 2
    for box, colour in (
        ((0, 0, half_w, half_h), RED),
        ((half_w, 0, width, half_h), GREEN),
        ((0, half_h, half_w, height), BLUE),
        ((half_w, half_h, width, height), YELLOW),
    ):
        img.paste(colour, box)
    return img


def stripes(width: int, height: int, colours: list[tuple[int, int, int]], vertical: bool) -> Image.Image:
    """Equal bands of ``colours``, left to right (vertical) or top to bottom."""
    img = Image.new("RGB", (width, height))
    n = len(colours)
    for i, colour in enumerate(colours):
        box = (i * width // n, 0, (i + 1) * width // n, height) if vertical else (0, i * height // n, width, (i + 1) * height // n)
        img.paste(colour, box)
    return img


def camera_jpeg(upright: Image.Image, orientation: int, **options) -> bytes:
    """A JPEG stored as a camera would for ``orientation``, which shows ``upright`` when displayed."""
    transpose = STORED_AS[orientation]
    stored = upright.transpose(transpose) if transpose is not None else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(stored, "JPEG", quality=95, exif=exif.tobytes(), **options)


def jpeg_segments(data: bytes):
    """(offset, marker, length) of each header segment of a JPEG, up to the start of scan."""
    offset = 2
    while offset < len(data):
        marker, length = data[offset + 1], struct.unpack(">H", data[offset + 2 : offset + 4])[0]
        yield offset, marker, length
        if marker == 0xDA:
            return
        offset += 2 + length


def without_segment(data: bytes, marker: int) -> bytes:
    for offset, found, length in jpeg_segments(data):
        if found == marker:
            return data[:offset] + data[offset + 2 + length :]
    raise AssertionError(f"no segment {marker:#x}")


def jpeg_declaring(width: int, height: int) -> bytes:
    """A tiny real JPEG whose SOF header claims ``width`` x ``height``."""
    data = bytearray(encode(Image.new("RGB", (16, 16), RED), "JPEG"))
    for offset, marker, _ in jpeg_segments(bytes(data)):
        if marker == 0xC0:
            data[offset + 5 : offset + 9] = struct.pack(">HH", height, width)
            return bytes(data)
    raise AssertionError("no SOF0")


def png_declaring(width: int, height: int) -> bytes:
    """A valid-looking PNG of a few hundred bytes whose header claims ``width`` x ``height``."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    one_row = zlib.compress(b"\0" * (1 + 3 * width), 9)  # the rest of the rows are simply missing
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", one_row) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return realistic_photo(640, 480, seed=3)


@pytest.fixture
def never_decoded(monkeypatch):
    """Fail the test if Pillow starts decoding pixels of a PNG or JPEG."""

    def refuse(self):
        raise AssertionError(f"decoded a {self.size[0]}x{self.size[1]} image that should have been refused")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


# --------------------------------------------------------------------------- size, format, crop


@pytest.mark.parametrize("output_format", ALLOWED_FORMATS)
@pytest.mark.parametrize("box", [(64, 64), (80, 30), (25, 90)])
def test_thumbnail_is_exactly_the_requested_size_in_the_requested_format(photo, output_format, box):
    thumb = decode(make_thumbnail(encode(photo, "JPEG"), *box, output_format))
    assert (thumb.size, thumb.format) == (box, output_format)


@pytest.mark.parametrize("input_format", ALLOWED_FORMATS)
def test_every_allowed_input_format_makes_a_thumbnail(photo, input_format):
    thumb = decode(make_thumbnail(encode(photo, input_format), 50, 40, "JPEG"))
    assert thumb.size == (50, 40)


def test_lower_case_format_names_are_accepted(photo):
    assert decode(make_thumbnail(encode(photo), 10, 10, "webp")).format == "WEBP"


def test_a_wide_picture_keeps_its_middle_when_cropped_to_a_square():
    wide = encode(stripes(300, 100, [RED, GREEN, BLUE], vertical=True))
    thumb = make_thumbnail(wide, 40, 40, "PNG")
    for x in (0.0, 0.5, 1.0):
        assert near(rgb_at(thumb, x, 0.5), GREEN)


def test_a_tall_picture_keeps_its_middle_when_cropped_to_a_landscape_box():
    tall = encode(stripes(100, 300, [RED, GREEN, BLUE], vertical=False))
    thumb = make_thumbnail(tall, 60, 20, "PNG")
    for y in (0.0, 0.5, 1.0):
        assert near(rgb_at(thumb, 0.5, y), GREEN)


def test_a_box_of_the_pictures_own_shape_crops_nothing():
    wide = encode(stripes(300, 100, [RED, GREEN, BLUE], vertical=True))
    thumb = make_thumbnail(wide, 90, 30, "PNG")
    assert [near(rgb_at(thumb, x, 0.5), colour) for x, colour in ((0.0, RED), (0.5, GREEN), (1.0, BLUE))] == [True] * 3


@pytest.mark.parametrize("input_format", ALLOWED_FORMATS)
def test_a_picture_of_a_few_pixels_is_inspected_and_thumbnailed(input_format):
    data = encode(quadrants(5, 3), input_format)
    assert inspect_image(data) == ImageInfo(5, 3, input_format)
    assert decode(make_thumbnail(data, 10, 6, "PNG")).size == (10, 6)


def test_a_small_picture_is_scaled_up_to_fill_the_box():
    thumb = make_thumbnail(encode(quadrants(8, 8)), 64, 64, "PNG")
    assert decode(thumb).size == (64, 64)
    assert near(rgb_at(thumb, 0.1, 0.1), RED)


# --------------------------------------------------------------------------- orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_thumbnail_is_upright_whatever_the_exif_orientation(orientation):
    upright = quadrants(120, 80)  # landscape as displayed
    data = camera_jpeg(upright, orientation)
    # The test's own construction agrees with Pillow's idea of upright:
    assert near(ImageOps.exif_transpose(decode(data)).convert("RGB").getpixel((5, 5)), RED)

    thumb = make_thumbnail(data, 60, 40, "PNG")
    assert decode(thumb).size == (60, 40)
    corners = {(0.1, 0.1): RED, (0.9, 0.1): GREEN, (0.1, 0.9): BLUE, (0.9, 0.9): YELLOW}
    assert {xy: near(rgb_at(thumb, *xy), colour) for xy, colour in corners.items()} == {xy: True for xy in corners}


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_inspect_reports_the_size_as_displayed(orientation):
    data = camera_jpeg(quadrants(120, 80), orientation)  # displayed 120x80 whatever is stored
    assert inspect_image(data) == ImageInfo(120, 80, "JPEG")


# --------------------------------------------------------------------------- fast JPEG decoding


@pytest.fixture
def drafts(monkeypatch) -> list[tuple[int, int]]:
    """The size each JPEG is decoded at after draft(), recorded as the code under test asks for it."""
    sizes: list[tuple[int, int]] = []
    real_draft = JpegImagePlugin.JpegImageFile.draft

    def recording_draft(self, mode, size):
        result = real_draft(self, mode, size)
        sizes.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", recording_draft)
    return sizes


def test_a_small_thumbnail_of_a_big_jpeg_is_decoded_at_one_eighth_scale(drafts):
    data = encode(Image.new("RGB", (1600, 1200), GREY), "JPEG")
    make_thumbnail(data, 100, 100, "JPEG")
    assert drafts == [(200, 150)]


@pytest.mark.parametrize(("box", "expected_decode"), [((100, 200), (200, 100)), ((200, 100), (400, 200))])
def test_jpeg_decode_scale_allows_for_orientation_swapping_the_axes(drafts, box, expected_decode):
    # Stored 1600x800, displayed 800x1600. A 200x100 (landscape) box crops a
    # 1:2 strip of the stored image, 100x200 at the least: only 1/4 scale allows that.
    data = camera_jpeg(Image.new("RGB", (800, 1600), GREY), 6)
    assert decode(make_thumbnail(data, *box, "JPEG")).size == box
    assert drafts == [expected_decode]


def test_several_thumbnails_decode_the_photo_once_at_the_scale_of_the_largest(photo, drafts):
    thumbs = make_thumbnails(encode(photo, "JPEG"), [(40, 40), (150, 150), (80, 80)], "JPEG")
    assert [decode(thumb).size for thumb in thumbs] == [(40, 40), (150, 150), (80, 80)]
    assert drafts == [(320, 240)]  # one decode; 150 px from 480 px leaves room for 1/2 scale, not 1/4


def test_thumbnails_match_one_by_one_thumbnails(photo):
    data = encode(photo, "JPEG", quality=92)
    sizes = [(200, 200), (100, 100), (50, 50), (160, 90), (100, 100)]
    together = make_thumbnails(data, sizes, "PNG")
    assert len(together) == len(sizes)
    for size, thumb in zip(sizes, together, strict=True):
        alone = decode(make_thumbnail(data, *size, "PNG"))
        assert decode(thumb).size == size
        difference = ImageChops.difference(decode(thumb).convert("RGB"), alone.convert("RGB"))
        mean = sum(ImageStat.Stat(difference).mean) / 3
        assert mean < 3, f"{size}: mean difference {mean:.1f}"


def test_no_sizes_means_no_thumbnails(photo):
    assert make_thumbnails(encode(photo, "JPEG"), [], "JPEG") == []


# --------------------------------------------------------------------------- colour


def test_an_adobe_cmyk_jpeg_keeps_its_colours():
    data = encode(Image.new("CMYK", (64, 64), (0, 255, 255, 0)), "JPEG")  # Pillow writes Adobe, inverted
    assert "adobe" in decode(data).info
    for output_format in ALLOWED_FORMATS:
        assert near(rgb_at(make_thumbnail(data, 16, 16, output_format), 0.5, 0.5)[:3], RED, 60)


def test_a_cmyk_jpeg_without_the_adobe_marker_is_not_inverted():
    # Stored ink values are plain (not inverted) and there is no APP14 marker,
    # as some non-Adobe tools write. Pillow alone would show cyan instead of red.
    plain = ImageChops.invert(Image.new("CMYK", (64, 64), (0, 255, 255, 0)))
    data = without_segment(encode(plain, "JPEG"), 0xEE)
    assert "adobe" not in decode(data).info
    assert near(rgb_at(make_thumbnail(data, 16, 16, "JPEG"), 0.5, 0.5), RED, 60)


@pytest.mark.parametrize("output_format", ALLOWED_FORMATS)
def test_a_16_bit_grey_png_stays_mid_grey(output_format):
    data = encode(Image.new("I;16", (48, 48), 0x8080), "PNG")
    assert decode(data).mode == "I;16"
    assert near(rgb_at(make_thumbnail(data, 24, 24, output_format), 0.5, 0.5)[:3], GREY, 4)


def palette_half_transparent() -> bytes:
    """Left half palette index 0 (transparent), right half index 1 (red)."""
    img = Image.new("P", (64, 32), 0)
    img.putpalette([0, 0, 0, 255, 0, 0])
    img.paste(1, (32, 0, 64, 32))
    return encode(img, "PNG", transparency=0)


@pytest.mark.parametrize("output_format", ["PNG", "WEBP"])
def test_transparent_palette_pixels_stay_transparent_in_png_and_webp(output_format):
    thumb = make_thumbnail(palette_half_transparent(), 32, 16, output_format)
    assert decode(thumb).mode == "RGBA"
    assert rgb_at(thumb, 0.1, 0.5)[3] == 0
    assert near(rgb_at(thumb, 0.9, 0.5), (*RED, 255))


def test_transparent_palette_pixels_become_white_in_jpeg():
    thumb = make_thumbnail(palette_half_transparent(), 32, 16, "JPEG")
    assert decode(thumb).mode == "RGB"
    assert near(rgb_at(thumb, 0.1, 0.5), WHITE, 8)  # not the black hiding under the alpha
    assert near(rgb_at(thumb, 0.9, 0.5), RED)


@pytest.mark.parametrize(("mode", "clear"), [("RGBA", (0, 0, 0, 0)), ("LA", (0, 0))])
def test_transparent_black_is_white_in_jpeg_and_transparent_in_png(mode, clear):
    img = Image.new(mode, (40, 40), clear)
    img.paste((0, 255) if mode == "LA" else (*BLUE, 255), (20, 0, 40, 40))
    data = encode(img, "PNG")
    assert near(rgb_at(make_thumbnail(data, 20, 20, "JPEG"), 0.1, 0.5), WHITE, 8)
    assert rgb_at(make_thumbnail(data, 20, 20, "PNG"), 0.1, 0.5)[3] == 0


def test_an_srgb_profile_changes_no_colour_and_a_broken_one_is_ignored():
    img = Image.new("RGB", (32, 32), (200, 60, 30))
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for profile in (srgb, b"not an ICC profile" * 10):
        thumb = make_thumbnail(encode(img, "PNG", icc_profile=profile), 8, 8, "PNG")
        assert near(rgb_at(thumb, 0.5, 0.5), (200, 60, 30), 3)


@pytest.mark.parametrize("output_format", ALLOWED_FORMATS)
def test_thumbnails_carry_no_exif_or_icc_profile(photo, output_format):
    exif = Image.Exif()
    exif[0x010F] = "Snoopy Camera Co."  # Make; GPS would be as private
    exif[0x0112] = 1
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(photo, "JPEG", exif=exif.tobytes(), icc_profile=srgb)
    thumb = decode(make_thumbnail(data, 32, 32, output_format))
    assert not {"exif", "icc_profile", "xmp"} & set(thumb.info)
    assert len(thumb.getexif()) == 0


# --------------------------------------------------------------------------- odd but acceptable files


def test_a_multi_picture_jpeg_from_a_phone_counts_as_jpeg(photo):
    data = encode(photo, "MPO", save_all=True, append_images=[photo.rotate(90)])
    assert decode(data).format == "MPO"
    assert inspect_image(data) == ImageInfo(640, 480, "JPEG")
    assert decode(make_thumbnail(data, 20, 20, "JPEG")).size == (20, 20)


@pytest.mark.parametrize("input_format", ["PNG", "WEBP"])
def test_an_animated_image_is_accepted_and_shows_its_first_frame(input_format):
    frames = [Image.new("RGB", (40, 40), colour) for colour in (RED, BLUE)]
    data = encode(frames[0], input_format, save_all=True, append_images=frames[1:], duration=100, lossless=True)
    assert decode(data).n_frames == 2
    assert inspect_image(data) == ImageInfo(40, 40, input_format)
    assert near(rgb_at(make_thumbnail(data, 10, 10, "PNG"), 0.5, 0.5), RED)


# --------------------------------------------------------------------------- inspect_image: accepted


@pytest.mark.parametrize("input_format", ALLOWED_FORMATS)
def test_inspect_describes_an_allowed_image(photo, input_format):
    assert inspect_image(encode(photo, input_format)) == ImageInfo(640, 480, input_format)


def test_an_image_exactly_at_the_pixel_limit_is_accepted(photo):
    assert inspect_image(encode(photo, "PNG"), max_pixels=640 * 480).width == 640


# --------------------------------------------------------------------------- inspect_image: rejected


def reason(data: bytes, **kwargs) -> str:
    with pytest.raises(ImageRejected) as rejected:
        inspect_image(data, **kwargs)
    return rejected.value.reason


@pytest.mark.parametrize("data", [b"", b"hello, I am a text file\n" * 20, b"<html><body>hi</body></html>"])
def test_empty_bytes_and_text_are_not_an_image(data):
    assert reason(data) == "not an image"


@pytest.mark.parametrize("image_format", ["GIF", "BMP", "TIFF"])
def test_formats_other_than_jpeg_png_and_webp_are_refused_by_name(photo, image_format):
    assert reason(encode(photo, image_format)) == f"format {image_format} is not allowed (JPEG, PNG, WEBP)"


def test_an_image_over_the_given_pixel_limit_is_refused(photo):
    assert reason(encode(photo, "PNG"), max_pixels=640 * 480 - 1) == "image is 0.3 megapixels, over the 0.307199 megapixel limit"


def test_a_48_megapixel_png_is_refused_from_its_header_alone(never_decoded):
    assert reason(png_declaring(8000, 6000)) == "image is 48.0 megapixels, over the 40 megapixel limit"


@pytest.mark.parametrize(("make", "megapixels"), [(png_declaring, "100.0"), (png_declaring, "400.0"), (jpeg_declaring, "400.0")])
def test_a_decompression_bomb_is_refused_quickly_without_decoding(never_decoded, make, megapixels):
    # 10000x10000 makes Pillow warn, 20000x20000 makes it raise; the file is a few hundred bytes.
    side = 10_000 if megapixels == "100.0" else 20_000
    bomb = make(side, side)
    assert len(bomb) < 100_000
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        assert reason(bomb) == f"image is {megapixels} megapixels, over the 40 megapixel limit"
        with pytest.raises(ImageRejected):
            make_thumbnail(bomb, 64, 64, "JPEG")
    assert time.perf_counter() - started < 10  # a full decode of 400 MP takes far longer and allocates GBs
    assert [w.message for w in escaped] == []  # Pillow's DecompressionBombWarning became the rejection


def test_pillows_own_bomb_limit_still_applies_when_ours_is_raised(never_decoded):
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # Pillow's default: warn above, raise above twice
    assert reason(png_declaring(10_000, 10_000), max_pixels=10**9) == "image is 100.0 megapixels, over the 89.4785 megapixel limit"


def test_the_default_limit_is_40_megapixels():
    assert MAX_PIXELS == 40_000_000


@pytest.mark.parametrize("image_format", ALLOWED_FORMATS)
def test_a_truncated_image_is_refused(photo, image_format):
    data = encode(photo, image_format)
    for cut in (len(data) // 2, 200):
        assert reason(data[:cut]) == "image is truncated or corrupt"


def test_a_jpeg_missing_only_its_last_bytes_is_refused(photo):
    assert reason(encode(photo, "JPEG")[:-2]) == "image is truncated or corrupt"


def test_a_png_with_corrupt_bytes_in_the_middle_is_refused(photo):
    data = encode(photo, "PNG")
    middle = len(data) // 2
    assert reason(data[:middle] + bytes(64) + data[middle + 64 :]) == "image is truncated or corrupt"


def test_a_jpeg_with_a_corrupt_huffman_table_is_refused(photo):
    data = bytearray(encode(photo, "JPEG"))
    offset = next(offset for offset, marker, _ in jpeg_segments(bytes(data)) if marker == 0xC4)
    data[offset + 4 : offset + 24] = b"\xff" * 20
    assert reason(bytes(data)) == "image is truncated or corrupt"


def test_make_thumbnail_refuses_a_bad_image_with_the_same_reason(photo):
    with pytest.raises(ImageRejected, match="truncated or corrupt"):
        make_thumbnail(encode(photo, "PNG")[:3000], 32, 32, "JPEG")
    with pytest.raises(ImageRejected, match="format GIF is not allowed"):
        make_thumbnail(encode(photo, "GIF"), 32, 32, "JPEG")


def test_the_rejection_reason_is_the_exception_message():
    assert str(ImageRejected("not an image")) == "not an image"


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("width", "height", "output_format"),
    [(0, 10, "JPEG"), (10, -1, "JPEG"), (10.0, 10, "JPEG"), (True, 10, "JPEG"), (10, 4097, "JPEG"),
     (10, "10", "JPEG"), (10, 10, "GIF"), (10, 10, "JPG"), (10, 10, None)],
)
def test_bad_arguments_raise_value_error_before_the_image_is_looked_at(width, height, output_format):
    with pytest.raises(ValueError):
        make_thumbnail(b"", width, height, output_format)


@pytest.mark.parametrize("sizes", [[(10, 10, 10)], [(10,)], [10], [(10, 0)]])
def test_malformed_size_lists_raise_value_error(photo, sizes):
    with pytest.raises(ValueError):
        make_thumbnails(encode(photo, "JPEG"), sizes, "JPEG")


# --------------------------------------------------------------------------- the scan bomb: time, not memory


def _scan_bomb(side: int, repeats: int) -> bytes:
    """A valid progressive JPEG whose last scan is repeated: tiny per scan, each one decoded in full."""
    out = io.BytesIO()
    Image.new("RGB", (side, side), (120, 130, 140)).save(out, "JPEG", progressive=True)
    data = out.getvalue()
    last = data.rindex(b"\xff\xda")
    return data[:-2] + data[last:-2] * repeats + b"\xff\xd9"


def test_a_jpeg_with_thousands_of_scans_is_refused_from_its_markers_before_decoding():
    bomb = _scan_bomb(6000, 24_000)  # 36 MP, under the pixel limit; ~1.6 MB
    assert imaging.jpeg_scans(bomb) > imaging.MAX_JPEG_SCANS
    with pytest.raises(imaging.ImageRejected, match="over 40 scans"):
        imaging.inspect_image(bomb)


def test_scans_are_counted_as_the_decoder_sees_them():
    progressive, baseline = io.BytesIO(), io.BytesIO()
    image = Image.new("RGB", (64, 64), (1, 2, 3))
    image.save(progressive, "JPEG", progressive=True)
    image.save(baseline, "JPEG")
    assert imaging.jpeg_scans(baseline.getvalue()) == 1
    assert 6 <= imaging.jpeg_scans(progressive.getvalue()) <= 10
    assert imaging.jpeg_scans(_scan_bomb(64, 20)) == imaging.jpeg_scans(progressive.getvalue()) + 20


def test_a_decode_over_its_budget_is_stopped_and_refused():
    slow = _scan_bomb(3000, 30)  # within the scan limit, slow to decode
    with pytest.raises(imaging.ImageRejected, match="to decode: too slow"):
        imaging.inspect_image(slow, budget_s=0.01)
    assert imaging.inspect_image(_scan_bomb(64, 30)).width == 64  # the same shape, small: accepted
