"""`GET /v1/alerts`: the dispatch centre's feed, most severe first, then the latest in,
light and paged.

One alert per incident. The list carries only what a row on the screen shows; the
incident's reports, photos and timeline are in `GET /v1/incidents/{id}`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from qianliyan.notify.api.dependencies import NotifyResources, resources
from qianliyan.notify.api.incidents import IncidentView, visible_incident
from qianliyan.notify.api.reports import ReportContent, sign_photo_links
from qianliyan.notify.projections.alerts import fetch_alerting
from qianliyan.notify.projections.incidents import (
    FeedFilter,
    FeedPosition,
    changes_after,
    fetch_alert_reports,
    last_change_id,
    list_alerts,
)
from qianliyan.shared.access.http import access_of, presented, require, still_valid
from qianliyan.shared.access.policy import Permission, Principal, visible_units
from qianliyan.shared.events import Severity
from qianliyan.shared.events.reports import SEVERITY_SCALE, UNIT_MAX_LENGTH
from qianliyan.shared.http import Problem, storable_time, time_filter
from qianliyan.shared.text import PRINTABLE, IsoTime, WholeNumber

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])

# The same ranks as the severity_rank column (array_position in SQL counts from 1).
_RANK = {severity.value: rank for rank, severity in enumerate(SEVERITY_SCALE, start=1)}


class AlertSummary(BaseModel):
    """One row of the feed."""

    incident_id: UUID
    version: int
    status: str
    severity: str | None
    opened_at: datetime | None
    last_report_at: datetime | None
    last_received_at: datetime | None = Field(
        description="When its latest report reached ingest (the feed's order within a "
        "severity), however long before its phone captured it"
    )
    report_count: int
    place: str | None
    unit: str | None = Field(
        description="The earliest-captured report's unit; the alert is routed by the unit "
        "it was raised for"
    )
    units: list[str] = Field(
        description="Every unit its reports came from; their managers see it and may act on it"
    )
    assignee: str | None
    alert_step: int | None = Field(
        description="How far the alert has escalated (0: first people told); None: not sent"
    )
    headline: str | None = Field(description="The first report's text, cut to 140 characters")
    photo_count: int


class AlertPage(BaseModel):
    """A page of the feed, and where the next one starts (None at the end)."""

    alerts: list[AlertSummary]
    next_cursor: str | None


# Names the order a cursor was given out in: one from before the feed went by arrival
# (three elements, an opening time) is refused rather than read as a position it is not.
_CURSOR_ORDER = "arrival"


def _encode(row: dict[str, Any]) -> str:
    position = [
        row["severity_rank"],
        row["last_received_at"].isoformat() if row["last_received_at"] else None,
        str(row["incident_id"]),
        _CURSOR_ORDER,
    ]
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def _decode(cursor: str) -> FeedPosition:
    try:
        position = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if isinstance(position, list) and len(position) == 3:
            raise ValueError("it was given out before the feed went by arrival; read from the top")
        if not isinstance(position, list) or len(position) != 4 or position[3] != _CURSOR_ORDER:
            raise ValueError("it is not a position in the feed")
        rank, received, incident, _ = position
        # The cursor comes back from the client: anything but what _encode wrote is refused
        # here, before it can reach the query as a rank or time the database cannot hold.
        if rank is not None and rank not in _RANK.values():
            raise ValueError(f"no severity rank {rank!r}")
        if not isinstance(incident, str):
            raise TypeError("the incident is not a string")
        received_at = datetime.fromisoformat(received) if received else None
        if received_at is not None and received_at.tzinfo is None:
            raise ValueError("the time has no timezone")
        return FeedPosition(
            severity_rank=None if rank is None else int(rank),
            last_received_at=storable_time(received_at),
            incident_id=UUID(incident),
        )
    except (ValueError, TypeError) as exc:
        raise Problem(
            422, "Invalid cursor", f"The cursor is not one this feed gave out ({exc})."
        ) from None


Reader = Annotated[Principal, Depends(require(Permission.READ_ALERTS))]


@router.get("", response_model=AlertPage)
async def feed(
    res: Annotated[NotifyResources, Depends(resources)],
    principal: Reader,
    status: Annotated[list[Literal["open", "acknowledged", "resolved"]] | None, Query()] = None,
    min_severity: Severity | None = None,
    unit: Annotated[str | None, Query(max_length=UNIT_MAX_LENGTH, pattern=PRINTABLE)] = None,
    opened_from: Annotated[IsoTime | None, Query(alias="from")] = None,
    opened_until: Annotated[IsoTime | None, Query(alias="until")] = None,
    limit: Annotated[WholeNumber, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> AlertPage:
    """Alerts filtered by status, minimum severity, unit and time opened; cursor-paged."""
    where = FeedFilter(
        statuses=tuple(status or ()),
        min_severity_rank=_RANK[min_severity.value] if min_severity else None,
        unit=unit,
        opened_from=time_filter(opened_from, "from"),
        opened_until=time_filter(opened_until, "until"),
        within_units=visible_units(principal, Permission.READ_ALERTS, res.org.current()),
    )
    rows = await list_alerts(
        res.pool, where=where, after=_decode(cursor) if cursor else None, limit=limit + 1
    )
    page, more = rows[:limit], len(rows) > limit
    return AlertPage(
        alerts=[AlertSummary.model_validate(row) for row in page],
        next_cursor=_encode(page[-1]) if more else None,
    )


# A stream re-checks the change log this often even without a notification.
STREAM_RECHECK_S = 5.0
# Changes read at once; a full read means more are waiting, read without a pause (a page
# resuming after a long gap, or after a re-triage moved many incidents).
CHANGES_PER_READ = 500


@router.get("/stream")
async def stream(
    request: Request,
    res: Annotated[NotifyResources, Depends(resources)],
    principal: Reader,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
    resume_after: Annotated[
        str | None, Query(alias="last_event_id", max_length=20, description="as the header")
    ] = None,
) -> EventSourceResponse:
    """Live changes to the feed as Server-Sent Events, one per change, each with its id.

    A client that reconnects with Last-Event-ID gets every change after it, once. A new
    client starts from now, and is told where by a first message that holds only an id:
    it opens the stream, then reads GET /v1/alerts, and a reconnection misses nothing in
    between. Changes a manager may not see are passed over the same way, by an id alone.
    A page that opens a new EventSource itself (which cannot set the header) passes the
    id as the `last_event_id` query parameter instead.
    """
    last_event_id = last_event_id or resume_after
    # Ids are bigint change ids: ASCII digits only ("²" passes isdigit but not int()), and
    # below 2**63, or the first query of the stream fails after its 200 has gone out.
    if last_event_id is not None and not (
        last_event_id.isascii() and last_event_id.isdigit() and int(last_event_id) < 2**63
    ):
        raise Problem(422, "Invalid Last-Event-ID", "Last-Event-ID must be an id this stream sent.")
    position = int(last_event_id) if last_event_id else await last_change_id(res.pool)

    token, verifier = presented(request), access_of(request).verifier

    async def events() -> AsyncIterator[ServerSentEvent]:
        nonlocal position
        # A browser keeps the last id it was sent and resumes from it by itself, after a
        # blip or a restart of ours; with none, it would resume from whatever "now" is
        # then, past what happened meanwhile. A message of an id alone fires no event.
        told = position
        if not last_event_id:
            yield ServerSentEvent(id=str(position))
        while not await request.is_disconnected():
            # A stream outlives the check at its door: a token revoked or expired since
            # ends it, and the page's reconnection meets the 401.
            if token is not None and not await still_valid(verifier, token):
                return
            # Read per round: a manager's units follow edits of the organisation file.
            units = visible_units(principal, Permission.READ_ALERTS, res.org.current())
            changed = res.feed_signal.next_change()
            changes = await changes_after(res.pool, position, limit=CHANGES_PER_READ)
            for change in changes:
                position = change.pop("change_id")
                if units is not None and units.isdisjoint(change["units"]):
                    continue
                yield ServerSentEvent(
                    data=AlertSummary.model_validate(change).model_dump_json(),
                    event="alert",
                    id=str(position),
                )
                told = position
            if changes and told != position:  # the last of them not this reader's to see
                yield ServerSentEvent(id=str(position))
                told = position
            if len(changes) < CHANGES_PER_READ:  # caught up: wait for the next change
                await res.feed_signal.wait(changed, STREAM_RECHECK_S)

    return EventSourceResponse(events(), ping=15)


class AlertReport(ReportContent):
    """A report of the alert's incident, with why the rules judged it as they did."""

    reasons: list[dict[str, Any]]


class AlertRound(BaseModel):
    """The alert of one round: when it was raised, by which route, the most severe level
    it was upgraded to since, how far it escalated."""

    round: int
    raised_at: datetime
    severity: Severity = Field(description="The severity it was raised at")
    route: str
    routing_version: str
    upgraded_to: Severity | None = Field(
        description="The most severe level it reached since, each telling its route again"
    )
    upgraded_at: datetime | None
    step: int
    escalated_at: datetime | None


class DeliveryOutcome(BaseModel):
    """How telling one recipient through one channel went."""

    round: int
    severity: Severity | None = Field(
        description="The alert's most severe level the recipient was told of at this step"
    )
    step: int
    recipient: str
    recipient_name: str | None = Field(
        description="The recipient's name in the routing file in force; null once it is "
        "no longer there"
    )
    channel: str
    outcome: Literal["delivered", "retrying", "failed"]
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    updated_at: datetime


class AlertDetail(IncidentView):
    """Everything the detail view shows: the incident, its reports with photos, its timeline,
    and whom it was sent to."""

    opened_at: datetime | None
    last_report_at: datetime | None
    report_count: int
    place: str | None
    unit: str | None
    reports: list[AlertReport]
    alert_round: int
    alert_step: int | None
    alerts: list[AlertRound]
    deliveries: list[DeliveryOutcome]


@router.get("/{incident_id}", response_model=AlertDetail)
async def alert_detail(
    incident_id: UUID, res: Annotated[NotifyResources, Depends(resources)], principal: Reader
) -> dict[str, Any]:
    """One alert: its incident's reports, time-limited photo links, reasons and timeline."""
    alert = await visible_incident(res, principal, Permission.READ_ALERTS, incident_id)
    alert["reports"] = await fetch_alert_reports(res.pool, incident_id)
    alert |= await fetch_alerting(res.pool, incident_id)
    names = {recipient.id: recipient.name for recipient in res.routing.current().spec.recipients}
    for delivery in alert["deliveries"]:
        delivery["recipient_name"] = names.get(delivery["recipient"])
    for report in alert["reports"]:
        sign_photo_links(report["photos"], res.photos)
    return alert
