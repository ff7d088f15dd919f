"""Incidents: their state, and a dispatcher's severity override (an event, then projected)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel, Field

from qianliyan.notify.api.dependencies import NotifyResources, resources
from qianliyan.notify.domain.actions import (
    ActionRefused,
    ActionRequest,
    OverrideSeverity,
    check_allowed,
    to_event,
)
from qianliyan.notify.projections.incidents import claim_action, fetch_incident, release_claim
from qianliyan.shared.access.http import forbidden, require
from qianliyan.shared.access.policy import Permission, Principal, may_reach_unit
from qianliyan.shared.events import new_event_id
from qianliyan.shared.http import Problem, unavailable

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/incidents", tags=["incidents"])


class IncidentView(BaseModel):
    """An incident's read model."""

    incident_id: UUID
    version: int
    status: str
    severity: str | None
    rule_severity: str | None
    override_severity: str | None
    override_reason: str | None
    overridden_by: str | None
    assignee: str | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    resolved_by: str | None
    resolved_at: datetime | None
    resolution: str | None
    units: list[str] = Field(
        description="Every unit its reports came from; their managers see it and may act on it"
    )
    report_ids: list[UUID]
    timeline: list[dict[str, Any]]


class ActionAccepted(BaseModel):
    """The action is in the log; the read model shows it at `incident_version`."""

    event_id: UUID
    incident_version: int


async def incident_or_404(pool: asyncpg.Pool, incident_id: UUID) -> dict[str, Any]:
    incident = await fetch_incident(pool, incident_id)
    if incident is None:
        raise Problem(404, "Incident not found", f"No incident {incident_id} is known.")
    return incident


async def visible_incident(
    res: NotifyResources, principal: Principal, permission: Permission, incident_id: UUID
) -> dict[str, Any]:
    """The incident, when `permission` reaches one of its units (any its reports came from)
    for `principal`; else a 404 or 403."""
    incident = await incident_or_404(res.pool, incident_id)
    org = res.org.current()
    # An incident no report has named a unit for yet is the dispatch centre's alone.
    units = incident["units"] or [None]
    if not any(may_reach_unit(principal, permission, unit, org) for unit in units):
        # Which units it does concern is for those who may see it.
        raise forbidden(f"{principal.subject} may not do this for an incident of other units.")
    return incident


@router.get("/{incident_id}", response_model=IncidentView)
async def get_incident(
    incident_id: UUID,
    res: Annotated[NotifyResources, Depends(resources)],
    principal: Annotated[Principal, Depends(require(Permission.READ_ALERTS))],
) -> dict[str, Any]:
    """The incident's status, severity (an override wins), version, reports and timeline."""
    return await visible_incident(res, principal, Permission.READ_ALERTS, incident_id)


@router.post("/{incident_id}/actions", status_code=202, response_model=ActionAccepted)
async def act_on_incident(
    incident_id: UUID,
    request: Annotated[ActionRequest, Body()],
    res: Annotated[NotifyResources, Depends(resources)],
    principal: Annotated[Principal, Depends(require(Permission.ACT_ON_INCIDENTS))],
) -> ActionAccepted:
    """Acknowledge, assign, note, override severity, resolve or reopen.

    Each action is appended as an event, then projected. Acting on a version other than
    the current one is a 409, so nobody silently overwrites what they did not see.
    """
    pool = res.pool
    incident = await visible_incident(res, principal, Permission.ACT_ON_INCIDENTS, incident_id)
    if isinstance(request, OverrideSeverity) and not principal.may(Permission.OVERRIDE_SEVERITY):
        raise forbidden(f"{principal.subject} may not override severity; the dispatch centre does.")
    try:
        check_allowed(request, incident["status"])
    except ActionRefused as refused:
        raise Problem(409, "Action not possible now", f"{refused}.") from None
    event_id = new_event_id()
    claim = await claim_action(
        pool,
        incident_id=incident_id,
        version=request.expected_version,
        event_id=event_id,
        lease=timedelta(seconds=res.settings.action_claim_lease_s),
    )
    if claim.outcome == "taken":
        raise Problem(
            409,
            "Incident changing",
            f"Another action on version {request.expected_version} is being recorded; "
            "reload it in a moment and decide again.",
        )
    if claim.outcome == "stale":
        raise Problem(
            409,
            "Incident changed",
            f"The incident is at version {claim.version}, not "
            f"{request.expected_version}; reload it and decide again.",
        )
    event = to_event(
        request, actor=principal.as_actor(), incident_id=incident_id, event_id=event_id
    )
    try:
        await res.publisher.publish(res.settings.kafka.alerts_topic, event)
    except Exception as exc:
        log.warning("publishing a dispatcher action failed: %s", exc)
        await _release_quietly(pool, incident_id=incident_id, event_id=event_id)
        raise unavailable("The event log is unavailable; retry shortly.") from None
    return ActionAccepted(event_id=event_id, incident_version=request.expected_version + 1)


async def _release_quietly(pool: asyncpg.Pool, *, incident_id: UUID, event_id: UUID) -> None:
    try:
        await release_claim(pool, incident_id=incident_id, event_id=event_id)
    except Exception as exc:
        # PostgreSQL is away too: the claim's lease runs out, and an action after it takes
        # the claim over.
        log.warning("could not give back the claim on incident %s: %s", incident_id, exc)
