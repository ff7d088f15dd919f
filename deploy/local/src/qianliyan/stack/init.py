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
    from qianliyan.shared.access import migrations as access_migrations
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
    access_migrations.upgrade(config.postgres_dsn)
    ensure_access(config)


def ensure_access(config: StackConfig) -> None:
    """Generate the signing key and the first admin on the stack's first start."""
    from qianliyan.shared.access.bootstrap import ensure_first_admin, ensure_signing_key
    from qianliyan.shared.secret_files import write_secret

    if ensure_signing_key(config.token_key_file):
        say(f"generated the token signing key {config.token_key_file}")
    password = run_blocking(ensure_first_admin(config.postgres_dsn))
    if password is not None:
        write_secret(config.admin_password_file, password.encode())
        say(f"created the user 'admin'; its password is in {config.admin_password_file}")


def sign_in_hint(config: StackConfig) -> str:
    """How to sign in to this stack, for `stack up` to print."""
    if not config.admin_password_file.exists():
        return "sign in with a user an admin created for you"
    return (
        f"sign in at http://{config.host}:{config.notify_port}/dispatch as 'admin' with the "
        f"password in {config.admin_password_file}; add people with `uv run qianliyan users add`"
    )
