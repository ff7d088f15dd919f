"""Typed settings shared by every service: one nested model per real part.

Each service composes these into its own `BaseSettings` with its own prefix
(`INGEST_`, `TRIAGE_`, `NOTIFY_`) and `__` as the nesting delimiter, so
`INGEST_KAFKA__BOOTSTRAP_SERVERS` configures ingest's Kafka connection.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr

from qianliyan.shared import topics


class KafkaSettings(BaseModel):
    """Where Kafka is and how the project's topics are named and shaped."""

    bootstrap_servers: str = "127.0.0.1:9092"
    reports_topic: str = topics.REPORTS
    triage_topic: str = topics.TRIAGE
    alerts_topic: str = topics.ALERTS
    partitions: int = Field(default=3, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    request_timeout_ms: int = Field(default=15_000, ge=1_000)
    publish_timeout_s: float = Field(
        default=10.0, gt=0, description="How long a publish may wait for acks before failing"
    )


class StorageSettings(BaseModel):
    """An S3-compatible object store (MinIO here) holding the photos."""

    endpoint: str = "127.0.0.1:9000"
    access_key: str = "qianliyan"
    secret_key: SecretStr = SecretStr("qianliyan-dev-secret")
    bucket: str = "incident-photos"
    secure: bool = False
    region: str = "us-east-1"
    public_endpoint: str | None = Field(
        default=None,
        description="host:port that browsers reach the store at, for signed photo links",
    )
    link_ttl_s: int = Field(default=900, ge=1, le=7 * 24 * 3600)
    upload_retention_days: int = Field(
        default=7,
        ge=1,
        description="Photos uploaded one by one but never referenced by a report expire then",
    )


class PostgresSettings(BaseModel):
    """The PostgreSQL database holding the read models."""

    dsn: SecretStr = SecretStr("postgresql://qianliyan:qianliyan@127.0.0.1:5432/qianliyan")
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=10, ge=1)
