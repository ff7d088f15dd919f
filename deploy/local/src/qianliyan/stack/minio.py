"""MinIO as the S3-compatible photo store, built from source with the Go toolchain."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from qianliyan.stack.component import ComponentStatus
from qianliyan.stack.config import StackConfig
from qianliyan.stack.process import (
    ManagedProcess,
    StackError,
    ensure_port_free,
    provision_once,
    require_program,
    run_logged,
)

_MODULE = "github.com/minio/minio"


class MinIO:
    """A single-drive MinIO server whose objects live under the stack's data directory."""

    name = "minio"

    def __init__(self, config: StackConfig) -> None:
        self._config = config
        self._home = config.cache_dir / "minio" / config.minio_version
        self._binary = self._home / "bin" / "minio"
        self._drive = config.data_dir / "minio"
        self._process = ManagedProcess(self.name, config.data_dir)

    def is_provisioned(self) -> bool:
        """Whether the server binary of this version is in the cache."""
        return self._binary.is_file() and os.access(self._binary, os.X_OK)

    def provision(self) -> None:
        """Build the server with `go install` into the cache."""
        version = self._config.minio_version

        def build(staging: Path) -> str:
            go = require_program("go", "the Go toolchain is needed to build MinIO")
            run_logged(
                [go, "install", f"{_MODULE}@{version}"],
                self._home / "build.log",
                env={**os.environ, "GOBIN": str(staging), "CGO_ENABLED": "0"},
            )
            self._binary.parent.mkdir(exist_ok=True)
            (staging / "minio").replace(self._binary)
            return f"MinIO {version}: built {self._binary}"

        provision_once(
            self._home,
            is_done=self.is_provisioned,
            announce=f"MinIO {version}: building from source (first time only, several minutes)...",
            build=build,
        )

    def start(self, timeout: float = 60.0) -> bool:
        """Start the server and wait until it reports ready."""
        with self._process.lock():
            if self._process.pid() is not None:
                return False
            if not self.is_provisioned():
                raise StackError("minio is not provisioned; run `qianliyan-stack provision`")
            config = self._config
            for port in (config.minio_port, config.minio_console_port):
                ensure_port_free(config.host, port, self.name)
            self._drive.mkdir(parents=True, exist_ok=True)
            env = {
                **os.environ,
                "MINIO_ROOT_USER": config.minio_root_user,
                "MINIO_ROOT_PASSWORD": config.minio_root_password.get_secret_value(),
            }
            self._process.start(
                [
                    self._binary,
                    "server",
                    self._drive,
                    "--address",
                    config.minio_endpoint,
                    "--console-address",
                    f"{config.host}:{config.minio_console_port}",
                ],
                env=env,
            )
            self._process.wait_until_ready(self._serves, timeout=timeout)
            return True

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server."""
        self._process.stop(timeout=timeout)

    def status(self) -> ComponentStatus:
        """Whether the server runs and its S3 endpoint."""
        pid = self._process.pid()
        return ComponentStatus(
            self.name,
            pid is not None,
            pid,
            f"http://{self._config.minio_endpoint} (console "
            f"http://{self._config.host}:{self._config.minio_console_port})",
            self._process.log_path,
        )

    def _serves(self) -> bool:
        url = f"http://{self._config.minio_endpoint}/minio/health/ready"
        try:
            return httpx.get(url, timeout=1.0, trust_env=False).status_code == httpx.codes.OK
        except httpx.HTTPError:
            return False
