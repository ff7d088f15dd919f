"""Deciding what a possibly-repeated submission should get, from the ledger's rows.

A phone on a bad network resends when it saw no answer. It names its submission by an
`Idempotency-Key` header, by its own report id (`client_report_id`), or by both; a retry
that repeats either is the same submission, even when the other changed (a client that
makes a fresh header for each attempt). The same key with the same content must get
the first answer; with different content it is a client bug.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from qianliyan.ingest.domain.reports import ReportForm


@dataclass(frozen=True, slots=True)
class Submission:
    """A ledger row: a submission, the keys it is filed under and what became of it."""

    idempotency_key: str
    client_report_key: str | None
    fingerprint: str
    sent_fingerprint: str | None
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


KeyKind = Literal["header", "client_report"]
_KEY_KINDS: tuple[KeyKind, ...] = ("header", "client_report")


@dataclass(frozen=True, slots=True)
class KeyReused:
    """A key was used before for a different report: each kind of key that names one."""

    kinds: tuple[KeyKind, ...]


Decision = Proceed | Replay | StillInFlight | KeyReused


@dataclass(frozen=True, slots=True)
class SubmissionKeys:
    """How a submission is named in the ledger, each key scoped to its reporter: the
    `Idempotency-Key` header and the phone's own report id, either of which may be absent.
    They share one namespace, as our page sends the same value for both."""

    header: str | None
    client_report: str | None

    @property
    def primary(self) -> str:
        """The key a new ledger row is filed under: the header, else the report id."""
        primary = self.header or self.client_report
        assert primary is not None  # `submission_keys` makes none without a key
        return primary

    @property
    def distinct(self) -> list[str]:
        """Every distinct key, sorted."""
        return sorted({key for key in (self.header, self.client_report) if key is not None})

    def kinds_of(self, submission: Submission) -> tuple[KeyKind, ...]:
        """Which of these keys name `submission` (by either of its keys)."""
        held = {submission.idempotency_key, submission.client_report_key} - {None}
        sent = {"header": self.header, "client_report": self.client_report}
        return tuple(kind for kind in _KEY_KINDS if sent[kind] in held)


def submission_keys(
    *, reporter_id: str, header_key: str | None, client_report_id: str | None
) -> SubmissionKeys | None:
    """The ledger keys of a submission, or None when it names itself by neither."""
    if not header_key and not client_report_id:
        return None
    return SubmissionKeys(
        header=f"{reporter_id}\x1f{header_key}" if header_key else None,
        client_report=f"{reporter_id}\x1f{client_report_id}" if client_report_id else None,
    )


def fingerprint(form: ReportForm, photo_hashes: list[str]) -> str:
    """A digest of everything the reporter sent (its photos as prepared), to tell a retry
    from a reused key."""
    document = {"report": form.model_dump(mode="json"), "photos": photo_hashes}
    canonical = json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def fingerprint_as_sent(form: ReportForm, photos: Sequence[bytes]) -> str:
    """A digest of the report and of its photos' bytes as sent, before they are decoded:
    a retry resends the same bytes, so it can be answered without decoding them again."""
    return fingerprint(form, [hashlib.sha256(photo).hexdigest() for photo in photos])


def answer_before_photos(
    existing: Sequence[Submission], keys: SubmissionKeys, sent_fingerprint: str
) -> Replay | None:
    """The first answer, when the request's keys name one accepted submission whose photos
    were sent as these were; else None, and the photos decide (`decide`). A submission
    that does not hold the request's report id yet is left to `decide` too, whose claim
    records it."""
    if len(existing) != 1:
        return None  # `decide` chooses
    (submission,) = existing
    if submission.sent_fingerprint != sent_fingerprint or submission.response is None:
        return None
    if keys.client_report is not None and "client_report" not in keys.kinds_of(submission):
        return None
    return Replay(submission.response) if submission.state == "accepted" else None


def retried_submission(
    existing: Sequence[Submission], fingerprint: str, sent_fingerprint: str | None = None
) -> Submission | None:
    """Of the submissions a request's keys name (in the order filed), the one it retries:
    the first with the same content, its photos as prepared or as sent. As sent matters
    where another replica prepared them (another build of the image libraries, during a
    rolling upgrade, can encode the same photo into other bytes)."""
    return next(
        (
            s
            for s in existing
            if s.fingerprint == fingerprint
            or (sent_fingerprint is not None and s.sent_fingerprint == sent_fingerprint)
        ),
        None,
    )


def decide(
    existing: Sequence[Submission],
    keys: SubmissionKeys,
    *,
    fingerprint: str,
    now: datetime,
    sent_fingerprint: str | None = None,
) -> Decision:
    """What a request gets whose keys name `existing` in the ledger (one or more rows, in
    the order they were filed).

    The submission with the same content is the one retried (`retried_submission`; there
    can be two where a retry of a row filed before report ids were keys filed another).
    With none, each key that names another report is refused.
    """
    submission = retried_submission(existing, fingerprint, sent_fingerprint)
    if submission is None:
        named = {kind for row in existing for kind in keys.kinds_of(row)}
        if keys.header == keys.client_report:
            named -= {"client_report"}  # one value sent twice (as our page does): said once
        return KeyReused(tuple(kind for kind in _KEY_KINDS if kind in named))
    if submission.state == "accepted" and submission.response is not None:
        return Replay(submission.response)
    if submission.lease_until > now:
        return StillInFlight()
    return Proceed(submission)
