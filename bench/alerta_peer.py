"""A peer: Alerta (alerta-server, the open-source alert console) on the bench's PostgreSQL.

Alerta is what a dispatch centre might run instead: alerts are POSTed to it and land in
its database, where its console reads them. It runs here as its docs describe for
production, under gunicorn (two workers, as many as there are cores, four threads each),
against a database `alerta` of its own on the bench's PostgreSQL server, with
authentication off so no API key is in the way.

The comparison is of the same alert load pushed into each: Alerta's alert is on its
console once `POST /alert` answers 201 (it writes synchronously); ours is once the alert
shows on the SSE feed, after ingest, Kafka, triage and the projection.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import asyncpg
import httpx

from bench.measure import LoadResult, closed_loop
from bench.tools import ALERTA_REQUIREMENTS, tool_venv
from qianliyan.stack.config import StackConfig
from qianliyan.stack.process import ManagedProcess, ensure_port_free

ALERTA_DATABASE = "alerta"
# initdb in the stack makes this superuser, reachable without a password from loopback.
SUPERUSER = "postgres"


def _conf(config: StackConfig) -> str:
    password = config.postgres_password.get_secret_value()
    url = (
        f"postgresql://{config.postgres_user}:{password}@{config.host}:"
        f"{config.postgres_port}/{ALERTA_DATABASE}"
    )
    return f"DATABASE_URL = {url!r}\nAUTH_REQUIRED = False\nDEBUG = False\nSECRET_KEY = 'bench'\n"


async def create_database(config: StackConfig) -> None:
    """A database for Alerta on the same server, owned by the stack's role."""
    admin = await asyncpg.connect(
        host=config.host, port=config.postgres_port, user=SUPERUSER, database="postgres"
    )
    try:
        if not await admin.fetchval(
            "SELECT true FROM pg_database WHERE datname = $1", ALERTA_DATABASE
        ):
            await admin.execute(f'CREATE DATABASE {ALERTA_DATABASE} OWNER "{config.postgres_user}"')
    finally:
        await admin.close()


class Alerta:
    """alerta-server under gunicorn, started and stopped like a part of the stack."""

    def __init__(self, config: StackConfig, port: int) -> None:
        self.port = port
        self._config = config
        self._home = config.data_dir / "alerta"
        self._process = ManagedProcess("alerta", config.data_dir)

    @property
    def url(self) -> str:
        """Where its API listens."""
        return f"http://{self._config.host}:{self.port}"

    def start(self) -> None:
        """Install it if needed, create its schema, then serve; wait until it answers."""
        bin_dir = tool_venv(self._config.cache_dir, "alerta", ALERTA_REQUIREMENTS)
        self._home.mkdir(parents=True, exist_ok=True)
        conf = self._home / "alertad.conf"
        conf.write_text(_conf(self._config), encoding="utf-8")
        env = {"ALERTA_SVR_CONF_FILE": str(conf), "PATH": f"{bin_dir}:/usr/bin:/bin"}
        # Each gunicorn worker creates the schema at start; done once first, they never race.
        subprocess.run(
            [bin_dir / "python", "-c", "from alerta import create_app; create_app()"],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        ensure_port_free(self._config.host, self.port, "alerta")
        self._process.start(
            [
                bin_dir / "gunicorn",
                "--workers",
                "2",
                "--threads",
                "4",
                "--bind",
                f"{self._config.host}:{self.port}",
                "alerta:create_app()",
            ],
            env=env,
        )
        self._process.wait_until_ready(self._answers, timeout=60)

    def stop(self) -> None:
        """Stop gunicorn and its workers."""
        self._process.stop(timeout=15)

    @property
    def log_path(self) -> Path:
        """Its log, for when it does not start."""
        return self._process.log_path

    def _answers(self) -> bool:
        try:
            response = httpx.get(f"{self.url}/management/healthcheck", timeout=1, trust_env=False)
        except httpx.HTTPError:
            return False
        return response.status_code == httpx.codes.OK


def alert_body(i: int, run: str) -> dict[str, object]:
    """The alert a critical report becomes: one resource (a place) per alert, as ours."""
    return {
        "resource": f"{run}-{i}",
        "event": "smoke",
        "environment": "Production",
        "severity": "critical",
        "service": ["station"],
        "group": "bench",
        "text": f"配电箱冒烟 smoke from a signal cabinet #{i}",
        "origin": "qianliyan-bench",
    }


async def push_alerts(alerta: Alerta, count: int, concurrency: int) -> tuple[LoadResult, int]:
    """`count` alerts POSTed with `concurrency` in flight; the load and the alerts it holds."""
    run = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(
        base_url=alerta.url,
        timeout=60,
        trust_env=False,
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
    ) as client:

        async def one(i: int) -> None:
            response = await client.post("/alert", json=alert_body(i, run))
            if response.status_code != httpx.codes.CREATED:
                raise RuntimeError(f"{response.status_code}: {response.text[:200]}")

        await closed_loop(concurrency, concurrency, lambda i: one(count + i))  # warm-up
        load = await closed_loop(count, concurrency, one)
        counts = (await client.get("/alerts/count", params={"group": "bench"})).json()
    return load, int(counts.get("total", 0)) - concurrency
