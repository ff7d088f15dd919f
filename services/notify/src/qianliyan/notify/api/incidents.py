"""Incidents: their state, and a dispatcher's severity override (an event, then projected)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from qianliyan.notify.api.dependencies import alerts_topic, db_pool, event_publisher
from qianliyan.notify.projections.incidents import claim_action, fetch_incident, release_claim
from qianliyan.shared.events import (
    Actor,
    ActorKind,
    Severity,
    SeverityOverridden,
    SeverityOverriddenPayload,
    new_event_id,
)
from qianliyan.shared.http import Problem, unavailable
from qianliyan.shared.kafka import EventPublisher

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/incidents", tags=["incidents"])


class IncidentView(BaseModel):
    """An incident's read model."""

    incident_id: UUID
    version: int
    severity: str | None
    rule_severity: str | None
    override_severity: str | None
    override_reason: str | None
    overridden_by: str | None
    overridden_at: datetime | None
    report_ids: list[UUID]


class SeverityOverride(BaseModel):
    """What a dispatcher decides, and which version of the incident they saw."""

    model_config = ConfigDict(extra="forbid")

    severity: Severity
    reason: str = Field(min_length=1, max_length=500)
    expected_version: int = Field(ge=0)
    dispatcher_id: str = Field(min_length=1, max_length=200)


class ActionAccepted(BaseModel):
    """The action is in the log; the read model shows it at `incident_version`."""

    event_id: UUID
    incident_version: int


async def _incident_or_404(pool: asyncpg.Pool, incident_id: UUID) -> dict[str, Any]:
    incident = await fetch_incident(pool, incident_id)
    if incident is None:
        raise Problem(404, "Incident not found", f"No incident {incident_id} is known.")
    return incident


@router.get("/{incident_id}", response_model=IncidentView)
async def get_incident(
    incident_id: UUID, pool: Annotated[asyncpg.Pool, Depends(db_pool)]
) -> dict[str, Any]:
    """The incident's severity (a dispatcher's override wins), version and reports."""
    return await _incident_or_404(pool, incident_id)


@router.post("/{incident_id}/severity", status_code=202, response_model=ActionAccepted)
async def override_severity(
    incident_id: UUID,
    override: SeverityOverride,
    pool: Annotated[asyncpg.Pool, Depends(db_pool)],
    publisher: Annotated[EventPublisher, Depends(event_publisher)],
    topic: Annotated[str, Depends(alerts_topic)],
) -> ActionAccepted:
    """Set the incident's severity; acting on a stale version is a 409, not an overwrite."""
    incident = await _incident_or_404(pool, incident_id)
    event_id = new_event_id()
    if not await claim_action(
        pool, incident_id=incident_id, version=override.expected_version, event_id=event_id
    ):
        raise Problem(
            409,
            "Incident changed",
            f"The incident is at version {incident['version']}, not "
            f"{override.expected_version}; reload it and decide again.",
        )
    event = SeverityOverridden.first(
        key=str(incident_id),
        actor=Actor(kind=ActorKind.DISPATCHER, id=override.dispatcher_id),
        payload=SeverityOverriddenPayload(
            incident_id=incident_id,
            severity=override.severity,
            reason=override.reason,
            acted_on_version=override.expected_version,
        ),
        event_id=event_id,
    )
    try:
        await publisher.publish(topic, event)
    except Exception as exc:
        log.warning("publishing an override failed: %s", exc)
        await release_claim(pool, incident_id=incident_id, version=override.expected_version)
        raise unavailable("The event log is unavailable; retry shortly.") from None
    return ActionAccepted(event_id=event_id, incident_version=override.expected_version + 1)
