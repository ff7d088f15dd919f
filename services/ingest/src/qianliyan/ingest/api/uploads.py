"""Reading and preparing uploaded photo parts, shared by both upload routes."""

from __future__ import annotations

import asyncio
import os

from fastapi import UploadFile

from qianliyan.ingest.domain.photos import PhotoLimits, PhotoRejected, PreparedPhoto, prepare_photo
from qianliyan.ingest.settings import IngestSettings
from qianliyan.shared.http import Problem


def photo_limits(settings: IngestSettings) -> PhotoLimits:
    """The per-photo limits in force."""
    return PhotoLimits(max_bytes=settings.max_photo_bytes, max_pixels=settings.max_photo_pixels)


def _prepare(position: int, data: bytes, limits: PhotoLimits) -> PreparedPhoto | PhotoRejected:
    try:
        return prepare_photo(position, data, limits)
    except PhotoRejected as rejection:
        return rejection


# Decoding (and re-encoding what is not an upright JPEG) is CPU work, done in threads
# (Pillow lets go of the GIL) so the event loop keeps answering meanwhile; one photo per
# core at a time, because a decoded photo takes far more memory than its file (a
# 12-megapixel JPEG is about 36 MB of pixels).
_PHOTO_WORKERS = asyncio.Semaphore(os.cpu_count() or 1)


async def _in_worker(
    position: int, data: bytes, limits: PhotoLimits
) -> PreparedPhoto | PhotoRejected:
    async with _PHOTO_WORKERS:
        return await asyncio.to_thread(_prepare, position, data, limits)


async def prepare_uploads(uploads: list[UploadFile], limits: PhotoLimits) -> list[PreparedPhoto]:
    """Every uploaded photo prepared, or one 422 listing each refused photo and why."""
    # Read one byte past the limit: enough to know a photo is too large, never more.
    contents = [await upload.read(limits.max_bytes + 1) for upload in uploads]
    outcomes = await asyncio.gather(
        *(_in_worker(position, data, limits) for position, data in enumerate(contents, start=1))
    )
    prepared = [o for o in outcomes if isinstance(o, PreparedPhoto)]
    rejected = [o for o in outcomes if isinstance(o, PhotoRejected)]
    if rejected:
        raise Problem(
            422,
            "Photos refused",
            "; ".join(str(rejection) for rejection in rejected),
            errors=[{"field": f"photos[{r.position}]", "message": r.reason} for r in rejected],
        )
    return prepared
