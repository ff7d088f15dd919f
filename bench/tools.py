"""Programs the bench needs that the project must not depend on, each in a venv of its own.

Alerta drags in Flask, psycopg2 and more, and py-spy is a profiler: neither belongs in
the project's lock file. Each gets a virtual environment under the stack's cache
(`~/.cache/qianliyan/<name>/venv`), made once with uv and reused while its pinned
requirements stay the same.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

ALERTA_REQUIREMENTS = ("alerta-server==9.1.0", "psycopg2-binary==2.9.13", "gunicorn==27.0.1")
PY_SPY_REQUIREMENTS = ("py-spy==0.4.3",)


class ToolUnavailable(RuntimeError):
    """A bench tool could not be installed; the message says why."""


def tool_venv(cache_dir: Path, name: str, requirements: Sequence[str]) -> Path:
    """The bin/ folder of a Python 3.11 venv holding `requirements`, made if missing."""
    venv = cache_dir / name / "venv"
    marker = venv / ".bench-requirements"
    wanted = "\n".join(sorted(requirements))
    if marker.is_file() and marker.read_text(encoding="utf-8") == wanted:
        return venv / "bin"
    uv = _project_uv()
    for command in (
        [uv, "venv", "--quiet", "--clear", "--python", "3.11", str(venv)],
        [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), *requirements],
    ):
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ToolUnavailable(f"{name}: {' '.join(command[:3])} failed:\n{done.stderr[-2000:]}")
    marker.write_text(wanted, encoding="utf-8")
    return venv / "bin"


def _project_uv() -> str:
    """The uv that `make` uses: the project's pinned one, installed when missing (a fresh
    machine has none on PATH)."""
    ensure = Path(__file__).resolve().parents[1] / "deploy" / "local" / "bin" / "ensure-uv"
    done = subprocess.run([str(ensure)], capture_output=True, text=True, check=False)
    if done.returncode != 0 or not done.stdout.strip():
        raise ToolUnavailable(f"uv could not be installed by {ensure}:\n{done.stderr[-2000:]}")
    return done.stdout.strip()
