"""Telling a passing outage (retry it) from a bad message (dead-letter it)."""

from __future__ import annotations

import asyncio

import asyncpg
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError
from minio.error import ServerError

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    # A table was swapped under a prepared statement (a rebuild's switch-over) or a lock
    # wait lost a deadlock: the same work succeeds when tried again.
    asyncpg.InvalidCachedStatementError,
    asyncpg.DeadlockDetectedError,
    # A connection lost while the pool resets it can leave asyncpg's protocol mid-state
    # ("cannot switch to state 15"); seen when PostgreSQL shut down under the alerter.
    # The pool drops that connection, and the next attempt gets a new one.
    asyncpg.InternalClientError,
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    ServerError,
)


def is_transient(exc: BaseException) -> bool:
    """True when retrying the same work later may succeed without any change to it."""
    return isinstance(exc, TRANSIENT_ERRORS)
