"""A long-running consumer loop owned by a service's lifespan.

Its state feeds the health endpoints: a loop that died is not live, so the
orchestrator (or a person reading /health/live) sees it and restarts the service.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

LoopBody = Callable[[asyncio.Event], Awaitable[None]]


class BackgroundLoop:
    """Runs `body(stop)` as a task until `stop()` sets the event it watches."""

    def __init__(self, name: str, body: LoopBody) -> None:
        self.name = name
        self._body = body
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the loop in the background."""
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def _run(self) -> None:
        try:
            await self._body(self._stop)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s stopped on an error", self.name)
            raise

    async def stop(self, *, timeout_s: float = 10.0, cleanup_s: float = 5.0) -> None:
        """Ask the loop to finish its current batch within `timeout_s`, else cancel it and
        wait up to `cleanup_s` for its cleanup (its consumer leaving the group, its
        producers closing): the service's resources close after it, and the process ends."""
        self._stop.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=timeout_s)
            return
        except TimeoutError:
            pass
        except Exception:
            return  # already logged by _run
        log.warning("%s did not stop within %g s; cancelling it", self.name, timeout_s)
        self._task.cancel()
        # Waited for, not awaited: its CancelledError is not this caller's.
        await asyncio.wait([self._task], timeout=cleanup_s)
        if not self._task.done():
            log.error("%s is still running %g s after it was cancelled", self.name, cleanup_s)

    async def is_alive(self) -> bool:
        """True while the loop runs (or is stopping on request)."""
        return self._task is not None and not self._task.done()
