"""Notify's settings: environment variables prefixed `NOTIFY_`, nested with `__`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from qianliyan.shared.settings import KafkaSettings, PostgresSettings, StorageSettings


class NotifySettings(BaseSettings):
    """Where notify listens, the read-model database, and its consumer group."""

    model_config = SettingsConfigDict(env_prefix="NOTIFY_", env_nested_delimiter="__")

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8083, ge=1, le=65535)
    kafka: KafkaSettings = KafkaSettings()
    postgres: PostgresSettings = PostgresSettings()
    storage: StorageSettings = StorageSettings()
    consumer_group: str = "qianliyan-notify"
    max_batch: int = Field(default=500, ge=1)
    routing_file: Path | None = Field(
        default=None, description="the alert routing YAML; the packaged default when unset"
    )
    alerter_interval_s: float = Field(default=1.0, gt=0, le=60)
    max_parallel_deliveries: int = Field(default=20, ge=1, le=500)
    public_url: str | None = Field(
        default=None, description="where people open the dispatch page, for links in messages"
    )
