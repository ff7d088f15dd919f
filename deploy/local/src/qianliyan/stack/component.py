"""What every part of the stack offers, so groups of them can be driven alike."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class ComponentStatus:
    """Whether a part runs, as which process, and where to reach it."""

    name: str
    running: bool
    pid: int | None
    address: str
    log_path: Path


class Component(Protocol):
    """A part of the stack that can be started, stopped and inspected."""

    name: str

    def start(self) -> bool:
        """Start it and wait until it serves; False when it already ran."""
        ...

    def stop(self) -> None:
        """Stop it if it runs."""
        ...

    def status(self) -> ComponentStatus:
        """Its current state."""
        ...


class InfraComponent(Component, Protocol):
    """A piece of infrastructure that first needs downloading or building."""

    def is_provisioned(self) -> bool:
        """Whether everything it needs is already downloaded or built."""
        ...

    def provision(self) -> None:
        """Download or build what it needs, once."""
        ...
