"""What an open incident's alert needs at a given moment: raising, escalating, deliveries.

The alerter reads the incident and its alert from the read models, asks `plan_alert`,
and carries out the answer. What it keeps in memory between moments is only which
incidents need nothing until a known time (`QuietIncidents`); a restart forgets that and
asks again, so it picks up exactly where the log and the read models say things stand.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from qianliyan.notify.domain.routing import Route, Routing, severity_rank
from qianliyan.shared.events import Severity


@dataclass(frozen=True, slots=True)
class RaisedAlert:
    """The current round's alert, as projected: when it was raised and at what severity,
    the most severe level it was upgraded to since, and its escalation step."""

    raised_at: datetime
    step: int
    severity: Severity
    upgraded_to: Severity | None = None
    # The unit and place it was raised for: what routes it from then on.
    unit: str | None = None
    place: str | None = None

    @property
    def level(self) -> Severity:
        """The most severe the alert has told anyone of."""
        return self.upgraded_to or self.severity


@dataclass(frozen=True, slots=True)
class OpenIncident:
    """An unacknowledged, unresolved incident with a severity."""

    incident_id: UUID
    round: int
    severity: Severity
    unit: str | None  # its earliest-captured report's: the one it is routed by
    place: str | None
    # When its latest report reached ingest, whenever the phone captured it.
    last_received_at: datetime | None
    alert: RaisedAlert | None
    # Before it is alerted, while a report's submission is not read yet (the topics are
    # read side by side): when it was first triaged; None once every one is read.
    awaiting_report_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeliveryKey:
    """One message for one step, at one level of the alert, to one channel of one
    recipient: sent at most once. (Its record is one per step, recipient and channel, at
    the most severe level told: a step told at a level is done at every milder one.)"""

    incident_id: UUID
    round: int
    severity: Severity
    step: int
    recipient: str
    channel: str

    def __str__(self) -> str:
        return (
            f"{self.incident_id}:{self.round}:{self.step}:{self.recipient}:{self.channel}"
            f"@{self.severity.value}"
        )


@dataclass(frozen=True, slots=True)
class Telling:
    """A delivery as its recipient gets it: its key, the id the receiver sees on every
    attempt (webhook-id), whether it says the incident grew worse, and the unit and place
    it names (those it was routed for, `routed_for`)."""

    key: DeliveryKey
    delivery_id: str
    upgraded: bool
    unit: str | None = None
    place: str | None = None


def telling(key: DeliveryKey, incident: OpenIncident) -> Telling:
    """How `key`, planned for `incident`, is told.

    At the level the alert was raised at, the id is the one every release before upgrades
    gave (a receiver drops a repeat sent across the upgrade of ours; not across the one
    that named a channel without an id by its target instead of its place, 2026-12-07);
    at an upgraded level it names the level. "Grew worse" is said while the incident stands
    at that level: a step newly due after the severity went down again tells the severity
    as it is now.
    """
    raised = incident.alert.severity if incident.alert is not None else key.severity
    delivery_id = f"{key.incident_id}:{key.round}:{key.step}:{key.recipient}:{key.channel}"
    if key.severity != raised:
        delivery_id += f":{key.severity.value}"
    upgraded = key.severity != raised and incident.severity == key.severity
    return Telling(key, delivery_id, upgraded, *routed_for(incident))


@dataclass(frozen=True, slots=True)
class AlertPlan:
    """What to do now: raise via `raise_route`, upgrade to `upgrade_to` (matching
    `upgrade_route`), record `escalate_to`, send `deliveries`."""

    raise_route: str | None = None
    upgrade_to: Severity | None = None
    upgrade_route: str | None = None
    escalate_to: int | None = None
    deliveries: tuple[DeliveryKey, ...] = ()
    next_due_at: datetime | None = None

    def needs_nothing(self, done: Collection[DeliveryKey]) -> bool:
        """Whether the plan raises and escalates nothing and each of its deliveries is in
        `done` (held by a claim now, or settled for good)."""
        return (
            self.raise_route is None
            and self.upgrade_to is None
            and self.escalate_to is None
            and all(key in done for key in self.deliveries)
        )


NOTHING = AlertPlan()


def plan_alert(incident: OpenIncident, routing: Routing, now: datetime) -> AlertPlan:
    """The plan for `incident` at `now` under `routing`."""
    route = _route_now(incident, routing)
    if route is None:
        return NOTHING
    if incident.alert is None:
        quiet_for = now - incident.last_received_at if incident.last_received_at else None
        if incident.round == 0 and quiet_for is not None and quiet_for > routing.spec.max_age:
            # History re-triaged: nobody is paged about the past. A report that arrives now
            # is news, however long ago its phone captured it; so is a reopening (a later
            # round), which a person decided, however old the reports.
            return NOTHING
        if incident.awaiting_report_since is not None:
            # Its route and its first messages are better for the report's place, unit and
            # text, which come a moment after its triage at most; a report that never comes
            # (its submission parked as a dead letter) holds nobody back for long.
            # Triage's clock may run a little ahead of this one: a triage time up to one
            # wait ahead still holds (never longer than two waits), one further ahead is
            # a clock gone wrong, and holds nothing.
            since, wait = incident.awaiting_report_since, routing.spec.report_wait
            if now < since + wait and since - now <= wait:
                return AlertPlan(next_due_at=since + wait)
        return AlertPlan(raise_route=route.id)
    # Route and steps follow the severity as it is now, so an incident that grew worse
    # reaches the people its new route names; the raise time keeps the clock. Each level
    # the alert reaches is told anew, to those told at a milder one too: "critical" is news
    # to a desk told "major". A milder severity later tells nobody again what they were
    # told; a step that falls due after it is keyed at the level reached, so it is told
    # once whatever the severity does next.
    alert = incident.alert
    upgraded = severity_rank(incident.severity) > severity_rank(alert.level)
    level = incident.severity if upgraded else alert.level
    escalation = routing.escalation_at(route, incident.severity, alert.raised_at, now)
    # A recipient named by several steps due together (repeats held back by quiet hours or
    # an outage, or a route grown more severe) is told once, at the newest of them: nine
    # messages at the end of the night would say no more than the last one.
    newest: dict[str, int] = {}
    for due in escalation.due:
        for recipient_id in due.recipients:
            newest[recipient_id] = max(due.step, newest.get(recipient_id, due.step))
    deliveries = tuple(
        DeliveryKey(incident.incident_id, incident.round, level, step, recipient_id, label)
        for recipient_id, step in newest.items()
        for label, _ in routing.recipient(recipient_id).labelled_channels()
    )
    highest = max((due.step for due in escalation.due), default=0)
    return AlertPlan(
        upgrade_to=level if upgraded else None,
        upgrade_route=route.id if upgraded else None,
        escalate_to=highest if highest > alert.step else None,
        deliveries=deliveries,
        next_due_at=escalation.next_due_at,
    )


def _route_now(incident: OpenIncident, routing: Routing) -> Route | None:
    """The route for the incident's severity now, and for the unit and place its alert was
    raised for (before it is raised, the incident's own).

    The incident's unit and place are its earliest-captured report's, so a late report
    captured earlier at another unit changes them; routed by those, an alert's next steps
    would move midway to other people, and those told first would never see their next
    step fall due. An upgrade, a milder severity and a routing edit are routed for the same
    unit and place. An alert that has neither (raised for neither, or by a release that
    kept neither) goes by the incident's, as before: never by none, which no route of a
    unit takes.
    """
    return routing.route_for(incident.severity, *routed_for(incident))


def routed_for(incident: OpenIncident) -> tuple[str | None, str | None]:
    """The unit and place the incident's alert is routed for (`_route_now` says why), and
    so what its messages name: a manager chosen for their unit reads that unit, not the
    one a late report made the incident's since."""
    alert = incident.alert
    if alert is not None and (alert.unit is not None or alert.place is not None):
        return alert.unit, alert.place
    return incident.unit, incident.place


@dataclass(frozen=True, slots=True)
class _Quiet:
    incident: OpenIncident
    routing: Routing
    until: datetime | None  # None: for as long as the incident and the routing stay so


class QuietIncidents:
    """The open incidents whose plan needs nothing until a known time, so the alerter
    need not ask again each moment (most open incidents, once their steps are sent).

    A plan needs nothing when it raises and escalates nothing and each of its deliveries
    is settled for good: sent, or given up. Until `next_due_at` no new step falls due, so
    the same incident under the same routing plans the same; a change to the incident
    (a new round, another severity, a step recorded, a report arriving) or to the routing
    asks again. A delivery held by a claim is not settled: its claim may run out.
    """

    def __init__(self) -> None:
        self._quiet: dict[UUID, _Quiet] = {}

    def is_quiet(self, incident: OpenIncident, routing: Routing, now: datetime) -> bool:
        """Whether planning `incident` at `now` would certainly give nothing to do."""
        quiet = self._quiet.get(incident.incident_id)
        return (
            quiet is not None
            and quiet.incident == incident
            and quiet.routing is routing
            and (quiet.until is None or now < quiet.until)
        )

    def note(
        self,
        incident: OpenIncident,
        routing: Routing,
        plan: AlertPlan,
        settled: Collection[DeliveryKey],
    ) -> None:
        """Remember `incident` as quiet until its next step when `plan` needs nothing."""
        if plan.needs_nothing(settled):
            self._quiet[incident.incident_id] = _Quiet(incident, routing, plan.next_due_at)
        else:
            self._quiet.pop(incident.incident_id, None)

    def keep_only(self, incident_ids: Iterable[UUID]) -> None:
        """Forget incidents no longer open (acknowledged, resolved)."""
        kept = set(incident_ids)
        self._quiet = {i: quiet for i, quiet in self._quiet.items() if i in kept}
