"""Migrations that fill new columns and tables from rows already there."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from uuid import UUID, uuid4

import asyncpg
import pytest
from alembic import command

from qianliyan.ingest import migrations as ingest_migrations
from qianliyan.notify import migrations
from qianliyan.notify.projections.alerts import level_of
from qianliyan.notify.projections.incidents import CURRENT_VERSION
from qianliyan.notify.rebuild import in_schema
from qianliyan.shared.access import migrations as access_migrations
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


async def migrate(
    dsn: str, revision: str, of: ModuleType = migrations, *, downgrade: bool = False
) -> None:
    """Bring the schema at `dsn` to `revision` of `of`'s migrations (notify's by default),
    up or, with `downgrade`, down."""
    config = alembic_config(
        dsn, script_location=Path(of.__file__ or "").parent, version_table=of.VERSION_TABLE
    )
    step = command.downgrade if downgrade else command.upgrade
    await asyncio.to_thread(step, config, revision)


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


async def test_people_added_and_tokens_issued_and_revoked_before_are_in_the_access_trail(
    schema: tuple[asyncpg.Connection, str],
) -> None:
    connection, dsn = schema
    await migrate(dsn, "0001", access_migrations)
    await connection.execute(
        "INSERT INTO access_users (username, display_name, password_hash, roles, units, "
        "created_at, created_by) VALUES ('wang', '王工', 'hash', '{manager}', '{丰台站}', "
        "'2026-11-01T08:00:00Z', 'admin')"
    )
    await connection.execute(
        "INSERT INTO access_tokens (token_id, name, scopes, created_at, created_by, expires_at, "
        "revoked_at, revoked_by) VALUES ('t1', 'bridge', '{reports:submit-for-others}', "
        "'2026-11-02T08:00:00Z', 'admin', '2027-01-01T00:00:00Z', '2026-11-03T08:00:00Z', "
        "'ops-cli')"
    )
    await connection.execute(
        "INSERT INTO access_revoked_tokens (token_id, expires_at, revoked_by, reason) "
        "VALUES ('t1', '2027-01-01T00:00:00Z', 'ops-cli', 'retired')"
    )
    await migrate(dsn, "head", access_migrations)
    rows = await connection.fetch(
        "SELECT actor, action, subject, detail::text FROM access_changes ORDER BY occurred_at"
    )
    assert [(r["actor"], r["action"], r["subject"]) for r in rows] == [
        ("admin", "user_added", "wang"),
        ("admin", "token_issued", "t1"),
        ("ops-cli", "token_revoked", "t1"),
    ]
    details = [json.loads(r["detail"]) for r in rows]
    assert details[0] == {"display_name": "王工", "roles": ["manager"], "units": ["丰台站"]}
    assert details[1]["scopes"] == ["reports:submit-for-others"]
    assert details[2] == {"name": "bridge", "reason": "retired"}


async def test_machine_tokens_signed_out_before_stay_void_until_they_expire(
    schema: tuple[asyncpg.Connection, str],
) -> None:
    connection, dsn = schema
    await migrate(dsn, "0002", access_migrations)
    await connection.execute(
        "INSERT INTO access_tokens (token_id, name, scopes, created_by, expires_at) VALUES "
        "('bridge', 'bridge', '{alerts:read}', 'admin', '2027-03-01T00:00:00Z')"
    )
    await connection.execute(
        "INSERT INTO access_revoked_tokens (token_id, expires_at, revoked_by, reason) VALUES "
        "('bridge', '2026-12-01T12:00:00Z', 'bridge', 'signed out'), "
        "('session', '2026-12-01T12:00:00Z', 'wang', 'signed out')"
    )
    await migrate(dsn, "head", access_migrations)
    rows = await connection.fetch("SELECT token_id, expires_at FROM access_revoked_tokens")
    void_until = {r["token_id"]: r["expires_at"].isoformat() for r in rows}
    assert void_until == {
        "bridge": "2027-03-01T00:00:00+00:00",  # the machine token's own expiry
        "session": "2026-12-01T12:00:00+00:00",  # a person's session: as it was
    }


async def test_each_incident_version_is_kept_and_lifted_past_the_versions_acted_on(
    schema: tuple[asyncpg.Connection, str],
) -> None:
    connection, dsn = schema
    await migrate(dsn, "0011")
    live, rebuilt, untouched = uuid4(), uuid4(), uuid4()
    await connection.executemany(
        "INSERT INTO incidents (incident_id, version) VALUES ($1, $2)",
        [(live, 5), (rebuilt, 2), (untouched, 3)],
    )
    # Live, the version is past every action; a rebuild could leave it on one (2 here).
    await connection.executemany(
        "INSERT INTO incident_actions (incident_id, acted_on_version, event_id) "
        "VALUES ($1, $2, $3)",
        [(live, 2, uuid4()), (live, 4, uuid4()), (rebuilt, 2, uuid4())],
    )
    await migrate(dsn, "0012")
    expected = {live: 5, rebuilt: 3, untouched: 3}
    versions = await connection.fetch(
        f"SELECT incident_id, {CURRENT_VERSION} AS version FROM incidents"
    )
    assert {row["incident_id"]: row["version"] for row in versions} == expected
    # Going back keeps each version as it read, or the next action on a lifted one
    # would be taken for a copy of the one acted on there.
    await migrate(dsn, "0011", downgrade=True)
    versions = await connection.fetch("SELECT incident_id, version FROM incidents")
    assert {row["incident_id"]: row["version"] for row in versions} == expected


async def test_deliveries_of_the_last_release_still_record_and_read_as_the_raised_level(
    schema: tuple[asyncpg.Connection, str],
) -> None:
    connection, dsn = schema
    await migrate(dsn, "0013")
    incident = uuid4()
    await connection.execute(
        "INSERT INTO alerts (incident_id, round, raised_at, severity, route, routing_version) "
        "VALUES ($1, 0, now(), 'major', 'major', 'r1')",
        incident,
    )
    # The last release's statements, as it runs them while this one rolls out.
    await connection.execute(
        "INSERT INTO delivery_claims (incident_id, round, step, recipient, channel, attempts, "
        "claimed_until) VALUES ($1, 0, 0, 'duty', 'wecom', 1, now()) "
        "ON CONFLICT (incident_id, round, step, recipient, channel) DO UPDATE SET "
        "attempts = delivery_claims.attempts + 1",
        incident,
    )
    await connection.execute(
        "INSERT INTO alert_deliveries (incident_id, round, step, recipient, channel, outcome, "
        "attempts, updated_at) VALUES ($1, 0, 0, 'duty', 'wecom', 'delivered', 1, now()) "
        "ON CONFLICT (incident_id, round, step, recipient, channel) DO UPDATE SET "
        "outcome = EXCLUDED.outcome",
        incident,
    )
    for table in ("delivery_claims", "alert_deliveries"):
        level = await connection.fetchval(
            f"SELECT {level_of(table)} FROM {table} WHERE incident_id = $1",
            incident,
        )
        assert level == 3  # major: what the alert was raised at
    await migrate(dsn, "0012", downgrade=True)
    assert await connection.fetchval("SELECT count(*) FROM alert_deliveries") == 1


async def test_each_incident_gets_every_unit_its_reports_came_from(
    schema: tuple[asyncpg.Connection, str],
) -> None:
    connection, dsn = schema
    await migrate(dsn, "0013")
    shared, alone, without = uuid4(), uuid4(), uuid4()
    await connection.executemany(
        "INSERT INTO incidents (incident_id, version, unit) VALUES ($1, 1, $2)",
        [(shared, "北京南站"), (alone, "丰台站"), (without, None)],
    )
    await connection.executemany(
        "INSERT INTO reports (report_id, incident_id, unit, captured_at) "
        "VALUES ($1, $2, $3, now())",
        [
            (uuid4(), shared, "北京南站"),
            (uuid4(), shared, "丰台西站"),
            (uuid4(), shared, "丰台西站"),
            (uuid4(), alone, "丰台站"),
            (uuid4(), without, None),
        ],
    )
    await migrate(dsn, "head")
    rows = await connection.fetch("SELECT incident_id, units FROM incidents")
    assert {row["incident_id"]: sorted(row["units"]) for row in rows} == {
        shared: ["丰台西站", "北京南站"],
        alone: ["丰台站"],
        without: [],
    }
    await migrate(dsn, "0013", downgrade=True)
    columns = await connection.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'incidents' "
        "AND table_schema = current_schema()"
    )
    assert "units" not in {row["column_name"] for row in columns}


async def test_submissions_filed_before_report_ids_were_keys_stay_and_the_ids_are_unique(
    schema: tuple[asyncpg.Connection, str],
) -> None:
    connection, dsn = schema
    await migrate(dsn, "0001", ingest_migrations)
    await connection.execute(
        "INSERT INTO ingest_submissions (idempotency_key, fingerprint, report_id, event_id, "
        "received_at, state, lease_until) VALUES ($1, 'f', $2, $3, now(), 'accepted', now())",
        "w-1\x1fheader",
        uuid4(),
        uuid4(),
    )
    await migrate(dsn, "head", ingest_migrations)
    assert await connection.fetchval("SELECT client_report_key FROM ingest_submissions") is None
    keyed = (
        "INSERT INTO ingest_submissions (idempotency_key, client_report_key, fingerprint, "
        "report_id, event_id, received_at, state, lease_until) "
        "VALUES ($1, 'w-1\x1fphone-7', 'f', $2, $3, now(), 'accepted', now())"
    )
    await connection.execute(keyed, "w-1\x1fh2", uuid4(), uuid4())
    with pytest.raises(asyncpg.UniqueViolationError):
        await connection.execute(keyed, "w-1\x1fh3", uuid4(), uuid4())
    await migrate(dsn, "0001", ingest_migrations, downgrade=True)
    keys = await connection.fetch("SELECT idempotency_key FROM ingest_submissions")
    assert sorted(row["idempotency_key"] for row in keys) == ["w-1\x1fh2", "w-1\x1fheader"]
