"""Wakes the live streams when the projection records a feed change (PostgreSQL NOTIFY)."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from qianliyan.notify.projections.incidents import FEED_CHANNEL


class FeedSignal:
    """One listening connection for the whole app; streams wait on it instead of polling."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()
        self._connection: asyncpg.Connection | None = None

    async def start(self, dsn: str) -> None:
        """Listen on the feed's channel."""
        self._connection = await asyncpg.connect(dsn)
        await self._connection.add_listener(FEED_CHANNEL, self._on_notify)

    async def stop(self) -> None:
        """Stop listening."""
        if self._connection is not None:
            await self._connection.close()

    def _on_notify(self, *_: object) -> None:
        # Wake every waiting stream, then arm a fresh event for the next change.
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, timeout_s: float) -> None:
        """Return on the next change, or after `timeout_s` (streams re-check either way)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout=timeout_s)
