"""Notify's settings: environment variables prefixed `NOTIFY_`, nested with `__`."""

from __future__ import annotations

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
