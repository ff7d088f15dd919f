"""The one envelope every event travels in, and the base class of every event."""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Self
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from uuid6 import uuid7


def new_event_id() -> UUID:
    """A time-ordered UUIDv7, so event ids sort roughly by creation time."""
    return uuid7()


def derived_event_id(source: UUID, purpose: str) -> UUID:
    """A UUIDv7 determined by `source` and `purpose`: the same input gives the same id.

    A consumer that derives its output's id this way produces a duplicate, not a second
    event, when it sees its input twice (a producer retry, a re-drive), and downstream
    consumers drop it by event id. The time bits are the source's, so ids still sort.
    """
    digest = hashlib.sha256(source.bytes + purpose.encode()).digest()
    # The source's 48 bits of time, then 80 bits of the digest, as one number: the same
    # id as writing the bytes one by one, at a third of the cost (triage derives one a report).
    value = (source.int >> 80 << 80) | int.from_bytes(digest[:10])
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 9562 variant
    return UUID(int=value)


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class ActorKind(StrEnum):
    """Who caused an event: the audit trail is the log itself."""

    REPORTER = "reporter"
    DISPATCHER = "dispatcher"
    MANAGER = "manager"
    OPS = "ops"
    SERVICE = "service"


class Actor(BaseModel):
    """The person or service an event is attributed to."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    kind: ActorKind
    id: str = Field(min_length=1, max_length=200)
    display_name: str | None = Field(default=None, max_length=200)
    via: str | None = Field(
        default=None,
        max_length=200,
        description=(
            "Who sent it on the actor's behalf, when that is someone else: the machine "
            "token of a chat bridge that forwards a worker's report, say"
        ),
    )


class Payload(BaseModel):
    """Base of every payload: consumers ignore fields added by newer producers."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Event(BaseModel):
    """An immutable fact, in the past tense, wrapped in the common envelope.

    Subclasses pin `type` and `version` with a Literal field and a default, and give
    `payload` its own model.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: UUID = Field(default_factory=new_event_id)
    type: str
    version: int
    occurred_at: AwareDatetime = Field(default_factory=utc_now)
    key: str = Field(min_length=1, description="The Kafka key: report_id, later incident_id")
    actor: Actor
    correlation_id: UUID = Field(description="Shared by every event that follows one report")
    causation_id: UUID | None = Field(default=None, description="The event that caused this one")
    payload: Payload

    @field_validator("version", mode="before")
    @classmethod
    def _version_is_a_whole_number(cls, value: object) -> object:
        # A contract's version is a JSON integer: 1.0 or true equal 1 to a Literal[1], but
        # a producer that writes them has not followed the contract.
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("version must be an integer")
        return value

    @classmethod
    def type_name(cls) -> str:
        """The wire name of this event class, e.g. `ReportSubmitted`."""
        return _contract_of(cls)[0]

    @classmethod
    def type_version(cls) -> int:
        """The version of the contract this class implements."""
        return _contract_of(cls)[1]

    @classmethod
    def first(
        cls, *, key: str, actor: Actor, payload: Payload, event_id: UUID | None = None
    ) -> Self:
        """The first event of a chain: it starts its own correlation.

        `event_id` is given when a retry must republish the very same event.
        """
        event_id = event_id or new_event_id()
        return cls(
            event_id=event_id,
            type=cls.type_name(),
            version=cls.type_version(),
            key=key,
            actor=actor,
            correlation_id=event_id,
            payload=payload,
        )

    @classmethod
    def caused_by(
        cls,
        cause: Event,
        *,
        key: str,
        actor: Actor,
        payload: Payload,
        event_id: UUID | None = None,
    ) -> Self:
        """An event caused by `cause`: same correlation, causation pointing at it."""
        return cls.in_chain(
            correlation_id=cause.correlation_id,
            causation_id=cause.event_id,
            key=key,
            actor=actor,
            payload=payload,
            event_id=event_id,
        )

    @classmethod
    def in_chain(
        cls,
        *,
        correlation_id: UUID,
        causation_id: UUID | None,
        key: str,
        actor: Actor,
        payload: Payload,
        event_id: UUID | None = None,
    ) -> Self:
        """An event continuing a chain known by its ids (read from a read model, say)."""
        return cls(
            event_id=event_id or new_event_id(),
            type=cls.type_name(),
            version=cls.type_version(),
            key=key,
            actor=actor,
            correlation_id=correlation_id,
            causation_id=causation_id,
            payload=payload,
        )


@functools.cache
def _contract_of(cls: type[Event]) -> tuple[str, int]:
    # Read once per class: pydantic's `model_fields` goes through a deprecation descriptor
    # and a class method on every access, and every event made asks for both.
    return str(cls.model_fields["type"].default), int(cls.model_fields["version"].default)
