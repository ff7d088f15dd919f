"""Settings of the local stack: where things live, which versions and ports are used."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated, Literal, get_args
from urllib.parse import quote

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from qianliyan.shared.secret_files import write_secret

ServiceName = Literal["ingest", "triage", "notify"]
SERVICE_NAMES: tuple[ServiceName, ...] = get_args(ServiceName)

Port = Annotated[int, Field(ge=1, le=65535)]


def _xdg_dir(variable: str, fallback: str) -> Path:
    return Path(os.environ.get(variable) or Path.home() / fallback)


def _default_cache_dir() -> Path:
    return _xdg_dir("XDG_CACHE_HOME", ".cache") / "qianliyan"


def _default_data_dir() -> Path:
    """`<repo>/.stack` for a checkout (already git-ignored), else the user's state directory."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file() and (
            parent / "deploy" / "local" / "pyproject.toml"
        ).is_file():
            return parent / ".stack"
    return _xdg_dir("XDG_STATE_HOME", ".local/state") / "qianliyan"


# Extra instances of a service (a consumer group of several on one machine) listen this
# many ports above the first.
INSTANCE_PORT_STEP = 1000


class StackConfig(BaseSettings):
    """Everything the stack needs to know, overridable through `QLY_STACK_*` variables."""

    model_config = SettingsConfigDict(env_prefix="QLY_STACK_")

    cache_dir: Path = Field(default_factory=_default_cache_dir)
    data_dir: Path = Field(default_factory=_default_data_dir)
    host: str = "127.0.0.1"

    kafka_version: str = "4.1.1"
    kafka_port: Port = 9092
    kafka_controller_port: Port = 9093

    minio_version: str = "v0.0.0-20260212201848-7aac2a2c5b7c"
    minio_port: Port = 9000
    minio_console_port: Port = 9001
    minio_root_user: str = "qianliyan"
    minio_root_password: SecretStr = Field(
        default=SecretStr(""), description="generated into secrets/ on the first start if unset"
    )
    bucket: str = "incident-photos"

    postgres_port: Port = 5432
    postgres_db: str = "qianliyan"
    postgres_user: str = "qianliyan"
    postgres_password: SecretStr = Field(
        default=SecretStr(""), description="generated into secrets/ on the first start if unset"
    )

    triage_rules_file: Path | None = Field(
        default=None, description="Severity rule file for triage; its packaged default if unset"
    )
    notify_routing_file: Path | None = Field(
        default=None, description="Alert routing file for notify; its packaged default if unset"
    )

    ingest_port: Port = 8081
    triage_port: Port = 8082
    notify_port: Port = 8083

    service_settings: dict[str, str] = Field(
        default_factory=dict,
        description="more settings for every service instance, as environment variables",
    )

    @field_validator("minio_root_password")
    @classmethod
    def _minio_accepts_password(cls, password: SecretStr) -> SecretStr:
        # MinIO refuses to start with a shorter root password; say so before it does.
        if password.get_secret_value() and len(password.get_secret_value()) < 8:
            raise ValueError("MinIO needs a root password of at least 8 characters")
        return password

    @model_validator(mode="after")
    def _generated_passwords(self) -> StackConfig:
        # The repository holds no password: each stack makes its own on its first start.
        # A stack that started before passwords were generated keeps the one it was made with.
        for field, part, earlier in (
            ("minio_root_password", "minio", "qianliyan-dev-secret"),
            ("postgres_password", "postgres", "qianliyan"),
        ):
            if field not in self.model_fields_set or not getattr(self, field).get_secret_value():
                setattr(self, field, SecretStr(self._stack_secret(field, part, earlier)))
        return self

    def _stack_secret(self, field: str, part: str, earlier: str) -> str:
        path = self.data_dir / "secrets" / field.replace("_", "-")
        if path.exists():
            return path.read_text(encoding="utf-8").strip()
        value = earlier if (self.data_dir / part).exists() else secrets.token_urlsafe(18)
        write_secret(path, value.encode())
        return value

    @property
    def kafka_bootstrap(self) -> str:
        """Bootstrap servers for Kafka clients."""
        return f"{self.host}:{self.kafka_port}"

    @property
    def minio_endpoint(self) -> str:
        """host:port of MinIO's S3 API."""
        return f"{self.host}:{self.minio_port}"

    @property
    def postgres_dsn(self) -> str:
        """libpq URL of the application database, as its owning role."""
        user = quote(self.postgres_user, safe="")
        password = quote(self.postgres_password.get_secret_value(), safe="")
        database = quote(self.postgres_db, safe="")
        return f"postgresql://{user}:{password}@{self.host}:{self.postgres_port}/{database}"

    @property
    def secrets_dir(self) -> Path:
        """Where the stack keeps the secrets it generated (never in the repository)."""
        return self.data_dir / "secrets"

    @property
    def token_key_file(self) -> Path:
        """The Ed25519 key that signs this stack's tokens (made by `init_stack`)."""
        return self.secrets_dir / "token-signing-key.pem"

    @property
    def admin_password_file(self) -> Path:
        """The first admin's password, generated on the first start."""
        return self.secrets_dir / "admin-password"

    def service_port(self, service: str, instance: int = 0) -> int:
        """HTTP port a service listens on; extra instances are 1000 ports further each."""
        ports = {"ingest": self.ingest_port, "triage": self.triage_port, "notify": self.notify_port}
        if service not in ports:
            raise ValueError(f"unknown service {service!r}; expected one of {SERVICE_NAMES}")
        return ports[service] + INSTANCE_PORT_STEP * instance

    def service_env(self, service: str, instance: int = 0) -> dict[str, str]:
        """Environment variables that point one instance of a service at this stack."""
        port = self.service_port(service, instance)
        prefix = service.upper()
        env = {
            f"{prefix}_HTTP_HOST": self.host,
            f"{prefix}_HTTP_PORT": str(port),
            f"{prefix}_KAFKA__BOOTSTRAP_SERVERS": self.kafka_bootstrap,
        }
        if service == "ingest":
            env[f"{prefix}_NOTIFY_URL"] = f"http://{self.host}:{self.notify_port}"
        # Every service checks tokens itself, against the key and the revocations.
        env[f"{prefix}_POSTGRES__DSN"] = self.postgres_dsn
        env[f"{prefix}_ACCESS__TOKEN_KEY_FILE"] = str(self.token_key_file)
        if service == "triage" and self.triage_rules_file is not None:
            env[f"{prefix}_RULES_FILE"] = str(self.triage_rules_file)
        if service == "notify":
            env[f"{prefix}_PUBLIC_URL"] = f"http://{self.host}:{self.notify_port}"
            if self.notify_routing_file is not None:
                env[f"{prefix}_ROUTING_FILE"] = str(self.notify_routing_file)
        if service in ("ingest", "notify"):
            env |= {
                f"{prefix}_STORAGE__ENDPOINT": self.minio_endpoint,
                f"{prefix}_STORAGE__ACCESS_KEY": self.minio_root_user,
                f"{prefix}_STORAGE__SECRET_KEY": self.minio_root_password.get_secret_value(),
                f"{prefix}_STORAGE__BUCKET": self.bucket,
            }
        return env | {
            name: value
            for name, value in self.service_settings.items()
            if name.startswith(f"{prefix}_")
        }
