"""The access tables (people, machine tokens, revocations), as versioned Alembic migrations.

They belong to no one service: ingest and notify both sign people in and check tokens.
"""

from __future__ import annotations

from pathlib import Path

from qianliyan.shared import migrations

VERSION_TABLE = "access_schema_version"


def upgrade(dsn: str) -> None:
    """Bring the access tables to the newest schema (idempotent)."""
    migrations.upgrade(dsn, script_location=Path(__file__).parent, version_table=VERSION_TABLE)
