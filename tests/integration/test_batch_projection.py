"""A batch projected set-based leaves exactly what projecting it event by event leaves.

Random histories in random orders (as a rebuild reading the topics side by side may
meet them, and worse), cut into random batches, with repeats, re-triages that move a
report between incidents, late triages, escalations ahead of their alert and delivery
attempts out of order. Versions are compared too: a dispatcher's action is claimed on
one, so a batch must move it as far as one by one does.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from qianliyan.notify.projections import batch
from qianliyan.notify.projections.events import project_batch, project_one_by_one
from qianliyan.notify.rebuild import READ_MODELS, rows_of, scratch_schema
from qianliyan.shared.events import (
    Actor,
    ActorKind,
    AlertAcknowledged,
    AlertAssigned,
    AlertAssignedPayload,
    AlertDelivered,
    AlertDeliveryFailed,
    AlertDeliveryFailedPayload,
    AlertEscalated,
    AlertEscalatedPayload,
    AlertRaised,
    AlertRaisedPayload,
    AlertReopened,
    AlertReopenedPayload,
    AlertResolved,
    AlertResolvedPayload,
    AlertUpgraded,
    AlertUpgradedPayload,
    DeliveryPayload,
    Event,
    IncidentActionPayload,
    ReportSubmitted,
    ReportSubmittedPayload,
    ReportTriaged,
    ReportTriagedPayload,
    Severity,
    SeverityOverridden,
    SeverityOverriddenPayload,
    TriageReason,
)
from qianliyan.stack.config import StackConfig

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
REPORTER = Actor(kind=ActorKind.REPORTER, id="w-1")
TRIAGE = Actor(kind=ActorKind.OPS, id="triage")
DISPATCHER = Actor(kind=ActorKind.DISPATCHER, id="调度员甲")
# Every column but the ones that record when a row was written.
COMPARED = {
    table: tuple(c for c in excluded if c != "version") for table, excluded in READ_MODELS.items()
}


def history(rng: random.Random, *, shuffled: bool) -> list[Event]:
    """A small world of reports, triages, actions and alerts, in a random order (each
    topic's own order kept unless `shuffled`)."""
    incidents = [UUID(int=rng.getrandbits(128)) for _ in range(4)]
    made: list[Event] = []

    def at(minutes: int) -> datetime:
        return T0 + timedelta(minutes=minutes)  # few distinct times: ties happen

    for _ in range(14):
        report_id = UUID(int=rng.getrandbits(128))
        submitted = ReportSubmitted.first(
            key=str(report_id),
            actor=REPORTER,
            payload=ReportSubmittedPayload(
                report_id=report_id,
                text=rng.choice(["站台冒烟", "候车室漏水", "扶梯停运"]),
                place=rng.choice([None, "3站台", "候车室"]),
                unit=rng.choice([None, "北站", "南站"]),
                captured_at=at(rng.randrange(6)),
                received_at=at(10),
            ),
        )
        made.append(submitted)
        if rng.random() < 0.15:  # the same report submitted again, under a new event id
            made.append(ReportSubmitted.first(key=str(report_id), actor=REPORTER,
                                              payload=submitted.payload))  # fmt: skip
        incident = rng.choice(incidents)
        for _ in range(rng.choice([1, 1, 2, 3])):
            if rng.random() < 0.3:
                incident = rng.choice(incidents)  # a re-triage may regroup the report
            made.append(
                ReportTriaged.caused_by(
                    submitted,
                    key=str(report_id),
                    actor=TRIAGE,
                    payload=ReportTriagedPayload(
                        report_id=report_id,
                        incident_id=incident,
                        severity=rng.choice(list(Severity)),
                        rule_set_version=f"v{rng.randrange(3)}",
                        reasons=[TriageReason(rule_id="smoke", summary="烟", evidence=["烟"])],
                        captured_at=submitted.payload.captured_at,
                    ),
                ).model_copy(update={"occurred_at": at(20 + rng.randrange(4))})
            )
    for incident in incidents:
        made.extend(alerting(rng, incident, 0))
        version = 1
        for _ in range(rng.randrange(4)):
            # Now and then a second action on the version just acted on (its claim given
            # back while the first still landed): the first in the log is applied.
            if rng.random() > 0.25:
                version += 1
            made.append(action(rng, incident, version))
        if rng.random() < 0.4:
            made.extend(alerting(rng, incident, 1))
    made.extend(rng.choice(made) for _ in range(len(made) // 10))  # redeliveries
    if shuffled:
        rng.shuffle(made)
        return made
    # As a rebuild reads the topics: each in its order, side by side.
    topics: dict[type, list[Event]] = {}
    for event in made:
        topic = type(event) if isinstance(event, ReportSubmitted | ReportTriaged) else Event
        topics.setdefault(topic, []).append(event)
    merged: list[Event] = []
    while streams := [stream for stream in topics.values() if stream]:
        merged.append(rng.choice(streams).pop(0))
    return merged


def action(rng: random.Random, incident: UUID, version: int) -> Event:
    common: dict[str, Any] = {"incident_id": incident, "acted_on_version": version}
    key = str(incident)
    kind = rng.randrange(5)
    if kind == 0:
        overridden = SeverityOverriddenPayload(**common, severity=Severity.MAJOR, reason="确认")
        return SeverityOverridden.first(key=key, actor=DISPATCHER, payload=overridden)
    if kind == 1:
        return AlertAcknowledged.first(
            key=key, actor=DISPATCHER, payload=IncidentActionPayload(**common)
        )
    if kind == 2:
        assigned = AlertAssignedPayload(**common, assignee=rng.choice(["甲", "乙"]))
        return AlertAssigned.first(key=key, actor=DISPATCHER, payload=assigned)
    if kind == 3:
        resolved = AlertResolvedPayload(**common, resolution="已处理")
        return AlertResolved.first(key=key, actor=DISPATCHER, payload=resolved)
    reopened = AlertReopenedPayload(**common, reason="再次发生")
    return AlertReopened.first(key=key, actor=DISPATCHER, payload=reopened)


def alerting(rng: random.Random, incident: UUID, round_: int) -> list[Event]:
    key, actor = str(incident), Actor(kind=ActorKind.OPS, id="alerter")
    made: list[Event] = [
        AlertRaised.first(
            key=key,
            actor=actor,
            payload=AlertRaisedPayload(
                incident_id=incident,
                round=round_,
                severity=Severity.MAJOR,
                route="值班",
                routing_version="r1",
            ),
        )
    ]
    # Upgrades go up only, whatever their order: a milder one after a severer changes nothing.
    for severity in rng.sample([Severity.MAJOR, Severity.CRITICAL], rng.randrange(0, 3)):
        made.append(
            AlertUpgraded.first(
                key=key,
                actor=actor,
                payload=AlertUpgradedPayload(
                    incident_id=incident,
                    round=round_,
                    severity=severity,
                    route=f"值班-{severity}",
                    routing_version="r1",
                ),
            )
        )
    for step in range(1, rng.randrange(1, 4)):
        made.append(
            AlertEscalated.first(
                key=key,
                actor=actor,
                payload=AlertEscalatedPayload(
                    incident_id=incident, round=round_, step=step, routing_version="r1"
                ),
            )
        )
    for attempt in range(1, rng.randrange(2, 5)):
        common: dict[str, Any] = {
            "incident_id": incident,
            "round": round_,
            "step": 0,
            # None: recorded before upgrades were told, of the raised severity.
            "severity": rng.choice([None, Severity.MAJOR, Severity.CRITICAL]),
            "recipient": rng.choice(["甲", "乙"]),
            "channel": "webhook:alerts",
            "attempt": attempt,
        }
        if rng.random() < 0.4:
            made.append(
                AlertDelivered.first(key=key, actor=actor, payload=DeliveryPayload(**common))
            )
        else:
            retry = T0 + timedelta(minutes=attempt) if rng.random() < 0.5 else None
            payload = AlertDeliveryFailedPayload(
                **common, error=f"error {attempt}", next_attempt_at=retry
            )
            made.append(AlertDeliveryFailed.first(key=key, actor=actor, payload=payload))
    return made


@pytest.fixture
async def two_schemas(infra: StackConfig) -> AsyncIterator[tuple[asyncpg.Pool, asyncpg.Pool]]:
    async with (
        scratch_schema(infra.postgres_dsn, "onebyone") as one_dsn,
        scratch_schema(infra.postgres_dsn, "batched") as batch_dsn,
    ):
        one = await asyncpg.create_pool(one_dsn, min_size=1, max_size=1)
        batched = await asyncpg.create_pool(batch_dsn, min_size=1, max_size=1)
        assert one is not None and batched is not None
        try:
            yield one, batched
        finally:
            await one.close()
            await batched.close()


async def empty(pool: asyncpg.Pool) -> None:
    await pool.execute(f"TRUNCATE {', '.join(COMPARED)}, feed_changes")


async def test_a_batch_leaves_what_one_by_one_leaves(
    two_schemas: tuple[asyncpg.Pool, asyncpg.Pool], monkeypatch: pytest.MonkeyPatch
) -> None:
    one, batched = two_schemas
    ways = {"set-based": 0, "one by one": 0}
    apply = batch.apply

    async def counted(connection: Any, fresh: Any) -> None:
        try:
            await apply(connection, fresh)
        except batch.OrderMatters:
            ways["one by one"] += 1
            raise
        ways["set-based"] += 1

    monkeypatch.setattr(batch, "apply", counted)
    not_applied = 0
    for seed in range(40):
        rng = random.Random(seed)
        made = history(rng, shuffled=seed % 2 == 0)
        await empty(one)
        await empty(batched)
        await project_one_by_one(one, made)
        start = 0
        while start < len(made):
            size = rng.choice([1, 3, 10, 40, 200])
            await project_batch(batched, made[start : start + size])
            start += size
        for table, excluded in COMPARED.items():
            ours, theirs = (
                await rows_of(one, table, excluded),
                await rows_of(batched, table, excluded),
            )
            assert ours == theirs, f"seed {seed}: {table} differs"
        # Every incident touched is in the feed's change log.
        changed: Callable[[asyncpg.Pool], Any] = lambda pool: pool.fetchval(  # noqa: E731
            "SELECT count(DISTINCT incident_id) FROM feed_changes"
        )
        assert await changed(one) == await changed(batched)
        not_applied += await one.fetchval(
            "SELECT count(*) FROM incident_timeline WHERE detail ? 'superseded_by'"
        )
    assert not_applied > 0  # second actions on a version were among the histories
    # Both ways were taken, the set-based one mostly.
    assert ways["set-based"] > 2 * ways["one by one"] > 0, ways
