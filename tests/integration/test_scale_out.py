"""Three triage and three notify instances in one consumer group each, one of each stopped
mid-stream: the groups rebalance, and nothing is lost or doubled."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from qianliyan.stack.config import StackConfig
from qianliyan.stack.infra import Service
from tests.integration.clients import as_suite, submit
from tests.integration.test_triage_exactly_once import triaged_counts
from tests.integration.topic_reader import wait_for
from tests.integration.triage_members import area_partition, holder, log_time_now, settled

pytestmark = pytest.mark.integration

REPORTS = 60
EXTRA_INSTANCES = (1, 2)


@pytest.fixture
def three_of_each(
    running_stack: StackConfig,
) -> Iterator[tuple[dict[str, list[Service]], str]]:
    """The suite's triage and notify (instance 0) joined by two more of each, and when the
    first of those started (as a log line's time)."""
    extra = [
        Service(running_stack, name, instance=i)
        for name in ("triage", "notify")
        for i in EXTRA_INSTANCES
    ]
    started = log_time_now()
    try:
        for service in extra:
            service.start()
        yield (
            {
                name: [Service(running_stack, name), *(s for s in extra if s.name == name)]
                for name in ("triage", "notify")
            },
            started,
        )
    finally:
        for service in extra:
            service.stop()


async def test_groups_rebalance_when_an_instance_stops_and_lose_or_double_nothing(
    running_stack: StackConfig, three_of_each: tuple[dict[str, list[Service]], str]
) -> None:
    members, started = three_of_each
    config = running_stack

    async def send(i: int) -> str:
        report = {"text": f"第{i}号：道岔故障", "place": f"扩容道岔{i}"}
        answer = await submit(config, report, [])
        assert answer.status_code == 202, answer.text
        return str(answer.json()["report_id"])

    first_half = [await send(i) for i in range(REPORTS // 2)]

    async def triaged(report_ids: list[str]) -> bool:
        counts = await triaged_counts(config)
        return all(counts[report_id] for report_id in report_ids)

    await wait_for(lambda: triaged(first_half), timeout_s=120)
    # Every report of the deployment is on one partition (its area's): the triage member
    # that leaves is the one working it, so that partition moves mid-stream.
    partition = await area_partition(config)
    await settled(members["triage"], since=started)
    working = holder(members["triage"], partition)
    leaving = [working, members["notify"][2]]
    stopping = asyncio.gather(*(asyncio.to_thread(service.stop) for service in leaving))
    second_half = [await send(i) for i in range(REPORTS // 2, REPORTS)]
    await stopping
    report_ids = first_half + second_half

    try:
        await wait_for(lambda: triaged(report_ids), timeout_s=120)
    finally:
        if working.instance == 0:
            working.start()  # the suite's own triage, which later tests need
    counts = await triaged_counts(config)
    assert {r: counts[r] for r in report_ids if counts[r] != 1} == {}

    async def all_projected() -> bool:
        async with httpx.AsyncClient(headers=as_suite(config)) as client:
            for report_id in report_ids:
                answer = await client.get(
                    f"http://127.0.0.1:{config.notify_port}/v1/reports/{report_id}"
                )
                if answer.status_code != 200 or answer.json()["severity"] is None:
                    return False
        return True

    await wait_for(all_projected, timeout_s=120)
    # Every instance that stayed answers from the same read models.
    async with httpx.AsyncClient(headers=as_suite(config)) as client:
        for notify in members["notify"][:2]:
            port = config.service_port("notify", notify.instance)
            answer = await client.get(f"http://127.0.0.1:{port}/v1/reports/{report_ids[-1]}")
            assert answer.status_code == 200
