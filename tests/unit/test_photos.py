"""Photo inspection: the content decides, never the name or declared type; what is stored
is pixels alone, upright, without the camera's EXIF: an upright JPEG's own scans, any
other photo re-encoded."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta

import pytest
from PIL import Image

from qianliyan.ingest.domain.jpeg import pixels_only
from qianliyan.ingest.domain.photos import PhotoLimits, PhotoRejected, prepare_photo, too_large
from qianliyan.ingest.memory import keep_large_buffers_unmapped

LIMITS = PhotoLimits(max_bytes=2 * 1024 * 1024, max_pixels=4_000_000)


def image_bytes(
    image_format: str, size: tuple[int, int] = (64, 48), mode: str = "RGB", **save: object
) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, "red").save(buffer, format=image_format, **save)
    return buffer.getvalue()


def camera_jpeg(offset: str = "+08:00") -> bytes:
    """A 64x48 JPEG as a phone held upright writes it: rotated, with GPS and a time."""
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    exif[0x010F] = "CameraMaker"  # make: a field that must not survive
    exif.get_ifd(0x8769).update({0x9003: "2026:11:25 02:10:00", 0x9011: offset})
    exif.get_ifd(0x8825).update({1: "N", 2: (39.0, 54.0, 27.0), 3: "E", 4: (116.0, 23.0, 51.0)})
    return image_bytes("JPEG", exif=exif.tobytes())


@pytest.mark.parametrize(
    ("image_format", "content_type"),
    [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp")],
)
def test_accepts_common_photo_formats(image_format: str, content_type: str) -> None:
    photo = prepare_photo(1, image_bytes(image_format), LIMITS)
    assert photo.content_type == content_type
    assert (photo.width, photo.height) == (64, 48)
    assert len(photo.sha256) == 64
    assert Image.open(io.BytesIO(photo.data)).size == (64, 48)


def test_heic_from_iphones_is_stored_as_jpeg() -> None:
    photo = prepare_photo(1, image_bytes("HEIF"), LIMITS)
    assert photo.content_type == "image/jpeg"
    assert Image.open(io.BytesIO(photo.data)).format == "JPEG"


def test_same_bytes_same_address() -> None:
    data = image_bytes("PNG")
    assert prepare_photo(1, data, LIMITS).sha256 == prepare_photo(2, data, LIMITS).sha256


def test_orientation_is_applied_and_exif_stripped_but_place_and_time_kept() -> None:
    photo = prepare_photo(1, camera_jpeg(), LIMITS)
    stored = Image.open(io.BytesIO(photo.data))
    assert stored.size == (48, 64) == (photo.width, photo.height)
    assert dict(stored.getexif()) == {}
    assert photo.taken_at is not None
    assert photo.taken_at.utcoffset() == timedelta(hours=8)
    assert photo.taken_at.isoformat() == "2026-11-25T02:10:00+08:00"
    assert photo.location is not None
    assert photo.location.lat == pytest.approx(39.9075, abs=1e-4)
    assert photo.location.lon == pytest.approx(116.3975, abs=1e-4)


@pytest.mark.parametrize("offset", ["+25:00", "-24:00", "+8", "UTC"])
def test_a_time_offset_no_clock_has_leaves_the_time_out_not_the_photo(offset: str) -> None:
    photo = prepare_photo(1, camera_jpeg(offset), LIMITS)
    assert photo.taken_at is None
    assert photo.location is not None
    assert (photo.width, photo.height) == (48, 64)


def test_a_small_preview_is_made() -> None:
    photo = prepare_photo(1, image_bytes("PNG", (1600, 1200)), LIMITS)
    preview = Image.open(io.BytesIO(photo.preview))
    assert preview.format == "JPEG"
    assert max(preview.size) == 480


@pytest.mark.parametrize(
    ("data", "reason", "code"),
    [
        (b"", "empty", "photo_empty"),
        (b"%PDF-1.7 not a photo", "hides other content", "photo_hides_content"),
        (b"just some text", "not a JPEG, PNG, WebP or HEIC", "photo_not_an_image"),
        (image_bytes("GIF"), "the content is GIF", "photo_format_not_taken"),
        (image_bytes("JPEG", (400, 300))[:600], "damaged or truncated", "photo_damaged"),
        (
            image_bytes("JPEG") + b"<script>alert(1)</script>",
            "hides other content",
            "photo_hides_content",
        ),
    ],
)
def test_refuses_what_is_not_a_whole_clean_photo(data: bytes, reason: str, code: str) -> None:
    with pytest.raises(PhotoRejected, match=reason) as caught:
        prepare_photo(3, data, LIMITS)
    assert caught.value.position == 3
    assert str(caught.value).startswith("photo 3:")
    assert caught.value.code == code  # what a page says in its reader's language


@pytest.mark.parametrize(
    "marker", [b"<script", b"<SCRIPT", b"<html", b"<HTML", b"<?php", b"<svg", b"%PDF-"]
)
def test_refuses_each_kind_of_hidden_content_wherever_it_sits(marker: bytes) -> None:
    jpeg = image_bytes("JPEG")
    comment = b"<<s<h " + marker + b" x"  # near misses first: the search must go past them
    segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
    for crafted in (jpeg[:2] + segment + jpeg[2:], jpeg + marker, marker + jpeg):
        with pytest.raises(PhotoRejected, match="hides other content"):
            prepare_photo(1, crafted, LIMITS)


def test_near_misses_of_hidden_content_are_accepted() -> None:
    comment = b"<s <scrip <HTM <?ph <sv %PDF <<sv <Html"
    jpeg = image_bytes("JPEG")
    segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
    photo = prepare_photo(1, jpeg[:2] + segment + jpeg[2:], LIMITS)
    assert comment not in photo.data


def test_refuses_a_jpeg_with_a_zip_archive_appended() -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("payload.txt", "not a photo")
    with pytest.raises(PhotoRejected, match="hides other content"):
        prepare_photo(1, image_bytes("JPEG") + archive.getvalue(), LIMITS)


def test_refuses_too_many_bytes_naming_size_and_limit() -> None:
    small_limit = PhotoLimits(max_bytes=1024, max_pixels=LIMITS.max_pixels)
    data = image_bytes("PNG", (300, 300)) + b"\0" * 3000
    with pytest.raises(
        PhotoRejected, match=r"the file is \d+ KB, more than the limit of 1 KB"
    ) as caught:
        prepare_photo(1, data, small_limit)
    assert caught.value.code == "photo_too_large"
    assert caught.value.context == {"size": f"{len(data) / 1024:.0f} KB", "limit": "1 KB"}


def test_a_photo_just_past_the_limit_is_told_in_bytes() -> None:
    # 10 MB and one byte reads as 10.0 MB, as the limit does.
    refused = too_large(1, 10 * 1024 * 1024 + 1, PhotoLimits(10 * 1024 * 1024, 10**6))
    assert refused.reason == "the file is 10,485,761 bytes, more than the limit of 10,485,760 bytes"


def test_refuses_a_decompression_bomb_before_decoding() -> None:
    # A 5000x5000 single-colour PNG is a few KB but 25 megapixels once decoded.
    bomb = image_bytes("PNG", (5000, 5000))
    assert len(bomb) < LIMITS.max_bytes
    with pytest.raises(PhotoRejected, match="5000x5000 pixels") as caught:
        prepare_photo(1, bomb, LIMITS)
    assert caught.value.code == "photo_too_many_pixels"
    assert caught.value.context == {"width": 5000, "height": 5000, "limit": LIMITS.max_pixels}


def test_this_machine_s_glibc_takes_the_fixed_mmap_threshold() -> None:
    # Where it does not (no glibc), ingest runs as before; here, Debian's glibc says yes.
    assert keep_large_buffers_unmapped() is True


def page_jpeg(size: tuple[int, int] = (320, 240), **save: object) -> bytes:
    """A JPEG as the reporter's page sends it: upright, with noise so its pixels are its own."""
    image = Image.effect_noise(size, 60).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85, **save)
    return buffer.getvalue()


@pytest.mark.parametrize("progressive", [False, True])
def test_an_upright_jpeg_keeps_its_own_pixels_bit_for_bit(progressive: bool) -> None:
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    exif.get_ifd(0x8825).update({1: "N", 2: (39.0, 54.0, 27.0), 3: "E", 4: (116.0, 23.0, 51.0)})
    original = page_jpeg(progressive=progressive, exif=exif.tobytes(), comment=b"who took it")
    photo = prepare_photo(1, original, LIMITS)

    stored = Image.open(io.BytesIO(photo.data))
    assert stored.tobytes() == Image.open(io.BytesIO(original)).tobytes()
    assert photo.size_bytes < len(original)  # not re-encoded: the scans are as they were
    assert dict(stored.getexif()) == {}
    assert b"CameraMaker" not in photo.data and b"who took it" not in photo.data
    assert photo.location is not None  # read before it was dropped
    assert (photo.width, photo.height) == (320, 240)
    assert Image.open(io.BytesIO(photo.preview)).size == (320, 240)


@pytest.mark.parametrize(
    ("size", "preview_size"),
    [
        ((1600, 1200), (400, 300)),  # a quarter, as decoded
        ((1920, 1440), (480, 360)),  # a quarter, as decoded
        ((2048, 1536), (480, 360)),  # a quarter is 512 wide: shrunk to the largest preview
        ((1200, 1600), (300, 400)),
    ],
)
def test_an_upright_jpeg_s_preview_is_decoded_at_reduced_scale(
    size: tuple[int, int], preview_size: tuple[int, int]
) -> None:
    photo = prepare_photo(1, page_jpeg(size), LIMITS)
    assert Image.open(io.BytesIO(photo.preview)).size == preview_size


def test_only_the_first_frame_of_a_multi_frame_jpeg_is_kept() -> None:
    second = page_jpeg((64, 48))
    photo = prepare_photo(1, page_jpeg() + second, LIMITS)
    assert second not in photo.data
    assert photo.data.endswith(b"\xff\xd9")
    assert Image.open(io.BytesIO(photo.data)).size == (320, 240)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (image_bytes("JPEG", mode="CMYK"), "an Adobe colour transform"),
        (image_bytes("JPEG")[:-2], "no end of image"),
        (image_bytes("PNG"), "not a JPEG"),
        (b"\xff\xd8\xff\xd9", "no frame"),
    ],
)
def test_jpegs_the_copy_does_not_understand_are_left_to_re_encoding(data: bytes, why: str) -> None:
    assert pixels_only(data) is None, why


def test_fill_bytes_and_restarts_between_scans_copy_the_same_pixels() -> None:
    # A scan ends at its first marker that is not stuffing or a restart; 0xFF fill bytes
    # may come before that marker, and are not part of it.
    buffer = io.BytesIO()
    Image.effect_noise((96, 64), 40).convert("RGB").save(
        buffer, format="JPEG", restart_marker_blocks=2, progressive=True
    )
    jpeg = buffer.getvalue()
    padded = jpeg[:-2] + b"\xff\xff\xff" + jpeg[-2:]
    for data in (jpeg, padded):
        copy = pixels_only(data)
        assert copy is not None
        assert Image.open(io.BytesIO(copy)).tobytes() == Image.open(io.BytesIO(jpeg)).tobytes()
    assert pixels_only(jpeg[:-2] + b"\xff") is None  # the file ends inside the last scan


def test_an_archive_hidden_in_the_scans_and_revealed_by_the_copy_is_refused() -> None:
    # A zip tucked before the end of the image, with enough padding after the end that
    # the upload's tail shows no archive; the copy drops the padding, and the archive's
    # directory would end the stored file.
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as bundle:
        bundle.writestr("note.txt", "hidden")
    jpeg = page_jpeg()
    crafted = jpeg[:-2] + archive.getvalue() + jpeg[-2:] + b"\0" * 70_000
    with pytest.raises(PhotoRejected, match="hides other content"):
        prepare_photo(1, crafted, LIMITS)


def test_a_jpeg_with_more_segments_than_a_camera_writes_is_re_encoded() -> None:
    empty_table = b"\xff\xc4\x00\x02"
    jpeg = page_jpeg((64, 48))
    crafted = jpeg[:2] + empty_table * 500 + jpeg[2:]
    assert pixels_only(crafted) is None
    photo = prepare_photo(1, crafted, LIMITS)
    assert empty_table * 2 not in photo.data  # re-encoded: the padding is gone
    assert Image.open(io.BytesIO(photo.data)).size == (64, 48)
