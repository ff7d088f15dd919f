"""Two notify members project at once: the reports topic is keyed by area, the triage
topic by incident, so one incident's events can be in two members' transactions at the
same moment. The incident read model must end as one member alone would leave it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import asyncpg
import pytest

from qianliyan.notify.projections.batch import apply
from qianliyan.notify.projections.events import project_batch, project_one_by_one
from qianliyan.notify.rebuild import scratch_schema
from qianliyan.shared.events import (
    Actor,
    ActorKind,
    Event,
    ReportSubmitted,
    ReportSubmittedPayload,
    ReportTriaged,
    ReportTriagedPayload,
    Severity,
)
from qianliyan.stack.config import StackConfig
from tests.integration.topic_reader import wait_for

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def report(
    incident_id: UUID, severity: Severity, minutes: int
) -> tuple[ReportSubmitted, ReportTriaged]:
    report_id = uuid4()
    submitted = ReportSubmitted.first(
        key=f"北京南站/{minutes}",
        actor=Actor(kind=ActorKind.REPORTER, id="w-1"),
        payload=ReportSubmittedPayload(
            report_id=report_id,
            text=f"3站台 第{minutes}分钟",
            unit="北京南站",
            place="3站台",
            captured_at=T0 + timedelta(minutes=minutes),
            received_at=T0 + timedelta(minutes=minutes),
        ),
    )
    triaged = ReportTriaged.caused_by(
        submitted,
        key=str(incident_id),
        actor=Actor(kind=ActorKind.SERVICE, id="triage"),
        payload=ReportTriagedPayload(
            report_id=report_id,
            incident_id=incident_id,
            severity=severity,
            rule_set_version="test",
            reasons=[],
            captured_at=T0 + timedelta(minutes=minutes),
        ),
    )
    return submitted, triaged


@pytest.mark.parametrize("project", [project_batch, project_one_by_one])
async def test_an_incident_refreshed_by_two_members_at_once_keeps_both_reports(
    infra: StackConfig, project: Callable[[asyncpg.Pool, list[Event]], Awaitable[None]]
) -> None:
    """Member A projects a triage that makes the incident critical and is about to commit;
    member B projects the submission of another of its reports meanwhile, in a batch or
    one by one (the reference the batch must equal). B's refresh of the incident must see
    A's report once A commits, not write back what it read before."""
    incident_id = uuid4()
    first = report(incident_id, Severity.MINOR, 0)
    worse = report(incident_id, Severity.CRITICAL, 1)
    late = report(incident_id, Severity.MINOR, 2)  # triaged already, its submission late
    async with scratch_schema(infra.postgres_dsn, "members") as dsn:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        # Member B's own connection, named so that the test can see it wait.
        member_b = await asyncpg.create_pool(
            dsn, min_size=1, max_size=1, server_settings={"application_name": "member-b"}
        )
        assert pool is not None and member_b is not None
        try:
            await project_batch(pool, [*first, late[1]])
            a_done, a_may_commit = asyncio.Event(), asyncio.Event()

            async def member_a() -> None:
                # project_batch's transaction, held open after its work, as a member busy
                # with the rest of its batch would.
                async with pool.acquire() as connection, connection.transaction():
                    await apply(connection, [worse[1]])
                    a_done.set()
                    await a_may_commit.wait()

            a = asyncio.create_task(member_a())
            await a_done.wait()
            b = asyncio.ensure_future(project(member_b, [late[0]]))

            async def b_waits() -> bool:
                waiting = await pool.fetchval(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE application_name = 'member-b' AND wait_event_type = 'Lock'"
                )
                return bool(waiting)

            await wait_for(b_waits, timeout_s=10)
            a_may_commit.set()
            await asyncio.gather(a, b)
            row = await pool.fetchrow(
                "SELECT rule_severity, report_count FROM incidents WHERE incident_id = $1",
                incident_id,
            )
        finally:
            await member_b.close()
            await pool.close()
    assert row is not None
    assert (row["rule_severity"], row["report_count"]) == ("critical", 3)


@pytest.mark.parametrize("project", [project_batch, project_one_by_one])
async def test_a_report_moved_to_another_incident_leaves_the_first_without_it(
    infra: StackConfig, project: Callable[[asyncpg.Pool, list[Event]], Awaitable[None]]
) -> None:
    """A re-triage that groups a report otherwise: the incident it left no longer counts
    it nor takes its severity, and left empty it has none (so it leaves the feed)."""
    first_incident, second_incident = uuid4(), uuid4()
    submitted, triaged = report(first_incident, Severity.CRITICAL, 0)
    regrouped = triaged.model_copy(
        update={
            "event_id": uuid4(),
            "occurred_at": triaged.occurred_at + timedelta(hours=1),
            "payload": triaged.payload.model_copy(update={"incident_id": second_incident}),
        }
    )
    async with scratch_schema(infra.postgres_dsn, "moves") as dsn:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        assert pool is not None
        try:
            await project(pool, [submitted, triaged])
            await project(pool, [regrouped])
            rows = {
                row["incident_id"]: (row["report_count"], row["severity"])
                for row in await pool.fetch(
                    "SELECT incident_id, report_count, severity FROM incidents"
                )
            }
        finally:
            await pool.close()
    assert rows == {first_incident: (0, None), second_incident: (1, "critical")}
