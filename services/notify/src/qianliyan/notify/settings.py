"""Notify's settings: environment variables prefixed `NOTIFY_`, nested with `__`."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from qianliyan.notify.domain.outbound import OutboundPolicy
from qianliyan.shared.settings import (
    AccessSettings,
    KafkaSettings,
    PostgresSettings,
    StorageSettings,
)


class NotifySettings(BaseSettings):
    """Where notify listens, the read-model database, and its consumer group."""

    model_config = SettingsConfigDict(env_prefix="NOTIFY_", env_nested_delimiter="__")

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8083, ge=1, le=65535)
    kafka: KafkaSettings = KafkaSettings()
    postgres: PostgresSettings = PostgresSettings()
    storage: StorageSettings = StorageSettings()
    access: AccessSettings = AccessSettings()
    org_file: Path | None = Field(
        default=None, description="units and their stations; the packaged default when unset"
    )
    consumer_group: str = "qianliyan-notify"
    action_claim_lease_s: float = Field(
        default=60.0,
        gt=0,
        description="After this, an action on an incident version takes over the claim of "
        "an earlier one whose request died; longer than a publish can take to land",
    )
    max_batch: int = Field(default=500, ge=1)
    routing_file: Path | None = Field(
        default=None, description="the alert routing YAML; the packaged default when unset"
    )
    alerter_interval_s: float = Field(default=1.0, gt=0, le=60)
    max_parallel_deliveries: int = Field(default=20, ge=1, le=500)
    public_url: str | None = Field(
        default=None, description="where people open the dispatch page, for links in messages"
    )
    # NoDecode: the variable may be a plain comma-separated list, which is not JSON.
    outbound_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="internal hosts alerts may go to (public ones need no listing): "
        "host, host:port, IP address or CIDR network; comma-separated or a JSON list",
    )

    @field_validator("outbound_allow", mode="before")
    @classmethod
    def _allow_list_from_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        # A JSON list, or entries split at commas (where "[::1]:8443" is an entry, not JSON).
        with contextlib.suppress(ValueError):
            if isinstance(listed := json.loads(value), list):
                return listed
        return [entry.strip() for entry in value.split(",") if entry.strip()]

    @field_validator("outbound_allow")
    @classmethod
    def _allow_list_understood(cls, entries: list[str]) -> list[str]:
        OutboundPolicy.from_entries(entries)  # fails at start-up naming the bad entry
        return entries
