"""Reading and preparing uploaded photo parts, shared by both upload routes."""

from __future__ import annotations

import asyncio
import os

from fastapi import UploadFile

from qianliyan.ingest.domain.photos import (
    PhotoLimits,
    PhotoRejected,
    PreparedPhoto,
    prepare_photo,
    too_large,
)
from qianliyan.ingest.settings import IngestSettings
from qianliyan.shared.field_errors import field_problem
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


# An upload as read: its bytes (one past the limit at most), or its refusal by the size the
# form parser saw, which the sender knows.
SentPhoto = bytes | PhotoRejected


async def _read(position: int, upload: UploadFile, limits: PhotoLimits) -> SentPhoto:
    # The form parser holds the whole file, so its size is known: past the limit, it is
    # refused by that size, neither read nor decoded.
    if upload.size is not None and upload.size > limits.max_bytes:
        return too_large(position, upload.size, limits)
    # Read one byte past the limit: enough to know a photo is too large, never more.
    return await upload.read(limits.max_bytes + 1)


async def read_uploads(uploads: list[UploadFile], limits: PhotoLimits) -> list[SentPhoto]:
    """Each uploaded photo as sent, in order, not yet decoded."""
    return await asyncio.gather(
        *(_read(position, upload, limits) for position, upload in enumerate(uploads, start=1))
    )


async def _outcome(
    position: int, sent: SentPhoto, limits: PhotoLimits
) -> PreparedPhoto | PhotoRejected:
    if isinstance(sent, PhotoRejected):
        return sent
    return await _in_worker(position, sent, limits)


async def prepare_sent(sent: list[SentPhoto], limits: PhotoLimits) -> list[PreparedPhoto]:
    """Every photo read prepared, or one 422 listing each refused photo and why."""
    outcomes = await asyncio.gather(
        *(_outcome(position, photo, limits) for position, photo in enumerate(sent, start=1))
    )
    prepared = [o for o in outcomes if isinstance(o, PreparedPhoto)]
    rejected = [o for o in outcomes if isinstance(o, PhotoRejected)]
    if rejected:
        raise Problem(
            422,
            "Photos refused",
            "; ".join(str(rejection) for rejection in rejected),
            errors=[
                field_problem(f"photos[{r.position}]", r.code, r.reason, r.context)
                for r in rejected
            ],
        )
    return prepared


async def prepare_uploads(uploads: list[UploadFile], limits: PhotoLimits) -> list[PreparedPhoto]:
    """Every uploaded photo prepared, or one 422 listing each refused photo and why."""
    return await prepare_sent(await read_uploads(uploads, limits), limits)
