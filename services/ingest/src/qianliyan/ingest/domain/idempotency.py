"""Deciding what a possibly-repeated submission should get, from the ledger's row.

A phone on a bad network resends when it saw no answer. The same idempotency key with
the same content must get the first answer; with different content it is a client bug.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from qianliyan.ingest.domain.reports import ReportForm


@dataclass(frozen=True, slots=True)
class Submission:
    """A ledger row: one idempotency key and what became of it."""

    idempotency_key: str
    fingerprint: str
    report_id: UUID
    event_id: UUID
    received_at: datetime
    state: Literal["in_flight", "accepted"]
    lease_until: datetime
    response: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Proceed:
    """Do the work, with these ids (new, or those of an abandoned first attempt)."""

    submission: Submission


@dataclass(frozen=True, slots=True)
class Replay:
    """The first attempt succeeded: answer exactly as it was answered."""

    response: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StillInFlight:
    """The first attempt is being processed right now."""


@dataclass(frozen=True, slots=True)
class KeyReused:
    """The key was used before for a different report."""


Decision = Proceed | Replay | StillInFlight | KeyReused


def idempotency_key(
    *, reporter_id: str, header_key: str | None, client_report_id: str | None
) -> str | None:
    """The ledger key: the header, else the phone's report id, scoped to the reporter."""
    key = header_key or client_report_id
    return f"{reporter_id}\x1f{key}" if key else None


def fingerprint(form: ReportForm, photo_hashes: list[str]) -> str:
    """A digest of everything the reporter sent, to tell a retry from a reused key."""
    document = {"report": form.model_dump(mode="json"), "photos": photo_hashes}
    canonical = json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def decide(existing: Submission, *, fingerprint: str, now: datetime) -> Decision:
    """What a request whose key is already in the ledger gets."""
    if existing.fingerprint != fingerprint:
        return KeyReused()
    if existing.state == "accepted" and existing.response is not None:
        return Replay(existing.response)
    if existing.lease_until > now:
        return StillInFlight()
    return Proceed(existing)
