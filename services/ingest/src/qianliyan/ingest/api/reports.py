"""`POST /v1/reports`: a report with its photos, accepted only once both are durable."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import httpx
from fastapi import APIRouter, Depends, File, Form, Header, Request, UploadFile
from fastapi.responses import JSONResponse
from minio.error import S3Error
from pydantic import BaseModel

from qianliyan.ingest.api.dependencies import IngestResources, Submitter, resources
from qianliyan.ingest.api.uploads import photo_limits, prepare_sent, read_uploads
from qianliyan.ingest.domain.idempotency import (
    Decision,
    KeyKind,
    KeyReused,
    Proceed,
    Replay,
    StillInFlight,
    SubmissionKeys,
    answer_before_photos,
    fingerprint,
    fingerprint_as_sent,
    submission_keys,
)
from qianliyan.ingest.domain.photos import PreparedPhoto, human_size
from qianliyan.ingest.domain.reports import (
    ReportForm,
    ReportFormInvalid,
    build_report_submitted,
    parse_report_form,
    photo_ref,
)
from qianliyan.shared.access.http import SignedIn, forbidden, presented
from qianliyan.shared.access.policy import (
    NotAllowed,
    reporter_of_submission,
    unit_of_submission,
    uploader,
)
from qianliyan.shared.errors import is_transient
from qianliyan.shared.events import PhotoRef, ReportSubmitted, new_event_id
from qianliyan.shared.field_errors import field_problem
from qianliyan.shared.http import Problem, unavailable
from qianliyan.shared.metrics import SUBMISSIONS_REPLAYED
from qianliyan.shared.storage import (
    photo_key,
    preview_key,
    staged_metadata_key,
    staged_photo_key,
    staged_preview_key,
)
from qianliyan.shared.tracing import span

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/reports", tags=["reports"])

# How often a retry that found the first attempt in flight looks again.
IN_FLIGHT_POLL_S = 0.1


def _whole(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its `$defs` written in where they are used: inside the OpenAPI
    document, a reference to `#/$defs/...` would point at the document's root."""
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(dict(defs[ref.removeprefix("#/$defs/")]))
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    whole: dict[str, Any] = inline(schema)
    return whole


# The `report` part is a string of JSON (multipart has no objects): its content is
# described as OpenAPI 3.1 does for such a string, so a client sees its fields.
REPORT_PART = Form(
    description="The report, a JSON object (its fields: `contentSchema`)",
    json_schema_extra={
        "contentMediaType": "application/json",
        "contentSchema": _whole(ReportForm.model_json_schema()),
    },
)


class ReportAccepted(BaseModel):
    """The answer to an accepted report; a retry with the same key gets it again."""

    report_id: UUID
    status_url: str
    received_at: datetime
    photos: list[str]


@router.post("", status_code=202, response_model=ReportAccepted)
async def submit_report(
    request: Request,
    report: Annotated[str, REPORT_PART],
    res: Annotated[IngestResources, Depends(resources)],
    submitter: Submitter,
    # A list, not "a list or null": multipart has no null, and a nullable list hides
    # from client generators (schemathesis among them) that its items are files.
    photos: Annotated[list[UploadFile], File(default_factory=list, description="0 to 5 photos")],
    idempotency_key_header: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=200,
            description="Names this submission: a retry with the same key, or with the same "
            "client_report_id, gets the first answer and makes no second report. Keys and "
            "report ids are one namespace per reporter (the reporter's page sends one value "
            "as both)",
        ),
    ] = None,
) -> Any:
    """Accept a field report: photos go to the store first, then the event to Kafka."""
    settings = res.settings
    form = _parse_form(report)
    try:
        reporter_id = reporter_of_submission(submitter, form.reporter_id)
    except NotAllowed as refused:
        raise forbidden(f"{str(refused).capitalize()}.") from None
    in_all = len(photos) + len(form.photo_ids)
    if in_all > settings.max_photos:
        raise Problem(
            422,
            "Too many photos",
            f"{in_all} photos were sent or referenced; "
            f"the limit is {settings.max_photos} per report.",
            errors=[
                field_problem(
                    field,
                    "too_many_photos",
                    f"{count} of {in_all} photos; at most {settings.max_photos}",
                    {"count": count, "total": in_all, "limit": settings.max_photos},
                )
                for field, count in (
                    ("photos", len(photos)),
                    ("report.photo_ids", len(form.photo_ids)),
                )
                if count
            ],
        )
    total_bytes = sum(photo.size or 0 for photo in photos)
    if total_bytes > settings.max_report_bytes:
        raise Problem(
            413,
            "Report too large",
            f"The photos add up to {human_size(total_bytes)}; the limit per report is "
            f"{human_size(settings.max_report_bytes)}. Send fewer photos or smaller ones.",
        )
    keys = submission_keys(
        reporter_id=reporter_id,
        header_key=idempotency_key_header,
        client_report_id=form.client_report_id,
    )
    photos_or_answer = await _photos_unless_answered(res, form, keys, photos)
    if isinstance(photos_or_answer, Replay):
        SUBMISSIONS_REPLAYED.labels("not_decoded").inc()
        return JSONResponse(photos_or_answer.response, status_code=202)
    prepared, sent_digest = photos_or_answer
    # After a retry's first answer is given (above), before anything is claimed: a report
    # refused here leaves its key free for the corrected one.
    try:
        unit = unit_of_submission(submitter, form.unit, res.org.current())
    except NotAllowed as refused:
        raise forbidden(f"{str(refused).capitalize()}.") from None

    key: str | None = None  # the ledger row's, once claimed
    if keys is None:
        report_id, event_id, received_at = new_event_id(), new_event_id(), datetime.now(UTC)
    else:
        digest = fingerprint(form, [photo.sha256 for photo in prepared])
        decision = await _claim(res, keys, digest, sent_digest)
        if isinstance(decision, Replay):
            SUBMISSIONS_REPLAYED.labels("decoded").inc()
            return JSONResponse(decision.response, status_code=202)
        claimed = decision.submission
        key = claimed.idempotency_key
        report_id, event_id, received_at = claimed.report_id, claimed.event_id, claimed.received_at

    try:
        # After the claim: a retry of a report accepted long ago gets its first answer,
        # even once the uploads it named have left the upload area.
        staged = await _staged_photos(res, form.photo_ids, uploader=uploader(submitter))
        event = build_report_submitted(
            form=form,
            reporter_id=reporter_id,
            sent_by=submitter.subject,
            unit=unit,
            area=settings.correlation_area,
            photos=[photo_ref(photo) for photo in prepared] + staged,
            report_id=report_id,
            event_id=event_id,
            received_at=received_at,
        )
        await _store_photos(res, prepared, staged)
        await _publish(res, event)
    except Problem:
        if key is not None:
            await _release_quietly(res, key)
        raise
    answer = ReportAccepted(
        report_id=report_id,
        status_url=str(request.url_for("get_report_status", report_id=report_id)),
        received_at=received_at,
        photos=[photo.sha256 for photo in prepared] + [ref.sha256 for ref in staged],
    ).model_dump(mode="json")
    if key is not None:
        await _record_answer(res, key, answer)
    return JSONResponse(answer, status_code=202)


def _parse_form(raw: str) -> ReportForm:
    try:
        return parse_report_form(raw)
    except ReportFormInvalid as invalid:
        raise Problem(
            422,
            "Invalid report",
            "The report part is not valid; see errors.",
            errors=invalid.errors,
        ) from None


# Where each kind of key is sent, as a refusal names it.
_KEY_FIELDS: dict[KeyKind, str] = {
    "header": "header.Idempotency-Key",
    "client_report": "report.client_report_id",
}


@contextmanager
def _ledger_outage_is_503() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        if not is_transient(exc):
            raise
        log.warning("submission ledger unavailable: %s", exc)
        raise unavailable("The report ledger is unavailable; retry shortly.") from None


async def _photos_unless_answered(
    res: IngestResources, form: ReportForm, keys: SubmissionKeys | None, photos: list[UploadFile]
) -> Replay | tuple[list[PreparedPhoto], str | None]:
    """The photos prepared, with a digest of them as sent (when the report has keys); or,
    for a retry that resends the photos of an accepted submission, its first answer, with
    nothing decoded."""
    limits = photo_limits(res.settings)
    sent = await read_uploads(photos, limits)
    readable = [photo for photo in sent if isinstance(photo, bytes)]
    if keys is None or len(readable) < len(sent):
        return await prepare_sent(sent, limits), None
    sent_digest = await asyncio.to_thread(fingerprint_as_sent, form, readable)
    with _ledger_outage_is_503():
        existing = await res.ledger.filed_under(keys)
    if early := answer_before_photos(existing, keys, sent_digest):
        return early
    return await prepare_sent(sent, limits), sent_digest


async def _claim(
    res: IngestResources, keys: SubmissionKeys, digest: str, sent_digest: str | None
) -> Proceed | Replay:
    """Claim the submission, waiting a little for a first attempt that is still in flight."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + res.settings.in_flight_wait_s
    while True:
        with _ledger_outage_is_503():
            decision: Decision = await res.ledger.claim(
                keys, fingerprint=digest, sent_fingerprint=sent_digest
            )
        if isinstance(decision, Proceed | Replay):
            return decision
        if isinstance(decision, KeyReused):
            raise Problem(
                422,
                "Idempotency key reused",
                "This idempotency key (or client_report_id) was already used for a different "
                "report; use a new key for a new report.",
                errors=[
                    field_problem(
                        _KEY_FIELDS[kind],
                        "used_for_another_report",
                        "already used for a different report",
                    )
                    for kind in decision.kinds
                ],
            )
        assert isinstance(decision, StillInFlight)
        if loop.time() >= deadline:
            raise Problem(
                409,
                "Report still being processed",
                "An earlier attempt with this key is still in progress; retry shortly.",
                headers={"Retry-After": "2"},
            )
        await asyncio.sleep(IN_FLIGHT_POLL_S)


async def _staged_photos(
    res: IngestResources, photo_ids: list[str], *, uploader: str
) -> list[PhotoRef]:
    """The photos a report references by id, as `uploader` uploaded them, or a 422 naming
    each one that is missing (another's upload of it is not theirs to name)."""

    async def load(photo_id: str) -> PhotoRef | None:
        key = staged_metadata_key(photo_id, uploader)
        try:
            return PhotoRef.model_validate_json(await res.photos.get(key))
        except S3Error as exc:
            if exc.code == "NoSuchKey":
                return None
            raise

    try:
        found = await asyncio.gather(*(load(photo_id) for photo_id in photo_ids))
    except Exception as exc:
        log.warning("photo store unavailable: %s", exc)
        raise unavailable("The photo store is unavailable; retry shortly.") from None
    missing = [
        (i, pid) for i, (pid, ref) in enumerate(zip(photo_ids, found, strict=True)) if not ref
    ]
    if missing:
        raise Problem(
            422,
            "Photos not uploaded",
            "Some referenced photos were never uploaded by whoever sends this report, or "
            "have expired; upload them again.",
            errors=[
                field_problem(
                    f"report.photo_ids.{i}", "photo_not_uploaded", f"no uploaded photo {photo_id}"
                )
                for i, photo_id in missing
            ],
        )
    return [ref for ref in found if ref is not None]


async def _store_photos(
    res: IngestResources, prepared: list[PreparedPhoto], staged: list[PhotoRef]
) -> None:
    # Photos before the event: an orphan photo is harmless, an event without its photo is not.
    writes = [res.photos.put(photo_key(p.sha256), p.data, p.content_type) for p in prepared]
    writes += [res.photos.put(preview_key(p.sha256), p.preview, "image/jpeg") for p in prepared]
    # Referenced uploads move out of the expiring area into the report's permanent keys.
    writes += [res.photos.copy(staged_photo_key(ref.sha256), ref.object_key) for ref in staged]
    writes += [
        res.photos.copy(staged_preview_key(ref.sha256), preview_key(ref.sha256)) for ref in staged
    ]
    try:
        await asyncio.gather(*writes)
    except Exception as exc:
        log.warning("photo store unavailable: %s", exc)
        raise unavailable("The photo store is unavailable; retry shortly.") from None


async def _publish(res: IngestResources, event: ReportSubmitted) -> None:
    # The report's trace starts here; triage and notify continue it from the headers.
    try:
        with span("publish ReportSubmitted", correlation_id=str(event.correlation_id)):
            await res.publisher.publish(res.settings.kafka.reports_topic, event)
    except Exception as exc:
        if not is_transient(exc):
            log.exception("publishing %s failed", event.event_id)
        raise unavailable("The event log is unavailable; retry shortly.") from None


async def _release_quietly(res: IngestResources, key: str) -> None:
    try:
        await res.ledger.release(key)
    except Exception as exc:
        # The lease expires on its own; a retry after it takes over.
        log.warning("could not release claim: %s", exc)


async def _record_answer(res: IngestResources, key: str, answer: dict[str, Any]) -> None:
    try:
        await res.ledger.accept(key, answer)
    except Exception as exc:
        # The report is in Kafka, so the phone gets its 202. A retry after the lease takes
        # over and republishes the same event id, which consumers drop as a duplicate.
        log.warning("could not record the answer for a submission: %s", exc)


@router.get("/{report_id}", name="get_report_status")
async def get_report_status(
    report_id: UUID,
    request: Request,
    res: Annotated[IngestResources, Depends(resources)],
    _: SignedIn,
) -> JSONResponse:
    """Where a report is now (received, triaged, …), as notify's read model has it.

    Served here so the reporter's page asks the origin it was loaded from. The caller's
    own token goes along: notify decides for itself who may read which report.
    """
    try:
        answer = await res.notify.get(
            f"/v1/reports/{report_id}", headers={"Authorization": f"Bearer {presented(request)}"}
        )
    except httpx.HTTPError as exc:
        log.warning("notify unavailable for a status read: %s", exc)
        raise unavailable("Report status is unavailable right now; retry shortly.") from None
    if answer.status_code not in (200, 401, 403, 404):
        raise unavailable("Report status is unavailable right now; retry shortly.")
    return JSONResponse(
        answer.json(), status_code=answer.status_code, media_type=answer.headers["content-type"]
    )
