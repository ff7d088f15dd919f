"""Ingest's settings: environment variables prefixed `INGEST_`, nested with `__`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from qianliyan.shared.settings import (
    AccessSettings,
    KafkaSettings,
    PostgresSettings,
    StorageSettings,
)


class IngestSettings(BaseSettings):
    """Where ingest listens, what it talks to, and the limits it enforces."""

    model_config = SettingsConfigDict(env_prefix="INGEST_", env_nested_delimiter="__")

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8081, ge=1, le=65535)
    kafka: KafkaSettings = KafkaSettings()
    storage: StorageSettings = StorageSettings()
    postgres: PostgresSettings = PostgresSettings()
    access: AccessSettings = AccessSettings()
    org_file: Path | None = Field(
        default=None,
        description="units and their stations, as notify reads them (an integration limited "
        "to a unit sends reports of it and of what lies below it); the packaged default "
        "when unset",
    )
    notify_url: str = Field(
        default="http://127.0.0.1:8083",
        description="Where ingest reads a report's status for the phone (notify's API)",
    )
    correlation_area: str = Field(
        default="bureau",
        min_length=1,
        max_length=100,
        pattern=r"\S",
        description="The area whose reports triage may group together, keying them all to "
        "one partition: the whole deployment, unless one Kafka cluster serves several "
        "bureaus that never share an incident (then each bureau's ingest names its own)",
    )
    max_photo_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_photos: int = Field(default=5, ge=0, le=5)
    max_report_bytes: int = Field(default=30 * 1024 * 1024, ge=1024)
    max_photo_pixels: int = Field(default=50_000_000, ge=1)
    in_flight_wait_s: float = Field(
        default=10.0,
        ge=0,
        description="How long a retry waits for an earlier attempt with its key to finish",
    )
    claim_lease_s: float = Field(
        default=60.0,
        gt=0,
        description="After this, a retry takes over an attempt that never finished",
    )
