"""Detached long-running processes tracked by pid files, and logged one-shot commands."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

LOG_TAIL_LINES = 30
_POLL_INTERVAL_S = 0.2

# Popen objects of the processes this interpreter started, kept so that it can reap them
# (otherwise they linger as zombies until it exits) and so none is collected while running.
_children: dict[int, subprocess.Popen[bytes]] = {}


class StackError(RuntimeError):
    """A part of the stack could not be provisioned, started or stopped."""


@dataclass(frozen=True)
class RunAs:
    """An unprivileged account to run a command as, instead of the current user."""

    uid: int
    gid: int


def say(message: str) -> None:
    """Tell the person at the terminal what a slow step is doing."""
    print(f"[qianliyan-stack] {message}", file=sys.stderr, flush=True)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log file, or a note that there is none."""
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 256 * lines))
            text = log.read().decode(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an advisory lock so concurrent invocations do not do the same work twice."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def provision_once(
    home: Path, *, is_done: Callable[[], bool], announce: str, build: Callable[[Path], str]
) -> None:
    """Run a slow download or build once into the cache, even with concurrent callers.

    `build` gets an empty staging folder beside its target and must move its result into
    place in whole, so an interrupted run leaves no half result; it returns what it made.
    """
    if is_done():
        return
    home.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(home / ".lock"):
        if is_done():
            return
        say(announce)
        began = time.monotonic()
        staging = Path(tempfile.mkdtemp(prefix="staging-", dir=home))
        try:
            made = build(staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        say(f"{made} in {time.monotonic() - began:.0f}s")


def ensure_port_free(host: str, port: int, owner: str) -> None:
    """Fail early and clearly when something else already listens where a part will."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise StackError(f"{owner}: {host}:{port} is already in use ({error})") from error


def port_accepts(host: str, port: int) -> bool:
    """Whether something accepts TCP connections there."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def require_program(program: str, why: str) -> str:
    """The full path of a program on PATH, or an error saying why it is needed."""
    path = shutil.which(program)
    if path is None:
        raise StackError(f"{why}, but `{program}` is not on PATH")
    return path


def run_logged(
    command: Sequence[str | Path],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    run_as: RunAs | None = None,
) -> None:
    """Run a command to completion with its output appended to a log; raise with the tail."""
    try:
        returncode = _spawn(command, log_path, env=env, run_as=run_as, detached=False).wait()
    except OSError as error:
        raise StackError(f"cannot run {command[0]}: {error}") from error
    if returncode != 0:
        raise StackError(
            f"{Path(command[0]).name} exited with status {returncode}; "
            f"last lines of {log_path}:\n{log_tail(log_path)}"
        )


class ManagedProcess:
    """One long-running program of the stack, detached from whoever started it."""

    def __init__(self, name: str, data_dir: Path) -> None:
        self.name = name
        self.log_path = data_dir / "logs" / f"{name}.log"
        self.pid_path = data_dir / "run" / f"{name}.pid"

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Serialise start-up across processes sharing this data directory."""
        with exclusive_lock(self.pid_path.with_suffix(".lock")):
            yield

    def pid(self) -> int | None:
        """The pid if the process recorded in the pid file still runs; forgets stale files."""
        recorded = self._read_pid_file()
        if recorded is None:
            return None
        pid, start_time = recorded
        if _is_alive(pid, start_time):
            return pid
        self.pid_path.unlink(missing_ok=True)
        return None

    def start(
        self,
        command: Sequence[str | Path],
        *,
        env: Mapping[str, str] | None = None,
        run_as: RunAs | None = None,
    ) -> int:
        """Launch the command in its own session, output to the log; return its pid."""
        self.pid_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            child = _spawn(command, self.log_path, env=env, run_as=run_as, detached=True)
        except OSError as error:
            raise StackError(f"{self.name}: cannot run {command[0]}: {error}") from error
        _children[child.pid] = child
        start_time = _start_time(child.pid)
        staging = self.pid_path.with_suffix(".pid.tmp")
        staging.write_text(f"{child.pid} {start_time}\n")
        staging.replace(self.pid_path)
        return child.pid

    def stop(self, *, timeout: float = 30.0, graceful_signal: int = signal.SIGTERM) -> None:
        """Ask the process to exit, kill its whole session if it does not in time."""
        recorded = self._read_pid_file()
        if recorded is None or not _is_alive(*recorded):
            self.pid_path.unlink(missing_ok=True)
            return
        pid, start_time = recorded
        with suppress(ProcessLookupError):
            os.kill(pid, graceful_signal)
        if not _wait_for_exit(pid, start_time, timeout):
            say(f"{self.name} (pid {pid}) ignored the request to stop for {timeout:.0f}s; killing")
        # Children it may have left behind share its session; make sure none survives.
        with suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        if not _wait_for_exit(pid, start_time, 10.0):
            raise StackError(f"{self.name} (pid {pid}) survived SIGKILL")
        self.pid_path.unlink(missing_ok=True)

    def wait_until_ready(self, is_ready: Callable[[], bool], *, timeout: float) -> None:
        """Poll until ready; on exit or timeout raise an error carrying the log's tail."""
        deadline = time.monotonic() + timeout
        while not is_ready():
            if self.pid() is None:
                raise StackError(
                    f"{self.name} exited while starting; last lines of {self.log_path}:\n"
                    f"{log_tail(self.log_path)}"
                )
            if time.monotonic() > deadline:
                raise StackError(
                    f"{self.name} was not ready after {timeout:.0f}s; last lines of "
                    f"{self.log_path}:\n{log_tail(self.log_path)}"
                )
            time.sleep(_POLL_INTERVAL_S)

    def _read_pid_file(self) -> tuple[int, str] | None:
        try:
            pid, start_time = self.pid_path.read_text().split()
            return int(pid), start_time
        except (FileNotFoundError, ValueError):
            return None


def _banner(command: Sequence[str | Path]) -> bytes:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    return f"\n=== {started} qianliyan-stack ran: {' '.join(map(str, command))}\n".encode()


def _spawn(
    command: Sequence[str | Path],
    log_path: Path,
    *,
    env: Mapping[str, str] | None,
    run_as: RunAs | None,
    detached: bool,
) -> subprocess.Popen[bytes]:
    """Launch with output appended to the log; detached means in a session of its own."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(_banner(command))
        log.flush()
        return subprocess.Popen(
            [str(part) for part in command],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=detached,
            user=None if run_as is None else run_as.uid,
            group=None if run_as is None else run_as.gid,
            extra_groups=None if run_as is None else [],
        )


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) from /proc; the start time tells a recycled pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name in parentheses may contain spaces; the fields after it do not.
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], fields[19]


def _start_time(pid: int) -> str:
    stat = _proc_stat(pid)
    return stat[1] if stat else "0"


def _is_alive(pid: int, start_time: str) -> bool:
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]
        return False
    stat = _proc_stat(pid)
    return stat is not None and stat[1] == start_time and stat[0] not in ("Z", "X")


def _wait_for_exit(pid: int, start_time: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _is_alive(pid, start_time):
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL_INTERVAL_S / 2)
    return True
