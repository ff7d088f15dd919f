"""One progress bar for long work over the log (check, rebuild, re-triage): events done of
the total, the rate, and the time left."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TimeRemainingColumn,
)
from rich.text import Text

# Told (events done, events in all) as the work goes.
ProgressCallback = Callable[[int, int], None]


class _EventRate(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(
            f"{task.speed:,.0f} events/s" if task.speed else "", style="progress.data.speed"
        )


@contextmanager
def events_progress(description: str) -> Iterator[ProgressCallback]:
    """A bar on the terminal while the block runs; yields the callback that moves it."""
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        _EventRate(),
        TimeRemainingColumn(),
        console=Console(stderr=True),  # stdout is for the command's answer
    ) as bar:
        task = bar.add_task(description, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)
