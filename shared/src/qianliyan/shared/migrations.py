"""Versioned schema migrations with Alembic: the one way every service changes its schema.

Each service keeps its steps (plain SQL) in its own `migrations/versions/` folder and
its own version table, so services migrate independently in one database.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import create_engine, pool


def alembic_config(dsn: str, *, script_location: Path, version_table: str) -> Config:
    """An Alembic configuration for one service's migrations, with no alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("version_table", version_table)
    # Alembic runs on SQLAlchemy with psycopg (v3) as its driver; asyncpg serves the apps.
    url = dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(dsn: str, *, script_location: Path, version_table: str) -> None:
    """Apply every migration not yet applied (idempotent)."""
    config = alembic_config(dsn, script_location=script_location, version_table=version_table)
    command.upgrade(config, "head")


def run_migrations_online() -> None:
    """The body of each service's `env.py`: migrate inside one transaction."""
    config = context.config
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("sqlalchemy.url is not set; use qianliyan.shared.migrations.upgrade")
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                transactional_ddl=True,
                version_table=config.get_main_option("version_table") or "alembic_version",
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()
