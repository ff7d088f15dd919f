"""Reading and preparing uploaded photo parts, shared by both upload routes."""

from __future__ import annotations

from fastapi import UploadFile

from qianliyan.ingest.domain.photos import PhotoLimits, PhotoRejected, PreparedPhoto, prepare_photo
from qianliyan.ingest.settings import IngestSettings
from qianliyan.shared.http import Problem


def photo_limits(settings: IngestSettings) -> PhotoLimits:
    """The per-photo limits in force."""
    return PhotoLimits(max_bytes=settings.max_photo_bytes, max_pixels=settings.max_photo_pixels)


async def prepare_uploads(uploads: list[UploadFile], limits: PhotoLimits) -> list[PreparedPhoto]:
    """Every uploaded photo prepared, or one 422 listing each refused photo and why."""
    prepared: list[PreparedPhoto] = []
    rejected: list[PhotoRejected] = []
    for position, upload in enumerate(uploads, start=1):
        # Read one byte past the limit: enough to know a photo is too large, never more.
        data = await upload.read(limits.max_bytes + 1)
        try:
            prepared.append(prepare_photo(position, data, limits))
        except PhotoRejected as rejection:
            rejected.append(rejection)
    if rejected:
        raise Problem(
            422,
            "Photos refused",
            "; ".join(str(rejection) for rejection in rejected),
            errors=[{"field": f"photos[{r.position}]", "message": r.reason} for r in rejected],
        )
    return prepared
