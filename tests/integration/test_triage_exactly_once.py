"""Triage killed in the middle of its work loses nothing and doubles nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import Counter

import pytest

from qianliyan.shared.events import EventDecodeError, ReportTriaged, decode
from qianliyan.stack.config import StackConfig
from qianliyan.stack.infra import Service
from tests.integration.clients import submit
from tests.integration.topic_reader import read_topic, wait_for

pytestmark = pytest.mark.integration

REPORTS = 40


async def triaged_counts(config: StackConfig) -> Counter[str]:
    """How many ReportTriaged records a read_committed reader sees, per report."""
    counts: Counter[str] = Counter()
    for record in await read_topic(config.kafka_bootstrap, "incidents.triage"):
        try:
            event = decode(record.value)
        except EventDecodeError:
            continue
        if isinstance(event, ReportTriaged):
            counts[str(event.payload.report_id)] += 1
    return counts


async def test_triage_killed_mid_stream_loses_and_doubles_nothing(
    running_stack: StackConfig,
) -> None:
    triage = Service(running_stack, "triage")

    async def send(i: int) -> str:
        answer = await submit(running_stack, {"text": f"第{i}号报告：线路异物"}, [])
        assert answer.status_code == 202, answer.text
        return str(answer.json()["report_id"])

    first_half = asyncio.gather(*(send(i) for i in range(REPORTS // 2)))
    await asyncio.sleep(0.3)
    pid = triage.status().pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # no shutdown hook runs: an open transaction is left behind
    report_ids = await first_half
    report_ids += await asyncio.gather(*(send(i) for i in range(REPORTS // 2, REPORTS)))
    triage.start()

    async def all_triaged() -> Counter[str] | None:
        counts = await triaged_counts(running_stack)
        return counts if all(counts[report_id] for report_id in report_ids) else None

    counts = await wait_for(all_triaged, timeout_s=90)
    doubled = {report_id: counts[report_id] for report_id in report_ids if counts[report_id] != 1}
    assert doubled == {}, f"reports triaged more than once: {doubled}"


async def test_a_member_frozen_past_its_session_and_woken_doubles_nothing(
    running_stack: StackConfig,
) -> None:
    """A zombie: a second member stops answering (SIGSTOP) with reports in hand, the group
    gives its partitions to the first, and then it wakes and tries to finish its work."""
    second = Service(running_stack, "triage", instance=1)
    second.start()
    try:
        warm_up = [await _send(running_stack, f"冻结前{i}") for i in range(6)]
        pid = second.status().pid
        assert pid is not None
        sending = asyncio.gather(*(_send(running_stack, f"冻结中{i}") for i in range(20)))
        await asyncio.sleep(0.05)
        os.kill(pid, signal.SIGSTOP)
        report_ids = warm_up + list(await sending)
        # Past the session timeout (10 s): its partitions have gone to the first member.
        await asyncio.sleep(14)
        report_ids += [await _send(running_stack, f"冻结后{i}") for i in range(6)]
        os.kill(pid, signal.SIGCONT)

        async def all_triaged() -> Counter[str] | None:
            counts = await triaged_counts(running_stack)
            return counts if all(counts[report_id] for report_id in report_ids) else None

        await wait_for(all_triaged, timeout_s=90)
        await asyncio.sleep(5)  # time for the woken member to commit what it still held
        counts = await triaged_counts(running_stack)
        doubled = {r: counts[r] for r in report_ids if counts[r] != 1}
        assert doubled == {}, f"reports triaged more than once: {doubled}"
    finally:
        with contextlib.suppress(ProcessLookupError, TypeError):
            os.kill(second.status().pid, signal.SIGCONT)  # type: ignore[arg-type]
        second.stop()


async def _send(config: StackConfig, text: str) -> str:
    answer = await submit(config, {"text": f"{text}：线路异物", "place": text}, [])
    assert answer.status_code == 202, answer.text
    return str(answer.json()["report_id"])
