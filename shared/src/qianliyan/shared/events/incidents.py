"""Events of what dispatchers decide about incidents: each one names the version it acted on.

There is one alert per incident, so an alert is addressed by its incident's id.
"""

from __future__ import annotations

from typing import Literal, get_args
from uuid import UUID

from pydantic import Field

from qianliyan.shared.events.envelope import Event, Payload
from qianliyan.shared.events.reports import Severity


class IncidentActionPayload(Payload):
    """What every dispatcher action carries."""

    incident_id: UUID
    acted_on_version: int = Field(ge=0, description="The incident version the dispatcher saw")


class SeverityOverriddenPayload(IncidentActionPayload):
    """A dispatcher set an incident's severity; it wins over the rules from then on."""

    severity: Severity
    reason: str = Field(min_length=1, max_length=500)


class SeverityOverridden(Event):
    """A dispatcher overrode the severity the rules gave an incident."""

    type: Literal["SeverityOverridden"] = "SeverityOverridden"
    version: Literal[1] = 1
    payload: SeverityOverriddenPayload


class AlertAcknowledged(Event):
    """Someone at the dispatch centre took the alert in hand; escalation stops."""

    type: Literal["AlertAcknowledged"] = "AlertAcknowledged"
    version: Literal[1] = 1
    payload: IncidentActionPayload


class AlertAssignedPayload(IncidentActionPayload):
    """Who is to deal with the incident."""

    assignee: str = Field(min_length=1, max_length=200)


class AlertAssigned(Event):
    """The incident was given to someone to deal with."""

    type: Literal["AlertAssigned"] = "AlertAssigned"
    version: Literal[1] = 1
    payload: AlertAssignedPayload


class AlertNoteAddedPayload(IncidentActionPayload):
    """A note on the incident's timeline."""

    note: str = Field(min_length=1, max_length=2000)


class AlertNoteAdded(Event):
    """A dispatcher wrote a note on the incident."""

    type: Literal["AlertNoteAdded"] = "AlertNoteAdded"
    version: Literal[1] = 1
    payload: AlertNoteAddedPayload


class AlertResolvedPayload(IncidentActionPayload):
    """How the incident was resolved."""

    resolution: str = Field(min_length=1, max_length=2000)


class AlertResolved(Event):
    """The incident is over."""

    type: Literal["AlertResolved"] = "AlertResolved"
    version: Literal[1] = 1
    payload: AlertResolvedPayload


class AlertReopenedPayload(IncidentActionPayload):
    """Why a resolved incident is open again."""

    reason: str = Field(min_length=1, max_length=500)


class AlertReopened(Event):
    """A resolved incident is open again."""

    type: Literal["AlertReopened"] = "AlertReopened"
    version: Literal[1] = 1
    payload: AlertReopenedPayload


IncidentAction = (
    SeverityOverridden
    | AlertAcknowledged
    | AlertAssigned
    | AlertNoteAdded
    | AlertResolved
    | AlertReopened
)
INCIDENT_ACTION_CLASSES: tuple[type[Event], ...] = get_args(IncidentAction)
