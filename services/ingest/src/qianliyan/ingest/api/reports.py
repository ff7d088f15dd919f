"""`POST /v1/reports`: a report with its photos, accepted only once both are durable."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, File, Form, UploadFile
from pydantic import BaseModel

from qianliyan.ingest.api.dependencies import IngestResources, resources
from qianliyan.ingest.domain.photos import InspectedPhoto, PhotoLimits, PhotoRejected, inspect_photo
from qianliyan.ingest.domain.reports import (
    ReportForm,
    ReportFormInvalid,
    build_report_submitted,
    parse_report_form,
)
from qianliyan.shared.errors import is_transient
from qianliyan.shared.events import new_event_id
from qianliyan.shared.http import Problem, unavailable
from qianliyan.shared.storage import photo_key

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/reports", tags=["reports"])


class ReportAccepted(BaseModel):
    """The answer to an accepted report."""

    report_id: UUID
    status_url: str
    received_at: datetime
    photos: list[str]


def _parse_form(raw: str) -> ReportForm:
    try:
        return parse_report_form(raw)
    except ReportFormInvalid as invalid:
        raise Problem(
            422,
            "Invalid report",
            "The report part is not valid; see errors.",
            errors=invalid.errors,
        ) from None


async def _read_photos(uploads: list[UploadFile], settings_limit: PhotoLimits) -> list[bytes]:
    contents = []
    for upload in uploads:
        # Read one byte past the limit: enough to know it is too large, never the whole file.
        contents.append(await upload.read(settings_limit.max_bytes + 1))
    return contents


@router.post("", status_code=202, response_model=ReportAccepted)
async def submit_report(
    report: Annotated[str, Form(description="The report as JSON")],
    res: Annotated[IngestResources, Depends(resources)],
    photos: Annotated[list[UploadFile] | None, File(description="0 to 5 photos")] = None,
) -> ReportAccepted:
    """Accept a field report: photos go to the store first, then the event to Kafka."""
    settings = res.settings
    form = _parse_form(report)
    uploads = photos or []
    if len(uploads) > settings.max_photos:
        raise Problem(
            422,
            "Too many photos",
            f"{len(uploads)} photos were sent; the limit is {settings.max_photos} per report.",
        )
    limits = PhotoLimits(max_bytes=settings.max_photo_bytes, max_pixels=settings.max_photo_pixels)
    inspected, rejected = _inspect_all(await _read_photos(uploads, limits), limits)
    if rejected:
        raise Problem(
            422,
            "Photos refused",
            "; ".join(str(rejection) for rejection in rejected),
            errors=[{"field": f"photos[{r.position}]", "message": r.reason} for r in rejected],
        )
    received_at = datetime.now(UTC)
    report_id = new_event_id()
    event = build_report_submitted(
        form=form, photos=[p for p, _ in inspected], report_id=report_id, received_at=received_at
    )
    # Photos before the event: an orphan photo is harmless, an event whose photo is
    # missing is not.
    try:
        await asyncio.gather(
            *(
                res.photos.put(photo_key(photo.sha256), data, photo.content_type)
                for photo, data in inspected
            )
        )
    except Exception as exc:
        log.warning("photo store unavailable: %s", exc)
        raise unavailable("The photo store is unavailable; retry shortly.") from None
    try:
        await res.publisher.publish(settings.kafka.reports_topic, event)
    except Exception as exc:
        if not is_transient(exc):
            log.exception("publishing report %s failed", report_id)
        raise unavailable("The event log is unavailable; retry shortly.") from None
    return ReportAccepted(
        report_id=report_id,
        status_url=f"{settings.status_base_url}/v1/reports/{report_id}",
        received_at=received_at,
        photos=[photo.sha256 for photo, _ in inspected],
    )


def _inspect_all(
    contents: list[bytes], limits: PhotoLimits
) -> tuple[list[tuple[InspectedPhoto, bytes]], list[PhotoRejected]]:
    inspected: list[tuple[InspectedPhoto, bytes]] = []
    rejected: list[PhotoRejected] = []
    for position, data in enumerate(contents, start=1):
        try:
            inspected.append((inspect_photo(position, data, limits), data))
        except PhotoRejected as rejection:
            rejected.append(rejection)
    return inspected, rejected
