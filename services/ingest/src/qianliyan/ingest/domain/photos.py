"""Deciding, from the bytes alone, whether a photo is one we accept, and making it safe.

The declared file name and content type are ignored: a phone, a proxy or an attacker
can lie about both. Pillow identifies the format and decodes the whole image, which
catches truncated files; the pixel count is checked before decoding, so a small file
that would expand into gigabytes (a decompression bomb) is refused cheaply.

No metadata the original carried is ever stored or served: every EXIF field, XMP, ICC
profile, comment and thumbnail is dropped (where the photo was taken and when are kept
as metadata of the report), and so is anything after the end of the image. An upright
JPEG, which is what the reporter's page sends, keeps its compressed pixels as they are
(`jpeg.pixels_only`); it is decoded once at reduced scale, which checks every scan and
gives the preview, and the copy is checked for hidden content as the upload was. Any
other photo is decoded whole and re-encoded with the camera's orientation applied.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from PIL import Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

from qianliyan.ingest.domain.jpeg import pixels_only
from qianliyan.shared.events.reports import GeoPoint, PhotoContentType

register_heif_opener()

# What each accepted source format is stored as. HEIC (iPhones) becomes JPEG, which every
# browser on a dispatch desk can show.
STORED_AS: dict[str, tuple[str, PhotoContentType]] = {
    "JPEG": ("JPEG", "image/jpeg"),
    "MPO": ("JPEG", "image/jpeg"),  # a JPEG with extra frames (some phone cameras)
    "PNG": ("PNG", "image/png"),
    "WEBP": ("WEBP", "image/webp"),
    "HEIF": ("JPEG", "image/jpeg"),
}
JPEG_QUALITY = 90
PREVIEW_LONGEST_SIDE = 480
# The feed shows previews 160 px wide; twice that stays sharp on a high-density screen.
# A JPEG's decoder can give any size in between without resampling.
PREVIEW_LONGEST_SIDE_AT_LEAST = 320
PREVIEW_QUALITY = 75

# Markers of active content hidden inside an image file (a polyglot). Long enough that
# compressed pixel data does not contain them by chance. One pattern for all the tags,
# whose lookahead drops most of a photo's "<" bytes at once: a quarter of the time of
# looking for each marker in turn, which was near a tenth of ingest's CPU.
_ACTIVE_TAG = re.compile(rb"<(?=[sShH?])(?:script|SCRIPT|html|HTML|\?php|svg)")
_PDF = b"%PDF-"
_ZIP_END_OF_DIRECTORY = b"PK\x05\x06"
_HIDES_CONTENT = "the file hides other content (a script, document or archive)"

_ORIENTATION = 0x0112
_UPRIGHT = 1
_GPS_IFD = 0x8825
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003
_OFFSET_TIME_ORIGINAL = 0x9011


@dataclass(frozen=True, slots=True)
class PhotoLimits:
    """How large one photo may be, in bytes and in pixels."""

    max_bytes: int
    max_pixels: int


@dataclass(frozen=True, slots=True)
class PreparedPhoto:
    """A photo that passed inspection, re-encoded for storage, with its preview."""

    sha256: str
    content_type: PhotoContentType
    data: bytes
    width: int
    height: int
    preview: bytes
    taken_at: datetime | None
    location: GeoPoint | None

    @property
    def size_bytes(self) -> int:
        """Size of the stored bytes."""
        return len(self.data)


class PhotoRejected(ValueError):
    """One photo is refused; `position` counts from 1, as a person would. `reason` says
    why in English, `code` for a program, and `context` the values `reason` names."""

    def __init__(
        self,
        position: int,
        code: str,
        reason: str,
        context: Mapping[str, str | int] | None = None,
    ) -> None:
        super().__init__(f"photo {position}: {reason}")
        self.position = position
        self.code = code
        self.reason = reason
        self.context = dict(context or {})


def human_size(size: int) -> str:
    """A byte count as a person reads it: 512 KB, 14.2 MB."""
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def too_large(position: int, size: int, limits: PhotoLimits) -> PhotoRejected:
    """The refusal of a photo of `size` bytes, past the limit."""
    shown, limit = human_size(size), human_size(limits.max_bytes)
    if shown == limit:  # just past it: rounded alike, the two would read as equal
        shown, limit = f"{size:,} bytes", f"{limits.max_bytes:,} bytes"
    return PhotoRejected(
        position,
        "photo_too_large",
        f"the file is {shown}, more than the limit of {limit}",
        {"size": shown, "limit": limit},
    )


def prepare_photo(position: int, data: bytes, limits: PhotoLimits) -> PreparedPhoto:
    """Accept `data` as a JPEG, PNG, WebP or HEIC photo, or raise `PhotoRejected` saying why."""
    if not data:
        raise PhotoRejected(position, "photo_empty", "the file is empty")
    if len(data) > limits.max_bytes:
        raise too_large(position, len(data), limits)
    if _carries_active_content(data):
        raise PhotoRejected(position, "photo_hides_content", _HIDES_CONTENT)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                source_format = image.format or ""
                if source_format not in STORED_AS:
                    raise PhotoRejected(
                        position,
                        "photo_format_not_taken",
                        f"the content is {source_format or 'not an image'}; "
                        "send a JPEG, PNG, WebP or HEIC photo",
                        {"format": source_format or "?"},
                    )
                width, height = image.size
                if width * height > limits.max_pixels:
                    raise PhotoRejected(
                        position,
                        "photo_too_many_pixels",
                        f"the image is {width}x{height} pixels; "
                        f"the limit is {limits.max_pixels:,} pixels",
                        {"width": width, "height": height, "limit": limits.max_pixels},
                    )
                taken_at, location = _capture_metadata(image)
                copied = _copied_if_upright_jpeg(position, image, data, taken_at, location)
                if copied is not None:
                    return copied
                image.load()
                return _re_encode(image, source_format, taken_at, location)
    except PhotoRejected:
        raise
    except UnidentifiedImageError:
        raise PhotoRejected(
            position, "photo_not_an_image", "the content is not a JPEG, PNG, WebP or HEIC image"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoRejected(
            position, "photo_expands_too_far", "the image expands to too many pixels"
        ) from None
    # pillow-heif says a truncated HEIC with EOFError, where Pillow's decoders use OSError,
    # and a damaged one whose tiles claim more pixels than its header with RuntimeError.
    except (OSError, EOFError, SyntaxError, ValueError, RuntimeError) as exc:
        raise PhotoRejected(
            position, "photo_damaged", f"the image is damaged or truncated ({exc})"
        ) from None


def _carries_active_content(data: bytes) -> bool:
    if _PDF in data or _ACTIVE_TAG.search(data) is not None:
        return True
    # A zip appended to an image ends with its directory record near the end of the file.
    return _ZIP_END_OF_DIRECTORY in data[-(65_536 + 22) :]


def _copied_if_upright_jpeg(
    position: int,
    image: Image.Image,
    data: bytes,
    taken_at: datetime | None,
    location: GeoPoint | None,
) -> PreparedPhoto | None:
    """The JPEG's own pixel data, checked by decoding it at the preview's scale; None when
    it must be re-encoded instead (rotated by its camera, or a structure not copied)."""
    if image.format not in ("JPEG", "MPO"):
        return None
    if not _upright(image):
        return None
    stored = pixels_only(data)
    if stored is None:
        return None
    if _carries_active_content(stored):
        # Something hidden in the scans now ends the file (an archive whose tail was cut).
        raise PhotoRejected(position, "photo_hides_content", _HIDES_CONTENT)
    with Image.open(io.BytesIO(stored)) as pixels:
        if pixels.size != image.size or pixels.mode not in ("RGB", "L"):
            return None
        # The decoder skips detail finer than the preview needs (scaling by 1/2, 1/4 or
        # 1/8 as it goes); every scan is still read through.
        pixels.draft(pixels.mode, _preview_size(pixels.size, PREVIEW_LONGEST_SIDE_AT_LEAST))
        pixels.load()
        preview = _preview(pixels)
    return _prepared(stored, "image/jpeg", image.size, preview, taken_at, location)


def _upright(image: Image.Image) -> bool:
    try:
        return bool(image.getexif().get(_ORIENTATION, _UPRIGHT) == _UPRIGHT)
    except Exception:
        return False  # EXIF too damaged to say: the re-encoding path decides


def _re_encode(
    image: Image.Image,
    source_format: str,
    taken_at: datetime | None,
    location: GeoPoint | None,
) -> PreparedPhoto:
    stored_format, content_type = STORED_AS[source_format]
    # A damaged EXIF fails here in many ways. The pixels are turned first; what fails after
    # is writing the EXIF back without its orientation (a value of the wrong type for its
    # tag), which the stored file never carries. One too damaged to read leaves the image
    # as decoded.
    with contextlib.suppress(Exception):
        # In place: the decoded image is ours, and a copy would double the memory it takes.
        ImageOps.exif_transpose(image, in_place=True)
    upright = image
    if stored_format == "JPEG" and upright.mode not in ("RGB", "L"):
        upright = upright.convert("RGB")
    buffer = io.BytesIO()
    options: dict[str, object] = {"quality": JPEG_QUALITY} if stored_format != "PNG" else {}
    # No exif= argument: the stored file carries pixels only.
    upright.save(buffer, format=stored_format, **options)
    return _prepared(
        buffer.getvalue(), content_type, upright.size, _preview(upright), taken_at, location
    )


def _prepared(
    stored: bytes,
    content_type: PhotoContentType,
    size: tuple[int, int],
    preview: bytes,
    taken_at: datetime | None,
    location: GeoPoint | None,
) -> PreparedPhoto:
    width, height = size
    return PreparedPhoto(
        sha256=hashlib.sha256(stored).hexdigest(),
        content_type=content_type,
        data=stored,
        width=width,
        height=height,
        preview=preview,
        taken_at=taken_at,
        location=location,
    )


def _preview(image: Image.Image) -> bytes:
    """A small JPEG for the dispatch feed's list, light enough for a busy screen."""
    if image.mode in ("1", "P"):
        image = image.convert("RGB")  # palettes resize by nearest neighbour: convert first
    # Shrink first, then convert the small image: no second full-size copy of the pixels.
    size = _preview_size(image.size)
    if size != image.size:
        image = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)
    preview = image.convert("RGB")
    buffer = io.BytesIO()
    preview.save(buffer, format="JPEG", quality=PREVIEW_QUALITY)
    return buffer.getvalue()


def _preview_size(size: tuple[int, int], longest: int = PREVIEW_LONGEST_SIDE) -> tuple[int, int]:
    width, height = size
    scale = min(1.0, longest / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _capture_metadata(image: Image.Image) -> tuple[datetime | None, GeoPoint | None]:
    """When and where the camera says the photo was taken; damaged EXIF yields nothing."""
    try:
        exif = image.getexif()
    except Exception:
        return None, None
    return _taken_at(exif), _location(exif)


def _taken_at(exif: Image.Exif) -> datetime | None:
    try:
        details = exif.get_ifd(_EXIF_IFD)
        stamp = str(details[_DATETIME_ORIGINAL]).strip()
        offset = str(details[_OFFSET_TIME_ORIGINAL]).strip()
        local = datetime.strptime(stamp, "%Y:%m:%d %H:%M:%S")
        sign = -1 if offset.startswith("-") else 1
        hours, minutes = (int(part) for part in offset.lstrip("+-").split(":"))
        # An offset of a day or more ("+25:00") is refused here too, as damaged EXIF.
        return local.replace(tzinfo=timezone(sign * timedelta(hours=hours, minutes=minutes)))
    except Exception:
        # Without its UTC offset a camera's local time cannot be placed; better none.
        return None


def _location(exif: Image.Exif) -> GeoPoint | None:
    try:
        gps = exif.get_ifd(_GPS_IFD)
        lat = _degrees(gps[2]) * (-1 if str(gps[1]).upper() == "S" else 1)
        lon = _degrees(gps[4]) * (-1 if str(gps[3]).upper() == "W" else 1)
        return GeoPoint(lat=lat, lon=lon)
    except Exception:
        return None


def _degrees(dms: tuple[float, float, float]) -> float:
    degrees, minutes, seconds = (float(part) for part in dms)
    return degrees + minutes / 60 + seconds / 3600
