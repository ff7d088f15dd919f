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
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    ServerError,
)


def is_transient(exc: BaseException) -> bool:
    """True when retrying the same work later may succeed without any change to it."""
    return isinstance(exc, TRANSIENT_ERRORS)
