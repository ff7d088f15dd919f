"""docker-compose.yml against the code: every part is there, each service is built from its own
Dockerfile and configured only through settings that exist, on the ports the settings default to.

No Docker is needed: the file is read as YAML and compared with the settings classes, so a
renamed setting or a changed default fails here instead of in someone's `docker compose up`.
"""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic_settings import BaseSettings

from qianliyan.ingest.settings import IngestSettings
from qianliyan.notify.settings import NotifySettings
from qianliyan.shared.settings import KafkaSettings, PostgresSettings, StorageSettings
from qianliyan.triage.settings import TriageSettings
from tests.unit.settings_fields import COMPOSE_SERVICES as SERVICES
from tests.unit.settings_fields import ROOT, environment, field_of

_spec = importlib.util.spec_from_file_location("make_env", ROOT / "deploy/compose/make_env.py")
assert _spec is not None and _spec.loader is not None
make_env = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_env)

APPS: dict[str, type[BaseSettings]] = {
    "ingest": IngestSettings,
    "triage": TriageSettings,
    "notify": NotifySettings,
}
# The settings each container reads, and their prefix; `init` runs on notify's settings.
CONFIGURED: dict[str, type[BaseSettings]] = {**APPS, "init": NotifySettings}
PREFIX = {"ingest": "INGEST_", "triage": "TRIAGE_", "notify": "NOTIFY_", "init": "NOTIFY_"}

KAFKA_PORT = urlsplit(f"//{KafkaSettings().bootstrap_servers}").port
MINIO_PORT = urlsplit(f"//{StorageSettings().endpoint}").port
POSTGRES_PORT = urlsplit(PostgresSettings().dsn.get_secret_value()).port


def settings_env(service: str) -> dict[str, str]:
    """The variables meant for the service's settings class, less the prefix, lowercased."""
    prefix = PREFIX[service]
    return {
        key.removeprefix(prefix).lower(): value
        for key, value in environment(service).items()
        if key.startswith(prefix)
    }


def published(service: str) -> dict[int, int]:
    """Container port to host port, from `[host_ip:]host:container` entries."""
    ports = {}
    for entry in SERVICES[service].get("ports", []):
        *_, host, container = str(entry).split(":")
        ports[int(container)] = int(host)
    return ports


def default_http_port(settings: type[BaseSettings]) -> int:
    # The declared default: an INGEST_HTTP_PORT in the test's own environment must not count.
    port = settings.model_fields["http_port"].default
    assert isinstance(port, int)
    return port


def test_compose_names_every_part() -> None:
    parts = {"kafka", "minio", "postgres", "init", "ingest", "triage", "notify"}
    assert parts <= SERVICES.keys()


@pytest.mark.parametrize("app", APPS)
def test_each_service_builds_runs_and_exposes_itself(app: str) -> None:
    build = SERVICES[app]["build"]
    assert (ROOT / build["context"]).resolve() == ROOT
    assert build["dockerfile"] == f"services/{app}/Dockerfile"
    dockerfile = (ROOT / build["dockerfile"]).read_text(encoding="utf-8")
    assert f"--package qianliyan-{app}" in dockerfile
    assert f'CMD ["qianliyan-{app}"]' in dockerfile
    assert f"EXPOSE {default_http_port(APPS[app])}" in dockerfile
    project = tomllib.loads((ROOT / f"services/{app}/pyproject.toml").read_text(encoding="utf-8"))
    assert f"qianliyan-{app}" in project["project"]["scripts"]


def test_init_runs_the_stack_init_from_the_notify_image() -> None:
    assert SERVICES["init"]["build"] == SERVICES["notify"]["build"]
    assert "qianliyan.notify.init_stack" in SERVICES["init"]["command"]
    assert (ROOT / "services/notify/src/qianliyan/notify/init_stack.py").is_file()


@pytest.mark.parametrize("service", CONFIGURED)
def test_every_variable_is_a_real_setting(service: str) -> None:
    env = environment(service)
    assert env, f"{service} is given no settings"
    foreign = [key for key in env if not key.startswith(PREFIX[service])]
    assert not foreign, f"{service} is given variables its settings never read: {foreign}"
    settings = CONFIGURED[service]
    unknown = [name for name in settings_env(service) if field_of(settings, name) is None]
    assert not unknown, f"{service}: no such field in {settings.__name__}: {unknown}"


@pytest.mark.parametrize("service", CONFIGURED)
def test_the_settings_take_every_value(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in environment(service).items():
        monkeypatch.setenv(key, value)
    settings: Any = CONFIGURED[service]()
    for name, value in settings_env(service).items():
        loaded = settings
        for part in name.split("__"):
            loaded = getattr(loaded, part)
        loaded = loaded.get_secret_value() if hasattr(loaded, "get_secret_value") else loaded
        assert str(loaded) == value, f"{service}: {name}"


@pytest.mark.parametrize("app", APPS)
def test_services_listen_inside_on_the_port_they_publish(app: str) -> None:
    env = settings_env(app)
    assert env["http_host"] == "0.0.0.0"
    assert int(env["http_port"]) in published(app)


@pytest.mark.parametrize("app", APPS)
def test_services_publish_their_default_port(app: str) -> None:
    port = default_http_port(APPS[app])
    assert published(app) == {port: port}


def test_infra_is_published_on_the_default_ports() -> None:
    assert KAFKA_PORT in published("kafka").values()
    assert MINIO_PORT in published("minio").values()
    assert POSTGRES_PORT in published("postgres").values()


@pytest.mark.parametrize("service", CONFIGURED)
def test_services_reach_infra_by_name_on_the_default_ports(service: str) -> None:
    env = settings_env(service)
    assert env["kafka__bootstrap_servers"] == f"kafka:{KAFKA_PORT}"
    advertised = environment("kafka")["KAFKA_ADVERTISED_LISTENERS"]
    assert f"//kafka:{KAFKA_PORT}" in advertised
    if "storage__endpoint" in env:
        assert env["storage__endpoint"] == f"minio:{MINIO_PORT}"
    if "postgres__dsn" in env:
        dsn = urlsplit(env["postgres__dsn"])
        assert (dsn.hostname, dsn.port) == ("postgres", POSTGRES_PORT)


@pytest.mark.parametrize("service", CONFIGURED)
def test_services_use_the_credentials_the_infra_is_given(service: str) -> None:
    env, minio, postgres = settings_env(service), environment("minio"), environment("postgres")
    if "storage__endpoint" in env:
        assert env["storage__access_key"] == minio["MINIO_ROOT_USER"]
        assert env["storage__secret_key"] == minio["MINIO_ROOT_PASSWORD"]
    if "postgres__dsn" in env:
        dsn = urlsplit(env["postgres__dsn"])
        assert dsn.username == postgres["POSTGRES_USER"]
        assert dsn.password == postgres["POSTGRES_PASSWORD"]
        assert dsn.path == f"/{postgres['POSTGRES_DB']}"


@pytest.mark.parametrize("service", CONFIGURED)
def test_bucket_and_topic_names_are_the_defaults(service: str) -> None:
    names = {
        name: value
        for name, value in settings_env(service).items()
        if name.endswith(("__bucket", "_topic"))
    }
    for name, value in names.items():
        field = field_of(CONFIGURED[service], name)
        assert field is not None
        assert value == field.default, f"{service}: {name}"


def test_services_start_after_init_and_init_after_the_infra() -> None:
    for app in APPS:
        condition = SERVICES[app]["depends_on"]["init"]["condition"]
        assert condition == "service_completed_successfully"
    for part in ("kafka", "minio", "postgres"):
        assert SERVICES["init"]["depends_on"][part]["condition"] == "service_healthy"
        assert SERVICES[part]["healthcheck"]["test"]


def test_kafka_creates_no_topic_on_its_own() -> None:
    kafka = environment("kafka")
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_no_password_is_written_in_the_file() -> None:
    # Each comes from .env, which deploy/compose/make_env.py makes on the user's machine.
    env, minio, postgres = settings_env("notify"), environment("minio"), environment("postgres")
    assert minio["MINIO_ROOT_PASSWORD"] == "${QLY_MINIO_ROOT_PASSWORD}"
    assert postgres["POSTGRES_PASSWORD"] == "${QLY_POSTGRES_PASSWORD}"
    assert urlsplit(env["postgres__dsn"]).password == "${QLY_POSTGRES_PASSWORD}"


def test_make_env_writes_each_password_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(make_env, "ENV_FILE", tmp_path / ".env")
    assert make_env.main() == 0
    first = (tmp_path / ".env").read_text()
    names = dict(line.split("=", 1) for line in first.splitlines())
    assert set(names) == {"QLY_POSTGRES_PASSWORD", "QLY_MINIO_ROOT_PASSWORD"}
    assert all(len(value) >= 20 for value in names.values())
    assert oct((tmp_path / ".env").stat().st_mode & 0o777) == "0o600"
    make_env.main()
    assert (tmp_path / ".env").read_text() == first
