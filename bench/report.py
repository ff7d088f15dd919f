"""Figures with their raw baseline, ratio and goal: the table a person reads, and the JSON.

A figure is "met" by comparing the ratio ours/raw with the goal in the direction the
issue states: at least so much of raw for a throughput, at most so many times raw for
a latency. Figures without a raw side (memory, missing alerts) compare ours itself.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

Goal = Literal["ratio_at_least", "ratio_at_most", "ours_at_most", "none"]


@dataclass
class Figure:
    """One line of the table."""

    name: str
    unit: str
    ours: float
    raw: float | None = None
    goal: float | None = None
    goal_kind: Goal = "none"
    note: str = ""
    stage: str = ""  # the stage whose profile explains it, for figures with a raw goal

    @property
    def ratio(self) -> float | None:
        """ours / raw, when there is a raw side."""
        if self.raw is None or self.raw == 0 or math.isnan(self.raw) or math.isnan(self.ours):
            return None
        return self.ours / self.raw

    @property
    def met(self) -> bool | None:
        """Whether the goal is reached; None when the figure has no goal."""
        if self.goal is None or self.goal_kind == "none":
            return None
        if self.goal_kind == "ours_at_most":
            return self.ours <= self.goal
        ratio = self.ratio
        if ratio is None:
            return False
        return ratio >= self.goal if self.goal_kind == "ratio_at_least" else ratio <= self.goal

    @property
    def shortfall(self) -> float:
        """How far from its goal, as a factor (1 or less: met); the slowest stage is the largest."""
        ratio = self.ratio
        if self.goal is None or self.goal_kind == "none":
            return 0.0
        if self.goal_kind == "ours_at_most":
            return self.ours / self.goal if self.goal else 0.0
        if ratio is None or ratio == 0:
            return math.inf
        return self.goal / ratio if self.goal_kind == "ratio_at_least" else ratio / self.goal

    def goal_text(self) -> str:
        """The goal as the table prints it."""
        if self.goal is None or self.goal_kind == "none":
            return "-"
        return {
            "ratio_at_least": f">= {self.goal:g} of raw",
            "ratio_at_most": f"<= {self.goal:g}x raw",
            "ours_at_most": f"<= {self.goal:g} {self.unit}",
        }[self.goal_kind]

    def as_json(self) -> dict[str, Any]:
        """For the results file."""
        return {**asdict(self), "ratio": self.ratio, "met": self.met}


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def table(figures: list[Figure]) -> str:
    """The figures as a fixed-width table: figure, ours, raw, ratio, goal, met?"""
    header = ("figure", "ours", "raw", "ratio", "goal", "met?")
    rows = [
        (
            f"{f.name} [{f.unit}]",
            _number(f.ours),
            _number(f.raw),
            "-" if f.ratio is None else f"{f.ratio:.2f}",
            f.goal_text(),
            {True: "yes", False: "NO", None: "-"}[f.met],
        )
        for f in figures
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        first, *rest = cells
        return "  ".join(
            [first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))]
        )

    rule = "  ".join("-" * w for w in widths)
    notes = [f"  {f.name}: {f.note}" for f in figures if f.note]
    return "\n".join(
        [line(header), rule, *(line(r) for r in rows), *(["notes:", *notes] if notes else [])]
    )
