"""The stack as two groups: the infrastructure (Postgres, MinIO, Kafka) and the services."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import httpx

from qianliyan.stack.component import Component, ComponentStatus, InfraComponent
from qianliyan.stack.config import SERVICE_NAMES, StackConfig
from qianliyan.stack.kafka import Kafka
from qianliyan.stack.minio import MinIO
from qianliyan.stack.postgres import Postgres
from qianliyan.stack.process import ManagedProcess, StackError, ensure_port_free

DEFAULT_READINESS_PATH = "/health/ready"

_Result = TypeVar("_Result")


class _Group:
    """Parts started and stopped side by side, since most of their start-up is waiting."""

    def __init__(self, components: Sequence[Component]) -> None:
        self._components = tuple(components)

    def start(self) -> None:
        """Start every part; if one fails, stop the ones this call started, then raise."""
        started, errors = _side_by_side({part.name: part.start for part in self._components})
        if errors:
            _side_by_side(
                {part.name: part.stop for part in self._components if started.get(part.name)}
            )
            raise StackError(_describe(errors))

    def stop(self) -> None:
        """Stop every part that runs."""
        _, errors = _side_by_side({part.name: part.stop for part in self._components})
        if errors:
            raise StackError(_describe(errors))

    def status(self) -> list[ComponentStatus]:
        """The state of every part, in start order."""
        return [part.status() for part in self._components]


class Infra(_Group):
    """PostgreSQL, MinIO and Kafka, provisioned into the cache and run from the data dir."""

    def __init__(self, config: StackConfig) -> None:
        self.postgres = Postgres(config)
        self.minio = MinIO(config)
        self.kafka = Kafka(config)
        self._infra: tuple[InfraComponent, ...] = (self.postgres, self.minio, self.kafka)
        super().__init__(self._infra)

    def is_provisioned(self) -> bool:
        """Whether nothing remains to download or build."""
        return all(part.is_provisioned() for part in self._infra)

    def provision(self) -> None:
        """Download and build whatever is missing (Maven and Go work at the same time)."""
        missing = {part.name: part.provision for part in self._infra if not part.is_provisioned()}
        _, errors = _side_by_side(missing)
        if errors:
            raise StackError(_describe(errors))


class Service:
    """One of the project's FastAPI services, run as `python -m qianliyan.<name>`."""

    def __init__(
        self,
        config: StackConfig,
        name: str,
        readiness_path: str = DEFAULT_READINESS_PATH,
        *,
        instance: int = 0,
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
    ) -> None:
        self.name = name
        self.instance = instance
        self._env = dict(env or {})  # settings of this instance only, over the stack's
        # Another checkout's interpreter runs that checkout's code (to compare two versions
        # on one stack); this one's by default.
        self._python = python
        self._config = config
        self._port = config.service_port(name, instance)
        self._readiness_url = f"http://{config.host}:{self._port}{readiness_path}"
        # Instance 0 keeps the plain name (its pid and log files), others are numbered.
        self._process = ManagedProcess(f"{name}-{instance}" if instance else name, config.data_dir)

    def start(self, timeout: float = 60.0) -> bool:
        """Start the service against this stack and wait until its readiness check passes."""
        with self._process.lock():
            if self._process.pid() is not None:
                return False
            ensure_port_free(self._config.host, self._port, self._process.name)
            self._process.start(
                [self._python, "-m", f"qianliyan.{self.name}"],
                env={
                    **os.environ,
                    **self._config.service_env(self.name, self.instance),
                    **self._env,
                },
            )
            self._process.wait_until_ready(self._serves, timeout=timeout)
            return True

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the service (SIGTERM lets it finish in-flight requests and commits)."""
        self._process.stop(timeout=timeout)

    def status(self) -> ComponentStatus:
        """Whether the service runs and its base URL."""
        pid = self._process.pid()
        address = f"http://{self._config.host}:{self._port}"
        return ComponentStatus(self.name, pid is not None, pid, address, self._process.log_path)

    def _serves(self) -> bool:
        try:
            response = httpx.get(self._readiness_url, timeout=1.0, trust_env=False)
        except httpx.HTTPError:
            return False
        return response.status_code == httpx.codes.OK


class Services(_Group):
    """The ingest, triage and notify services."""

    def __init__(self, config: StackConfig, readiness_path: str = DEFAULT_READINESS_PATH) -> None:
        super().__init__([Service(config, name, readiness_path) for name in SERVICE_NAMES])


def _side_by_side(
    actions: dict[str, Callable[[], _Result]],
) -> tuple[dict[str, _Result], dict[str, BaseException]]:
    """Run each action in its own thread; collect results and errors by name."""
    if not actions:
        return {}, {}
    with ThreadPoolExecutor(max_workers=len(actions)) as pool:
        futures = {name: pool.submit(action) for name, action in actions.items()}
    results: dict[str, _Result] = {}
    errors: dict[str, BaseException] = {}
    for name, future in futures.items():
        error = future.exception()
        if error is None:
            results[name] = future.result()
        else:
            errors[name] = error
    return results, errors


def _describe(errors: dict[str, BaseException]) -> str:
    return "\n\n".join(f"{name}: {error}" for name, error in errors.items())
