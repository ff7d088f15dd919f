"""The raw baselines: the same work as each of our stages, done by a plain asyncio script.

Each baseline is the cost that no code of ours could avoid: the MinIO puts and the
acks=all produce behind a 202, the Kafka hops behind an alert, a consume-produce loop
without transactions, a consume without projection. Our figure divided by the raw one
says how much of the machine our code leaves to the real work.

They write only to topics of their own (`bench.raw.*`), so no service sees their events.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from minio import Minio

from bench.measure import LoadResult, closed_loop, open_loop
from bench.photos import Photo
from qianliyan.shared.events import (
    Actor,
    ActorKind,
    PhotoRef,
    ReportSubmitted,
    ReportSubmittedPayload,
    encode,
)
from qianliyan.shared.events.reports import correlation_key
from qianliyan.shared.kafka import TRANSACTION_BATCH_BYTES
from qianliyan.stack.config import StackConfig

RAW_REPORTS = "bench.raw.reports"
RAW_HOPS = ("bench.raw.hop1", "bench.raw.hop2", "bench.raw.hop3")
RAW_TRIAGE_OUT = "bench.raw.triage"
RAW_TOPICS = (RAW_REPORTS, *RAW_HOPS, RAW_TRIAGE_OUT)

BENCH_ACTOR = Actor(kind=ActorKind.REPORTER, id="bench")
# As ingest keys a deployment's reports (its INGEST_CORRELATION_AREA): one partition.
BENCH_AREA = "bureau"


async def create_topics(bootstrap: str, names: Sequence[str], partitions: int = 3) -> None:
    """Create the bench's own topics, shaped as the project's (3 partitions, 1 replica)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in names if name not in existing]
        if missing:
            await admin.create_topics(
                [NewTopic(name=n, num_partitions=partitions, replication_factor=1) for n in missing]
            )
        while set(missing) - set(await admin.list_topics()):  # noqa: ASYNC110 - polls Kafka's metadata
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


def durable_producer(bootstrap: str, *, batch_bytes: int = 16_384) -> AIOKafkaProducer:
    """A producer with the durability ingest promises (acks=all, idempotent), nothing more."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=batch_bytes,
    )


def report_event(
    *, text: str, place: str, unit: str | None = None, photos: Sequence[PhotoRef] = ()
) -> ReportSubmitted:
    """A ReportSubmitted as ingest would publish it for such a report."""
    now = datetime.now(UTC)
    report_id = uuid.uuid4()
    return ReportSubmitted.first(
        key=correlation_key(BENCH_AREA),
        actor=BENCH_ACTOR,
        payload=ReportSubmittedPayload(
            report_id=report_id,
            text=text,
            place=place,
            unit=unit,
            captured_at=now,
            received_at=now,
            photos=list(photos),
        ),
    )


def minio_client(config: StackConfig) -> Minio:
    """A plain MinIO client of the bench's store."""
    return Minio(
        config.minio_endpoint,
        access_key=config.minio_root_user,
        secret_key=config.minio_root_password.get_secret_value(),
        secure=False,
    )


async def raw_ingest(
    config: StackConfig, photos: Sequence[Photo], reports: int, concurrency: int
) -> LoadResult:
    """Per report: put every photo's bytes into MinIO, then produce its event (acks=all).

    The same bytes, the same event and the same concurrency as our ingest load, without
    HTTP, validation, re-encoding, previews or the idempotency ledger.
    """
    store = minio_client(config)
    shas = [hashlib.sha256(photo.data).hexdigest() for photo in photos]
    producer = durable_producer(config.kafka_bootstrap)
    await producer.start()

    def put(key: str, data: bytes) -> None:
        store.put_object(config.bucket, key, io.BytesIO(data), len(data), "image/jpeg")

    async def one(i: int) -> None:
        keys = [f"photos/{sha[:2]}/{sha}" for sha in shas]
        await asyncio.gather(
            *(asyncio.to_thread(put, k, p.data) for k, p in zip(keys, photos, strict=True))
        )
        refs = [
            PhotoRef(
                sha256=sha,
                object_key=key,
                content_type="image/jpeg",
                size_bytes=len(p.data),
                width=p.width,
                height=p.height,
            )
            for sha, key, p in zip(shas, keys, photos, strict=True)
        ]
        event = report_event(text=f"raw #{i}", place=f"raw-{i}", photos=refs)
        await producer.send_and_wait(RAW_REPORTS, encode(event), key=event.key.encode())

    try:
        await closed_loop(concurrency, concurrency, one)  # warm-up: connections, threads
        return await closed_loop(reports, concurrency, one)
    finally:
        await producer.stop()


async def _pinned_consumer(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    """A group-less consumer of every partition, positioned at the end before any produce."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    partitions = list(consumer.assignment())
    await consumer.seek_to_end(*partitions)
    for partition in partitions:
        await consumer.position(partition)
    return consumer


@dataclass
class HopsResult:
    """Latencies from the first produce's ack to the last hop's consume, and what was lost."""

    latencies_s: list[float]
    sent: int
    missing: int
    rate: float


async def raw_hops(
    bootstrap: str, payload: bytes, rate: float, count: int, timeout_s: float = 60.0
) -> HopsResult:
    """produce → consume+produce → consume+produce → consume, at `rate` per second.

    Three Kafka hops by plain aiokafka clients with the services' defaults (acks=all
    producers, 500 ms fetch waits), timed from the first produce's ack, as ours is timed
    from the 202 that follows its produce.
    """
    first, second, third = RAW_HOPS
    consumers = [await _pinned_consumer(bootstrap, topic) for topic in RAW_HOPS]
    producers = [durable_producer(bootstrap) for _ in range(3)]
    for producer in producers:
        await producer.start()
    acked: dict[bytes, float] = {}
    seen: dict[bytes, float] = {}
    stop = asyncio.Event()

    async def relay(consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, out: str) -> None:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500)
            sends = [
                await producer.send(out, record.value, key=record.key)
                for records in batches.values()
                for record in records
            ]
            await asyncio.gather(*sends)

    async def sink(consumer: AIOKafkaConsumer) -> None:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500)
            now = time.perf_counter()
            for records in batches.values():
                for record in records:
                    seen.setdefault(record.key, now)

    async def send(i: int) -> None:
        key = f"hop-{i}".encode()
        await producers[0].send_and_wait(first, payload, key=key)
        acked[key] = time.perf_counter()

    tasks = [
        asyncio.create_task(relay(consumers[0], producers[1], second)),
        asyncio.create_task(relay(consumers[1], producers[2], third)),
        asyncio.create_task(sink(consumers[2])),
    ]
    try:
        await open_loop(rate, count, send)
        deadline = time.perf_counter() + timeout_s
        while len(seen) < len(acked) and time.perf_counter() < deadline:  # noqa: ASYNC110 - the sink task fills `seen`
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for consumer in consumers:
            await consumer.stop()
        for producer in producers:
            await producer.stop()
    latencies = [seen[key] - acked[key] for key in acked if key in seen]
    return HopsResult(latencies, len(acked), len(acked) - len(latencies), rate)


@dataclass
class StreamResult:
    """How many records a loop moved, in how many seconds."""

    records: int
    elapsed_s: float

    @property
    def rate(self) -> float:
        """Records per second."""
        return self.records / self.elapsed_s if self.elapsed_s > 0 else 0.0


async def raw_consume_produce(bootstrap: str, source: str, target: str) -> StreamResult:
    """A plain at-least-once loop: consume a batch, produce each record, await acks, commit.

    Timed as ours is: from the first commit to the last, counting the records after the
    first batch, so joining the group is left out on both sides.
    """
    group = f"bench-raw-{uuid.uuid4().hex[:8]}"
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    # Batches as large as ours (TRANSACTION_BATCH_BYTES): every report of a deployment is
    # on one partition, where aiokafka's 16 KB batches went out one small request after
    # another and halved the loop, and the ratio measured that, not transactions' cost.
    producer = durable_producer(bootstrap, batch_bytes=TRANSACTION_BATCH_BYTES)
    await producer.start()
    await consumer.start()
    try:
        while not (numbers := consumer.partitions_for_topic(source)):  # noqa: ASYNC110 - metadata arrives in the background
            await asyncio.sleep(0.1)
        partitions = [TopicPartition(source, p) for p in sorted(numbers)]
        end = await consumer.end_offsets(partitions)
        moved, first_commit, moved_at_first = 0, 0.0, 0
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            sends = [
                await producer.send(target, record.value, key=record.key)
                for records in batches.values()
                for record in records
            ]
            await asyncio.gather(*sends)
            if batches:
                await consumer.commit(
                    {tp: records[-1].offset + 1 for tp, records in batches.items()}
                )
                moved += len(sends)
                if not first_commit:
                    first_commit, moved_at_first = time.perf_counter(), moved
            if consumer.assignment() != set(partitions):
                continue  # still joining the group
            positions = {p: await consumer.position(p) for p in partitions}
            if all(positions[p] >= end[p] for p in partitions):
                return StreamResult(moved - moved_at_first, time.perf_counter() - first_commit)
    finally:
        await consumer.stop()
        await producer.stop()


async def _positions(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition]
) -> list[tuple[TopicPartition, int]]:
    return [(p, await consumer.position(p)) for p in partitions]


async def raw_consume(bootstrap: str, topics: Sequence[str]) -> StreamResult:
    """Read `topics` from their start to their end as of now, touching nothing else."""
    began = time.perf_counter()
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        partitions = list(consumer.assignment())
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        records = 0
        while any(position < end[p] for p, position in await _positions(consumer, partitions)):
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            records += sum(
                1 for tp, batch in batches.items() for record in batch if record.offset < end[tp]
            )
        return StreamResult(records, time.perf_counter() - began)
    finally:
        await consumer.stop()
