"""Two triage instances in one consumer group; one stops mid-stream; nothing lost or doubled."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from qianliyan.stack.config import StackConfig
from tests.integration.clients import submit
from tests.integration.test_triage_exactly_once import triaged_counts
from tests.integration.topic_reader import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def second_triage(running_stack: StackConfig) -> Iterator[subprocess.Popen[bytes]]:
    """Another triage process in the same group, with its own port."""
    port = running_stack.triage_port + 10
    env = {
        **os.environ,
        **running_stack.service_env("triage"),
        "TRIAGE_HTTP_PORT": str(port),
    }
    log = (running_stack.data_dir / "logs" / "triage-second.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "qianliyan.triage"], env=env, stdout=log, stderr=log
    )
    try:
        for _ in range(150):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/ready").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None:
                raise AssertionError("the second triage exited; see triage-second.log")
            time.sleep(0.2)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        log.close()


async def test_a_member_leaving_mid_stream_loses_and_doubles_nothing(
    running_stack: StackConfig, second_triage: subprocess.Popen[bytes]
) -> None:
    async def send(i: int) -> str:
        answer = await submit(
            running_stack, {"text": f"群组测试{i}：信号故障", "place": f"测试点{i}"}, []
        )
        assert answer.status_code == 202, answer.text
        return str(answer.json()["report_id"])

    first = asyncio.gather(*(send(i) for i in range(30)))
    await asyncio.sleep(0.5)
    second_triage.send_signal(signal.SIGTERM)  # leaves the group: its partitions move over
    report_ids = await first
    report_ids += await asyncio.gather(*(send(i) for i in range(30, 60)))
    # uvicorn shuts down gracefully, then re-raises the signal: -15 is a clean exit here.
    assert second_triage.wait(timeout=30) == -signal.SIGTERM
    log = (running_stack.data_dir / "logs" / "triage-second.log").read_text()
    assert "Application shutdown complete" in log
    assert "grouping of TopicPartition" in log, "the second member was never given a partition"

    async def all_triaged() -> dict[str, int] | None:
        counts = await triaged_counts(running_stack)
        return dict(counts) if all(counts[r] for r in report_ids) else None

    counts = await wait_for(all_triaged, timeout_s=120)
    assert {r: counts[r] for r in report_ids if counts[r] != 1} == {}
