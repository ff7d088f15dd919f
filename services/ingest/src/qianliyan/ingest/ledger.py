"""The submission ledger in PostgreSQL: claims, takeovers and recorded answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from qianliyan.ingest.domain.idempotency import Decision, Proceed, Submission, decide
from qianliyan.shared.events import new_event_id


class SubmissionLedger:
    """Records, per idempotency key, which report it created and the answer given."""

    def __init__(self, pool: asyncpg.Pool, *, lease: timedelta) -> None:
        self.pool = pool
        self._lease = lease

    async def claim(self, key: str, *, fingerprint: str) -> Decision:
        """Claim `key` for this request, or say why this request must not do the work."""
        now = datetime.now(UTC)
        async with self.pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                """
                INSERT INTO ingest_submissions (
                    idempotency_key, fingerprint, report_id, event_id, received_at,
                    state, lease_until
                )
                VALUES ($1, $2, $3, $4, $5, 'in_flight', $6)
                ON CONFLICT (idempotency_key) DO NOTHING
                RETURNING *
                """,
                key,
                fingerprint,
                new_event_id(),
                new_event_id(),
                now,
                now + self._lease,
            )
            if row is not None:
                return Proceed(_submission(row))
            # Locked, so two retries racing for an abandoned claim cannot both take it over.
            existing = await connection.fetchrow(
                "SELECT * FROM ingest_submissions WHERE idempotency_key = $1 FOR UPDATE", key
            )
            assert existing is not None  # rows are never deleted while a request may race
            decision = decide(_submission(existing), fingerprint=fingerprint, now=now)
            if isinstance(decision, Proceed):
                await connection.execute(
                    "UPDATE ingest_submissions SET lease_until = $2, updated_at = now() "
                    "WHERE idempotency_key = $1",
                    key,
                    now + self._lease,
                )
            return decision

    async def accept(self, key: str, response: dict[str, Any]) -> None:
        """Record the answer given, so every retry replays it."""
        await self.pool.execute(
            "UPDATE ingest_submissions SET state = 'accepted', response = $2::jsonb, "
            "updated_at = now() WHERE idempotency_key = $1",
            key,
            json.dumps(response),
        )

    async def release(self, key: str) -> None:
        """Give the claim up after a failure, so the next retry proceeds at once."""
        await self.pool.execute(
            "UPDATE ingest_submissions SET lease_until = now(), updated_at = now() "
            "WHERE idempotency_key = $1 AND state = 'in_flight'",
            key,
        )


def _submission(row: asyncpg.Record) -> Submission:
    response = row["response"]
    return Submission(
        idempotency_key=row["idempotency_key"],
        fingerprint=row["fingerprint"],
        report_id=UUID(str(row["report_id"])),
        event_id=UUID(str(row["event_id"])),
        received_at=row["received_at"],
        state=row["state"],
        lease_until=row["lease_until"],
        response=json.loads(response) if response is not None else None,
    )
