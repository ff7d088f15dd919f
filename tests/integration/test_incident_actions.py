"""Dispatcher actions on an incident: each an event, projected, on the timeline, with who."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest

from qianliyan.notify.projections.events import project_batch, project_one_by_one
from qianliyan.notify.projections.incidents import carry_versions_over, fetch_incident
from qianliyan.notify.rebuild import scratch_schema
from qianliyan.shared import topics
from qianliyan.shared.events import (
    Actor,
    ActorKind,
    AlertAcknowledged,
    AlertResolved,
    AlertResolvedPayload,
    IncidentActionPayload,
    ReportSubmitted,
    ReportSubmittedPayload,
    ReportTriaged,
    ReportTriagedPayload,
    Severity,
)
from qianliyan.shared.kafka import EventPublisher, create_producer
from qianliyan.shared.settings import KafkaSettings
from qianliyan.stack.config import StackConfig
from tests.integration.clients import as_suite, as_user, submit
from tests.integration.topic_reader import wait_for

pytestmark = pytest.mark.integration


class Dispatcher:
    """Acts as a dispatcher would: reads the incident, then acts on the version it saw."""

    def __init__(self, config: StackConfig, incident_id: str, name: str) -> None:
        self.base = f"http://127.0.0.1:{config.notify_port}/v1/incidents/{incident_id}"
        self.name = name
        self.headers = as_user(config, name, "dispatcher")

    async def read(self) -> dict[str, Any]:
        async with httpx.AsyncClient(headers=self.headers) as client:
            answer = await client.get(self.base)
        body: dict[str, Any] = answer.json()
        return body

    async def act(self, action: str, **fields: object) -> httpx.Response:
        incident = await self.read()
        async with httpx.AsyncClient(headers=self.headers) as client:
            answer = await client.post(
                f"{self.base}/actions",
                json={
                    "action": action,
                    "expected_version": incident["version"],
                    **fields,
                },
            )
        if answer.status_code == 202:
            await wait_for(lambda: self._at_least(answer.json()["incident_version"]))
        return answer

    async def _at_least(self, version: int) -> bool:
        return bool((await self.read())["version"] >= version)


async def reported_incident(config: StackConfig, text: str, place: str) -> str:
    """Report, and wait until notify shows the incident it opens (its id is the report's)."""
    accepted = await submit(config, {"text": text, "place": place}, [])
    report_id: str = accepted.json()["report_id"]

    async def known() -> bool:
        async with httpx.AsyncClient(headers=as_suite(config)) as client:
            answer = await client.get(
                f"http://127.0.0.1:{config.notify_port}/v1/incidents/{report_id}"
            )
        return answer.status_code == 200

    await wait_for(known)
    return report_id


async def test_acknowledge_resolve_and_reopen_with_a_timeline(running_stack: StackConfig) -> None:
    config = running_stack
    report_id = await reported_incident(config, "接触网异物", f"区间{uuid4().hex[:6]}")
    zhang = Dispatcher(config, report_id, "调度员张")

    assert (await zhang.act("acknowledge")).status_code == 202
    again = await zhang.act("acknowledge")
    assert again.status_code == 409
    assert "already acknowledged" in again.json()["detail"]
    assert (await zhang.act("assign", assignee="工务段李")).status_code == 202
    assert (await zhang.act("resolve", resolution="异物已清除")).status_code == 202

    async with httpx.AsyncClient(headers=as_suite(config)) as client:
        status = await client.get(f"http://127.0.0.1:{config.ingest_port}/v1/reports/{report_id}")
    assert status.json()["status"] == "resolved"  # the reporter sees what became of it

    refused = await zhang.act("assign", assignee="someone")
    assert refused.status_code == 409
    assert "reopen it first" in refused.json()["detail"]
    assert (await zhang.act("note", note="复查无异常")).status_code == 202
    assert (await zhang.act("reopen", reason="又发现异物")).status_code == 202

    incident = await zhang.read()
    assert incident["status"] == "open"
    assert incident["assignee"] == "工务段李"
    assert incident["acknowledged_by"] == "调度员张"
    assert incident["resolution"] == "异物已清除"
    # The alerter may raise the alert before the first action or not at all (it looks
    # once a second, and raises nothing for an acknowledged incident): left out.
    events = [
        (entry["event_type"], entry["actor"])
        for entry in incident["timeline"]
        if entry["event_type"] != "AlertRaised"
    ]
    assert events == [
        ("ReportTriaged", "triage"),
        ("AlertAcknowledged", "调度员张"),
        ("AlertAssigned", "调度员张"),
        ("AlertResolved", "调度员张"),
        ("AlertNoteAdded", "调度员张"),
        ("AlertReopened", "调度员张"),
    ]


async def test_an_unknown_action_or_incident_is_a_clear_4xx(running_stack: StackConfig) -> None:
    base = f"http://127.0.0.1:{running_stack.notify_port}/v1/incidents"
    async with httpx.AsyncClient(headers=as_suite(running_stack)) as client:
        unknown = await client.post(
            f"{base}/{uuid4()}/actions",
            json={"action": "acknowledge", "expected_version": 1},
        )
        bad = await client.post(
            f"{base}/{uuid4()}/actions",
            json={"action": "teleport", "expected_version": 1},
        )
    assert unknown.status_code == 404
    assert bad.status_code == 422


async def test_a_note_holding_nul_is_kept_without_it_and_the_incident_goes_on(
    running_stack: StackConfig,
) -> None:
    # PostgreSQL stores no NUL: such a note was once accepted, then refused by the read
    # model, and every later action on the incident was a 409 for good.
    config = running_stack
    report_id = await reported_incident(config, "站台积水", f"站台{uuid4().hex[:6]}")
    wang = Dispatcher(config, report_id, "调度员王")
    assert (await wang.act("note", note="已通知\u0000工务段\r\n稍后复查")).status_code == 202
    assert (await wang.act("acknowledge")).status_code == 202
    refused = await wang.act("assign", assignee="工务段\u0000李")
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["message"].startswith("must not contain control")

    timeline = (await wang.read())["timeline"]
    notes = [entry for entry in timeline if entry["event_type"] == "AlertNoteAdded"]
    assert [entry["detail"]["note"] for entry in notes] == ["已通知工务段\n稍后复查"]


async def test_a_claim_left_by_a_request_that_died_runs_out(running_stack: StackConfig) -> None:
    # A request killed between claiming a version and publishing its action, or one that
    # could not give the claim back (PostgreSQL away as well as Kafka), once left the
    # version claimed for good: the incident could be acknowledged by nobody.
    config = running_stack
    report_id = await reported_incident(config, "道岔失表", f"道岔{uuid4().hex[:6]}")
    li = Dispatcher(config, report_id, "调度员李")
    version = (await li.read())["version"]
    connection = await asyncpg.connect(config.postgres_dsn)
    try:
        await connection.execute(
            "INSERT INTO incident_action_claims (incident_id, version, event_id, claimed_until) "
            "VALUES ($1, $2, $3, now() + interval '1 hour')",
            report_id,
            version,
            uuid4(),
        )
        held = await li.act("acknowledge")
        assert held.status_code == 409
        assert held.json()["title"] == "Incident changing"

        await connection.execute(
            "UPDATE incident_action_claims SET claimed_until = now() - interval '1 second' "
            "WHERE incident_id = $1 AND version = $2",
            report_id,
            version,
        )
        assert (await li.act("acknowledge")).status_code == 202
    finally:
        await connection.close()
    incident = await li.read()
    assert incident["status"] == "acknowledged"
    assert incident["acknowledged_by"] == "调度员李"


async def test_of_two_actions_on_one_version_the_first_in_the_log_is_applied(
    running_stack: StackConfig,
) -> None:
    # A publish that timed out can land after its claim was given back, beside the action
    # a retry published on the same version: both are in the log, decided on one version.
    config = running_stack
    report_id = await reported_incident(config, "信号机灯丝断丝", f"信号机{uuid4().hex[:6]}")
    zhao = Dispatcher(config, report_id, "调度员赵")
    version = (await zhao.read())["version"]
    actor = Actor(kind=ActorKind.DISPATCHER, id="调度员赵")
    acted_on = IncidentActionPayload(incident_id=report_id, acted_on_version=version)
    resolved = AlertResolved.first(
        key=report_id,
        actor=actor,
        payload=AlertResolvedPayload(**acted_on.model_dump(), resolution="已更换灯泡"),
    )
    acknowledged = AlertAcknowledged.first(key=report_id, actor=actor, payload=acted_on)
    producer = create_producer(
        KafkaSettings(bootstrap_servers=config.kafka_bootstrap), client_id="second-action"
    )
    await producer.start()
    try:
        publisher = EventPublisher(producer, timeout_s=10)
        for event in (resolved, acknowledged):
            await publisher.publish(topics.ALERTS, event)
    finally:
        await producer.stop()

    async def both_on_the_timeline() -> bool:
        types = {entry["event_type"] for entry in (await zhao.read())["timeline"]}
        return {"AlertResolved", "AlertAcknowledged"} <= types

    await wait_for(both_on_the_timeline)
    incident = await zhao.read()
    assert incident["status"] == "resolved"
    assert incident["acknowledged_by"] is None
    assert incident["version"] == version + 1
    (second,) = [e for e in incident["timeline"] if e["event_type"] == "AlertAcknowledged"]
    assert second["detail"]["superseded_by"] == str(resolved.event_id)
    (first,) = [e for e in incident["timeline"] if e["event_type"] == "AlertResolved"]
    assert "superseded_by" not in first["detail"]


DISPATCHER = Actor(kind=ActorKind.DISPATCHER, id="调度员甲")


def reported(incident_id: UUID) -> tuple[ReportSubmitted, ReportTriaged]:
    """A report's submission and its triage into `incident_id`."""
    report_id, captured = uuid4(), datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    submitted = ReportSubmitted.first(
        key=str(report_id),
        actor=Actor(kind=ActorKind.REPORTER, id="w-1"),
        payload=ReportSubmittedPayload(
            report_id=report_id, text="道岔故障", captured_at=captured, received_at=captured
        ),
    )
    triaged = ReportTriaged.caused_by(
        submitted,
        key=str(report_id),
        actor=Actor(kind=ActorKind.OPS, id="triage"),
        payload=ReportTriagedPayload(
            report_id=report_id,
            incident_id=incident_id,
            severity=Severity.MAJOR,
            rule_set_version="v1",
            reasons=[],
            captured_at=captured,
        ),
    )
    return submitted, triaged


def acknowledged(incident_id: UUID, version: int) -> AlertAcknowledged:
    payload = IncidentActionPayload(incident_id=incident_id, acted_on_version=version)
    return AlertAcknowledged.first(key=str(incident_id), actor=DISPATCHER, payload=payload)


def resolved(incident_id: UUID, version: int) -> AlertResolved:
    payload = AlertResolvedPayload(
        incident_id=incident_id, acted_on_version=version, resolution="已处理"
    )
    return AlertResolved.first(key=str(incident_id), actor=DISPATCHER, payload=payload)


@asynccontextmanager
async def scratch_pool(infra: StackConfig) -> AsyncIterator[asyncpg.Pool]:
    """notify's read models in a schema of their own, dropped afterwards."""
    async with scratch_schema(infra.postgres_dsn, "actions") as dsn:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
        assert pool is not None
        try:
            yield pool
        finally:
            await pool.close()


async def test_after_a_rebuild_in_another_order_the_next_action_is_still_applied(
    infra: StackConfig,
) -> None:
    """Live, a triage projected before its submission gets a second refresh; a rebuild
    reading the topics side by side may meet them the other way round, and count one
    fewer. The version must still end past every version acted on."""
    incident_id = uuid4()
    submitted, triaged = reported(incident_id)
    async with scratch_pool(infra) as pool:
        # Live it was triage, submission (version 2), acknowledged on 2; rebuilt, the
        # submission comes first.
        await project_one_by_one(pool, [submitted, triaged, acknowledged(incident_id, 2)])
        version = await version_of(pool, incident_id)
        assert version == 3  # past the acknowledgement's, as live
        await project_one_by_one(pool, [resolved(incident_id, version)])
        incident = await fetch_incident(pool, incident_id)
    assert incident is not None and incident["status"] == "resolved"


async def test_after_a_rebuild_s_switch_the_version_goes_on_from_the_one_seen_live(
    infra: StackConfig,
) -> None:
    """Rebuilt in the other order, the count of changes ends below the floor: without the
    switch's carrying over, the next report would leave the version a dispatcher sees
    where it was, an action on it taken as if nothing had changed, and a page would keep
    its row. A corrected incident's version passes the live one, for the page to take."""
    incident_id, corrected_id, new_id, caught_up_id = uuid4(), uuid4(), uuid4(), uuid4()
    submitted, triaged = reported(incident_id)
    other_submitted, other_triaged = reported(corrected_id)
    async with scratch_pool(infra) as live, scratch_pool(infra) as rebuilt:
        ack = acknowledged(incident_id, 2)
        await project_one_by_one(live, [triaged, submitted, ack])
        await project_one_by_one(rebuilt, [submitted, triaged, ack])
        # One the live projection had not yet met when the switch caught up, and one
        # whose last event only the switch's catch-up projected.
        await project_one_by_one(rebuilt, [*reported(new_id), acknowledged(new_id, 2)])
        # Live counted two changes of its first report (its triage came first), the
        # rebuild one, and one more for the report only it has: the same count.
        first_submitted, first_triaged = reported(caught_up_id)
        await project_one_by_one(live, [first_triaged, first_submitted])
        await project_one_by_one(rebuilt, [first_submitted, first_triaged, *reported(caught_up_id)])
        for pool in (live, rebuilt):
            await project_one_by_one(pool, [other_triaged, other_submitted])
        seen_live = {
            i: await version_of(live, i) for i in (incident_id, corrected_id, caught_up_id)
        }
        assert await version_of(rebuilt, incident_id) == seen_live[incident_id] == 3

        retired = await live.fetchval("SELECT current_schema()")
        async with rebuilt.acquire() as connection:
            await carry_versions_over(
                connection, retired, [corrected_id], [incident_id, caught_up_id]
            )
        # News of the switch that reads as live did keeps its version: a dispatcher
        # deciding on it is not sent to reload it.
        assert await version_of(rebuilt, incident_id) == seen_live[incident_id]
        assert await version_of(rebuilt, corrected_id) == seen_live[corrected_id] + 1
        assert await version_of(rebuilt, caught_up_id) == seen_live[caught_up_id] + 1

        # The next report moves the version a dispatcher reads, as live it would.
        for some_id in (incident_id, new_id):
            before = await version_of(rebuilt, some_id)
            await project_one_by_one(rebuilt, [*reported(some_id)])
            assert await version_of(rebuilt, some_id) > before


async def version_of(pool: asyncpg.Pool, incident_id: UUID) -> int:
    """The version a dispatcher reads, and acts on."""
    incident = await fetch_incident(pool, incident_id)
    assert incident is not None
    return int(incident["version"])


@pytest.mark.parametrize("one_by_one", [True, False], ids=["one by one", "batched"])
async def test_an_action_the_status_it_meets_no_longer_allows_is_not_applied(
    infra: StackConfig, one_by_one: bool
) -> None:
    """Two dispatchers act at once on two versions, a report landing between them: one
    resolves on 1, a triage makes 2 before the resolve is projected, the other
    acknowledges 2. A resolved incident must not turn acknowledged."""
    incident_id = uuid4()
    first, second = reported(incident_id), reported(incident_id)
    project = project_one_by_one if one_by_one else project_batch
    async with scratch_pool(infra) as pool:
        await project(pool, [*first])  # both dispatchers read version 1, open
        await project(pool, [*second])  # the second report: version 2, still open
        assert await version_of(pool, incident_id) == 2
        late = acknowledged(incident_id, 2)
        await project(pool, [resolved(incident_id, 1), late])
        incident = await fetch_incident(pool, incident_id)
        # The next report moves the version readers see, as any change does.
        await project(pool, [*reported(incident_id)])
        assert await version_of(pool, incident_id) == 5
    assert incident is not None
    assert (incident["status"], incident["acknowledged_by"]) == ("resolved", None)
    # Past the acknowledgement's version too, so the next action is not taken for a copy,
    # and moved by its entry on the timeline, as any change moves it.
    assert incident["version"] == 4
    [entry] = [e["detail"] for e in incident["timeline"] if e["event_type"] == late.type]
    assert entry == {
        "acted_on_version": 2,
        "refused": "the incident is resolved; reopen it first",
        "status_then": "resolved",
    }
