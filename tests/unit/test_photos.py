"""Photo inspection: the content decides, never the name or declared type."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from qianliyan.ingest.domain.photos import PhotoLimits, PhotoRejected, inspect_photo

LIMITS = PhotoLimits(max_bytes=2 * 1024 * 1024, max_pixels=4_000_000)


def image_bytes(image_format: str, size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format=image_format)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("image_format", "content_type"),
    [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp")],
)
def test_accepts_common_photo_formats(image_format: str, content_type: str) -> None:
    photo = inspect_photo(1, image_bytes(image_format), LIMITS)
    assert photo.content_type == content_type
    assert (photo.width, photo.height) == (64, 48)
    assert len(photo.sha256) == 64


def test_same_bytes_same_address() -> None:
    data = image_bytes("PNG")
    assert inspect_photo(1, data, LIMITS).sha256 == inspect_photo(2, data, LIMITS).sha256


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"%PDF-1.7 not a photo", "not a JPEG, PNG or WebP"),
        (image_bytes("GIF"), "the content is GIF"),
        (image_bytes("JPEG", (400, 300))[:600], "damaged or truncated"),
    ],
)
def test_refuses_what_is_not_a_whole_photo(data: bytes, reason: str) -> None:
    with pytest.raises(PhotoRejected, match=reason) as caught:
        inspect_photo(3, data, LIMITS)
    assert caught.value.position == 3
    assert str(caught.value).startswith("photo 3:")


def test_refuses_too_many_bytes_naming_size_and_limit() -> None:
    small_limit = PhotoLimits(max_bytes=1024, max_pixels=LIMITS.max_pixels)
    data = image_bytes("PNG", (300, 300)) + b"\0" * 3000
    with pytest.raises(PhotoRejected, match=r"the file is \d+ KB; the limit is 1 KB"):
        inspect_photo(1, data, small_limit)


def test_refuses_a_decompression_bomb_before_decoding() -> None:
    # A 5000x5000 single-colour PNG is a few KB but 25 megapixels once decoded.
    bomb = image_bytes("PNG", (5000, 5000))
    assert len(bomb) < LIMITS.max_bytes
    with pytest.raises(PhotoRejected, match="5000x5000 pixels"):
        inspect_photo(1, bomb, LIMITS)
