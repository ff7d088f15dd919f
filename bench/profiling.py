"""Where the time goes: a py-spy sample of a stage's process, summarised for a person.

py-spy samples a running Python process from outside, without changing it and without
pausing it (`--nonblocking`), so a service can be profiled as it runs under load.
Samples of idle threads (waiting in the event loop's select) are left out, so the
shares are of the time the process was actually working; how busy it was is the
sample count against the duration.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.tools import PY_SPY_REQUIREMENTS, ToolUnavailable, tool_venv

SAMPLE_RATE_HZ = 100


@dataclass
class Profile:
    """What one process did during a slice of a stage."""

    stage: str
    process: str
    seconds: float
    samples: int
    by_package: list[tuple[str, float]] = field(default_factory=list)
    by_function: list[tuple[str, float]] = field(default_factory=list)
    our_code: list[tuple[str, float]] = field(default_factory=list)
    raw_file: str | None = None
    error: str | None = None

    @property
    def busy(self) -> float:
        """CPU use in cores over the slice: non-idle samples over one thread's expected."""
        expected = self.seconds * SAMPLE_RATE_HZ
        return self.samples / expected if expected else 0.0

    def as_json(self) -> dict[str, Any]:
        """For the results file."""
        return {
            "stage": self.stage,
            "process": self.process,
            "seconds": self.seconds,
            "samples": self.samples,
            "busy": round(self.busy, 3),
            "by_package": self.by_package,
            "by_function": self.by_function,
            "our_code": self.our_code,
            "raw_file": self.raw_file,
            "error": self.error,
        }

    def lines(self, top: int = 8) -> list[str]:
        """The profile as a person reads it."""
        if self.error:
            return [f"profile of {self.stage} ({self.process}) unavailable: {self.error}"]
        out = [
            f"profile of {self.stage}: {self.process}, {self.seconds:.0f} s sampled at "
            f"{SAMPLE_RATE_HZ} Hz, on CPU {self.busy:.0%} of one core (threads add up)"
        ]
        for title, rows in (
            ("time by package (where the CPU was)", self.by_package),
            ("time by function (self)", self.by_function),
            ("our code nearest the CPU (innermost frame of ours)", self.our_code),
        ):
            out.append(f"  {title}:")
            out += [f"    {share:6.1%}  {name}" for name, share in rows[:top]]
        if self.raw_file:
            out.append(f"  collapsed stacks: {self.raw_file} (flamegraph.pl or speedscope)")
        return out


def _parse_frame(frame: str) -> tuple[str, str]:
    """("module/path.py", "function") from py-spy's "function (module/path.py:line)"."""
    function, _, location = frame.rpartition(" (")
    path = location.rstrip(")").rsplit(":", 1)[0]
    return path, function or frame


# py-spy names a file by its path below the sys.path entry it was found on; our
# namespace packages may come out as "qianliyan/notify/..." or as "notify/...".
OUR_PACKAGES = ("ingest", "triage", "notify", "shared", "stack")


def _our_package(path: str) -> str | None:
    parts = Path(path).parts
    if parts[:1] == ("qianliyan",):
        parts = parts[1:]
    return f"qianliyan.{parts[0]}" if len(parts) > 1 and parts[0] in OUR_PACKAGES else None


def _package(path: str) -> str:
    if path.startswith("<"):
        return "python internals"
    parts = Path(path).with_suffix("").parts
    return _our_package(path) or (parts[0] if parts else "?")


def summarise(stage: str, process: str, seconds: float, raw: Path) -> Profile:
    """Turn py-spy's collapsed stacks into shares by package, function and our code."""
    by_package: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_parse_frame(f) for f in stack.split(";")]
        # Outermost frame first: the last one is where the CPU was.
        path, function = frames[-1]
        total += count
        by_package[_package(path)] += count
        by_function[f"{function} ({path})"] += count
        innermost = next(((p, fn) for p, fn in reversed(frames) if _our_package(p)), None)
        if innermost is not None:
            ours[f"{innermost[1]} ({innermost[0]})"] += count

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, n / total) for name, n in counter.most_common(15)] if total else []

    return Profile(
        stage=stage,
        process=process,
        seconds=seconds,
        samples=total,
        by_package=shares(by_package),
        by_function=shares(by_function),
        our_code=shares(ours),
        raw_file=str(raw),
    )


def py_spy(cache_dir: Path) -> Path:
    """The py-spy program, installed into its own venv on first use."""
    return tool_venv(cache_dir, "py-spy", PY_SPY_REQUIREMENTS) / "py-spy"


async def record(
    cache_dir: Path, *, stage: str, process: str, pid: int, seconds: float, out_dir: Path
) -> Profile:
    """Sample `pid` for `seconds` (the caller keeps the load going meanwhile)."""
    try:
        program = await asyncio.to_thread(py_spy, cache_dir)
    except ToolUnavailable as exc:
        return Profile(stage, process, seconds, 0, error=str(exc))
    await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
    raw = out_dir / f"{stage}-{process}.txt"
    child = await asyncio.create_subprocess_exec(
        str(program),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        str(SAMPLE_RATE_HZ),
        "--nonblocking",
        "--format",
        "raw",
        "--output",
        str(raw),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await child.communicate()
    if child.returncode != 0 or not raw.is_file():
        return Profile(stage, process, seconds, 0, error=output.decode(errors="replace")[-500:])
    return summarise(stage, process, seconds, raw)
