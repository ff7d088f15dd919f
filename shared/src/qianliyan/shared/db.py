"""The PostgreSQL adapter: one asyncpg pool per service, built at start-up."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from qianliyan.shared.settings import PostgresSettings

# What a pooled `acquire()` yields and what `connect()` returns: handlers accept both.
Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy


async def create_pool(settings: PostgresSettings) -> asyncpg.Pool:
    """A connection pool to the read-model database."""
    pool = await asyncpg.create_pool(
        dsn=settings.dsn.get_secret_value(),
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        command_timeout=30,
    )
    assert pool is not None  # create_pool returns None only when awaited wrongly
    return pool


async def is_reachable(pool: asyncpg.Pool) -> bool:
    """Whether the database answers a trivial query (for readiness checks)."""
    try:
        async with pool.acquire(timeout=2) as connection:
            await connection.fetchval("SELECT 1")
    except Exception:
        return False
    return True
