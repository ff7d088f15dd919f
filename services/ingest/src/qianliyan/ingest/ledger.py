"""The submission ledger in PostgreSQL: claims, takeovers and recorded answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from qianliyan.ingest.domain.idempotency import (
    Decision,
    Proceed,
    StillInFlight,
    Submission,
    SubmissionKeys,
    decide,
    retried_submission,
)
from qianliyan.shared.db import Connection
from qianliyan.shared.events import new_event_id

_NAMED_BY_KEYS = (
    "SELECT * FROM ingest_submissions "
    "WHERE idempotency_key = ANY($1::text[]) OR client_report_key = ANY($1::text[]) "
    "ORDER BY received_at"
)

# The class of advisory locks that the ledger takes per key (with the key's hash): a space
# of its own, apart from the single-number locks of the other services' tables.
_LEDGER_LOCKS = 7_306_553


class SubmissionLedger:
    """Records, per submission and under each of its keys, which report it created and the
    answer given."""

    def __init__(self, pool: asyncpg.Pool, *, lease: timedelta) -> None:
        self.pool = pool
        self._lease = lease

    async def filed_under(self, keys: SubmissionKeys) -> list[Submission]:
        """The submissions that any of `keys` names, as they stand (nothing is claimed)."""
        rows = await self.pool.fetch(_NAMED_BY_KEYS, keys.distinct)
        return [_submission(row) for row in rows]

    async def claim(
        self, keys: SubmissionKeys, *, fingerprint: str, sent_fingerprint: str | None
    ) -> Decision:
        """Claim the submission for this request, or say why this request must not do the
        work. A submission taken over is answered under its first key (`Proceed`'s)."""
        now = datetime.now(UTC)
        async with self.pool.acquire() as connection, connection.transaction():
            # Requests that share a key take turns from here to the commit, so two first
            # attempts cannot both find nothing and each file a report; a row found is also
            # locked, so two retries racing for an abandoned claim cannot both take it over.
            # Locks are taken in one order (of their numbers), so no two requests can each
            # hold a lock the other waits for.
            await connection.execute(
                "SELECT pg_advisory_xact_lock($1, number) FROM "
                "(SELECT DISTINCT hashtext(key) AS number FROM unnest($2::text[]) AS key) AS k "
                "ORDER BY number",
                _LEDGER_LOCKS,
                keys.distinct,
            )
            rows = await connection.fetch(f"{_NAMED_BY_KEYS} FOR UPDATE", keys.distinct)
            if not rows:
                return await self._file(connection, keys, fingerprint, sent_fingerprint, now)
            existing = [_submission(row) for row in rows]
            decision = decide(
                existing, keys, fingerprint=fingerprint, now=now, sent_fingerprint=sent_fingerprint
            )
            retried = retried_submission(existing, fingerprint, sent_fingerprint)
            if retried is None:
                return decision
            # The same content, so the same report id and photos: a row filed before either
            # was recorded (migrations 0002 and 0003) learns them, for the retries after,
            # unless another row holds that id already.
            learns_id = len(existing) == 1 and retried.client_report_key is None
            learns_photos = retried.sent_fingerprint is None and sent_fingerprint is not None
            taken_over = isinstance(decision, Proceed)
            if (learns_id and keys.client_report is not None) or learns_photos or taken_over:
                await connection.execute(
                    "UPDATE ingest_submissions SET "
                    "client_report_key = COALESCE(client_report_key, $2), "
                    "sent_fingerprint = COALESCE(sent_fingerprint, $3), "
                    "lease_until = CASE WHEN $4 THEN $5 ELSE lease_until END, "
                    "updated_at = now() WHERE idempotency_key = $1",
                    retried.idempotency_key,
                    keys.client_report if learns_id else None,
                    sent_fingerprint,
                    taken_over,
                    now + self._lease,
                )
            return decision

    async def _file(
        self,
        connection: Connection,
        keys: SubmissionKeys,
        fingerprint: str,
        sent_fingerprint: str | None,
        now: datetime,
    ) -> Proceed | StillInFlight:
        """A new submission, claimed by this request."""
        try:
            async with connection.transaction():  # a savepoint: the claim's transaction stays
                row = await connection.fetchrow(
                    """
                    INSERT INTO ingest_submissions (
                        idempotency_key, client_report_key, fingerprint, sent_fingerprint,
                        report_id, event_id, received_at, state, lease_until
                    )
                    VALUES ($1, $2, $3, $4, $5, $6, $7, 'in_flight', $8)
                    RETURNING *
                    """,
                    keys.primary,
                    keys.client_report,
                    fingerprint,
                    sent_fingerprint,
                    new_event_id(),
                    new_event_id(),
                    now,
                    now + self._lease,
                )
        except asyncpg.UniqueViolationError:
            # Filed meanwhile by an instance that takes no locks (one of the version before,
            # during a rolling update): the next look finds it.
            return StillInFlight()
        assert row is not None
        return Proceed(_submission(row))

    async def accept(self, key: str, response: dict[str, Any]) -> None:
        """Record the answer given to the submission filed under `key`, so every retry
        replays it."""
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
        client_report_key=row["client_report_key"],
        fingerprint=row["fingerprint"],
        sent_fingerprint=row["sent_fingerprint"],
        report_id=UUID(str(row["report_id"])),
        event_id=UUID(str(row["event_id"])),
        received_at=row["received_at"],
        state=row["state"],
        lease_until=row["lease_until"],
        response=json.loads(response) if response is not None else None,
    )
