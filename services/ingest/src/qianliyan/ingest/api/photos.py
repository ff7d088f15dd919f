"""`POST /v1/photos`: one photo at a time, for phones whose uploads keep breaking off.

Each photo is retried on its own until stored; the report then names them in
`photo_ids`. A photo no report ever references is deleted by the store's lifecycle rule
after the retention period.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, File, UploadFile
from pydantic import BaseModel

from qianliyan.ingest.api.dependencies import IngestResources, Submitter, resources
from qianliyan.ingest.api.uploads import photo_limits, prepare_uploads
from qianliyan.ingest.domain.reports import photo_ref
from qianliyan.shared.access.policy import uploader
from qianliyan.shared.http import unavailable
from qianliyan.shared.storage import staged_metadata_key, staged_photo_key, staged_preview_key

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/photos", tags=["photos"])


class PhotoStaged(BaseModel):
    """A stored photo, ready to be referenced within the retention period by a report of
    whoever uploaded it (the same person, or the same machine token)."""

    photo_id: str
    width: int
    height: int
    taken_at: datetime | None
    expires_in_days: int


@router.post("", status_code=201, response_model=PhotoStaged)
async def upload_photo(
    photo: Annotated[UploadFile, File(description="One JPEG, PNG, WebP or HEIC photo")],
    res: Annotated[IngestResources, Depends(resources)],
    submitter: Submitter,
) -> PhotoStaged:
    """Store one photo; the same photo uploaded again gets the same id. Only reports sent
    by the same person, or with the same machine token, may name it."""
    [prepared] = await prepare_uploads([photo], photo_limits(res.settings))
    ref = photo_ref(prepared)
    # The metadata goes last: a photo counts as uploaded only once all three are stored.
    try:
        await asyncio.gather(
            res.photos.put(staged_photo_key(ref.sha256), prepared.data, prepared.content_type),
            res.photos.put(staged_preview_key(ref.sha256), prepared.preview, "image/jpeg"),
        )
        await res.photos.put(
            staged_metadata_key(ref.sha256, uploader(submitter)),
            ref.model_dump_json().encode(),
            "application/json",
        )
    except Exception as exc:
        log.warning("photo store unavailable: %s", exc)
        raise unavailable("The photo store is unavailable; retry shortly.") from None
    return PhotoStaged(
        photo_id=ref.sha256,
        width=ref.width,
        height=ref.height,
        taken_at=ref.taken_at,
        expires_in_days=res.settings.storage.upload_retention_days,
    )
