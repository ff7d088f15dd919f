"""The alerter: raises, escalates and delivers alerts, recording each step as an event.

Every second it reads the open incidents and their alerts from the read models, asks the
domain what is due for those that may have something to do (`QuietIncidents` knows which
need nothing until their next step), and acts. Decisions are written to an outbox in the
same transaction as the claims that make them happen once (even with several notify
instances), then published to the alerts topic, from where the projection records them.
Timers are the alert's raise time plus the route's steps, so a restart loses none.

A delivery waits for one of a few slots, then is planned again (an incident acknowledged
meanwhile is told nothing more) and claimed for a lease, then sent: a lease taken before
the wait could run out in it, and the next moment send the message a second time. A
crash after sending and before recording lets the lease run out and the message go
again: at least once, with the same webhook-id, so a receiver can drop the repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import httpx

from qianliyan.notify.channels import DeliveryFailed, send
from qianliyan.notify.domain.alerting import (
    AlertPlan,
    DeliveryKey,
    OpenIncident,
    QuietIncidents,
    RaisedAlert,
    Telling,
    plan_alert,
    telling,
)
from qianliyan.notify.domain.messages import AlertFacts, compose
from qianliyan.notify.domain.routing import Routing, retry_delay
from qianliyan.notify.projections.alerts import level_of
from qianliyan.shared.config_files import WatchedFile
from qianliyan.shared.db import Connection
from qianliyan.shared.errors import is_transient
from qianliyan.shared.events import (
    Actor,
    ActorKind,
    AlertDelivered,
    AlertDeliveryFailed,
    AlertDeliveryFailedPayload,
    AlertEscalated,
    AlertEscalatedPayload,
    AlertRaised,
    AlertRaisedPayload,
    AlertUpgraded,
    AlertUpgradedPayload,
    DeliveryPayload,
    Event,
    Severity,
    decode,
    encode,
)
from qianliyan.shared.events.envelope import derived_event_id
from qianliyan.shared.events.reports import SEVERITY_SCALE
from qianliyan.shared.kafka import EventPublisher
from qianliyan.shared.metrics import DELIVERIES
from qianliyan.shared.tracing import span

log = logging.getLogger(__name__)

NOTIFY = Actor(kind=ActorKind.SERVICE, id="notify")

# How far apart the clocks of triage, notify and PostgreSQL may be while a report is
# still waited for (beyond that an alert is raised without waiting, as before waiting).
_CLOCKS_APART = timedelta(seconds=5)

_OPEN_INCIDENTS = """
    SELECT i.incident_id, i.alert_round, i.severity, i.unit, i.place, i.last_received_at,
           a.raised_at, a.step, a.severity AS alert_severity, a.upgraded_to,
           a.unit AS alert_unit, a.place AS alert_place,
           -- Counted from its first triage, so reports that keep coming unread (a burst,
           -- the reports topic read behind) hold the raise no longer than the first did.
           -- Asked only of an incident refreshed lately ($2): its first triage was read no
           -- later than its last refresh, and one older than two waits (clocks apart by
           -- less than $2 allows) holds nothing; asking every open incident would cost a
           -- lookup each, every moment.
           CASE WHEN a.incident_id IS NULL AND i.updated_at > now() - $2::interval THEN
               (SELECT min(r.triaged_at) FROM reports r WHERE r.incident_id = i.incident_id
                HAVING bool_or(r.submitted_event_id IS NULL))
           END AS awaiting_report_since
      FROM incidents i
      LEFT JOIN alerts a ON a.incident_id = i.incident_id AND a.round = i.alert_round
     WHERE i.status = 'open' AND i.severity IS NOT NULL
       AND (a.incident_id IS NOT NULL OR i.alert_round > 0 OR i.last_received_at > $1)
"""
_OPEN_INCIDENT = _OPEN_INCIDENTS + "   AND i.incident_id = $3"

# The first report's chain is the alert's; an incident is never without reports.
_CORRELATION_IDS = """
    SELECT DISTINCT ON (incident_id) incident_id, correlation_id FROM reports
     WHERE incident_id = ANY($1::uuid[]) ORDER BY incident_id, captured_at
"""

# Deliveries that need nothing now: settled (for good), or held by a live claim; each at
# the most severe level it told of (a rank, 1 for info to 4 for critical).
_BUSY = f"""
    SELECT incident_id, round, step, recipient, channel, level, bool_or(settled) AS settled
      FROM (SELECT c.incident_id, c.round, c.step, c.recipient, c.channel,
                   {level_of("c")} AS level, c.settled
              FROM delivery_claims c
             WHERE c.incident_id = ANY($1::uuid[]) AND (c.settled OR c.claimed_until > now())
            UNION ALL
            SELECT d.incident_id, d.round, d.step, d.recipient, d.channel,
                   {level_of("d")}, true
              FROM alert_deliveries d
             WHERE d.incident_id = ANY($1::uuid[]) AND d.outcome IN ('delivered', 'failed')) x
     GROUP BY incident_id, round, step, recipient, channel, level
"""  # noqa: S608 - fixed names

# One claim per step, recipient and channel: a more severe level takes it over once the
# milder one's attempt is over (settled, or its lease or retry wait has run out), and
# counts its attempts afresh.
_SAME_LEVEL = f"{level_of('EXCLUDED')} IS NOT DISTINCT FROM {level_of('delivery_claims')}"
_CLAIM = f"""
    INSERT INTO delivery_claims (incident_id, round, step, recipient, channel, severity,
                                 attempts, claimed_until)
    VALUES ($1, $2, $3, $4, $5, $6, 1, now() + $7::interval)
    ON CONFLICT (incident_id, round, step, recipient, channel) DO UPDATE SET
        severity = EXCLUDED.severity,
        attempts = CASE WHEN {_SAME_LEVEL} THEN delivery_claims.attempts + 1 ELSE 1 END,
        settled = false,
        claimed_until = EXCLUDED.claimed_until
    WHERE (NOT delivery_claims.settled AND delivery_claims.claimed_until <= now()
           AND {_SAME_LEVEL})
       OR ((delivery_claims.settled OR delivery_claims.claimed_until <= now())
           AND {level_of("EXCLUDED")} > {level_of("delivery_claims")})
    RETURNING attempts
"""  # noqa: S608 - fixed names

_FACTS = """
    SELECT i.severity, i.report_count, i.opened_at,
           -- The first report of the unit the alert is routed for ($2), which its reader
           -- was chosen for; of any unit when none is of it.
           (SELECT r.text FROM reports r WHERE r.incident_id = i.incident_id
             ORDER BY r.unit IS NOT DISTINCT FROM $2 DESC, r.captured_at LIMIT 1)
           AS first_text,
           (SELECT array_agg(DISTINCT reason->>'summary') FROM reports r,
                   jsonb_array_elements(COALESCE(r.reasons, '[]'::jsonb)) reason
             WHERE r.incident_id = i.incident_id) AS reasons
      FROM incidents i WHERE i.incident_id = $1
"""


class Alerter:
    """Carries out the routing for every open incident, one moment at a time."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        publisher: EventPublisher,
        topic: str,
        routing: WatchedFile[Routing],
        public_url: str | None,
        max_parallel: int = 20,
    ) -> None:
        self._pool = pool
        self._publisher = publisher
        self._topic = topic
        self._routing = routing
        self._public_url = public_url.rstrip("/") if public_url else None
        self._slots = asyncio.Semaphore(max_parallel)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._queued: set[DeliveryKey] = set()  # waiting for a slot, or being sent, here
        self._stopping = False
        self._http = httpx.AsyncClient(follow_redirects=False)
        self._quiet = QuietIncidents()

    async def run(self, stop: asyncio.Event, *, interval_s: float) -> None:
        """Act every `interval_s` until `stop` is set; outages are waited out, not fatal."""
        try:
            while not stop.is_set():
                try:
                    await self.tick(datetime.now(UTC))
                except Exception as exc:
                    if not is_transient(exc):
                        raise
                    log.warning("alerter waits for its parts to come back: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=interval_s)
        finally:
            self._stopping = True  # what waits for a slot is left to the next moment
            if self._in_flight:
                await asyncio.wait(self._in_flight, timeout=30)
            await self._http.aclose()

    async def tick(self, now: datetime) -> None:
        """Raise, escalate and start the deliveries due at `now`; publish what was decided."""
        routing = self._routing.current()
        candidates = await open_incidents(
            self._pool,
            received_since=now - routing.spec.max_age,
            report_wait=routing.spec.report_wait,
        )
        self._quiet.keep_only(incident.incident_id for incident in candidates)
        incidents = [
            incident for incident in candidates if not self._quiet.is_quiet(incident, routing, now)
        ]
        if incidents:
            await self._act(incidents, routing, now)
        await self.publish_outbox()

    async def _act(self, incidents: list[OpenIncident], routing: Routing, now: datetime) -> None:
        ids = [incident.incident_id for incident in incidents]
        busy: set[DeliveryKey] = set()
        settled: set[DeliveryKey] = set()
        for r in await self._pool.fetch(_BUSY, ids):
            channel = routing.label_now(r["recipient"], r["channel"])
            # A step told at a level is told at every milder one too.
            for severity in SEVERITY_SCALE[: r["level"] or 0]:
                key = DeliveryKey(
                    r["incident_id"], r["round"], severity, r["step"], r["recipient"], channel
                )
                busy.add(key)
                if r["settled"]:
                    settled.add(key)
        plans = []
        waiting = busy | self._queued
        for incident in incidents:
            plan = plan_alert(incident, routing, now)
            self._quiet.note(incident, routing, plan, settled)
            if not plan.needs_nothing(waiting):
                plans.append((incident, plan))
        if not plans:
            return
        correlation_ids = {
            row["incident_id"]: row["correlation_id"]
            for row in await self._pool.fetch(
                _CORRELATION_IDS, [incident.incident_id for incident, _ in plans]
            )
        }
        for incident, plan in plans:
            correlation_id = correlation_ids.get(incident.incident_id) or incident.incident_id
            await self._record_decisions(incident, plan, routing, correlation_id)
            for key in plan.deliveries:
                if key not in busy:
                    self._start_delivery(key, correlation_id)

    async def _record_decisions(
        self, incident: OpenIncident, plan: AlertPlan, routing: Routing, correlation_id: UUID
    ) -> None:
        chain = _Chain(incident.incident_id, incident.round, correlation_id)
        if plan.raise_route is not None:
            payload = AlertRaisedPayload(
                incident_id=incident.incident_id,
                round=incident.round,
                severity=incident.severity,
                unit=incident.unit,
                place=incident.place,
                route=plan.raise_route,
                routing_version=routing.version,
            )
            await _to_outbox(self._pool, chain.event(AlertRaised, payload, "raised"))
        if plan.upgrade_to is not None and plan.upgrade_route is not None:
            payload_upgraded = AlertUpgradedPayload(
                incident_id=incident.incident_id,
                round=incident.round,
                severity=plan.upgrade_to,
                route=plan.upgrade_route,
                routing_version=routing.version,
            )
            event = chain.event(AlertUpgraded, payload_upgraded, f"upgraded/{plan.upgrade_to}")
            await _to_outbox(self._pool, event)
        if plan.escalate_to is not None:
            payload_escalated = AlertEscalatedPayload(
                incident_id=incident.incident_id,
                round=incident.round,
                step=plan.escalate_to,
                routing_version=routing.version,
            )
            escalated = chain.event(
                AlertEscalated, payload_escalated, f"escalated/{plan.escalate_to}"
            )
            await _to_outbox(self._pool, escalated)

    def _start_delivery(self, key: DeliveryKey, correlation_id: UUID) -> None:
        if key in self._queued:
            return  # it waits for a slot already
        self._queued.add(key)
        task = asyncio.create_task(self._deliver(key, correlation_id))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _deliver(self, key: DeliveryKey, correlation_id: UUID) -> None:
        try:
            async with self._slots:
                if self._stopping:
                    return
                # Planned again with a slot taken, under the routing in force: the wait may
                # have been long (a burst, a channel answering only at its timeout).
                routing = self._routing.current()
                incident = await self._still_due(key, routing)
                if incident is None:
                    return  # acknowledged, resolved or no longer routed so meanwhile
                timeout = routing.spec.delivery.timeout
                # The lease outlives one attempt with room to record it.
                lease = timedelta(seconds=timeout.total_seconds() * 2 + 30)
                attempt = await self._pool.fetchval(_CLAIM, *_key_values(key), lease)
                if attempt is None:
                    return  # another instance has it, or it is settled
                with span("deliver alert", correlation_id=str(correlation_id)):
                    await self._attempt(telling(key, incident), attempt, routing, correlation_id)
        except Exception:
            # A claim's lease runs out and a later moment tries again; without one, the
            # next moment does.
            log.exception("delivery %s could not be made or recorded", key)
        finally:
            self._queued.discard(key)

    async def _still_due(self, key: DeliveryKey, routing: Routing) -> OpenIncident | None:
        """`key`'s incident as it is now, if its plan now still has `key` to send."""
        now = datetime.now(UTC)
        found = await open_incidents(
            self._pool,
            received_since=now - routing.spec.max_age,
            report_wait=routing.spec.report_wait,
            only=key.incident_id,
        )
        if not found or key not in plan_alert(found[0], routing, now).deliveries:
            return None
        return found[0]

    async def _attempt(
        self, telling: Telling, attempt: int, routing: Routing, correlation_id: UUID
    ) -> None:
        key = telling.key
        recipient = routing.recipient(key.recipient)
        channel = dict(recipient.labelled_channels())[key.channel]
        facts = await self._facts(telling)
        link = f"{self._public_url}/dispatch?alert={key.incident_id}" if self._public_url else None
        message = compose(
            facts,
            step=key.step,
            upgraded=telling.upgraded,
            language=recipient.language,
            timezone=routing.spec.timezone,
            link=link,
        )
        document = {
            "type": "qianliyan.alert",
            "delivery_id": telling.delivery_id,
            "incident_id": str(key.incident_id),
            "round": key.round,
            "step": key.step,
            "attempt": attempt,
            "severity": facts.severity.value,
            "upgraded": telling.upgraded,
            "unit": facts.unit,
            "place": facts.place,
            "report_count": facts.report_count,
            "title": message.title,
            "body": message.body,
            "link": link,
        }
        common = {
            "incident_id": key.incident_id,
            "round": key.round,
            "severity": key.severity,
            "step": key.step,
            "recipient": key.recipient,
            "channel": key.channel,
            "attempt": attempt,
        }
        chain = _Chain(key.incident_id, key.round, correlation_id)
        purpose = f"delivery/{telling.delivery_id}/{attempt}"
        settled = True
        event: Event
        try:
            await send(
                channel,
                message,
                document,
                delivery_id=telling.delivery_id,
                timeout_s=routing.spec.delivery.timeout.total_seconds(),
                http=self._http,
                outbound=routing.outbound,
            )
        except DeliveryFailed as failed:
            DELIVERIES.labels(channel.kind, "failed").inc()
            delay = retry_delay(routing.spec.delivery, attempt, jitter=random.random())  # noqa: S311
            next_at = datetime.now(UTC) + delay if delay is not None else None
            settled = next_at is None
            log.warning("delivery %s attempt %d failed: %s", key, attempt, failed)
            payload = AlertDeliveryFailedPayload(
                **common, error=str(failed), next_attempt_at=next_at
            )
            event = chain.event(AlertDeliveryFailed, payload, purpose)
        else:
            DELIVERIES.labels(channel.kind, "delivered").inc()
            event = chain.event(AlertDelivered, DeliveryPayload(**common), purpose)
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "UPDATE delivery_claims SET settled = $7, claimed_until = COALESCE($8, now()) "
                "WHERE incident_id = $1 AND round = $2 AND step = $3 AND recipient = $4 "
                "AND channel = $5 AND severity = $6",
                *_key_values(key),
                settled,
                getattr(event.payload, "next_attempt_at", None),
            )
            await _to_outbox(connection, event)
        try:
            await self.publish_outbox()
        except Exception as exc:
            # Recorded in the outbox already: the next moment publishes it.
            log.info("outcome of %s waits in the outbox: %s", key, exc)

    async def _facts(self, telling: Telling) -> AlertFacts:
        incident_id = telling.key.incident_id
        row = await self._pool.fetchrow(_FACTS, incident_id, telling.unit)
        assert row is not None  # the incident was read a moment ago; rows are never deleted
        return AlertFacts(
            incident_id=incident_id,
            severity=Severity(row["severity"]),
            place=telling.place,
            unit=telling.unit,
            report_count=row["report_count"],
            opened_at=row["opened_at"],
            first_text=row["first_text"],
            reasons=tuple(sorted(row["reasons"] or ())),
        )

    async def publish_outbox(self) -> None:
        """Publish decided events, oldest first; what Kafka does not take stays for later."""
        rows = await self._pool.fetch(
            "SELECT event_id, event FROM alert_outbox ORDER BY created_at, event_id LIMIT 200"
        )
        for row in rows:
            event = decode(row["event"].encode())
            assert isinstance(event, Event)  # written by this module from a known class
            await self._publisher.publish(self._topic, event)
            await self._pool.execute(
                "DELETE FROM alert_outbox WHERE event_id = $1", row["event_id"]
            )


class _Chain:
    """Alerting events of one alert: keyed by the incident, ids derived from their purpose.

    A decision taken twice (two instances, or a moment repeated after a crash) makes the
    same event id, which the projection drops.
    """

    def __init__(self, incident_id: UUID, round_: int, correlation_id: UUID) -> None:
        self.incident_id = incident_id
        self.round = round_
        self.correlation_id = correlation_id
        self.raised_id = derived_event_id(incident_id, f"alert/{round_}/raised")

    def event(self, cls: type[Event], payload: Any, purpose: str) -> Event:
        event_id = derived_event_id(self.incident_id, f"alert/{self.round}/{purpose}")
        return cls.in_chain(
            correlation_id=self.correlation_id,
            causation_id=None if event_id == self.raised_id else self.raised_id,
            key=str(self.incident_id),
            actor=NOTIFY,
            payload=payload,
            event_id=event_id,
        )


async def _to_outbox(connection: Connection | asyncpg.Pool, event: Event) -> None:
    await connection.execute(
        "INSERT INTO alert_outbox (event_id, event) VALUES ($1, $2::jsonb) "
        "ON CONFLICT (event_id) DO NOTHING",
        event.event_id,
        encode(event).decode(),
    )


async def open_incidents(
    pool: asyncpg.Pool,
    *,
    received_since: datetime,
    report_wait: timedelta,
    only: UUID | None = None,
) -> list[OpenIncident]:
    """The open incidents with a severity that may need alerting: already alerted in their
    round, reopened (a later round), or with a report received since `received_since`;
    with whether each may still wait `report_wait` for a report. Of them, `only` that
    incident, if given."""
    lately = 2 * report_wait + _CLOCKS_APART
    if only is None:
        rows = await pool.fetch(_OPEN_INCIDENTS, received_since, lately)
    else:
        rows = await pool.fetch(_OPEN_INCIDENT, received_since, lately, only)
    return [_open_incident(row) for row in rows]


def _key_values(key: DeliveryKey) -> tuple[Any, ...]:
    """The delivery's key as `_CLAIM` takes it: its row's key, then its level."""
    return (key.incident_id, key.round, key.step, key.recipient, key.channel, key.severity.value)


def _open_incident(row: Any) -> OpenIncident:
    alert = None
    if row["raised_at"] is not None:
        upgraded_to = row["upgraded_to"]
        alert = RaisedAlert(
            raised_at=row["raised_at"],
            step=row["step"],
            severity=Severity(row["alert_severity"]),
            upgraded_to=Severity(upgraded_to) if upgraded_to is not None else None,
            unit=row["alert_unit"],
            place=row["alert_place"],
        )
    return OpenIncident(
        incident_id=row["incident_id"],
        round=row["alert_round"],
        severity=Severity(row["severity"]),
        unit=row["unit"],
        place=row["place"],
        last_received_at=row["last_received_at"],
        alert=alert,
        awaiting_report_since=row["awaiting_report_since"],
    )
