"""The one way the services talk to Kafka: a producer wrapper and the consumer loops.

* `EventPublisher` sends one event and returns only once every in-sync replica has it
  (acks=all, idempotent producer), which is what lets ingest answer 202.
* `run_projection` feeds batches to a handler that makes them durable (a database
  transaction) and commits offsets only afterwards.
* `exactly_once.run_transactional` (its own module) consumes, transforms and produces
  inside one Kafka transaction together with the consumer offsets, so read_committed
  readers see each output once.

In both loops a message that cannot be processed goes to the topic's dead-letter twin
with the error, and the partition keeps moving; an outage is retried instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TypeAlias, TypeVar

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    TopicAlreadyExistsError,
    for_code,
)
from aiokafka.partitioner import DefaultPartitioner
from murmurhash2 import murmurhash2

from qianliyan.shared.errors import is_transient
from qianliyan.shared.events import Event, EventDecodeError, UnknownEvent, decode, encode
from qianliyan.shared.events.codec import headers_for
from qianliyan.shared.metrics import (
    BATCH_SECONDS,
    DEAD_LETTERS,
    EVENTS_CONSUMED,
    EVENTS_PRODUCED,
    count_events,
    record_lag,
)
from qianliyan.shared.settings import KafkaSettings
from qianliyan.shared.topics import dead_letter_topic
from qianliyan.shared.tracing import continuing, trace_headers

log = logging.getLogger(__name__)
T = TypeVar("T")

Record: TypeAlias = ConsumerRecord  # aiokafka ships no type information
ProjectionHandler = Callable[[Sequence[Event]], Awaitable[None]]

RETRY_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)


# A transaction's first write, sent just after the last transaction committed, is refused
# for a moment while the broker still writes the last one's markers: Kafka's check that
# the partition joined the transaction (KIP-890) answers this client NOT_ENOUGH_REPLICAS
# (KAFKA-15459), and aiokafka retries after its backoff, 100 ms by default. That pause
# was the p99 of triage's latency (aiokafka#1172); 20 ms is what the Java client waits for
# the same refusal. aiokafka has one backoff for every retry, so a transactional producer
# also asks for metadata five times as often while Kafka is away: a few requests a second
# for each of triage's partitions, which a returning broker shrugs off.
TRANSACTION_RETRY_BACKOFF_MS = 20
# A transaction hands its records over in batches of this size per partition, at most (see
# `exactly_once._RecordBatches`). aiokafka's default of 16 KB made a backlog of 2,000
# decisions some 70 produce requests; at 256 KB the broker spent about a third less CPU
# an event (four alternating rounds of 20,000 on one stack: 45 to 89 µs against 74 to
# 121). Well under the broker's largest message (1 MB).
TRANSACTION_BATCH_BYTES = 256 * 1024


class KeyPartitioner(DefaultPartitioner):  # type: ignore[misc]
    """Kafka's own placement of a keyed record, murmur2 of the key as the Java client and
    aiokafka's default do, with the hash in C: aiokafka's pure-Python murmur2 took 7.6 us
    a key, 6% of triage's CPU. A record without a key goes wherever aiokafka puts it."""

    @classmethod
    def __call__(
        cls, key: bytes | None, partitions: Sequence[int], available: Sequence[int]
    ) -> int:
        """The partition of `key` among `partitions`, sorted by number as aiokafka gives them."""
        if key is None:
            return int(super().__call__(key, partitions, available))
        return partitions[(murmurhash2(key, _MURMUR2_SEED) & 0x7FFFFFFF) % len(partitions)]


# The seed of Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2).
_MURMUR2_SEED = 0x9747B28C
PARTITIONER = KeyPartitioner()


def create_producer(
    settings: KafkaSettings, *, client_id: str, transactional_id: str | None = None
) -> AIOKafkaProducer:
    """A producer that never reports success before all in-sync replicas have the write."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=client_id,
        partitioner=PARTITIONER,
        acks="all",
        enable_idempotence=True,
        transactional_id=transactional_id,
        request_timeout_ms=settings.request_timeout_ms,
        linger_ms=5,
        retry_backoff_ms=TRANSACTION_RETRY_BACKOFF_MS if transactional_id else 100,
        max_batch_size=TRANSACTION_BATCH_BYTES if transactional_id else 16_384,
    )


def create_consumer(
    settings: KafkaSettings,
    *topics: str,
    group_id: str,
    client_id: str,
    listener: ConsumerRebalanceListener | None = None,
) -> AIOKafkaConsumer:
    """A group member that sees only committed transactions and commits by hand.

    `listener` hears of partitions assigned and revoked, for consumers with state.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=group_id,
        client_id=client_id,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=max(settings.request_timeout_ms, 40_000),
    )
    consumer.subscribe(list(topics), listener=listener)
    return consumer


class EventPublisher:
    """Publishes single events durably; the caller owns the producer's lifecycle."""

    def __init__(self, producer: AIOKafkaProducer, *, timeout_s: float) -> None:
        self._producer = producer
        self._timeout_s = timeout_s

    async def publish(self, topic: str, event: Event) -> None:
        """Send `event` keyed by `event.key`; returns once Kafka acknowledged it.

        Raises TimeoutError when Kafka does not acknowledge in time. The record may still
        be delivered later by the producer, so a caller that retries must republish the
        same event id for consumers to recognise the copy.
        """
        await asyncio.wait_for(
            self._producer.send_and_wait(
                topic,
                encode(event),
                key=event.key.encode(),
                headers=headers_for(event) + trace_headers(),
            ),
            timeout=self._timeout_s,
        )
        EVENTS_PRODUCED.labels(topic, event.type).inc()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that could not be processed, and why."""

    record: Record
    error: str

    @property
    def topic(self) -> str:
        """Where it is parked: its topic's dead-letter twin, keeping its key and bytes."""
        return dead_letter_topic(self.record.topic)

    def headers(self, consumer_group: str) -> list[tuple[str, bytes]]:
        """The original headers plus where the message came from and what failed."""
        origin = [
            ("dlq.error", self.error[:2000].encode()),
            ("dlq.origin.topic", self.record.topic.encode()),
            ("dlq.origin.partition", str(self.record.partition).encode()),
            ("dlq.origin.offset", str(self.record.offset).encode()),
            ("dlq.consumer_group", consumer_group.encode()),
            ("dlq.failed_at", datetime.now(UTC).isoformat().encode()),
        ]
        return [*(self.record.headers or ()), *origin]


def log_dead_letter(letter: DeadLetter) -> None:
    """Say which message goes to the dead letters, and why (before it is sent: a send that
    fails is tried again, and said again)."""
    log.warning(
        "dead-lettering %s[%d]@%d: %s",
        letter.record.topic,
        letter.record.partition,
        letter.record.offset,
        letter.error,
    )


async def _park(producer: AIOKafkaProducer, letter: DeadLetter, consumer_group: str) -> None:
    log_dead_letter(letter)
    await producer.send_and_wait(
        letter.topic,
        letter.record.value,
        key=letter.record.key,
        headers=letter.headers(consumer_group),
    )
    DEAD_LETTERS.labels(letter.record.topic).inc()


def decode_records(
    records: Sequence[Record],
) -> tuple[list[tuple[Record, Event]], list[DeadLetter]]:
    """Split records into decodable events and dead letters; unknown types are skipped."""
    events: list[tuple[Record, Event]] = []
    dead: list[DeadLetter] = []
    for record in records:
        try:
            decoded = decode(record.value)
        except EventDecodeError as exc:
            dead.append(DeadLetter(record, str(exc)))
            continue
        if isinstance(decoded, UnknownEvent):
            # The type is whatever the producer wrote: a line, not a page, of it.
            log.info("skipping unknown event type %.80r v%s", decoded.type, decoded.version)
            continue
        if record.key != decoded.key.encode():
            # Ordering holds per key only if the partition follows the event's key: a record
            # keyed otherwise may sit apart from its incident's other events.
            dead.append(DeadLetter(record, _key_mismatch(record.key, decoded.key)))
            continue
        events.append((record, decoded))
    return events, dead


def _key_mismatch(record_key: bytes | None, event_key: str) -> str:
    written = "no key" if record_key is None else f"the key {record_key[:80]!r}"
    return f"the record has {written}, not its event's key {event_key[:80]!r}"


async def retry_pause(attempt: int, stop: asyncio.Event) -> None:
    """Wait before retry number `attempt`, longer each time; at once when stopped."""
    delay = RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S) - 1)]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=delay)


# Far longer than any one batch takes; a bound on a hang, not on work.
ATTEMPT_TIMEOUT_S = 120.0
STOPPING_COMMIT_TIMEOUT_S = 5.0


async def _until_done(work: Callable[[], Awaitable[None]], stop: asyncio.Event, what: str) -> bool:
    """Retry `work` through transient errors; False when stopped before it succeeded."""
    attempt = 0
    while not stop.is_set():
        try:
            # An attempt stuck on a connection an outage broke is abandoned and tried anew,
            # rather than holding the loop (and its partitions) forever.
            async with asyncio.timeout(ATTEMPT_TIMEOUT_S):
                await work()
            return True
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("%s failed (%s: %s); retrying", what, type(exc).__name__, exc)
            await retry_pause(attempt, stop)
            attempt += 1
    return False


async def run_projection(
    consumer: AIOKafkaConsumer,
    dead_letter_producer: AIOKafkaProducer,
    handle: ProjectionHandler,
    *,
    group_id: str,
    stop: asyncio.Event,
    max_records: int = 500,
) -> None:
    """Feed batches to `handle` and commit their offsets once they succeeded: one commit
    for every partition of a fetch, made while the next fetch is projected."""
    committed: dict[TopicPartition, int] = {}

    def still_ours(done: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        # A partition a rebalance took meanwhile would void the whole commit: its next
        # owner starts from its last commit and drops what it sees again by event id.
        return {
            partition: at for partition, at in done.items() if partition in consumer.assignment()
        }

    async def commit(done: dict[TopicPartition, int]) -> None:
        offsets = still_ours(done)
        if not offsets:
            return
        try:
            await _until_done(lambda: consumer.commit(offsets), stop, "offset commit")
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced while the batch was projected: the partitions' next
            # owners start from the last commit, and the events they see again are
            # dropped by event id. Nothing is lost; the loop goes on.
            log.info("offsets of %s not committed, the group rebalanced (%s)", offsets, exc)
            return
        committed.update(offsets)

    # A fetch's commit runs while the next fetch is projected: a record arriving during the
    # commit (about 6 ms, one Kafka round trip) would otherwise wait for it. One commit is
    # in flight at a time, so they stay in order and a failure surfaces a fetch later.
    in_flight: asyncio.Task[None] | None = None

    async def commit_behind(done: dict[TopicPartition, int]) -> None:
        nonlocal in_flight
        if in_flight is not None:
            await in_flight
        in_flight = asyncio.create_task(commit(done))

    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500, max_records=max_records)
            done: dict[TopicPartition, int] = {}
            for partition, records in batches.items():
                events, dead = decode_records(records)
                first = str(events[0][1].correlation_id) if events else None
                # One span per batch, continuing the first event's trace, linked to the others'.
                with (
                    BATCH_SECONDS.labels(partition.topic).time(),
                    continuing("project", [r.headers for r, _ in events], correlation_id=first),
                ):
                    if not await _project_partition(
                        events, dead, dead_letter_producer, handle, group_id, stop
                    ):
                        # Stopping: what was projected is committed if Kafka answers within
                        # seconds; if not, the next start projects it again and drops copies.
                        if finished := still_ours(done):
                            with contextlib.suppress(Exception):
                                async with asyncio.timeout(STOPPING_COMMIT_TIMEOUT_S):
                                    if in_flight is not None:
                                        await in_flight
                                    await consumer.commit(finished)
                        return
                count_events(EVENTS_CONSUMED, ((partition.topic, e.type) for _, e in events))
                done[partition] = records[-1].offset + 1
            # A transaction's commit marker follows its last record: an idle partition's
            # position has moved past it, and committing that lets the group show no lag.
            with contextlib.suppress(IllegalStateError):  # a rebalance took one meanwhile
                for partition in consumer.assignment() - batches.keys():
                    position = await consumer.position(partition)
                    if committed.get(partition, position) < position:
                        done[partition] = position
            if done:
                await commit_behind(done)
            await record_lag(consumer, group_id, list(consumer.assignment()))
    finally:
        # Also a finished one: its failure, if any, is read here rather than left unread.
        if in_flight is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(STOPPING_COMMIT_TIMEOUT_S):
                    await in_flight


async def _project_partition(
    events: list[tuple[Record, Event]],
    dead: list[DeadLetter],
    producer: AIOKafkaProducer,
    handle: ProjectionHandler,
    group_id: str,
    stop: asyncio.Event,
) -> bool:
    try:
        if events and not await _until_done(
            lambda: handle([event for _, event in events]), stop, "projection"
        ):
            return False
    except Exception as exc:
        # The batch holds a message the handler rejects: find it by going one by one,
        # so the good messages around it are still projected.
        log.warning("batch rejected (%s); isolating the bad message", exc)
        for record, event in events:
            try:
                if not await _until_done(lambda e=event: handle([e]), stop, "projection"):  # type: ignore[misc]
                    return False
            except Exception as single_exc:
                dead.append(DeadLetter(record, f"{type(single_exc).__name__}: {single_exc}"))
    for letter in dead:
        if not await _until_done(
            lambda lt=letter: _park(producer, lt, group_id),  # type: ignore[misc]
            stop,
            "dead-letter send",
        ):
            return False
    return True


async def ensure_topics(settings: KafkaSettings) -> list[str]:
    """Create the project's topics and their dead-letter twins; returns those created.

    The `incidents.*` topics are the source of truth, so nothing is ever deleted by age.
    """
    wanted = [settings.reports_topic, settings.triage_topic, settings.alerts_topic]
    wanted += [dead_letter_topic(topic) for topic in wanted]
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        request_timeout_ms=settings.request_timeout_ms,
    )
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [topic for topic in wanted if topic not in existing]
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(
                        name=topic,
                        num_partitions=settings.partitions,
                        replication_factor=settings.replication_factor,
                        topic_configs={"retention.ms": "-1", "retention.bytes": "-1"},
                    )
                    for topic in missing
                ]
            )
            refused = [
                (topic, code, message)
                for topic, code, message in response.topic_errors
                if code not in (0, TopicAlreadyExistsError.errno)
            ]
            if refused:
                raise RuntimeError(f"Kafka refused to create topics: {refused}")
            # Created topics reach the metadata a moment later; the services that start
            # next must find them, so wait until they are listed.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + settings.request_timeout_ms / 1000
            while still_missing := set(missing) - set(await admin.list_topics()):
                if loop.time() > deadline:
                    raise RuntimeError(f"created topics not yet visible: {sorted(still_missing)}")
                await asyncio.sleep(0.2)
        return missing
    finally:
        await admin.close()


async def largest_batches(settings: KafkaSettings, topics: Sequence[str]) -> dict[str, int]:
    """The largest record batch, in bytes, each of `topics` takes: its `max.message.bytes`,
    or the broker's `message.max.bytes` where the topic sets none (Kafka answers with that).
    Raises the broker's error for a topic it will not describe (unknown, not allowed)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        request_timeout_ms=settings.request_timeout_ms,
    )
    try:
        await admin.start()
        responses = await admin.describe_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, topic, {_MAX_MESSAGE_BYTES: None})
                for topic in topics
            ]
        )
    finally:
        await admin.close()
    largest: dict[str, int] = {}
    for response in responses:
        for error_code, error_message, _, topic, entries in response.resources:
            if error_code:
                raise for_code(error_code)(f"describing {topic}: {error_message}")
            for name, value, *_ in entries:
                if name == _MAX_MESSAGE_BYTES:
                    largest[topic] = int(value)
    if missing := set(topics) - set(largest):
        raise RuntimeError(f"Kafka did not say how large a batch {sorted(missing)} take")
    return largest


_MAX_MESSAGE_BYTES = "max.message.bytes"


async def kafka_reachable(settings: KafkaSettings, *, timeout_s: float = 3.0) -> bool:
    """Whether the cluster answers a metadata request (for readiness checks)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=int(timeout_s * 1000)
    )
    try:
        await asyncio.wait_for(admin.start(), timeout=timeout_s)
        await asyncio.wait_for(admin.list_topics(), timeout=timeout_s)
    except Exception:
        return False
    finally:
        await admin.close()
    return True


async def given_up_after(seconds: float, work: Awaitable[T], doing: str) -> T:
    """`work`'s result, or a TimeoutError naming what was being done once `seconds` pass.

    For a command that waits on a person's behalf. aiokafka waits for a transaction to end
    without a deadline, and a transaction cancelled mid-way aborts, which waits the same
    way: with the broker quiet but its connections open, neither returns. So `work` runs
    as a task of its own that is cancelled, not awaited, when its caller stops waiting
    (the deadline, Ctrl-C); should that leave it in such a wait, the event loop's end
    cancels it a second time, out of it.
    """
    task = asyncio.ensure_future(work)
    # Its error, once nobody waits for it, is the caller's TimeoutError: not logged again.
    task.add_done_callback(lambda ended: ended.cancelled() or ended.exception())
    try:
        finished, _ = await asyncio.wait({task}, timeout=seconds)
    finally:
        if not task.done():
            task.cancel()
    if not finished:
        raise TimeoutError(f"Kafka did not answer within {seconds:g} s while {doing}")
    return task.result()


# Stopping a producer waits on what is in flight: not long, once Kafka was given up on.
STOP_DEADLINE_S = 5.0


@contextlib.asynccontextmanager
async def running_within(
    producer: AIOKafkaProducer, seconds: float
) -> AsyncIterator[AIOKafkaProducer]:
    """`producer` started for the block and stopped after it, each step given up on as
    `given_up_after` does (stopping after `STOP_DEADLINE_S` at most). What the caller hears
    is the block's error, or the start's: a stop given up on is only logged."""
    try:
        await given_up_after(seconds, producer.start(), "starting a producer")
        yield producer
    finally:
        try:
            await given_up_after(min(seconds, STOP_DEADLINE_S), producer.stop(), "stopping")
        except TimeoutError as gave_up:
            log.warning("%s; its connections are left to the process's end", gave_up)


async def read_to_end(
    bootstrap_servers: str, topic: str, *, timeout_s: float = 60.0
) -> list[Record]:
    """Every committed record of `topic`, from the start to its end as of now.

    For tools that look at history (re-triage, checks); it joins no consumer group and
    commits nothing.
    """
    records: list[Record] = []
    async with asyncio.timeout(timeout_s):
        async for batch in history(bootstrap_servers, topic):
            records.extend(batch.records)
    return records


@dataclass(frozen=True, slots=True)
class HistoryBatch:
    """Records read from history, how far the reading has come, and where it will stop."""

    records: list[Record]
    done: int
    total: int
    ends: dict[TopicPartition, int]


async def history(
    bootstrap_servers: str,
    *topics: str,
    max_records: int = 2000,
    after: Mapping[TopicPartition, int] | None = None,
    quiet_s: float = 60.0,
) -> AsyncIterator[HistoryBatch]:
    """The committed records of `topics` from their start (or from the offsets `after`
    gives) to their end as of now, in batches; a TimeoutError once Kafka sends nothing
    for `quiet_s`.

    Partitions are read side by side, each in order. Joins no consumer group and commits
    nothing, so it never disturbs the services.
    """
    # Without a group id the consumer is assigned every partition of its topics itself.
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap_servers,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        await consumer.start()
        partitions = list(consumer.assignment())
        if not partitions:
            raise RuntimeError(f"topics {', '.join(topics)} do not exist or have no partitions")
        await consumer.seek_to_beginning(*partitions)
        start = await consumer.beginning_offsets(partitions)
        for partition, offset in (after or {}).items():
            if partition in start and offset > start[partition]:
                consumer.seek(partition, offset)
                start[partition] = offset
        end = await consumer.end_offsets(partitions)
        total = sum(end[p] - start[p] for p in partitions)
        loop = asyncio.get_running_loop()
        done, moved_at = 0, loop.time()
        while True:
            try:
                # A broker that stops answering leaves the fetches empty for ever: a
                # rebuild's bar would stand still with nothing said.
                async with asyncio.timeout_at(moved_at + quiet_s):
                    positions = {p: await consumer.position(p) for p in partitions}
                    if all(positions[p] >= end[p] for p in partitions):
                        return
                    fetched = await consumer.getmany(timeout_ms=500, max_records=max_records)
            except TimeoutError:
                raise TimeoutError(
                    f"Kafka sent nothing of {', '.join(topics)} for {quiet_s:g} s, with "
                    f"{total - done} of {total} records still to read"
                ) from None
            before, done = done, sum(min(positions[p], end[p]) - start[p] for p in partitions)
            records = [
                record
                for partition, batch in fetched.items()
                for record in batch
                if record.offset < end[partition]
            ]
            yield HistoryBatch(records, done + len(records), total, dict(end))
            if records or done > before:
                moved_at = loop.time()  # the caller's time with the batch is not Kafka's
    finally:
        await consumer.stop()


async def read_partition(
    bootstrap_servers: str,
    partition: TopicPartition,
    *,
    until_offset: int,
    since: datetime | None = None,
) -> list[Record]:
    """The committed records of one partition before `until_offset` (a group's position),
    from the first one appended at or after `since` (from the start when None).

    A consumer with state per partition folds these again when it is assigned one.
    """
    if until_offset <= 0:
        return []
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    try:
        await consumer.start()
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        if since is not None:
            found = await consumer.offsets_for_times({partition: int(since.timestamp() * 1000)})
            if found.get(partition) is None:
                return []  # nothing was appended since then
            consumer.seek(partition, found[partition].offset)
        records: list[Record] = []
        while await consumer.position(partition) < until_offset:
            batch = await consumer.getmany(partition, timeout_ms=500)
            records.extend(r for r in batch.get(partition, []) if r.offset < until_offset)
        return records
    finally:
        await consumer.stop()


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """Where a consumer group stands on one partition."""

    partition: TopicPartition
    committed: int
    end: int

    @property
    def behind(self) -> int:
        return max(0, self.end - self.committed)


async def group_lag(bootstrap_servers: str, group: str, *topics: str) -> list[PartitionLag]:
    """Per partition of `topics`: the group's committed offset and the end of the log."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    try:
        # Inside: a start that fails leaves a client to close all the same.
        await admin.start()
        await consumer.start()
        partitions = await _partitions_of(admin, topics)
        ends = await consumer.end_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(group)
        return [
            PartitionLag(p, committed[p].offset if p in committed else 0, ends[p])
            for p in partitions
        ]
    finally:
        await consumer.stop()
        await admin.close()


ResetPoint: TypeAlias = Literal["beginning", "end"] | int | datetime


async def reset_group(
    bootstrap_servers: str,
    group: str,
    topics: Sequence[str],
    to: ResetPoint,
    *,
    skip_unread: bool = False,
    deadline_s: float = 60.0,
) -> dict[TopicPartition, int]:
    """Move a consumer group on `topics` to the beginning, the end, an offset (on every
    partition) or the first record appended at or after a moment; the offsets set.

    A move past records the group has not read yet is refused (a RuntimeError saying how
    many) unless `skip_unread`: those reports would never be triaged, or never shown.
    Kafka takes this only while the group has no running member: stop its service first.
    A TimeoutError once `deadline_s` pass without Kafka's answer: aiokafka retries a
    commit for as long as the group's coordinator cannot be reached.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    try:
        async with asyncio.timeout(deadline_s):
            return await _reset(admin, consumer, group, topics, to, skip_unread=skip_unread)
    except TimeoutError:
        raise TimeoutError(
            f"Kafka did not answer within {deadline_s:g} s while moving {group}, which may "
            "or may not have moved"
        ) from None
    finally:
        for close, client in ((consumer.stop, "consumer"), (admin.close, "admin client")):
            try:
                async with asyncio.timeout(STOP_DEADLINE_S):
                    await close()
            except TimeoutError:
                log.warning(
                    "the %s of %s did not close within %g s", client, group, STOP_DEADLINE_S
                )


async def _reset(
    admin: AIOKafkaAdminClient,
    consumer: AIOKafkaConsumer,
    group: str,
    topics: Sequence[str],
    to: ResetPoint,
    *,
    skip_unread: bool,
) -> dict[TopicPartition, int]:
    # Started inside the caller's `try`: a start that fails leaves clients to close all the same.
    await admin.start()
    await consumer.start()
    partitions = await _partitions_of(admin, topics)
    first = await consumer.beginning_offsets(partitions)
    last = await consumer.end_offsets(partitions)
    if to == "beginning":
        target = dict(first)
    elif to == "end":
        target = dict(last)
    elif isinstance(to, datetime):
        found = await consumer.offsets_for_times(
            {p: int(to.timestamp() * 1000) for p in partitions}
        )
        target = {p: found[p].offset if found.get(p) else last[p] for p in partitions}
    else:
        target = {p: min(max(int(to), first[p]), last[p]) for p in partitions}
    # Without subscribing, this consumer commits as a simple consumer of the group:
    # accepted only while no member is in it.
    consumer.assign(partitions)
    if not skip_unread:
        unread_from = {p: await consumer.committed(p) or first[p] for p in partitions}
        skipped = sum(max(0, target[p] - unread_from[p]) for p in partitions)
        if skipped:
            raise RuntimeError(
                f"moving {group} there would skip {skipped} record(s) it has not read "
                "yet; give --skip-unread to do that all the same"
            )
    await consumer.commit(target)
    return target


async def _partitions_of(admin: AIOKafkaAdminClient, topics: Sequence[str]) -> list[TopicPartition]:
    described = await admin.describe_topics(list(topics))
    return [
        TopicPartition(topic["topic"], partition["partition"])
        for topic in described
        for partition in sorted(topic["partitions"], key=lambda p: p["partition"])
    ]
