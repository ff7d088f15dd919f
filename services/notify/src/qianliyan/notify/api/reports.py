"""`GET /v1/reports/{id}`: where a report is, from received to triaged and beyond."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from qianliyan.notify.api.dependencies import NotifyResources, resources
from qianliyan.notify.projections.reports import fetch_report
from qianliyan.shared.access.http import SignedIn, forbidden
from qianliyan.shared.access.policy import may_read_report
from qianliyan.shared.http import Problem
from qianliyan.shared.storage import PhotoStore

router = APIRouter(prefix="/v1/reports", tags=["reports"])


class ReportContent(BaseModel):
    """What a report says, where and when, and how the rules judged it."""

    report_id: UUID
    reporter_id: str | None
    reporter_via: str | None = Field(
        default=None,
        description="Who sent it on the reporter's behalf (a chat bridge's token), if not them",
    )
    text: str | None
    category: str | None
    place: str | None
    unit: str | None
    location: dict[str, Any] | None
    photos: list[dict[str, Any]]
    captured_at: datetime | None
    received_at: datetime | None
    severity: str | None
    rule_set_version: str | None


class ReportView(ReportContent):
    """A report's read model: its content, and where it stands."""

    status: Literal["received", "triaged", "alerted", "acknowledged", "resolved"]
    correlation_id: UUID | None
    incident_id: UUID | None
    reasons: list[dict[str, Any]] | None
    triaged_at: datetime | None


@router.get("/{report_id}", response_model=ReportView)
async def get_report(
    report_id: UUID,
    res: Annotated[NotifyResources, Depends(resources)],
    principal: SignedIn,
) -> dict[str, Any]:
    """The report's current state, with time-limited photo links; 404 until it is known.

    Its reporter may read it, and so may the dispatch centre and the managers of its unit.
    """
    report = await fetch_report(res.pool, report_id)
    if report is None:
        raise Problem(
            404,
            "Report not found",
            f"No report {report_id} is known yet; a report just sent may take a moment.",
        )
    if not may_read_report(
        principal, reporter_id=report["reporter_id"], unit=report["unit"], org=res.org.current()
    ):
        raise forbidden(f"{principal.subject} may not read this report.")
    sign_photo_links(report["photos"], res.photos)
    return report


def sign_photo_links(photos: list[dict[str, Any]], store: PhotoStore) -> None:
    """Give each photo (and its preview) a time-limited link; the bucket itself is private."""
    for photo in photos:
        photo["url"] = store.signed_url(photo["object_key"])
        if photo.get("preview_key"):
            photo["preview_url"] = store.signed_url(photo["preview_key"])
