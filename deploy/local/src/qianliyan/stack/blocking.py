"""Running a coroutine to completion from synchronous stack code."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

_Result = TypeVar("_Result")


def run_blocking(coroutine: Coroutine[Any, Any, _Result]) -> _Result:
    """Run it on a fresh event loop in a worker thread, so callers may already run a loop."""
    with ThreadPoolExecutor(max_workers=1) as worker:
        return worker.submit(asyncio.run, coroutine).result()
