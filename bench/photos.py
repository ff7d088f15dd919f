"""Phone-like JPEGs of about 500 KB, made on the spot so the bench ships no binaries.

Pure noise would be an unrealistic worst case for the JPEG coder and a flat colour an
unrealistic best one; blotches of colour with some grain compress about as a photo of
a platform does. The quality is searched so the file lands just under the target size.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

from PIL import Image

TARGET_BYTES = 500 * 1024
# What the reporter's page sends after its own downscaling is at most 2048 px on a side.
PHOTO_SIZE = (1600, 1200)


@dataclass(frozen=True, slots=True)
class Photo:
    """A JPEG and what it is."""

    data: bytes
    width: int
    height: int
    quality: int


def _scene(seed: int, size: tuple[int, int]) -> Image.Image:
    width, height = size
    rng = random.Random(seed)  # noqa: S311 - repeatable pixels, not secrets
    coarse = Image.frombytes(
        "RGB", (width // 8, height // 8), rng.randbytes(width // 8 * (height // 8) * 3)
    ).resize(size, Image.Resampling.BICUBIC)
    grain = Image.frombytes("L", size, rng.randbytes(width * height)).convert("RGB")
    return Image.blend(coarse, grain, 0.12)


def _encode(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def photo_near(seed: int, target_bytes: int = TARGET_BYTES) -> Photo:
    """A distinct JPEG (by `seed`) of at most `target_bytes`, as close to it as quality allows."""
    image = _scene(seed, PHOTO_SIZE)
    low, high = 5, 98
    best = Photo(_encode(image, low), *PHOTO_SIZE, quality=low)
    while low <= high:
        quality = (low + high) // 2
        data = _encode(image, quality)
        if len(data) <= target_bytes:
            best, low = Photo(data, *PHOTO_SIZE, quality=quality), quality + 1
        else:
            high = quality - 1
    return best


def photo_set(count: int, *, first_seed: int = 1) -> list[Photo]:
    """`count` different photos of about 500 KB each."""
    return [photo_near(first_seed + i) for i in range(count)]
