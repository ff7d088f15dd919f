"""The fault suite: with reports flowing, a part of the system fails and comes back.

After each fault every accepted report must be in the read models exactly once with all
of its photos, and a rebuild from the topics must equal the live read models. Phones
retry as the reporter's page does: the same Idempotency-Key until a 202 (or a 4xx).

Each scenario prints a line: reports accepted, in the read models, doubled, lost, and the
seconds from the part's return to the first report accepted after it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import uuid4

import httpx
import pytest

from qianliyan.notify.rebuild import check
from qianliyan.shared.events import ReportSubmitted, ReportTriaged
from qianliyan.shared.kafka import group_lag
from qianliyan.shared.settings import KafkaSettings
from qianliyan.stack.component import Component
from qianliyan.stack.config import StackConfig
from qianliyan.stack.infra import Infra, Service
from tests.integration.clients import as_suite, events_about, jpeg_photo, minio_client, submit
from tests.integration.topic_reader import read_topic, wait_for

pytestmark = pytest.mark.faults

RATE_PER_S = 4
FAULT_S = 6
TOPICS = ("incidents.reports", "incidents.triage", "incidents.alerts")

# The answers a phone tries again (the reporter page's sender.js), but for a 500: the page
# retries that too, while here it is a bug to report.
RETRIED = {408, 409, 429, 503}

# Breaks something, and returns how to mend it.
Fault = Callable[[], Callable[[], None]]


@dataclass
class Load:
    """Phones sending reports, each retried with its own key until accepted."""

    config: StackConfig
    accepted: dict[str, str] = field(default_factory=dict)  # idempotency key -> report id
    accepted_at: dict[str, float] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    tag: str = field(default_factory=lambda: uuid4().hex[:6])

    async def phone(self, number: int, deadline: float) -> None:
        key = str(uuid4())
        report = {"text": f"故障演练{self.tag}-{number}：线路异物", "place": f"演练{number % 7}"}
        photo = jpeg_photo((160, 120))
        while time.monotonic() < deadline:
            try:
                answer = await submit(self.config, report, [photo], idempotency_key=key)
            except httpx.HTTPError:
                await asyncio.sleep(1)  # ingest itself is down: the phone waits
                continue
            if answer.status_code == 202:
                self.accepted[key] = answer.json()["report_id"]
                self.accepted_at[key] = time.monotonic()
                return
            # As the reporter's page does: an outage (503), or an earlier attempt with this
            # key still in flight (409: a killed ingest's claim waits out its lease), is
            # tried again; any other answer is final.
            if answer.status_code not in RETRIED:
                self.refused.append(f"{answer.status_code}: {answer.text}")
                return
            await asyncio.sleep(min(float(answer.headers.get("Retry-After", "1")), 2.0))
        self.refused.append(f"report {number} not accepted before the deadline")

    async def run(self, seconds: float, *, give_up_after: float = 120) -> None:
        deadline = time.monotonic() + give_up_after
        phones = []
        for number in range(int(seconds * RATE_PER_S)):
            phones.append(asyncio.create_task(self.phone(number, deadline)))
            await asyncio.sleep(1 / RATE_PER_S)
        await asyncio.gather(*phones)


async def count_events(
    config: StackConfig, report_ids: set[str]
) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """Distinct ReportSubmitted and ReportTriaged events per report (by event id), and how
    many records were copies of an event already in the log.

    A copy is the producer's retry of the very same event (same id) after a timeout; every
    consumer drops it by event id. A second event id for one report would be a double.
    """
    submitted: Counter[str] = Counter()
    triaged: Counter[str] = Counter()
    copies: Counter[str] = Counter()
    for topic, counter, kind in (
        ("incidents.reports", submitted, ReportSubmitted),
        ("incidents.triage", triaged, ReportTriaged),
    ):
        records = await read_topic(config.kafka_bootstrap, topic)
        for report_id in report_ids:
            found = [e for e in events_about(records, report_id) if isinstance(e, kind)]
            counter[report_id] = len({e.event_id for e in found})
            copies[topic] += len(found) - counter[report_id]
    return submitted, triaged, copies


async def in_read_models(config: StackConfig, report_ids: set[str]) -> dict[str, dict[str, object]]:
    found: dict[str, dict[str, object]] = {}
    async with httpx.AsyncClient(headers=as_suite(config)) as client:
        for report_id in report_ids:
            answer = await client.get(
                f"http://127.0.0.1:{config.notify_port}/v1/reports/{report_id}"
            )
            if answer.status_code == 200 and answer.json()["severity"] is not None:
                found[report_id] = answer.json()
    return found


def sigkill(part: Component) -> None:
    pid = part.status().pid
    assert pid is not None, f"{part.name} is not running"
    os.kill(pid, signal.SIGKILL)
    # Let the pid file notice the process is gone, so start() starts a new one.
    deadline = time.monotonic() + 10
    while part.status().pid is not None and time.monotonic() < deadline:
        time.sleep(0.1)


def pause(part: Component) -> Callable[[], None]:
    pid = part.status().pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    return lambda: os.kill(pid, signal.SIGCONT)


async def run_scenario(config: StackConfig, name: str, fault: Fault) -> None:
    """Reports flow while `fault` breaks something, then mends it; then everything is checked."""
    load = Load(config)
    flowing = asyncio.create_task(load.run(FAULT_S * 3))
    await asyncio.sleep(FAULT_S)
    mend = await asyncio.to_thread(fault)
    await asyncio.sleep(FAULT_S)
    await asyncio.to_thread(mend)
    mended_at = time.monotonic()
    await flowing

    report_ids = set(load.accepted.values())
    after = [at for at in load.accepted_at.values() if at >= mended_at]
    recovered_s = min(after) - mended_at if after else float("nan")

    async def all_projected() -> bool:
        return len(await in_read_models(config, report_ids)) == len(report_ids)

    try:
        await wait_for(all_projected, timeout_s=120)
    finally:
        shown = await in_read_models(config, report_ids)
        submitted, triaged, copies = await count_events(config, report_ids)
        doubled = sorted(r for r in report_ids if submitted[r] > 1 or triaged[r] > 1)
        lost = sorted(report_ids - set(shown))
        print(
            f"\n[fault] {name}: accepted {len(report_ids)}, in read models {len(shown)}, "
            f"doubled {len(doubled)} (submitted twice "
            f"{sum(submitted[r] > 1 for r in report_ids)}, triaged twice "
            f"{sum(triaged[r] > 1 for r in report_ids)}; redelivered copies dropped by "
            f"event id: {dict(copies)}), lost {len(lost)}, "
            f"recovered in {recovered_s:.1f}s"
        )
    assert load.refused == []
    assert doubled == [] and lost == []
    assert len(report_ids) == len(load.accepted)  # one report per phone, never two
    # No photo is missing: every photo (and preview) a report names is in the store.
    store = minio_client(config)
    for report in shown.values():
        for photo in report["photos"]:  # type: ignore[attr-defined]
            for key in (photo["object_key"], photo["preview_key"]):
                store.stat_object(config.bucket, key)

    await wait_for(lambda: _caught_up(config), timeout_s=60)
    kafka = KafkaSettings(bootstrap_servers=config.kafka_bootstrap)
    for _ in range(3):
        result = await check(kafka, config.postgres_dsn, lambda done, total: None)
        if result.identical:
            break
        await asyncio.sleep(2)
    assert result.differences == {}


async def _caught_up(config: StackConfig) -> bool:
    lags = await group_lag(config.kafka_bootstrap, "qianliyan-notify", *TOPICS)
    return all(lag.behind == 0 for lag in lags)


def kill_and_restart(part: Component) -> Fault:
    def fault() -> Callable[[], None]:
        sigkill(part)
        return lambda: (part.start(), None)[1]

    return fault


def stop_and_restart(part: Component) -> Fault:
    def fault() -> Callable[[], None]:
        part.stop()
        return lambda: (part.start(), None)[1]

    return fault


@pytest.mark.parametrize(
    "scenario",
    [
        "kafka killed",
        "minio stopped",
        "postgres stopped",
        "ingest killed",
        "triage killed",
        "notify killed",
        "notify paused",
    ],
)
async def test_nothing_is_lost_or_doubled_when(running_stack: StackConfig, scenario: str) -> None:
    config = running_stack
    infra = Infra(config)
    faults = {
        "kafka killed": kill_and_restart(infra.kafka),
        "minio stopped": stop_and_restart(infra.minio),
        "postgres stopped": stop_and_restart(infra.postgres),
        "ingest killed": kill_and_restart(Service(config, "ingest")),
        "triage killed": kill_and_restart(Service(config, "triage")),
        "notify killed": kill_and_restart(Service(config, "notify")),
        "notify paused": lambda: pause(Service(config, "notify")),
    }
    await run_scenario(config, scenario, faults[scenario])
