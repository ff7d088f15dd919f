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
        await self._connection.add_listener(FEED_CHANNEL, self.on_notify)

    async def stop(self) -> None:
        """Stop listening."""
        if self._connection is not None:
            await self._connection.close()

    def on_notify(self, *_: object) -> None:
        """A change was recorded (PostgreSQL's NOTIFY on the feed's channel)."""
        # Wake every waiting stream, then arm a fresh event for the next change.
        self._changed.set()
        self._changed = asyncio.Event()

    def next_change(self) -> asyncio.Event:
        """Set by the next change. A stream takes it before it reads the changes, so that
        one recorded while it reads wakes it at once, not at the change after (which came
        tens of milliseconds later at ten reports a second: the feed's p99)."""
        return self._changed

    @staticmethod
    async def wait(change: asyncio.Event, timeout_s: float) -> None:
        """Return once `change` is set, or after `timeout_s` (streams re-check either way)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(change.wait(), timeout=timeout_s)
