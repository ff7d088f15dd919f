"""Triage's settings: environment variables prefixed `TRIAGE_`, nested with `__`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from qianliyan.shared.settings import AccessSettings, KafkaSettings, PostgresSettings


class TriageSettings(BaseSettings):
    """Where triage's health endpoint listens and how it joins the pipeline."""

    model_config = SettingsConfigDict(env_prefix="TRIAGE_", env_nested_delimiter="__")

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8082, ge=1, le=65535)
    kafka: KafkaSettings = KafkaSettings()
    postgres: PostgresSettings = PostgresSettings(pool_min_size=0, pool_max_size=2)
    access: AccessSettings = AccessSettings()
    consumer_group: str = "qianliyan-triage"
    transactional_id_prefix: str | None = Field(
        default=None,
        description=(
            "Prefix of the transactional ids, one per input partition, shared by every "
            "member of the group so whoever is given a partition fences its previous "
            "owner; the consumer group's name when unset"
        ),
    )
    max_batch: int = Field(
        default=2000,
        ge=1,
        description=(
            "Most records fetched at once, split by partition into one transaction each; "
            "only a backlog fills it. Kafka's side of a transaction weighs as much as a few "
            "hundred records: working through a backlog, the broker spent about 60 us of CPU "
            "an event at 2,000 against 115 at 500"
        ),
    )
    regroup_window_h: float = Field(
        default=24 * 9,
        gt=0,
        description=(
            "How far back (by time appended) a member re-reads a partition it is given, to "
            "rebuild its grouping: the grouping's 48 h memory plus a week for phones that "
            "were offline. The topics keep everything; this only bounds the re-read."
        ),
    )
    rules_file: Path | None = Field(
        default=None, description="The severity rule file; the packaged default when unset"
    )

    @property
    def transactional_ids(self) -> str:
        """The prefix in force for this group's transactional ids."""
        return self.transactional_id_prefix or self.consumer_group
