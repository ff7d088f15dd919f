"""Deciding, from the bytes alone, whether a photo is one we accept.

The declared file name and content type are ignored: a phone, a proxy or an attacker
can lie about both. Pillow identifies the format and decodes the whole image, which
catches truncated files; the pixel count is checked before decoding so a small file
that would expand into gigabytes (a decompression bomb) is refused cheaply.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from qianliyan.shared.events.reports import PhotoContentType

CONTENT_TYPES: dict[str, PhotoContentType] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
}


@dataclass(frozen=True, slots=True)
class PhotoLimits:
    """How large one photo may be, in bytes and in pixels."""

    max_bytes: int
    max_pixels: int


@dataclass(frozen=True, slots=True)
class InspectedPhoto:
    """A photo that passed inspection, with what the event needs to know of it."""

    sha256: str
    content_type: PhotoContentType
    size_bytes: int
    width: int
    height: int


class PhotoRejected(ValueError):
    """One photo is refused; `position` counts from 1, as a person would."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"photo {position}: {reason}")
        self.position = position
        self.reason = reason


def human_size(size: int) -> str:
    """A byte count as a person reads it: 512 KB, 14.2 MB."""
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def inspect_photo(position: int, data: bytes, limits: PhotoLimits) -> InspectedPhoto:
    """Accept `data` as a JPEG, PNG or WebP photo, or raise `PhotoRejected` saying why."""
    if not data:
        raise PhotoRejected(position, "the file is empty")
    if len(data) > limits.max_bytes:
        raise PhotoRejected(
            position,
            f"the file is {human_size(len(data))}; the limit is {human_size(limits.max_bytes)}",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image_format = image.format or ""
                width, height = image.size
                if image_format not in CONTENT_TYPES:
                    raise PhotoRejected(
                        position,
                        f"the content is {image_format or 'not an image'}; "
                        "send a JPEG, PNG or WebP photo",
                    )
                if width * height > limits.max_pixels:
                    raise PhotoRejected(
                        position,
                        f"the image is {width}x{height} pixels; "
                        f"the limit is {limits.max_pixels:,} pixels",
                    )
                image.load()
    except PhotoRejected:
        raise
    except UnidentifiedImageError:
        raise PhotoRejected(position, "the content is not a JPEG, PNG or WebP image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoRejected(position, "the image expands to too many pixels") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise PhotoRejected(position, f"the image is damaged or truncated ({exc})") from None
    return InspectedPhoto(
        sha256=hashlib.sha256(data).hexdigest(),
        content_type=CONTENT_TYPES[image_format],
        size_bytes=len(data),
        width=width,
        height=height,
    )
