"""A part of the stack down during a request: a 503 with Retry-After, nothing half-written,
and the phone's retry with the same key succeeds once the part is back.

These tests stop and restart the suite's own servers, so the tests that run after them
also show that triage and notify recover by themselves.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import uuid4

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from qianliyan.notify import feed_signal
from qianliyan.notify.feed_signal import FeedSignal
from qianliyan.notify.projections.incidents import FEED_CHANNEL
from qianliyan.shared.kafka import history, reset_group
from qianliyan.shared.settings import StorageSettings
from qianliyan.stack.component import Component
from qianliyan.stack.config import StackConfig
from qianliyan.stack.infra import Infra
from tests.integration.clients import jpeg_photo, minio_client, submit, submitted_events
from tests.integration.topic_reader import broker_serving, create_topics

pytestmark = pytest.mark.integration


@contextmanager
def stopped(part: Component) -> Iterator[None]:
    """`part` is down inside the block and running again after it, whatever happens."""
    part.stop()
    try:
        yield
    finally:
        part.start()


def assert_unavailable(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0
    assert response.headers["content-type"].startswith("application/problem+json")
    assert reason in response.json()["detail"]


@pytest.mark.parametrize(
    ("part_name", "reason"),
    [
        ("minio", "photo store is unavailable"),
        ("kafka", "event log is unavailable"),
        ("postgres", "report ledger is unavailable"),
    ],
)
async def test_an_outage_answers_503_and_the_retry_succeeds_once_it_is_over(
    running_stack: StackConfig, part_name: str, reason: str
) -> None:
    key = str(uuid4())
    report = {"text": f"{part_name} 故障期间的报告", "reporter_id": "w-outage"}
    photo = jpeg_photo()
    with stopped(getattr(Infra(running_stack), part_name)):
        refused = await submit(running_stack, report, [photo], idempotency_key=key)
    assert_unavailable(refused, reason)

    retried = await submit(running_stack, report, [photo], idempotency_key=key)
    assert retried.status_code == 202, retried.text
    report_id = retried.json()["report_id"]
    # One event for this report. A publish that timed out may still land once Kafka is
    # back, but as a copy with the same event id, which every consumer drops.
    events = await submitted_events(running_stack, report_id)
    assert len({event.event_id for event in events}) == 1
    [photo_ref] = events[0].payload.photos
    assert photo_ref.sha256 == retried.json()["photos"][0]
    minio_client(running_stack).stat_object(running_stack.bucket, photo_ref.object_key)


@contextmanager
def paused(part: Component) -> Iterator[None]:
    """`part` stops answering inside the block, its connections still open (as a paused
    machine or a dropped route leaves them), and answers again after it."""
    pid = part.status().pid
    assert pid is not None, f"{part.name} is not running"
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def test_a_photo_store_that_stops_answering_is_a_503_within_its_read_timeout(
    running_stack: StackConfig,
) -> None:
    key = str(uuid4())
    report = {"text": "对象存储无响应期间的报告", "reporter_id": "w-outage"}
    photo = jpeg_photo()
    timeout_s = StorageSettings().read_timeout_s
    with paused(Infra(running_stack).minio):
        began = time.monotonic()
        refused = await submit(running_stack, report, [photo], idempotency_key=key)
        waited_s = time.monotonic() - began
    assert_unavailable(refused, "photo store is unavailable")
    # Two reads of the read timeout; minio's own client waited five minutes a read, and
    # read five more times.
    assert waited_s < timeout_s * 3, f"answered after {waited_s:.0f} s"

    retried = await submit(running_stack, report, [photo], idempotency_key=key)
    assert retried.status_code == 202, retried.text
    events = await submitted_events(running_stack, retried.json()["report_id"])
    assert len({event.event_id for event in events}) == 1


async def test_the_live_feed_hears_changes_again_after_postgres_restarts(
    running_stack: StackConfig,
) -> None:
    """Streams wait on one NOTIFY connection; PostgreSQL dropping it must not leave them
    to their 5 s re-check for good."""
    feed = FeedSignal()
    await feed.start(running_stack.postgres_dsn)
    try:
        with stopped(Infra(running_stack).postgres):
            pass
        woken = feed.next_change()  # set once it is listening again
        async with asyncio.timeout(30):
            await woken.wait()
        change = feed.next_change()
        connection = await asyncpg.connect(running_stack.postgres_dsn)
        try:
            await connection.execute("SELECT pg_notify($1, '0')", FEED_CHANNEL)
        finally:
            await connection.close()
        async with asyncio.timeout(5):
            await change.wait()
    finally:
        await feed.stop()


async def test_the_live_feed_notices_a_connection_that_stopped_answering(
    running_stack: StackConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server gone without closing the connection (a failover, a dropped route) leaves
    it open and silent: only asking finds out."""
    monkeypatch.setattr(feed_signal, "CHECK_EVERY_S", 0.5)
    monkeypatch.setattr(feed_signal, "CHECK_TIMEOUT_S", 1.0)
    listening = "SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN%'"
    admin = await asyncpg.connect(running_stack.postgres_dsn)
    try:
        before = {row["pid"] for row in await admin.fetch(listening)}
        feed = FeedSignal()
        await feed.start(running_stack.postgres_dsn)
        [backend] = {row["pid"] for row in await admin.fetch(listening)} - before
    finally:
        await admin.close()
    os.kill(backend, signal.SIGSTOP)  # the backend of this listening connection only
    try:
        woken = feed.next_change()  # set once it listens on a new connection
        async with asyncio.timeout(30):
            await woken.wait()
    finally:
        os.kill(backend, signal.SIGCONT)
        await feed.stop()


# A wait with no end would hold the suite's broker paused until the timeout.
@pytest.mark.timeout(120)
async def test_reading_history_from_a_broker_that_stops_answering_ends_in_a_timeout(
    running_stack: StackConfig,
) -> None:
    """`qianliyan rebuild`, `check`, `as-of` and re-triage read the log this way: a broker
    that goes quiet half-way is said so, not waited for with the progress bar standing;
    a caller that takes its time with each batch is not."""
    bootstrap = running_stack.kafka_bootstrap
    topic = f"outage-history-{uuid4().hex[:8]}"
    await create_topics(bootstrap, topic)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        # More than one fetch's worth (a MiB a partition), so the reading must ask again.
        for n in range(30):
            await producer.send(topic, bytes([n]) * 100_000)
        await producer.flush()
    finally:
        await producer.stop()

    # A caller slower with each batch than Kafka may be quiet is no stall of Kafka's.
    read = 0
    async for batch in history(bootstrap, topic, max_records=10, quiet_s=2):
        read += len(batch.records)
        await asyncio.sleep(3)
    assert read == 30

    batches = history(bootstrap, topic, max_records=1, quiet_s=5)
    read = len((await anext(batches)).records)
    with paused(Infra(running_stack).kafka):
        began = time.monotonic()
        with pytest.raises(TimeoutError, match=f"Kafka sent nothing of {topic} for 5 s, with"):
            async for batch in batches:
                read += len(batch.records)
        waited_s = time.monotonic() - began
    await broker_serving(bootstrap)  # for the tests after this one
    assert 0 < read < 30
    assert waited_s < 30, f"said after {waited_s:.0f} s"


# A wait with no end would hold the suite's broker paused until the timeout.
@pytest.mark.timeout(120)
async def test_a_replay_with_the_broker_quiet_ends_at_its_deadline(
    running_stack: StackConfig,
) -> None:
    """`qianliyan replay` moves a group with a commit that aiokafka retries for as long as
    the group's coordinator cannot be reached: it is said so at the deadline, and a move
    once Kafka answers again goes through."""
    group = f"outage-replay-{uuid4().hex[:8]}"
    with paused(Infra(running_stack).kafka):
        began = time.monotonic()
        with pytest.raises(TimeoutError, match=f"within 5 s while moving {group}, which may"):
            await reset_group(
                running_stack.kafka_bootstrap,
                group,
                ["incidents.reports"],
                "beginning",
                deadline_s=5,
            )
        waited_s = time.monotonic() - began
    await broker_serving(running_stack.kafka_bootstrap)
    assert waited_s < 30, f"said after {waited_s:.0f} s"
    moved = await reset_group(
        running_stack.kafka_bootstrap, group, ["incidents.reports"], "beginning"
    )
    assert moved and all(offset >= 0 for offset in moved.values())
