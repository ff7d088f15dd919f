"""Dead letters: list them with their error and origin, re-drive them, or discard them.

What ops do to a dead letter is recorded in its dead-letter topic itself, as a marker
record pointing at the letter's offset: the topic stays the full story of every parked
message (parked, re-driven when, discarded why and by whom), and nothing is deleted.

A re-drive writes twice, the letter back to its topic and its marker, in one Kafka
transaction: a run that dies between the two leaves neither, so the next run sends the
letter once, not again beside the first copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from aiokafka import AIOKafkaProducer

from qianliyan.shared.kafka import Record, create_producer, given_up_after, read_to_end
from qianliyan.shared.settings import KafkaSettings
from qianliyan.shared.topics import DEAD_LETTER_SUFFIX

# Headers of a marker record; a letter has none of them.
MARKER_ACTION = "dlq.action"
MARKER_OF = "dlq.marker_of"
MARKER_REASON = "dlq.reason"
MARKER_BY = "dlq.by"
MARKER_AT = "dlq.at"


class LetterState(StrEnum):
    """Where a dead letter stands."""

    PARKED = "parked"
    REDRIVEN = "redriven"
    DISCARDED = "discarded"


@dataclass
class DeadLetterEntry:
    """One parked message, what failed, where it came from, and what ops did with it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    parked_at: datetime
    state: LetterState = LetterState.PARKED
    history: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """How ops name it: TOPIC[PARTITION]@OFFSET of the dead-letter topic."""
        return f"{self.topic}[{self.partition}]@{self.offset}"

    def header(self, name: str) -> str | None:
        found = [value for key, value in self.headers if key == name]
        return found[-1].decode(errors="replace") if found else None

    @property
    def error(self) -> str:
        return self.header("dlq.error") or "(no reason recorded)"

    @property
    def origin_topic(self) -> str:
        return self.header("dlq.origin.topic") or self.topic.removesuffix(DEAD_LETTER_SUFFIX)

    @property
    def origin(self) -> str:
        partition, offset = self.header("dlq.origin.partition"), self.header("dlq.origin.offset")
        return f"{self.origin_topic}[{partition}]@{offset}"

    @property
    def event_type(self) -> str | None:
        return self.header("type")

    def original_headers(self) -> list[tuple[str, bytes]]:
        """The headers the message had before it was parked (for a re-drive)."""
        return [(key, value) for key, value in self.headers if not key.startswith("dlq.")]


def _header(record: Record, name: str) -> str | None:
    found = [value for key, value in (record.headers or ()) if key == name]
    return found[-1].decode(errors="replace") if found else None


def fold_letters(records: Iterable[Record]) -> list[DeadLetterEntry]:
    """The letters of dead-letter topic records, each with the state its markers give it."""
    letters: dict[tuple[str, int, int], DeadLetterEntry] = {}
    markers: list[Record] = []
    for record in records:
        if _header(record, MARKER_ACTION) is not None:
            markers.append(record)
            continue
        letters[(record.topic, record.partition, record.offset)] = DeadLetterEntry(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=list(record.headers or ()),
            parked_at=datetime.fromtimestamp(record.timestamp / 1000, UTC),
        )
    for marker in markers:
        target = _header(marker, MARKER_OF) or ""
        partition, _, offset = target.partition("@")
        letter = letters.get((marker.topic, int(partition or -1), int(offset or -1)))
        if letter is None:
            continue
        action = LetterState(_header(marker, MARKER_ACTION) or LetterState.PARKED)
        letter.state = action
        letter.history.append(
            f"{action.value} at {_header(marker, MARKER_AT)} by {_header(marker, MARKER_BY)}"
            + (f": {reason}" if (reason := _header(marker, MARKER_REASON)) else "")
        )
    return sorted(letters.values(), key=lambda e: (e.topic, e.parked_at, e.partition, e.offset))


async def read_letters(bootstrap_servers: str, topics: Sequence[str]) -> list[DeadLetterEntry]:
    """Every letter of the dead-letter twins of `topics`, with its state."""
    records: list[Record] = []
    for topic in topics:
        dlq = topic if topic.endswith(DEAD_LETTER_SUFFIX) else topic + DEAD_LETTER_SUFFIX
        records.extend(await read_to_end(bootstrap_servers, dlq))
    return fold_letters(records)


# One transactional id for every run: starting one fences a run that died with its
# transaction open and aborts that transaction at once (rather than when it times out),
# and of two runs at once the older can commit nothing more.
TRANSACTIONAL_ID = "qianliyan-ops-dead-letters"

# How long one letter's transaction may wait for Kafka. A run given up on mid-way may
# leave its transaction open (or committing): the next run's start waits for Kafka to
# finish or abort it, and the letters read after that show which.
ACTION_DEADLINE_S = 30.0


def dead_letter_producer(bootstrap_servers: str) -> AIOKafkaProducer:
    """The producer `redrive` and `discard` write with: transactional, as they need."""
    return create_producer(
        KafkaSettings(bootstrap_servers=bootstrap_servers),
        client_id="ops",
        transactional_id=TRANSACTIONAL_ID,
    )


async def _mark(
    producer: AIOKafkaProducer,
    letter: DeadLetterEntry,
    action: LetterState,
    *,
    by: str,
    reason: str | None,
) -> None:
    headers = [
        (MARKER_ACTION, action.value.encode()),
        (MARKER_OF, f"{letter.partition}@{letter.offset}".encode()),
        (MARKER_BY, by.encode()),
        (MARKER_AT, datetime.now(UTC).isoformat().encode()),
    ]
    if reason:
        headers.append((MARKER_REASON, reason.encode()))
    await producer.send_and_wait(
        letter.topic, None, key=letter.key, headers=headers, partition=letter.partition
    )


async def redrive(
    producer: AIOKafkaProducer,
    letter: DeadLetterEntry,
    *,
    by: str,
    deadline_s: float = ACTION_DEADLINE_S,
) -> None:
    """Send the letter back to its topic as it was (key, bytes, headers) and mark it, both
    or neither (`producer` is a `dead_letter_producer`); a TimeoutError once `deadline_s`
    pass without Kafka's answer.

    A letter re-driven before its cause was fixed is parked again, as a new letter.
    """
    if letter.state is not LetterState.PARKED:
        raise ValueError(f"{letter.name} is {letter.state}")

    async def both() -> None:
        async with producer.transaction():
            await producer.send_and_wait(
                letter.origin_topic,
                letter.value,
                key=letter.key,
                headers=letter.original_headers(),
            )
            await _mark(producer, letter, LetterState.REDRIVEN, by=by, reason=None)

    await given_up_after(deadline_s, both(), f"re-driving {letter.name}")


async def discard(
    producer: AIOKafkaProducer,
    letter: DeadLetterEntry,
    *,
    by: str,
    reason: str,
    deadline_s: float = ACTION_DEADLINE_S,
) -> None:
    """Mark the letter discarded, with the reason: it is kept, and never re-driven
    (`producer` is a `dead_letter_producer`); a TimeoutError as `redrive` gives one."""
    if not reason.strip():
        raise ValueError("a discard needs a reason")
    if letter.state is not LetterState.PARKED:
        raise ValueError(f"{letter.name} is {letter.state}")

    async def marked() -> None:
        async with producer.transaction():
            await _mark(producer, letter, LetterState.DISCARDED, by=by, reason=reason)

    await given_up_after(deadline_s, marked(), f"discarding {letter.name}")
