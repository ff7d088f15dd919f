"""Creating what the services expect to exist: Kafka topics, the photo bucket, the schema."""

from __future__ import annotations

from qianliyan.stack.blocking import run_blocking
from qianliyan.stack.config import StackConfig
from qianliyan.stack.process import say


def init_stack(config: StackConfig) -> None:
    """Create topics, bucket and database schema on a running stack (idempotent)."""
    # Imported here so that managing the stack never depends on the services' code importing.
    from qianliyan.ingest import migrations as ingest_migrations
    from qianliyan.notify import migrations as notify_migrations
    from qianliyan.shared.bootstrap import ensure_bucket, ensure_topics
    from qianliyan.shared.settings import KafkaSettings, StorageSettings

    created_topics = run_blocking(
        ensure_topics(KafkaSettings(bootstrap_servers=config.kafka_bootstrap))
    )
    if created_topics:
        say(f"created Kafka topics: {', '.join(created_topics)}")
    storage = StorageSettings(
        endpoint=config.minio_endpoint,
        access_key=config.minio_root_user,
        secret_key=config.minio_root_password,
        bucket=config.bucket,
    )
    if run_blocking(ensure_bucket(storage)):
        say(f"created bucket {config.bucket}")
    ingest_migrations.upgrade(config.postgres_dsn)
    notify_migrations.upgrade(config.postgres_dsn)
