"""Dispatcher actions on an incident: which are allowed when, and the event each one is."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from qianliyan.shared.events import (
    Actor,
    AlertAcknowledged,
    AlertAssigned,
    AlertAssignedPayload,
    AlertNoteAdded,
    AlertNoteAddedPayload,
    AlertReopened,
    AlertReopenedPayload,
    AlertResolved,
    AlertResolvedPayload,
    IncidentAction,
    IncidentActionPayload,
    Severity,
    SeverityOverridden,
    SeverityOverriddenPayload,
)
from qianliyan.shared.text import FREE_TEXT, PRINTABLE

IncidentStatus = Literal["open", "acknowledged", "resolved"]


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Strict, as the schema says: lax pydantic would take JSON's true for version 1.
    expected_version: int = Field(
        ge=0, strict=True, description="The incident version the dispatcher saw"
    )


class Acknowledge(_Action):
    """Take the alert in hand."""

    action: Literal["acknowledge"]


class Assign(_Action):
    """Give the incident to someone."""

    action: Literal["assign"]
    assignee: str = Field(min_length=1, max_length=200, pattern=PRINTABLE)


class Note(_Action):
    """Write on the incident's timeline."""

    action: Literal["note"]
    note: Annotated[str, Field(min_length=1, max_length=2000), FREE_TEXT]


class OverrideSeverity(_Action):
    """Set the severity; it wins over the rules."""

    action: Literal["override_severity"]
    severity: Severity
    reason: Annotated[str, Field(min_length=1, max_length=500), FREE_TEXT]


class Resolve(_Action):
    """Close the incident."""

    action: Literal["resolve"]
    resolution: Annotated[str, Field(min_length=1, max_length=2000), FREE_TEXT]


class Reopen(_Action):
    """Open a resolved incident again."""

    action: Literal["reopen"]
    reason: Annotated[str, Field(min_length=1, max_length=500), FREE_TEXT]


ActionRequest = Annotated[
    Acknowledge | Assign | Note | OverrideSeverity | Resolve | Reopen,
    Field(discriminator="action"),
]


class ActionRefused(ValueError):
    """The action makes no sense in the incident's current status."""


def check_allowed(action: ActionRequest | IncidentAction, status: IncidentStatus) -> None:
    """Raise `ActionRefused` saying why, when `action` cannot apply in `status`.

    The same rule answers a request, against the status the dispatcher saw, and its event,
    against the status when it is projected: another action may have landed between.
    """
    if isinstance(action, Note | AlertNoteAdded):
        return
    if isinstance(action, Reopen | AlertReopened):
        if status != "resolved":
            raise ActionRefused("only a resolved incident can be reopened")
        return
    if status == "resolved":
        raise ActionRefused("the incident is resolved; reopen it first")
    if isinstance(action, Acknowledge | AlertAcknowledged) and status == "acknowledged":
        raise ActionRefused("the incident is already acknowledged")


def status_after(event: IncidentAction, status: IncidentStatus) -> IncidentStatus:
    """The incident's status once `event` is applied."""
    if isinstance(event, AlertAcknowledged):
        return "acknowledged"
    if isinstance(event, AlertResolved):
        return "resolved"
    if isinstance(event, AlertReopened):
        return "open"
    return status


def to_event(
    request: ActionRequest, *, actor: Actor, incident_id: UUID, event_id: UUID
) -> IncidentAction:
    """The event recording `request`, attributed to whoever signed in and asked."""
    common = {"incident_id": incident_id, "acted_on_version": request.expected_version}
    key = str(incident_id)
    event: IncidentAction
    if isinstance(request, Acknowledge):
        event = AlertAcknowledged.first(
            key=key, actor=actor, payload=IncidentActionPayload(**common), event_id=event_id
        )
    elif isinstance(request, Assign):
        payload = AlertAssignedPayload(**common, assignee=request.assignee)
        event = AlertAssigned.first(key=key, actor=actor, payload=payload, event_id=event_id)
    elif isinstance(request, Note):
        note = AlertNoteAddedPayload(**common, note=request.note)
        event = AlertNoteAdded.first(key=key, actor=actor, payload=note, event_id=event_id)
    elif isinstance(request, OverrideSeverity):
        override = SeverityOverriddenPayload(
            **common, severity=request.severity, reason=request.reason
        )
        event = SeverityOverridden.first(key=key, actor=actor, payload=override, event_id=event_id)
    elif isinstance(request, Resolve):
        resolved = AlertResolvedPayload(**common, resolution=request.resolution)
        event = AlertResolved.first(key=key, actor=actor, payload=resolved, event_id=event_id)
    else:
        reopened = AlertReopenedPayload(**common, reason=request.reason)
        event = AlertReopened.first(key=key, actor=actor, payload=reopened, event_id=event_id)
    return event
