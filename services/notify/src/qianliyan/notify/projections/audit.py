"""Who did what, when, to which incident: read from the incidents' timelines.

Every entry comes from an event in the log, attributed to the person or service that
caused it, so this answers from the same facts a rebuild would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which entries: by actor, incident, kind of event and time (each optional)."""

    actor: str | None = None
    incident_id: UUID | None = None
    event_type: str | None = None
    occurred_from: datetime | None = None
    occurred_until: datetime | None = None


async def audit_entries(
    pool: asyncpg.Pool, query: AuditQuery, *, limit: int
) -> list[dict[str, Any]]:
    """Matching timeline entries, newest first."""
    rows = await pool.fetch(
        """
        SELECT occurred_at, actor, event_type, incident_id, detail
          FROM incident_timeline
         WHERE ($1::text IS NULL OR actor = $1)
           AND ($2::uuid IS NULL OR incident_id = $2)
           AND ($3::text IS NULL OR event_type = $3)
           AND ($4::timestamptz IS NULL OR occurred_at >= $4)
           AND ($5::timestamptz IS NULL OR occurred_at < $5)
         ORDER BY occurred_at DESC, event_id DESC
         LIMIT $6
        """,
        query.actor,
        query.incident_id,
        query.event_type,
        query.occurred_from,
        query.occurred_until,
        limit,
    )
    return [{**dict(row), "detail": json.loads(row["detail"])} for row in rows]
