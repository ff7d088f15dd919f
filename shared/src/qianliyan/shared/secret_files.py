"""Secrets a site makes for itself, kept in files only their owner can read."""

from __future__ import annotations

import os
from pathlib import Path


def write_secret(path: Path, content: bytes) -> None:
    """Write `content` to a new file that only its owner can read (its folder too)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Created with its final permissions, before anything is written into it.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(content)
