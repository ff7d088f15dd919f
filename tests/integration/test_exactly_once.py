"""The broker behaviour triage's exactly-once rests on, against the real Kafka: the member
that opens a partition fences the one that had it, mid-transaction included."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from prometheus_client import REGISTRY

from qianliyan.shared.events import (
    Actor,
    ActorKind,
    Event,
    ReportSubmitted,
    ReportSubmittedPayload,
    decode,
    encode,
)
from qianliyan.shared.events.codec import headers_for
from qianliyan.shared.exactly_once import (
    LOST_PRODUCER,
    OnOpened,
    PartitionTransactions,
    run_transactional,
    transactional_id,
)
from qianliyan.shared.kafka import (
    TRANSACTION_BATCH_BYTES,
    create_consumer,
    create_producer,
    group_lag,
    read_partition,
)
from qianliyan.shared.settings import KafkaSettings
from qianliyan.shared.topics import dead_letter_topic
from qianliyan.stack.config import StackConfig
from tests.integration.topic_reader import create_topics, read_topic, wait_for

pytestmark = pytest.mark.integration


async def test_opening_a_partition_aborts_and_fences_its_previous_owner(
    running_stack: StackConfig,
) -> None:
    kafka = KafkaSettings(bootstrap_servers=running_stack.kafka_bootstrap)
    topic = f"test.fencing.{uuid4().hex[:8]}"
    await create_topics(kafka.bootstrap_servers, topic)
    partition = TopicPartition("incidents.reports", 0)
    tid = transactional_id(f"test-{uuid4().hex[:8]}", partition)

    old_owner = create_producer(kafka, client_id="old-owner", transactional_id=tid)
    new_owner = create_producer(kafka, client_id="new-owner", transactional_id=tid)
    await old_owner.start()
    try:
        await old_owner.begin_transaction()
        await (await old_owner.send(topic, b"from the old owner"))
        await new_owner.start()  # the partition is given to another member
        try:
            with pytest.raises(LOST_PRODUCER):
                await old_owner.commit_transaction()
            async with new_owner.transaction():
                await new_owner.send(topic, b"from the new owner")
        finally:
            await new_owner.stop()
    finally:
        await old_owner.stop()

    values = [record.value for record in await read_topic(kafka.bootstrap_servers, topic)]
    assert values == [b"from the new owner"]


# Where the fence lands decides which call fails: a produce, the offsets, or the commit
# (which Kafka answers with a code aiokafka does not know).
@pytest.mark.parametrize("fenced_after", [23, 50, 77])
async def test_a_partition_opened_anew_while_a_fetch_ahead_waits_does_each_record_once(
    running_stack: StackConfig, fenced_after: int
) -> None:
    """The loop fetches again while a transaction commits. When that transaction fails (here:
    another member's producer fences this one), the partition is opened anew and read again
    from its committed offset, so what was fetched ahead of the failure must not be done."""
    kafka = KafkaSettings(bootstrap_servers=running_stack.kafka_bootstrap)
    suffix = uuid4().hex[:8]
    source, sink, group = f"test.ahead.in.{suffix}", f"test.ahead.out.{suffix}", f"ahead-{suffix}"
    await create_topics(kafka.bootstrap_servers, source, sink)
    sent = await _produce_reports(kafka, source, count=600)

    opened_at: list[int] = []

    async def on_opened(_: TopicPartition, committed: int) -> None:
        opened_at.append(committed)

    partitions, consumer = _member(kafka, group, source, on_opened=on_opened)
    done_so_far = 0
    fence_now = asyncio.Event()

    def echo(_: int) -> Callable[[Event], list[tuple[str, Event]]]:
        def each(event: Event) -> list[tuple[str, Event]]:
            nonlocal done_so_far
            done_so_far += 1
            if done_so_far == fenced_after:  # a backlog left, so fetches are taken ahead
                fence_now.set()
            return [(sink, event)]

        return each

    stop = asyncio.Event()
    await consumer.start()
    loop = asyncio.create_task(
        run_transactional(consumer, partitions, echo, group_id=group, stop=stop, max_records=5)
    )
    try:
        await asyncio.wait_for(fence_now.wait(), timeout=60)
        await _fence(kafka, group, TopicPartition(source, 0))

        async def caught_up() -> bool:
            lag = await group_lag(kafka.bootstrap_servers, group, source)
            return all(p.behind == 0 for p in lag)

        await wait_for(caught_up, timeout_s=90)
    finally:
        await _stop(loop, stop, consumer, partitions)

    assert len(opened_at) >= 2, "the fence never made the loop open the partition anew"
    out = Counter(decode(r.value).event_id for r in await read_topic(kafka.bootstrap_servers, sink))
    doubled = {event_id: count for event_id, count in out.items() if count > 1}
    assert doubled == {}, f"{len(doubled)} records done more than once"
    assert set(out) == {event.event_id for event in sent}


async def test_a_transaction_failed_on_a_quiet_partition_is_done_again_without_new_input(
    running_stack: StackConfig,
) -> None:
    """A failed transaction's records are read again from the committed offset at once, not
    when the partition's next record happens to arrive (at night, hours later)."""
    kafka = KafkaSettings(bootstrap_servers=running_stack.kafka_bootstrap)
    suffix = uuid4().hex[:8]
    source, sink, group = f"test.quiet.in.{suffix}", f"test.quiet.out.{suffix}", f"quiet-{suffix}"
    await create_topics(kafka.bootstrap_servers, source, sink)
    partitions, consumer = _member(kafka, group, source)
    echo = _echo_to(sink)

    async def done() -> Counter[UUID]:
        records = await read_topic(kafka.bootstrap_servers, sink)
        return Counter(e.event_id for r in records if isinstance(e := decode(r.value), Event))

    stop = asyncio.Event()
    await consumer.start()
    loop = asyncio.create_task(
        run_transactional(consumer, partitions, echo, group_id=group, stop=stop)
    )
    try:
        sent = await _produce_reports(kafka, source, count=3)
        await wait_for(lambda: _all_of(done, sent), timeout_s=60)
        # Another member's producer under the partition's transactional id: the loop's
        # producer learns of it only with its next transaction, the last for a while.
        await _fence(kafka, group, TopicPartition(source, 0))
        sent += await _produce_reports(kafka, source, count=1)
        await wait_for(lambda: _all_of(done, sent), timeout_s=30)
    finally:
        await _stop(loop, stop, consumer, partitions)
    assert await done() == Counter({event.event_id: 1 for event in sent})


async def test_an_opening_cancelled_half_way_leaves_no_producer_running(
    running_stack: StackConfig,
) -> None:
    """A member stopped while a partition's producer starts (a shutdown or a lost rebalance
    at that moment) stops that producer too: its client would otherwise keep connections
    and a task refreshing metadata for as long as the process runs."""
    kafka = KafkaSettings(bootstrap_servers=running_stack.kafka_bootstrap)
    source, group = f"test.opening.{uuid4().hex[:8]}", f"opening-{uuid4().hex[:8]}"
    await create_topics(kafka.bootstrap_servers, source)
    partition = TopicPartition(source, 0)
    partitions, consumer = _member(kafka, group, source)
    await consumer.start()
    try:
        await wait_for(_async(lambda: partitions.producer(partition) is not None), timeout_s=30)
        await partitions.close()
        before = _kafka_clients_running()
        # Cancelled every 2 ms over the first 100 ms of an opening, where its client has
        # bootstrapped and its start waits for the broker.
        cut_short, left_running = 0, []
        for delay_ms in range(0, 100, 2):
            opening = asyncio.create_task(partitions.open(partition))
            await asyncio.sleep(delay_ms / 1000)
            opening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await opening
            cut_short += opening.cancelled()
            await partitions.close()  # the producers whose opening was done
            # At once: the garbage collector closes a leaked client in the end.
            if _kafka_clients_running() - before:
                left_running.append(delay_ms)
        assert left_running == [], "a producer was left running"
        assert cut_short > 1, "no cancellation landed in an opening"
    finally:
        await consumer.stop()
        await partitions.close()


def _kafka_clients_running() -> set[asyncio.Task[object]]:
    """The tasks of the aiokafka clients running here that refresh their metadata."""
    return {
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "") == "AIOKafkaClient._md_synchronizer"
    }


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def checked() -> bool:
        return check()

    return checked


def _member(
    kafka: KafkaSettings, group: str, source: str, *, on_opened: OnOpened | None = None
) -> tuple[PartitionTransactions, AIOKafkaConsumer]:
    """A group member's partitions and consumer, wired as triage wires them."""
    partitions = PartitionTransactions(
        kafka, transactional_id_prefix=group, client_id=group, on_opened=on_opened
    )
    consumer = create_consumer(kafka, source, group_id=group, client_id=group, listener=partitions)
    partitions.bind(consumer)
    return partitions, consumer


def _echo_to(sink: str) -> Callable[[int], Callable[[Event], list[tuple[str, Event]]]]:
    """A transform that writes each event, as it is, to `sink`."""
    return lambda _: lambda event: [(sink, event)]


async def _fence(kafka: KafkaSettings, group: str, partition: TopicPartition) -> None:
    """What another member does on being given `partition`: start a producer under its
    transactional id, which fences the loop's."""
    intruder = create_producer(
        kafka, client_id="intruder", transactional_id=transactional_id(group, partition)
    )
    await intruder.start()
    await intruder.stop()


async def _stop(
    loop: asyncio.Task[None],
    stop: asyncio.Event,
    consumer: AIOKafkaConsumer,
    partitions: PartitionTransactions,
) -> None:
    stop.set()
    await loop
    await consumer.stop()
    await partitions.close()
    # aiokafka leaves a fenced producer's error unread in futures of its own: collected here,
    # asyncio's complaint about them is this test's, not whichever test runs next. (Not all:
    # pytest keeps the log records of the failure, which hold them through its traceback.)
    gc.collect()


async def _all_of(done: Callable[[], Awaitable[Counter[UUID]]], sent: list[Event]) -> bool:
    out = await done()
    return all(out[event.event_id] for event in sent)


async def test_an_input_whose_output_the_broker_refuses_goes_to_the_dead_letters(
    running_stack: StackConfig, caplog: pytest.LogCaptureFixture
) -> None:
    """The broker refuses a record batch, not a record: the loop does the refused
    transaction's records one at a time until the refusal names one, dead-letters that one
    with the refusal as its error, and moves on; everything else comes out once. The
    transform's state (a fold, as triage's grouping) ends as a fold of the log would."""
    kafka = KafkaSettings(bootstrap_servers=running_stack.kafka_bootstrap)
    source, sink, group = _refusing_topics()
    await create_topics(kafka.bootstrap_servers, source, dead_letter_topic(source))
    await create_topics(kafka.bootstrap_servers, sink, config={"max.message.bytes": "2000"})
    sent = await _produce_reports(kafka, source, count=8, long_at=5)

    folded: list[UUID] = []  # the reports the transform has taken in, in log order

    async def fold_again(partition: TopicPartition, committed: int) -> None:
        records = await read_partition(kafka.bootstrap_servers, partition, until_offset=committed)
        folded[:] = [e.event_id for r in records if isinstance(e := decode(r.value), Event)]

    def echo_and_fold(_: int) -> Callable[[Event], list[tuple[str, Event]]]:
        def transform(event: Event) -> list[tuple[str, Event]]:
            if event.event_id not in folded:  # taken in once, as a report by the grouping
                folded.append(event.event_id)
            return [(sink, event)]

        return transform

    partitions, consumer = _member(kafka, group, source, on_opened=fold_again)
    stop = asyncio.Event()
    await consumer.start()
    loop = asyncio.create_task(
        run_transactional(consumer, partitions, echo_and_fold, group_id=group, stop=stop)
    )

    async def all_committed() -> bool:
        [lag] = await group_lag(kafka.bootstrap_servers, group, source)
        return lag.committed == len(sent)

    try:
        with caplog.at_level(logging.WARNING, logger="qianliyan.shared.exactly_once"):
            await wait_for(all_committed, timeout_s=60)
    finally:
        await _stop(loop, stop, consumer, partitions)

    assert "; doing them one at a time" in caplog.text, "refused in a batch of several"
    out = [decode(r.value).event_id for r in await read_topic(kafka.bootstrap_servers, sink)]
    assert out == [event.event_id for i, event in enumerate(sent) if i != 5]
    [parked] = await read_topic(kafka.bootstrap_servers, dead_letter_topic(source))
    assert decode(parked.value).event_id == sent[5].event_id
    error = dict(parked.headers)["dlq.error"].decode()
    assert error == "its output was refused: [Error 10] MessageSizeTooLargeError"
    assert folded == [event.event_id for event in sent]


async def test_outputs_to_a_topic_taking_small_batches_go_in_batches_it_takes(
    running_stack: StackConfig, caplog: pytest.LogCaptureFixture
) -> None:
    """A sink taking smaller batches than triage sends (2,000 bytes, where eight reports
    together are more): the loop asks Kafka the topic's limit and sends no larger a batch,
    so nothing is refused, each report comes out once and none is dead-lettered."""
    kafka = KafkaSettings(bootstrap_servers=running_stack.kafka_bootstrap)
    source, sink, group = _refusing_topics()
    await create_topics(kafka.bootstrap_servers, source, dead_letter_topic(source))
    await create_topics(kafka.bootstrap_servers, sink, config={"max.message.bytes": "2000"})
    sent = await _produce_reports(kafka, source, count=8, pad=300)

    partitions, consumer = _member(kafka, group, source)
    with caplog.at_level(logging.WARNING, logger="qianliyan.shared.exactly_once"):
        await _run_until(
            partitions, consumer, _echo_to(sink), group, _committed(kafka, group, source, 8)
        )

    assert _refusals(caplog) == []
    out = [decode(r.value).event_id for r in await read_topic(kafka.bootstrap_servers, sink)]
    assert out == [event.event_id for event in sent]
    assert await read_topic(kafka.bootstrap_servers, dead_letter_topic(source)) == []


async def test_dead_letters_go_in_batches_their_topic_takes(
    running_stack: StackConfig, caplog: pytest.LogCaptureFixture
) -> None:
    """Eight unreadable records of one fetch, each parked with its headers on a dead-letter
    topic taking 2,000 bytes a batch (eight together are more): all parked, none refused."""
    kafka = KafkaSettings(bootstrap_servers=running_stack.kafka_bootstrap)
    source, sink, group = _refusing_topics()
    await create_topics(kafka.bootstrap_servers, source, sink)
    await create_topics(
        kafka.bootstrap_servers, dead_letter_topic(source), config={"max.message.bytes": "2000"}
    )
    producer = create_producer(kafka, client_id="unreadable")
    await producer.start()
    try:
        unreadable = [f"not an event {i}: ".encode() + b"x" * 400 for i in range(8)]
        await asyncio.gather(*[await producer.send(source, value) for value in unreadable])
    finally:
        await producer.stop()

    partitions, consumer = _member(kafka, group, source)
    with caplog.at_level(logging.WARNING, logger="qianliyan.shared.exactly_once"):
        await _run_until(
            partitions, consumer, _echo_to(sink), group, _committed(kafka, group, source, 8)
        )

    assert _refusals(caplog) == []
    parked = await read_topic(kafka.bootstrap_servers, dead_letter_topic(source))
    assert [r.value for r in parked] == unreadable
    assert _dead_letters_counted(source) == 8
    assert {dict(r.headers)["dlq.origin.topic"] for r in parked} == {source.encode()}


async def test_a_limit_lowered_while_running_is_asked_for_again_after_one_refusal(
    running_stack: StackConfig, caplog: pytest.LogCaptureFixture
) -> None:
    """The sink's limit is lowered under the running loop: its next batch is refused and
    done one report per transaction, nothing lost or dead-lettered, and the loop asks Kafka
    the limits again, so the batches after it fit."""
    kafka = KafkaSettings(bootstrap_servers=running_stack.kafka_bootstrap)
    source, sink, group = _refusing_topics()
    await create_topics(kafka.bootstrap_servers, source, sink, dead_letter_topic(source))
    partitions, consumer = _member(kafka, group, source)
    stop = asyncio.Event()
    await consumer.start()
    loop = asyncio.create_task(
        run_transactional(consumer, partitions, _echo_to(sink), group_id=group, stop=stop)
    )
    sent: list[Event] = []
    try:
        with caplog.at_level(logging.WARNING, logger="qianliyan.shared.exactly_once"):
            # Each report about 1,200 bytes: one fits in 2,000, two together do not.
            sent += await _produce_reports(kafka, source, count=8, pad=300)
            await wait_for(_committed(kafka, group, source, 8), timeout_s=60)
            assert _refusals(caplog) == [], "refused before the limit was lowered"
            await _alter_topic(kafka, sink, {"max.message.bytes": "2000"})
            for done in (16, 24):
                sent += await _produce_reports(kafka, source, count=8, pad=300)
                await wait_for(_committed(kafka, group, source, done), timeout_s=60)
    finally:
        await _stop(loop, stop, consumer, partitions)

    assert caplog.text.count("; doing them one at a time") == 1, caplog.text
    assert caplog.text.count("asking Kafka again") == 1
    out = Counter(decode(r.value).event_id for r in await read_topic(kafka.bootstrap_servers, sink))
    assert out == Counter(event.event_id for event in sent)
    assert await read_topic(kafka.bootstrap_servers, dead_letter_topic(source)) == []


async def test_a_topic_whose_limit_cannot_be_read_gets_small_batches_for_a_while(
    running_stack: StackConfig, caplog: pytest.LogCaptureFixture
) -> None:
    """Kafka will not describe a topic (here: none such), or is away: the transactions
    that ask wait for one answer, get aiokafka's 16 KB batches and fail for none of it."""
    kafka = KafkaSettings(bootstrap_servers=running_stack.kafka_bootstrap)
    partitions = PartitionTransactions(kafka, transactional_id_prefix="limits", client_id="t")
    unknown = f"test.none.{uuid4().hex[:8]}"
    with caplog.at_level(logging.WARNING, logger="qianliyan.shared.exactly_once"):
        sizes = await asyncio.gather(*(partitions.batch_bytes(unknown) for _ in range(5)))
    assert sizes == [16_384] * 5
    [warning] = [r.getMessage() for r in caplog.records if "is unknown" in r.msg]
    assert f"how large a batch {unknown} takes is unknown (UnknownTopicOrPartitionError" in (
        warning
    )
    assert await partitions.batch_bytes("incidents.triage") == TRANSACTION_BATCH_BYTES

    away = KafkaSettings(bootstrap_servers="127.0.0.1:1", request_timeout_ms=2_000)
    partitions = PartitionTransactions(away, transactional_id_prefix="limits", client_id="t")
    assert await partitions.batch_bytes("incidents.triage") == 16_384


def _dead_letters_counted(source: str) -> float:
    return REGISTRY.get_sample_value("qianliyan_dead_letters_total", {"topic": source}) or 0.0


def _refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the loop said of outputs the broker refused."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "qianliyan.shared.exactly_once" and "refused" in r.msg
    ]


def _committed(
    kafka: KafkaSettings, group: str, source: str, count: int
) -> Callable[[], Awaitable[bool]]:
    async def committed() -> bool:
        [lag] = await group_lag(kafka.bootstrap_servers, group, source)
        return lag.committed == count

    return committed


async def _run_until(
    partitions: PartitionTransactions,
    consumer: AIOKafkaConsumer,
    transform: Callable[[int], Callable[[Event], list[tuple[str, Event]]]],
    group: str,
    done: Callable[[], Awaitable[bool]],
) -> None:
    stop = asyncio.Event()
    await consumer.start()
    loop = asyncio.create_task(
        run_transactional(consumer, partitions, transform, group_id=group, stop=stop)
    )
    try:
        await wait_for(done, timeout_s=60)
    finally:
        await _stop(loop, stop, consumer, partitions)


async def test_a_rebalance_during_a_search_for_a_refused_output_waits_for_one_transaction(
    running_stack: StackConfig, caplog: pytest.LogCaptureFixture
) -> None:
    """A search does a fetch's records one per transaction; a member joining meanwhile
    takes the partition after the transaction in flight, not after the whole search, and
    whoever ends up with it finishes: every record once, the culprit parked once.

    Were the whole search waited for (400 transactions, more than the 10 s the group
    gives a member to rejoin), the group would expel the searching member and its
    successor fence it mid-transaction: still exactly once, but a stall."""
    kafka = KafkaSettings(bootstrap_servers=running_stack.kafka_bootstrap)
    source, sink, group = _refusing_topics()
    await create_topics(kafka.bootstrap_servers, source, dead_letter_topic(source))
    await create_topics(kafka.bootstrap_servers, sink, config={"max.message.bytes": "2000"})
    sent = await _produce_reports(kafka, source, count=400, long_at=390)

    stop = asyncio.Event()
    members = [_member(kafka, group, source) for _ in range(2)]
    loops: list[asyncio.Task[None]] = []
    ended: list[BaseException | None] = []

    transformed = 0

    def slow_echo(_: int) -> Callable[[Event], list[tuple[str, Event]]]:
        first_of_transaction = True

        def transform(event: Event) -> list[tuple[str, Event]]:
            nonlocal transformed, first_of_transaction
            transformed += 1
            if transformed > len(sent) and first_of_transaction:
                # Searching: 30 ms more a transaction, so that on any machine the search
                # outlasts the 10 s the group gives a member to rejoin. (Once a transaction,
                # not a record: the event loop, heartbeats and all, waits while it sleeps.)
                time.sleep(0.03)
            first_of_transaction = False
            return [(sink, event)]

        return transform

    async def join(partitions: PartitionTransactions, consumer: AIOKafkaConsumer) -> None:
        await consumer.start()
        loops.append(
            asyncio.create_task(
                run_transactional(consumer, partitions, slow_echo, group_id=group, stop=stop)
            )
        )

    async def searching() -> bool:  # singles committed, hundreds to go
        return len(await read_topic(kafka.bootstrap_servers, sink)) >= 30

    async def all_committed() -> bool:
        [lag] = await group_lag(kafka.bootstrap_servers, group, source)
        return lag.committed == len(sent)

    try:
        with caplog.at_level(logging.INFO, logger="qianliyan.shared.exactly_once"):
            await join(*members[0])
            await wait_for(searching, timeout_s=60)
            await join(*members[1])
            await wait_for(all_committed, timeout_s=120)
    finally:
        stop.set()
        ended += await asyncio.gather(*loops, return_exceptions=True)
        for partitions, consumer in members:
            await consumer.stop()
            await partitions.close()

    assert ended == [None, None]
    assert "member_id was not recognized" not in caplog.text, "the searching member expelled"
    assert "ProducerFenced" not in caplog.text
    assert f"leaving {TopicPartition(source, 0)}@" in caplog.text
    out = Counter(decode(r.value).event_id for r in await read_topic(kafka.bootstrap_servers, sink))
    assert out == Counter(event.event_id for i, event in enumerate(sent) if i != 390)
    parked = await read_topic(kafka.bootstrap_servers, dead_letter_topic(source))
    assert [decode(r.value).event_id for r in parked] == [sent[390].event_id]


async def test_an_input_whose_dead_letter_is_refused_as_well_stops_the_loop(
    running_stack: StackConfig, caplog: pytest.LogCaptureFixture
) -> None:
    """With nowhere to put the record, the loop stops at it rather than move past it."""
    kafka = KafkaSettings(bootstrap_servers=running_stack.kafka_bootstrap)
    source, sink, group = _refusing_topics()
    await create_topics(kafka.bootstrap_servers, source)
    small = {"max.message.bytes": "2000"}
    await create_topics(kafka.bootstrap_servers, sink, dead_letter_topic(source), config=small)
    sent = await _produce_reports(kafka, source, count=8, long_at=5)

    partitions, consumer = _member(kafka, group, source)
    await consumer.start()
    try:
        with pytest.raises(ExceptionGroup) as stopped, caplog.at_level(logging.WARNING):
            await asyncio.wait_for(
                run_transactional(
                    consumer, partitions, _echo_to(sink), group_id=group, stop=asyncio.Event()
                ),
                timeout=60,
            )
    finally:
        await consumer.stop()
        await partitions.close()

    [error] = stopped.value.exceptions
    assert "was refused as well (MessageSizeTooLargeError:" in str(error)
    assert f"dead-lettering {source}[0]@5: its output was refused" in caplog.text
    assert _dead_letters_counted(source) == 0, "a dead letter counted that was not committed"
    [lag] = await group_lag(kafka.bootstrap_servers, group, source)
    assert lag.committed == 5, "the offset went past the record that could not be parked"
    out = [decode(r.value).event_id for r in await read_topic(kafka.bootstrap_servers, sink)]
    assert out == [event.event_id for event in sent[:5]]


def _refusing_topics() -> tuple[str, str, str]:
    """A source, a sink and a group id of their own."""
    suffix = uuid4().hex[:8]
    return f"test.refused.in.{suffix}", f"test.refused.out.{suffix}", suffix


async def _alter_topic(kafka: KafkaSettings, topic: str, config: dict[str, str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, config)])
    finally:
        await admin.close()


async def _produce_reports(
    kafka: KafkaSettings, topic: str, *, count: int, long_at: int | None = None, pad: int = 0
) -> list[Event]:
    events: list[Event] = []
    for i in range(count):
        report_id = uuid4()
        events.append(
            ReportSubmitted.first(
                key=str(report_id),
                actor=Actor(kind=ActorKind.REPORTER, id="worker-1"),
                payload=ReportSubmittedPayload(
                    report_id=report_id,
                    text=f"第{i}号报告" + ("很长" * 1000 if i == long_at else "长" * pad),
                    captured_at=datetime.now(UTC),
                    received_at=datetime.now(UTC),
                ),
            )
        )
    producer = create_producer(kafka, client_id="ahead-history")
    await producer.start()
    try:
        sends = [
            await producer.send(topic, encode(e), key=e.key.encode(), headers=headers_for(e))
            for e in events
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
    return events
