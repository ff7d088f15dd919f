"""Notify's migrations that fill new columns and tables from rows already there."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import pytest
from alembic import command

from qianliyan.notify import migrations
from qianliyan.notify.rebuild import in_schema
from qianliyan.shared.migrations import alembic_config
from qianliyan.stack.config import StackConfig

pytestmark = pytest.mark.integration


@pytest.fixture
async def schema(infra: StackConfig) -> AsyncIterator[tuple[asyncpg.Connection, str]]:
    """A connection to an empty schema of its own, and that schema's DSN."""
    name = f"migrate_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(infra.postgres_dsn)
    await admin.execute(f"CREATE SCHEMA {name}")
    dsn = in_schema(infra.postgres_dsn, name)
    connection = await asyncpg.connect(dsn)
    try:
        yield connection, dsn
    finally:
        await connection.close()
        await admin.execute(f"DROP SCHEMA {name} CASCADE")
        await admin.close()


async def migrate(dsn: str, revision: str) -> None:
    config = alembic_config(
        dsn,
        script_location=Path(migrations.__file__).parent,
        version_table=migrations.VERSION_TABLE,
    )
    await asyncio.to_thread(command.upgrade, config, revision)


async def test_claims_made_before_their_lease_run_out_a_minute_after(
    schema: tuple[asyncpg.Connection, str],
) -> None:
    connection, dsn = schema
    await migrate(dsn, "0009")
    incident = uuid4()
    await connection.execute(
        "INSERT INTO incident_action_claims (incident_id, version, event_id, claimed_at) "
        "VALUES ($1, 3, $2, '2026-12-01T08:00:00Z')",
        incident,
        uuid4(),
    )
    await migrate(dsn, "0010")
    held = await connection.fetchval(
        "SELECT claimed_until - claimed_at FROM incident_action_claims WHERE incident_id = $1",
        incident,
    )
    assert held.total_seconds() == 60


async def test_the_first_action_on_each_version_is_taken_from_the_timeline(
    schema: tuple[asyncpg.Connection, str],
) -> None:
    connection, dsn = schema
    await migrate(dsn, "0010")
    incident, other = uuid4(), uuid4()
    acknowledged, resolved, assigned, noted = (UUID(int=n) for n in (4, 3, 2, 1))
    rows = [
        (uuid4(), incident, "08:00", "ReportTriaged", '{"severity": "major"}'),
        (acknowledged, incident, "08:05", "AlertAcknowledged", '{"acted_on_version": 1}'),
        # Two on version 2: the earlier one took it, whatever the ids' order.
        (resolved, incident, "08:10", "AlertResolved", '{"acted_on_version": 2}'),
        (assigned, incident, "08:11", "AlertAssigned", '{"acted_on_version": 2}'),
        (uuid4(), incident, "08:12", "AlertRaised", '{"round": 0}'),
        (noted, other, "08:20", "AlertNoteAdded", '{"acted_on_version": 2}'),
    ]
    await connection.executemany(
        "INSERT INTO incident_timeline (event_id, incident_id, occurred_at, actor, event_type, "
        "detail) VALUES ($1, $2, ('2026-12-01T' || $3 || ':00Z')::timestamptz, '调度员', $4, "
        "$5::jsonb)",
        rows,
    )
    await migrate(dsn, "head")
    taken = await connection.fetch(
        "SELECT incident_id, acted_on_version, event_id FROM incident_actions"
    )
    assert {tuple(row) for row in taken} == {
        (incident, 1, acknowledged),
        (incident, 2, resolved),
        (other, 2, noted),
    }
