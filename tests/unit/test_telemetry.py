"""The app's metrics: which dimension value each photo rejection is counted under."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from thumbnailr import imaging
from thumbnailr.handlers.telemetry import rejection_kind
from tests.unit.test_imaging import _scan_bomb


def _reason(data: bytes) -> str:
    with pytest.raises(imaging.ImageRejected) as rejected:
        imaging.inspect_image(data)
    return rejected.value.reason


def _encoded(size: tuple[int, int], fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size).save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("data, kind", [
    (b"hello", "NotAnImage"),
    (_encoded((64, 64), "PNG")[:60], "Corrupt"),
    (_encoded((64, 64), "GIF"), "FormatNotAllowed"),
    (_encoded((8000, 6000), "PNG"), "TooManyPixels"),
    (_scan_bomb(64, 2_000), "TooSlowToDecode"),
])
def test_each_rejection_the_check_makes_has_a_kind_of_its_own(data: bytes, kind: str) -> None:
    assert rejection_kind(_reason(data)) == kind


def test_the_upload_and_sweep_reasons_have_their_kinds_and_anything_else_is_other() -> None:
    assert rejection_kind("file is 30000000 bytes, over the 20971520 byte limit") == "FileTooLarge"
    assert rejection_kind("no photo was uploaded in time") == "NotUploaded"
    assert rejection_kind("the photo could not be checked in time") == "NotCheckedInTime"
    assert rejection_kind("a reason nobody wrote yet") == "Other"
