"""Ingest's idempotency ledger, as versioned Alembic migrations (plain SQL in each step)."""

from __future__ import annotations

from pathlib import Path

from qianliyan.shared import migrations

VERSION_TABLE = "ingest_schema_version"


def upgrade(dsn: str) -> None:
    """Bring ingest's submission ledger to the newest schema (idempotent)."""
    migrations.upgrade(dsn, script_location=Path(__file__).parent, version_table=VERSION_TABLE)
