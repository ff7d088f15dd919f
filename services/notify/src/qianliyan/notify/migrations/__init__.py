"""Notify's read-model schema, as versioned Alembic migrations (plain SQL in each step)."""

from __future__ import annotations

from pathlib import Path

from qianliyan.shared import migrations

VERSION_TABLE = "notify_schema_version"


def upgrade(dsn: str) -> None:
    """Bring notify's read models to the newest schema (idempotent)."""
    migrations.upgrade(dsn, script_location=Path(__file__).parent, version_table=VERSION_TABLE)
