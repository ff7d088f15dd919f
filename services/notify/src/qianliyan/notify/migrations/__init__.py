"""Versioned schema migrations of the read models (Alembic, plain SQL in each step).

`upgrade(dsn)` brings a database to the newest schema; it is what the stack's init
step and the compose `init` service run.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

SCRIPT_LOCATION = Path(__file__).parent


def alembic_config(dsn: str) -> Config:
    """An Alembic configuration pointing at `dsn`, with no alembic.ini needed."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    # Alembic runs on SQLAlchemy; psycopg (v3) is its driver here, asyncpg serves the app.
    url = dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(dsn: str, revision: str = "head") -> None:
    """Apply every migration up to `revision` (idempotent: applied steps are skipped)."""
    command.upgrade(alembic_config(dsn), revision)
