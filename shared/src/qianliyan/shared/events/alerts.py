"""Events of alerting people: an alert raised, upgraded, escalated, and each delivery
attempt's outcome.

A delivery is one message per (incident, round, step, recipient, channel) and level of the
alert: a replay or a rebuild projects these events and never performs a delivery again. A
reopened incident starts a new round; an incident that grows more severe while alerted
tells its people again, at the new level.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, Field

from qianliyan.shared.events.envelope import Event, Payload
from qianliyan.shared.events.reports import Severity


class AlertRoundPayload(Payload):
    """Which alert: one per incident, in rounds that a reopening starts anew."""

    incident_id: UUID
    round: int = Field(ge=0, description="0 at first, one more after each reopening")


class AlertRaisedPayload(AlertRoundPayload):
    """Why the incident is alerted: the route it matched and the severity then."""

    severity: Severity
    unit: str | None = None
    place: str | None = None
    route: str = Field(description="The routing rule that matched")
    routing_version: str


class AlertRaised(Event):
    """An incident became severe enough for a routing rule: people will be told."""

    type: Literal["AlertRaised"] = "AlertRaised"
    version: Literal[1] = 1
    payload: AlertRaisedPayload


class AlertUpgradedPayload(AlertRoundPayload):
    """The more severe level the alert now stands at, and the route that level matched."""

    severity: Severity
    route: str = Field(description="The routing rule the new severity matched")
    routing_version: str


class AlertUpgraded(Event):
    """The incident grew more severe while alerted: the people its route names for the new
    severity are told again, even those told already at the milder one."""

    type: Literal["AlertUpgraded"] = "AlertUpgraded"
    version: Literal[1] = 1
    payload: AlertUpgradedPayload


class AlertEscalatedPayload(AlertRoundPayload):
    """The escalation step now due, because nobody acknowledged the alert in time."""

    step: int = Field(ge=1)
    routing_version: str


class AlertEscalated(Event):
    """Nobody acknowledged in time: the alert goes to the next level."""

    type: Literal["AlertEscalated"] = "AlertEscalated"
    version: Literal[1] = 1
    payload: AlertEscalatedPayload


class DeliveryPayload(AlertRoundPayload):
    """One attempt to tell one recipient about one step of an alert."""

    step: int = Field(ge=0)
    severity: Severity | None = Field(
        default=None,
        description="The alert's level the recipient is told of: its raised severity, or "
        "the one it was upgraded to. Absent from deliveries recorded before upgrades were "
        "told, which are read as of the raised severity",
    )
    recipient: str = Field(min_length=1, max_length=200)
    channel: str = Field(description="The channel's kind and host, never its secrets")
    attempt: int = Field(ge=1)


class AlertDelivered(Event):
    """The recipient's channel accepted the message."""

    type: Literal["AlertDelivered"] = "AlertDelivered"
    version: Literal[1] = 1
    payload: DeliveryPayload


class AlertDeliveryFailedPayload(DeliveryPayload):
    """Why the attempt failed, and whether another one is planned."""

    error: str = Field(max_length=2000)
    next_attempt_at: AwareDatetime | None = Field(
        default=None, description="None when this was the last attempt"
    )


class AlertDeliveryFailed(Event):
    """A delivery attempt failed; it is retried with backoff until attempts run out."""

    type: Literal["AlertDeliveryFailed"] = "AlertDeliveryFailed"
    version: Literal[1] = 1
    payload: AlertDeliveryFailedPayload


AlertingEvent = AlertRaised | AlertUpgraded | AlertEscalated | AlertDelivered | AlertDeliveryFailed
ALERTING_EVENT_CLASSES: tuple[type[Event], ...] = (
    AlertRaised,
    AlertUpgraded,
    AlertEscalated,
    AlertDelivered,
    AlertDeliveryFailed,
)
