"""Events of what dispatchers decide about incidents."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import Field

from qianliyan.shared.events.envelope import Event, Payload
from qianliyan.shared.events.reports import Severity


class SeverityOverriddenPayload(Payload):
    """A dispatcher set an incident's severity; it wins over the rules from then on."""

    incident_id: UUID
    severity: Severity
    reason: str = Field(min_length=1, max_length=500)
    acted_on_version: int = Field(ge=0, description="The incident version the dispatcher saw")


class SeverityOverridden(Event):
    """A dispatcher overrode the severity the rules gave an incident."""

    type: Literal["SeverityOverridden"] = "SeverityOverridden"
    version: Literal[1] = 1
    payload: SeverityOverriddenPayload
