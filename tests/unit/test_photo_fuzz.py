"""The photo checks under fire: whatever bytes arrive, `prepare_photo` returns a clean,
re-encoded photo or refuses with `PhotoRejected` and a reason, quickly. Never another
exception (that would be a 500), never a hang.

The inputs are random bytes, random bytes behind each format's magic number, and real
JPEG, PNG, WebP and HEIC files in several pixel modes, truncated, with bytes flipped,
with an archive, page or script appended (polyglots), declaring giant dimensions
(decompression bombs), and past the size limit. test_photos.py has the named cases.
"""

from __future__ import annotations

import hashlib
import io
import signal
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from types import FrameType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from qianliyan.ingest.domain.jpeg import pixels_only
from qianliyan.ingest.domain.photos import (
    PhotoLimits,
    PhotoRejected,
    PreparedPhoto,
    prepare_photo,
)

# Pillow warns about the damaged EXIF the mutations make; prepare_photo then reads none.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")

LIMITS = PhotoLimits(max_bytes=2 * 1024 * 1024, max_pixels=4_000_000)
POSITION = 4
# These photos decode in milliseconds: seconds mean something spins (the deadline, with
# room for a busy 2-core machine). The hard limit interrupts a real hang so that it fails
# as one instead of stalling the suite.
HARD_LIMIT_S = 10
fuzz = settings(
    max_examples=200,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Hang(Exception):
    """prepare_photo ran past HARD_LIMIT_S."""


@contextmanager
def hard_limit(seconds: float) -> Iterator[None]:
    """Interrupt the block after `seconds`, then give pytest-timeout its own alarm back."""

    def interrupt(_signal: int, _frame: FrameType | None) -> None:
        raise Hang(f"prepare_photo ran for more than {seconds}s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    outer_delay, outer_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_delay:
            left = max(outer_delay - (time.monotonic() - started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, outer_interval)


def outcome(data: bytes, limits: PhotoLimits = LIMITS) -> PreparedPhoto | PhotoRejected:
    """What prepare_photo does with `data`; any other exception fails the test."""
    try:
        with hard_limit(HARD_LIMIT_S):
            photo = prepare_photo(POSITION, data, limits)
    except PhotoRejected as refused:
        assert refused.position == POSITION
        assert refused.reason.strip(), "a refusal must say why"
        assert str(refused).startswith(f"photo {POSITION}: ")
        return refused
    assert_clean(photo, limits)
    return photo


def assert_clean(photo: PreparedPhoto, limits: PhotoLimits) -> None:
    """An accepted photo is what it says: decodable pixels of the stated type, no EXIF."""
    assert hashlib.sha256(photo.data).hexdigest() == photo.sha256
    stored = Image.open(io.BytesIO(photo.data))
    stored.load()
    assert Image.MIME[stored.format or ""] == photo.content_type
    assert stored.size == (photo.width, photo.height)
    assert 0 < photo.width * photo.height <= limits.max_pixels
    assert dict(stored.getexif()) == {}
    preview = Image.open(io.BytesIO(photo.preview))
    assert preview.format == "JPEG" and max(preview.size) <= 480


def encoded(
    image_format: str, mode: str, size: tuple[int, int] = (24, 16), **save: object
) -> bytes:
    buffer = io.BytesIO()
    image = Image.linear_gradient("L").resize(size).convert(mode)
    image.save(buffer, format=image_format, **save)
    return buffer.getvalue()


def camera_exif() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    exif.get_ifd(0x8769).update({0x9003: "2026:11:25 02:10:00", 0x9011: "+08:00"})
    exif.get_ifd(0x8825).update({1: "N", 2: (39.0, 54.0, 27.0), 3: "E", 4: (116.0, 23.0, 51.0)})
    return exif.tobytes()


# Real photos in the pixel modes each format can hold, some with a camera's EXIF.
SEEDS: dict[str, bytes] = {
    "jpeg-rgb": encoded("JPEG", "RGB"),
    "jpeg-exif": encoded("JPEG", "RGB", exif=camera_exif()),
    "jpeg-progressive": encoded("JPEG", "RGB", (64, 48), progressive=True),
    # large enough that the copy's check decodes it at a reduced scale
    "jpeg-large": encoded("JPEG", "RGB", (800, 600), progressive=True, restart_marker_rows=4),
    "jpeg-grey": encoded("JPEG", "L"),
    "jpeg-cmyk": encoded("JPEG", "CMYK"),
    "png-rgb": encoded("PNG", "RGB"),
    "png-rgba": encoded("PNG", "RGBA"),
    "png-palette": encoded("PNG", "P"),
    "png-16bit": encoded("PNG", "I;16"),
    "png-1bit": encoded("PNG", "1"),
    "png-exif": encoded("PNG", "RGB", exif=camera_exif()),
    "webp-rgb": encoded("WEBP", "RGB"),
    "webp-rgba": encoded("WEBP", "RGBA"),
    "webp-lossless": encoded("WEBP", "RGB", lossless=True),
    "heic-rgb": encoded("HEIF", "RGB"),
    "heic-rgba": encoded("HEIF", "RGBA"),
}
MAGIC = [
    b"\xff\xd8\xff\xe0",
    b"\xff\xd8\xff\xe1",
    b"\x89PNG\r\n\x1a\n",
    b"RIFF\x00\x01\x00\x00WEBPVP8 ",
    b"RIFF\x00\x01\x00\x00WEBPVP8L",
    b"RIFF\x00\x01\x00\x00WEBPVP8X",
    b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic",
    b"GIF89a",
    b"BM",
    b"II*\x00",
]
POLYGLOT_TAILS = {
    "zip": b"PK\x03\x04\x14\x00\x00\x00payload.txtPK\x05\x06" + b"\x00" * 18,
    "html": b"<html><body><script>alert(1)</script></body></html>",
    "php": b"<?php system($_GET['c']); ?>",
    "pdf": b"%PDF-1.7\n1 0 obj << >> endobj\n%%EOF",
    "svg": b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
}

seeds = st.sampled_from(sorted(SEEDS)).map(SEEDS.__getitem__)


@st.composite
def flipped(draw: st.DrawFn) -> bytes:
    """A real photo with a few bytes changed, anywhere (headers, tables, pixels)."""
    data = bytearray(draw(seeds))
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] ^= draw(st.integers(1, 255))
    return bytes(data)


@st.composite
def spliced(draw: st.DrawFn) -> bytes:
    """A real photo with a run of bytes cut out, repeated or inserted."""
    data = draw(seeds)
    start = draw(st.integers(0, len(data)))
    end = draw(st.integers(start, min(len(data), start + 64)))
    middle = draw(st.sampled_from([b"", data[start:end] * 2, draw(st.binary(max_size=32))]))
    return data[:start] + middle + data[end:]


@settings(fuzz)
@given(st.binary(max_size=4096))
def test_random_bytes_are_refused_with_a_reason(data: bytes) -> None:
    assert isinstance(outcome(data), PhotoRejected)


@settings(fuzz)
@given(st.sampled_from(MAGIC), st.binary(max_size=2048))
def test_a_magic_number_over_random_bytes_is_refused(magic: bytes, rest: bytes) -> None:
    assert isinstance(outcome(magic + rest), PhotoRejected)


@settings(fuzz)
@given(seeds, st.data())
def test_a_truncated_photo_is_refused_or_still_whole(data: bytes, draw: st.DataObject) -> None:
    cut = draw.draw(st.integers(0, len(data) - 1), label="cut at")
    outcome(data[:cut])


@settings(fuzz)
@given(flipped() | spliced())
def test_a_damaged_photo_is_refused_or_decodes_cleanly(data: bytes) -> None:
    outcome(data)


@settings(fuzz)
@given(seeds, st.sampled_from(sorted(POLYGLOT_TAILS)), st.binary(max_size=64))
def test_a_photo_hiding_other_content_is_refused(data: bytes, tail: str, gap: bytes) -> None:
    result = outcome(data + gap + POLYGLOT_TAILS[tail])
    assert isinstance(result, PhotoRejected)
    assert "hides other content" in result.reason


@settings(fuzz)
@given(seeds, st.binary(min_size=16, max_size=256))
def test_bytes_after_the_image_end_never_reach_the_store(data: bytes, tail: bytes) -> None:
    result = outcome(data + tail)
    if isinstance(result, PreparedPhoto):
        alone = outcome(data)
        assert isinstance(alone, PreparedPhoto)
        assert result.data == alone.data  # pixels only: the tail is dropped


def _png_with_size(width: int, height: int) -> bytes:
    """A PNG whose header declares `width` x `height` (checksum fixed, so it is believed)."""
    data = bytearray(SEEDS["png-rgb"])
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(data[ihdr : ihdr + 17]))
    return bytes(data)


def _jpeg_with_size(width: int, height: int) -> bytes:
    """A JPEG whose frame header (SOF0) declares `width` x `height`."""
    data = bytearray(SEEDS["jpeg-rgb"])
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _webp_with_size(width: int, height: int) -> bytes:
    """A lossless WebP whose header declares `width` x `height` (14 bits each)."""
    data = bytearray(SEEDS["webp-lossless"])
    vp8l = data.index(b"VP8L")
    flags = int.from_bytes(data[vp8l + 9 : vp8l + 13], "little") & 0xF000_0000  # alpha, version
    bits = (width - 1) | ((height - 1) << 14) | flags
    data[vp8l + 9 : vp8l + 13] = bits.to_bytes(4, "little")
    return bytes(data)


@settings(fuzz)
@given(
    st.sampled_from([_png_with_size, _jpeg_with_size, _webp_with_size]),
    st.integers(1, 2**14),
    st.integers(1, 2**14),
)
def test_declared_dimensions_never_expand_past_the_pixel_limit(
    declare: Callable[[int, int], bytes], width: int, height: int
) -> None:
    data = declare(width, height)
    result = outcome(data)
    if width * height > LIMITS.max_pixels:
        assert isinstance(result, PhotoRejected)
        assert "pixels" in result.reason or "damaged" in result.reason


@pytest.mark.parametrize(("width", "height"), [(2**31 - 1, 2**31 - 1), (65_535, 65_535), (0, 0)])
def test_a_png_declaring_absurd_dimensions_is_refused(width: int, height: int) -> None:
    result = outcome(_png_with_size(width, height))
    assert isinstance(result, PhotoRejected)


@settings(fuzz)
@given(seeds, st.integers(1, 512))
def test_a_photo_past_the_byte_limit_is_refused_naming_the_limit(data: bytes, over: int) -> None:
    limits = PhotoLimits(max_bytes=max(1, len(data) - over), max_pixels=LIMITS.max_pixels)
    result = outcome(data, limits)
    assert isinstance(result, PhotoRejected)
    assert "more than the limit of" in result.reason


def test_every_seed_is_accepted_as_it_is() -> None:
    for name, data in SEEDS.items():
        assert isinstance(outcome(data), PreparedPhoto), name


def test_nothing_at_all_is_refused() -> None:
    result = outcome(b"")
    assert isinstance(result, PhotoRejected) and "empty" in result.reason


@settings(fuzz)
@given(st.sampled_from(["jpeg-rgb", "jpeg-grey", "jpeg-progressive", "jpeg-large"]), st.data())
def test_a_copied_jpeg_draws_the_same_pixels(seed: str, draw: st.DataObject) -> None:
    # Fill bytes before markers and metadata segments, then the copy: same pixels or none.
    data = SEEDS[seed]
    fill = draw.draw(st.integers(0, 3), label="fill bytes")
    words = draw.draw(st.binary(max_size=64).filter(lambda b: b"\xff" not in b))
    comment = b"taken by " + words
    extra = b"\xff" * fill + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
    crafted = data[:2] + extra + data[2:]
    copy = pixels_only(crafted)
    assert copy is not None
    assert comment not in copy
    assert Image.open(io.BytesIO(copy)).tobytes() == Image.open(io.BytesIO(data)).tobytes()


def test_a_camera_photo_whose_exif_cannot_be_written_back_is_still_turned_upright() -> None:
    # Found by the fuzzing above: one flipped byte makes GPSLongitudeRef ('E', text) a tag
    # that holds a rational number. Reading it works; writing the EXIF back, which turning
    # the photo upright does, fails. The stored file carries no EXIF, so it is accepted.
    data = SEEDS["jpeg-exif"]
    longitude_ref = b"\x00\x03\x00\x02\x00\x00\x00\x02E\x00\x00\x00"  # tag 3, ASCII, 'E'
    assert data.count(longitude_ref) == 1
    damaged = data.replace(longitude_ref, b"\x00\x06" + longitude_ref[2:])  # tag 6: rational
    result = outcome(damaged)
    upright = outcome(data)
    assert isinstance(result, PreparedPhoto) and isinstance(upright, PreparedPhoto)
    assert (result.width, result.height) == (upright.width, upright.height)
    assert result.width < result.height  # encoded wide, its camera said to turn it
