"""Consume, transform and produce exactly once, also while a consumer group rebalances.

Each output goes out in a Kafka transaction together with the consumer offsets, so a
read_committed reader sees it once. That alone is not enough when partitions move
between members: aiokafka's `send_offsets_to_transaction` carries only the group id,
not the member's generation (KIP-447), so the broker cannot refuse the offsets of a
member that has just lost the partition, and the new owner, having read the offsets as
they were, does the same records again.

So the fencing comes from the transactional id, one per input partition, as Kafka
Streams did before KIP-447: the member given a partition starts that partition's
producer, which aborts (or waits out) the previous owner's open transaction and makes
its every later commit fail; only then does the new owner read the committed offset and
start from there. A member that loses a partition first finishes the transaction it has
in flight (the rebalance waits for it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import (
    IllegalOperation,
    InvalidProducerEpoch,
    InvalidTxnState,
    KafkaError,
    MessageSizeTooLargeError,
    ProducerFenced,
    RecordListTooLargeError,
    UnknownError,
    UnknownProducerId,
)
from aiokafka.producer.message_accumulator import BatchBuilder

from qianliyan.shared.errors import is_transient
from qianliyan.shared.events import Event, encode
from qianliyan.shared.events.codec import headers_for
from qianliyan.shared.kafka import (
    PARTITIONER,
    TRANSACTION_BATCH_BYTES,
    DeadLetter,
    Record,
    create_producer,
    decode_records,
    largest_batches,
    log_dead_letter,
    retry_pause,
)
from qianliyan.shared.metrics import (
    BATCH_SECONDS,
    DEAD_LETTERS,
    EVENTS_CONSUMED,
    EVENTS_PRODUCED,
    count_events,
    record_lag,
)
from qianliyan.shared.settings import KafkaSettings
from qianliyan.shared.tracing import continuing, correlated, passed_on

log = logging.getLogger(__name__)

# Rebuilds what a consumer keeps per partition (a fold) from the log before the offset
# its group committed: called each time the partition is (re)opened.
OnOpened = Callable[[TopicPartition, int], Awaitable[None]]
OnClosed = Callable[[TopicPartition], None]
# One input event to the (topic, event) pairs it produces; made per transaction from the
# number of the partition its batch came from, so a transform may keep state per
# partition (a fold) and read what it depends on once per batch.
Transform = Callable[[int], Callable[[Event], Sequence[tuple[str, Event]]]]

# The producer can no longer be used: another member opened the partition (fenced), or
# the broker ended its transaction (a timeout). Whoever owns the partition opens it anew.
# A call made after the producer's sender learnt of it, mid-transaction, is refused as an
# illegal operation (not in a transaction any more).
LOST_PRODUCER = (
    ProducerFenced,
    InvalidProducerEpoch,
    InvalidTxnState,
    UnknownProducerId,
    IllegalOperation,
)
# The broker (or the client, before sending) refused an output for good: too large for its
# topic. Sent again it is refused again, so the input it came from is dead-lettered instead.
REFUSED_OUTPUT = (MessageSizeTooLargeError, RecordListTooLargeError)
# A producer that cannot say goodbye to Kafka (an outage) is dropped after this long.
_STOP_TIMEOUT_S = 10.0
# The batch size for a topic whose own limit Kafka would not tell (an outage, or not
# allowed to describe it): aiokafka's default, far under any limit a topic is likely set to.
_UNKNOWN_BATCH_BYTES = 16_384
_ASK_AGAIN_S = 60.0


def transactional_id(prefix: str, partition: TopicPartition) -> str:
    """The transactional id of one input partition: the same in every member of the group."""
    return f"{prefix}-{partition.topic}-{partition.partition}"


class PartitionTransactions(ConsumerRebalanceListener):  # type: ignore[misc]
    """The transactional producers of the partitions this member owns."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        transactional_id_prefix: str,
        client_id: str,
        on_opened: OnOpened | None = None,
        on_closed: OnClosed | None = None,
    ) -> None:
        self._settings = settings
        self._prefix = transactional_id_prefix
        self._client_id = client_id
        self._on_opened = on_opened
        self._on_closed = on_closed
        self._consumer: AIOKafkaConsumer | None = None
        self._producers: dict[TopicPartition, AIOKafkaProducer] = {}
        self._in_flight: dict[TopicPartition, asyncio.Lock] = {}
        self._epochs: dict[TopicPartition, int] = {}
        self._batch_bytes: dict[str, asyncio.Task[int]] = {}

    def bind(self, consumer: AIOKafkaConsumer) -> None:
        """The consumer whose partitions these are (it is created with this listener)."""
        self._consumer = consumer

    def lock(self, partition: TopicPartition) -> asyncio.Lock:
        """Held while a transaction of `partition` is in flight; a rebalance waits for it."""
        return self._in_flight.setdefault(partition, asyncio.Lock())

    def owns(self, partition: TopicPartition) -> bool:
        """Whether the group has given `partition` to this member."""
        assert self._consumer is not None
        return partition in self._consumer.assignment()

    def producer(self, partition: TopicPartition) -> AIOKafkaProducer | None:
        """The producer of `partition`; None until it is open."""
        return self._producers.get(partition)

    def epoch(self, partition: TopicPartition) -> int:
        """Counts the times `partition` was opened or revoked here (not discarded: its next
        opening counts). Records fetched in one epoch are done only in it: after an opening
        the consumer reads again from the committed offset, and after a revocation the
        partition's state is gone."""
        return self._epochs.get(partition, 0)

    def _next_epoch(self, partition: TopicPartition) -> None:
        self._epochs[partition] = self.epoch(partition) + 1

    async def batch_bytes(self, topic: str) -> int:
        """The largest record batch a transaction hands over for `topic`:
        TRANSACTION_BATCH_BYTES, or what the topic takes where that is less (a larger batch
        is refused whole). Asked of Kafka once, whoever asks meanwhile waiting for that
        answer, and again after `forget_batch_bytes`. Never fails a transaction: a topic
        Kafka will not describe gets aiokafka's own 16 KB until it is asked again."""
        asked = self._batch_bytes.get(topic)
        if asked is None or asked.cancelled():
            asked = self._batch_bytes[topic] = asyncio.create_task(self._ask_batch_bytes(topic))
        # Shielded: a transaction cancelled while it waits leaves the answer to the others.
        return await asyncio.shield(asked)

    async def _ask_batch_bytes(self, topic: str) -> int:
        try:
            [largest] = (await largest_batches(self._settings, [topic])).values()
        except Exception as exc:
            log.warning(
                "how large a batch %s takes is unknown (%s: %s); sending batches of %d bytes "
                "and asking again in %g s",
                topic,
                type(exc).__name__,
                exc,
                _UNKNOWN_BATCH_BYTES,
                _ASK_AGAIN_S,
            )
            asked = asyncio.current_task()
            asyncio.get_running_loop().call_later(_ASK_AGAIN_S, self._forget_if, topic, asked)
            return _UNKNOWN_BATCH_BYTES
        return min(TRANSACTION_BATCH_BYTES, largest)

    def _forget_if(self, topic: str, asked: asyncio.Task[Any] | None) -> None:
        if asked is not None and self._batch_bytes.get(topic) is asked:
            del self._batch_bytes[topic]

    def forget_batch_bytes(self) -> None:
        """Ask Kafka again how large a batch each topic takes: one was refused anyway."""
        self._batch_bytes.clear()

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        revoked = list(revoked)
        # At once, before waiting for any: what was fetched is not to be done any more, and
        # a fetch's transactions (a search for a refused output makes many) end with the
        # one in flight.
        for partition in revoked:
            self._next_epoch(partition)
        for partition in revoked:
            # A transaction in flight finishes before the partition goes to another member.
            async with self.lock(partition):
                if self._on_closed is not None:
                    self._on_closed(partition)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        assert self._consumer is not None
        assigned = set(assigned)
        # Fetching goes on while this runs: hold the partitions back until each is open.
        self._consumer.pause(*assigned)
        try:
            for partition in set(self._producers) - assigned:
                await self.discard(partition)
            for partition in sorted(assigned):
                try:
                    await self.open(partition)
                except Exception as exc:  # an outage: its first records open it again
                    log.warning("opening %s failed (%s: %s)", partition, type(exc).__name__, exc)
                    await self.discard(partition)
        finally:
            self._consumer.resume(*assigned)

    async def open(self, partition: TopicPartition) -> None:
        """Fence the partition's previous owner, then go on from the offset it committed."""
        assert self._consumer is not None
        if partition not in self._producers:
            producer = create_producer(
                self._settings,
                client_id=self._client_id,
                transactional_id=transactional_id(self._prefix, partition),
            )
            try:
                # Starting aborts or completes the previous owner's open transaction.
                await producer.start()
            except (Exception, asyncio.CancelledError):
                # Failed or cancelled half way: its client may hold connections and a task
                # refreshing metadata, which nothing else would stop (shielded: a second
                # cancellation leaves the stopping to go on).
                await asyncio.shield(_stop_producer(partition, producer))
                raise
            self._producers[partition] = producer
        # Read only now, so it includes whatever the previous owner committed.
        committed = await self._seek_committed(partition)
        if self._on_opened is not None:
            await self._on_opened(partition, committed)

    async def _seek_committed(self, partition: TopicPartition) -> int:
        """Go to the group's committed offset of `partition` (the start when none); it."""
        assert self._consumer is not None
        committed = await self._consumer.committed(partition)
        # With the seek, as it drops what the consumer fetched from the old position.
        self._next_epoch(partition)
        if committed is None:
            await self._consumer.seek_to_beginning(partition)
            return 0
        self._consumer.seek(partition, committed)
        return int(committed)

    async def close(self) -> None:
        """Stop every producer (the service is stopping), together: each may take up to
        `_STOP_TIMEOUT_S` while Kafka is away."""
        await asyncio.gather(*(self.discard(partition) for partition in list(self._producers)))

    async def discard(self, partition: TopicPartition) -> None:
        """Stop the partition's producer; its next records open the partition anew."""
        producer = self._producers.pop(partition, None)
        if producer is not None:
            await _stop_producer(partition, producer)


async def _stop_producer(partition: TopicPartition, producer: AIOKafkaProducer) -> None:
    try:
        async with asyncio.timeout(_STOP_TIMEOUT_S):
            await producer.stop()
    except Exception as exc:  # fenced, or Kafka is away: it is dropped all the same
        log.info("producer of %s stopped with %s: %s", partition, type(exc).__name__, exc)


async def run_transactional(
    consumer: AIOKafkaConsumer,
    partitions: PartitionTransactions,
    transform: Transform,
    *,
    group_id: str,
    stop: asyncio.Event,
    max_records: int = 500,
) -> None:
    """Consume, transform and produce with the offsets in one transaction per partition.

    The partitions of one fetch are done side by side, and the next fetch is taken while
    they commit: its transactions wait only for their own partition's, so the process
    works on one partition while another's commit is with the broker (about a tenth of
    the time when working through a backlog). One fetch ahead at most.
    """
    attempts: dict[TopicPartition, int] = {}
    refused = RefusedOutputs()

    async def one(
        partition: TopicPartition,
        records: list[Record],
        epoch: int,
        after: asyncio.Task[None] | None,
    ) -> None:
        if after is not None:
            # The partition's previous transaction first. One that failed for good makes the
            # group cancel this task as well; nothing here may run after it, so it is also
            # checked here rather than left to the order of the group's callbacks.
            await asyncio.wait([after])
            if after.cancelled() or after.exception() is not None:
                return
        if stop.is_set():
            return  # what was fetched ahead is read again by the partition's next owner
        async with partitions.lock(partition):
            if not partitions.owns(partition):
                refused.forget(partition)
                return  # given to another member meanwhile: it does these records
            if partitions.epoch(partition) != epoch:
                return  # reopened since they were fetched: they come again from its offset
            try:
                producer = partitions.producer(partition)
                if producer is None:
                    # Its opening failed when it was given to this member: open it now.
                    # That goes back to the committed offset, so these records come again.
                    await partitions.open(partition)
                    return
                for transaction in refused.transactions(partition, records):
                    if stop.is_set():
                        return  # each transaction committed its offset: the rest come again
                    if partitions.epoch(partition) != epoch:
                        # Revoked between transactions of one fetch (a search for a refused
                        # output makes many): the group waits for the one in flight only.
                        log.info("leaving %s@%d to the rebalance", partition, transaction[0].offset)
                        return
                    try:
                        with BATCH_SECONDS.labels(partition.topic).time():
                            await _transact(
                                partition,
                                transaction,
                                producer,
                                transform,
                                group_id,
                                refused.culprits(partition),
                                partitions.batch_bytes,
                            )
                    except Exception as exc:
                        if _refusal(exc):
                            refused.note(partition, transaction, exc)
                        raise
                    if refused.passed(partition, transaction[-1].offset):
                        partitions.forget_batch_bytes()
                    attempts.pop(partition, None)
                return
            except Exception as exc:
                if not may_succeed_anew(exc):
                    raise
                # Nothing the transaction produced is visible.
                log.warning(
                    "transaction of %s failed (%s: %s); opening it anew",
                    partition,
                    type(exc).__name__,
                    exc,
                )
                await partitions.discard(partition)
        await reopen(partition, epoch)

    async def reopen(partition: TopicPartition, epoch: int) -> None:
        """Open anew a partition whose transaction failed (a fresh producer, the committed
        offset, its state folded again) before any more of its records are done: its
        records are read again without waiting for a new one, which on a quiet partition
        may be hours away. Tried again, with growing pauses, until it opens."""
        while True:
            attempt = attempts.get(partition, 0)
            attempts[partition] = attempt + 1
            await retry_pause(attempt, stop)  # without the lock: a rebalance may go on
            async with partitions.lock(partition):
                if stop.is_set() or not partitions.owns(partition):
                    refused.forget(partition)
                    return  # the partition's next owner reads them again
                if partitions.epoch(partition) != epoch:
                    return  # opened meanwhile, when given to this member again
                try:
                    await partitions.open(partition)
                    return
                except Exception as exc:
                    if not may_succeed_anew(exc):
                        raise
                    log.warning(
                        "opening %s failed (%s: %s); trying again",
                        partition,
                        type(exc).__name__,
                        exc,
                    )
                    await partitions.discard(partition)

    # An error that retrying cannot mend, in a transaction or in fetching, stops the loop and
    # every transaction in flight (aborted: their records are read again), as an
    # ExceptionGroup.
    async with asyncio.TaskGroup() as group:
        latest: dict[TopicPartition, asyncio.Task[None]] = {}
        committing: list[asyncio.Task[None]] = []
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500, max_records=max_records)
            fetched = []
            for partition, records in batches.items():
                latest[partition] = group.create_task(
                    one(partition, records, partitions.epoch(partition), latest.get(partition))
                )
                fetched.append(latest[partition])
            if committing:
                await asyncio.wait(committing)
            committing = fetched
            if batches:
                await record_lag(consumer, group_id, list(consumer.assignment()))


class RefusedOutputs:
    """Which records' outputs the broker refused for good, per partition.

    The broker refuses a record batch, and a transaction's outputs go out in a few large
    ones. So when it refuses one, the transaction's records are done again one per
    transaction, until a refusal names the record whose output it was; that record goes to
    the dead letters with the refusal as its error, and the partition moves on, as with any
    record that cannot be processed. Each refusal costs the partition its producer (the
    refused batch left a gap in the producer's sequence numbers, which the broker would not
    let its next batch skip), so the partition is opened anew in between.
    """

    def __init__(self) -> None:
        self._searches: dict[TopicPartition, _Search] = {}

    def transactions(self, partition: TopicPartition, records: list[Record]) -> list[list[Record]]:
        """`records` (in offset order) as the transactions to do them in."""
        search = self._searches.get(partition)
        if search is not None and records[0].offset > search.until:
            del self._searches[partition]  # the partition was done elsewhere meanwhile
            search = None
        if search is None:
            return [records]
        alone = [record for record in records if record.offset <= search.until]
        rest = records[len(alone) :]
        return [[record] for record in alone] + ([rest] if rest else [])

    def culprits(self, partition: TopicPartition) -> dict[int, str]:
        """The offsets of `partition` whose own output was refused, and the refusal."""
        search = self._searches.get(partition)
        return search.culprits if search is not None else {}

    def note(self, partition: TopicPartition, transaction: list[Record], exc: Exception) -> None:
        """`transaction`'s outputs were refused; raises when that was a dead letter's."""
        last = transaction[-1].offset
        search = self._searches.setdefault(partition, _Search(last, exc))
        search.until = max(search.until, last)
        if len(transaction) > 1:
            log.warning(
                "the broker refused an output of %s@%d..%d; doing them one at a time",
                partition,
                transaction[0].offset,
                last,
            )
            return
        if last in search.culprits:
            raise RuntimeError(
                f"the dead letter of {partition.topic}[{partition.partition}]@{last} was "
                f"refused as well ({type(exc).__name__}: {exc}); the record is not done"
            ) from exc
        if not isinstance(exc, REFUSED_OUTPUT) and last not in search.refused_once:
            # A code aiokafka cannot name may be a passing one (a broker's internal error):
            # the record is tried once more before it is blamed.
            search.refused_once.add(last)
            return
        search.culprits[last] = f"its output was refused: {exc}"

    def passed(self, partition: TopicPartition, offset: int) -> bool:
        """`partition` is done up to `offset`. True when its outputs were refused only for
        being together: a topic written takes smaller batches than it did when asked."""
        search = self._searches.get(partition)
        if search is None or offset < search.until:
            return False
        del self._searches[partition]
        if search.culprits:
            return False
        if isinstance(search.refusal, REFUSED_OUTPUT):
            log.warning(
                "outputs of %s were refused together (%s) and each taken alone: a topic "
                "written takes smaller batches than it did (its max.message.bytes was "
                "lowered); asking Kafka again",
                partition,
                search.refusal,
            )
            return True
        log.warning("outputs of %s were refused (%s), then each taken", partition, search.refusal)
        return False

    def forget(self, partition: TopicPartition) -> None:
        """Drop what is known of `partition`: another member has it now."""
        self._searches.pop(partition, None)


@dataclass
class _Search:
    """A partition's search for the records whose outputs were refused."""

    until: int  # records up to here go one per transaction
    refusal: Exception  # the first, of the transaction that started the search
    culprits: dict[int, str] = field(default_factory=dict)  # offset: why it was refused
    refused_once: set[int] = field(default_factory=set)  # by a code aiokafka cannot name


def may_succeed_anew(exc: Exception) -> bool:
    """Whether the partition, opened anew, may get through what failed: an outage, a
    producer another member or the broker took away, or an output the broker refused (its
    input is found and dead-lettered: `RefusedOutputs`).

    Kafka answers a fenced producer's commit with an error aiokafka 0.14 cannot name (most
    likely PRODUCER_FENCED, code 90, newer than its table of codes): it reads it as
    UnknownError, and its sender raises that as the cause of a KafkaError.

    Opening the partition anew is safe whatever the commit's outcome was: the new producer
    ends the old transaction, and the offset read after it says which records are still
    to do.
    """
    return is_transient(exc) or _lost_producer(exc) or _refusal(exc)


def _lost_producer(exc: BaseException) -> bool:
    # Not merely caused by UnknownError: a dead letter refused with one is not a lost producer.
    unknown = isinstance(exc, KafkaError) and isinstance(exc.__cause__, UnknownError)
    return isinstance(exc, LOST_PRODUCER) or unknown


def _refusal(exc: BaseException) -> bool:
    """Whether an output was refused for good. A record batch the broker refuses with a
    code aiokafka 0.14 cannot name (INVALID_RECORD, 87, say) fails as UnknownError itself;
    as that may also be a passing error, a record refused so alone is tried twice before
    it is dead-lettered (`RefusedOutputs.note`)."""
    return isinstance(exc, REFUSED_OUTPUT) or type(exc) is UnknownError


@contextmanager
def quiet_lost_producers(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """While in it, log the errors aiokafka leaves unread in a producer it gave up at debug
    level, not as asyncio's errors.

    aiokafka 0.14 sets a fenced producer's error on futures of its own that nothing awaits
    (the transaction's end, and the drain of each batch not yet sent). Collected, each is
    logged as an error, "Future exception was never retrieved", with a traceback through
    our transaction that reads like a failure of its own; the failure is logged already,
    as a warning, and the partition opened anew. Everything else goes to the handler that
    was there.
    """
    previous = loop.get_exception_handler()

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if context.get("message") == "Future exception was never retrieved" and (
            error is not None and _lost_producer(error)
        ):
            log.debug("unread in a producer given up: %s: %s", type(error).__name__, error)
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handle)
    try:
        yield
    finally:
        loop.set_exception_handler(previous)


async def _transact(
    partition: TopicPartition,
    records: list[Record],
    producer: AIOKafkaProducer,
    transform: Transform,
    group_id: str,
    refused: dict[int, str],
    batch_bytes: Callable[[str], Awaitable[int]],
) -> None:
    consumed: list[Event] = []
    produced: list[tuple[str, Event]] = []
    batches = _RecordBatches(producer, batch_bytes)
    async with producer.transaction():
        events, dead = decode_records(records)
        first = str(events[0][1].correlation_id) if events else None
        # One span per transaction, as a projection has per batch; each decision carries on
        # the trace of the report it is about.
        with continuing("transform", [r.headers for r, _ in events], correlation_id=first):
            transform_one = transform(partition.partition)
            for record, event in events:
                consumed.append(event)
                try:
                    with correlated(event.correlation_id):
                        outputs = transform_one(event)
                except Exception as exc:
                    dead.append(DeadLetter(record, f"{type(exc).__name__}: {exc}"))
                    continue
                if record.offset in refused:
                    # Transformed all the same: a transform's state (a fold) takes in every
                    # record, as it does when folded again from the log.
                    dead.append(DeadLetter(record, refused[record.offset]))
                    continue
                for topic, output in outputs:
                    await batches.add(
                        topic,
                        key=output.key.encode(),
                        value=encode(output),
                        headers=headers_for(output) + passed_on(record.headers),
                    )
                    produced.append((topic, output))
        for letter in dead:
            log_dead_letter(letter)
            await batches.add(
                letter.topic,
                key=letter.record.key,
                value=letter.record.value,
                headers=letter.headers(group_id),
            )
        await batches.send()
        await producer.send_offsets_to_transaction({partition: records[-1].offset + 1}, group_id)
        await batches.delivered()
    # Counted once the transaction committed: an aborted one is done again.
    count_events(EVENTS_CONSUMED, ((partition.topic, event.type) for event in consumed))
    count_events(EVENTS_PRODUCED, ((topic, event.type) for topic, event in produced))
    if dead:
        DEAD_LETTERS.labels(partition.topic).inc(len(dead))


class _RecordBatches:
    """What one transaction produces, in one record batch per partition handed to the
    producer whole.

    `AIOKafkaProducer.send` looks up the partition, makes a future and later resolves it
    for every record; for triage's small decisions that cost as much as the rules did.
    A batch is placed by the partitioner every producer of ours has, so each key lands
    where `send` would have put it, and is no larger than its topic takes.
    """

    def __init__(
        self, producer: AIOKafkaProducer, batch_bytes: Callable[[str], Awaitable[int]]
    ) -> None:
        self._producer = producer
        self._batch_bytes = batch_bytes
        self._topics: dict[str, tuple[list[int], int]] = {}  # its partitions, its batch size
        self._open: dict[TopicPartition, BatchBuilder] = {}
        self._deliveries: list[asyncio.Future[Any]] = []

    async def add(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
    ) -> None:
        """Append a record to its partition's batch, handing the batch over once full."""
        known = self._topics.get(topic)
        if known is None:
            known = self._topics[topic] = (
                sorted(await self._producer.partitions_for(topic)),
                await self._batch_bytes(topic),
            )
        partitions, batch_bytes = known
        partition = TopicPartition(topic, PARTITIONER(key, partitions, partitions))
        batch = self._open.get(partition)
        if batch is not None and batch.append(
            key=key, value=value, timestamp=None, headers=headers
        ):
            return
        if batch is not None:  # full
            await self._hand_over(batch, partition)
        # As `producer.create_batch()` makes one, but of the topic's size (ours compress
        # nothing).
        batch = self._open[partition] = BatchBuilder(
            batch_bytes, compression_type=0, is_transactional=True
        )
        # An empty batch takes any record, however large: the broker judges its size.
        batch.append(key=key, value=value, timestamp=None, headers=headers)

    async def send(self) -> None:
        """Hand over every batch not yet full."""
        for partition, batch in self._open.items():
            await self._hand_over(batch, partition)
        self._open.clear()

    async def delivered(self) -> None:
        """Wait until the broker has every batch; raise the first refusal.

        The commit waits for the batches too, but a batch the broker refused for good
        (too large, say) does not fail it: the offsets would be committed without the
        records.
        """
        outcomes = await asyncio.gather(*self._deliveries, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _hand_over(self, batch: BatchBuilder, partition: TopicPartition) -> None:
        delivery = await self._producer.send_batch(
            batch, partition.topic, partition=partition.partition
        )
        # A producer that failed for good (fenced) fails its deliveries with it, also when
        # the transaction stops before `delivered`: their outcome is read here, so none is
        # logged as never retrieved.
        delivery.add_done_callback(_read_outcome)
        self._deliveries.append(delivery)


def _read_outcome(delivery: asyncio.Future[Any]) -> None:
    if not delivery.cancelled():
        delivery.exception()
