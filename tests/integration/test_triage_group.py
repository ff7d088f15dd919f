"""Two triage instances in one consumer group; the one working the reports stops
mid-stream; nothing lost or doubled."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from qianliyan.stack.config import StackConfig
from qianliyan.stack.infra import Service
from tests.integration.clients import submit
from tests.integration.test_triage_exactly_once import triaged_counts
from tests.integration.topic_reader import wait_for
from tests.integration.triage_members import area_partition, holder, log_time_now, settled

pytestmark = pytest.mark.integration

SHUT_DOWN = "Application shutdown complete"


@pytest.fixture
def two_members(running_stack: StackConfig) -> Iterator[tuple[list[Service], str]]:
    """The suite's triage (instance 0) and another in its group, and when it started (as
    a log line's time)."""
    second = Service(running_stack, "triage", instance=1)
    started = log_time_now()
    second.start()
    try:
        yield [Service(running_stack, "triage"), second], started
    finally:
        second.stop()


async def test_the_member_working_the_reports_leaving_mid_stream_loses_and_doubles_nothing(
    running_stack: StackConfig, two_members: tuple[list[Service], str]
) -> None:
    members, started = two_members

    async def send(i: int) -> str:
        answer = await submit(
            running_stack, {"text": f"群组测试{i}：信号故障", "place": f"测试点{i}"}, []
        )
        assert answer.status_code == 202, answer.text
        return str(answer.json()["report_id"])

    report_ids = [await send(0)]
    partition = await area_partition(running_stack)
    await settled(members, since=started)
    # The one working the reports: the other leaving would move no report's partition.
    working = holder(members, partition)
    log = working.status().log_path
    shut_down_before = log.read_text(encoding="utf-8").count(SHUT_DOWN)

    burst = asyncio.gather(*(send(i) for i in range(1, 31)))
    await asyncio.sleep(0.5)
    # SIGTERM: it finishes what it holds and leaves the group; its partitions move over.
    leaving = asyncio.create_task(asyncio.to_thread(working.stop))
    try:
        report_ids += await burst
        report_ids += await asyncio.gather(*(send(i) for i in range(31, 61)))
        await leaving
        assert log.read_text(encoding="utf-8").count(SHUT_DOWN) == shut_down_before + 1, (
            f"{working.name} {working.instance} did not shut down cleanly; see {log}"
        )

        async def all_triaged() -> dict[str, int] | None:
            counts = await triaged_counts(running_stack)
            return dict(counts) if all(counts[r] for r in report_ids) else None

        counts = await wait_for(all_triaged, timeout_s=120)
    finally:
        await asyncio.gather(leaving, return_exceptions=True)
        if working.instance == 0:
            working.start()  # the suite's own triage, which later tests need
    assert {r: counts[r] for r in report_ids if counts[r] != 1} == {}
