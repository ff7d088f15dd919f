"""What a reporter's phone sends, and how it becomes a `ReportSubmitted` event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic_core import PydanticCustomError

from qianliyan.ingest.domain.photos import PreparedPhoto
from qianliyan.shared.events import (
    Actor,
    ActorKind,
    GeoPoint,
    PhotoRef,
    ReportSubmitted,
    ReportSubmittedPayload,
)
from qianliyan.shared.events.reports import (
    PAGE_CATEGORIES,
    SHA256_HEX,
    UNIT_MAX_LENGTH,
    correlation_key,
)
from qianliyan.shared.field_errors import invalid_fields
from qianliyan.shared.storage import photo_key, preview_key
from qianliyan.shared.text import FREE_TEXT, ONE_LINE, PRINTABLE, IsoTime

# Phones' clocks drift; a capture time further ahead of the arrival than this is a wrong
# clock, and the report counts from its arrival instead. Refusing it left the reporter
# no way in: the page stamps each attempt from the same clock.
MAX_CLOCK_SKEW = timedelta(minutes=10)
# A phone whose clock was reset says 1970, and its report is still taken (it pages by its
# arrival); before that no clock is speaking, and grouping's arithmetic on the year 1
# would leave the calendar.
EARLIEST_CAPTURE = datetime(1970, 1, 1, tzinfo=UTC)


class ReportForm(BaseModel):
    """The JSON `report` part of a submission, exactly as the phone sends it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    text: Annotated[str, Field(min_length=1, max_length=5000), FREE_TEXT]
    category: Annotated[str, Field(max_length=100), ONE_LINE] | None = Field(
        default=None,
        description=f"One the reporter's page offers ({', '.join(PAGE_CATEGORIES)}) or an "
        "integration's own; rules match it as written",
    )
    location: GeoPoint | None = Field(default=None, description="Where the phone was")
    place: Annotated[str, Field(max_length=200), ONE_LINE] | None = Field(
        default=None, description="A named place: a kilometre post, a platform, a yard"
    )
    unit: Annotated[str, Field(max_length=UNIT_MAX_LENGTH), ONE_LINE] | None = Field(
        default=None,
        description="The unit or station the report is of, as the organisation file names "
        "it; left out, the sender's only unit. A token limited to units names those or "
        "the ones below them",
    )
    occurred_at: IsoTime | None = Field(
        default=None,
        description=(
            "When the phone captured the report; one more than ten minutes after its "
            "arrival is a clock running ahead, and the arrival time is taken instead"
        ),
    )
    client_report_id: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=PRINTABLE
    )
    photo_ids: list[Annotated[str, Field(pattern=SHA256_HEX)]] = Field(
        default_factory=list,
        max_length=5,
        description="Photos uploaded one by one beforehand (POST /v1/photos) by the same "
        "person, or with the same machine token, as sends the report",
    )
    reporter_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=PRINTABLE,
        description="Whom the report is from: the signed-in reporter when left out",
    )

    @field_validator("occurred_at")
    @classmethod
    def _from_a_clock(cls, value: datetime | None) -> datetime | None:
        if value is not None and value < EARLIEST_CAPTURE:
            raise PydanticCustomError(
                "clock_before_1970", "occurred_at is before 1970; check the phone's clock"
            )
        return value


class ReportFormInvalid(ValueError):
    """The `report` part is not a valid report; `errors` names each offending field."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


def parse_report_form(raw: str | bytes) -> ReportForm:
    """Parse the JSON `report` part, or raise `ReportFormInvalid` naming every bad field."""
    try:
        return ReportForm.model_validate_json(raw)
    except ValidationError as exc:
        raise ReportFormInvalid(invalid_fields(exc.errors(), within="report")) from None


def photo_ref(photo: PreparedPhoto) -> PhotoRef:
    """How the event describes a stored photo."""
    return PhotoRef(
        sha256=photo.sha256,
        object_key=photo_key(photo.sha256),
        content_type=photo.content_type,
        size_bytes=photo.size_bytes,
        width=photo.width,
        height=photo.height,
        preview_key=preview_key(photo.sha256),
        taken_at=photo.taken_at,
        location=photo.location,
    )


def capture_time(occurred_at: datetime | None, received_at: datetime) -> datetime:
    """When the report was captured: as the phone says, unless its clock runs ahead (a
    report is not from the future) or it did not say; then when it arrived."""
    if occurred_at is None or occurred_at - received_at > MAX_CLOCK_SKEW:
        return received_at
    return occurred_at


def build_report_submitted(
    *,
    form: ReportForm,
    reporter_id: str,
    sent_by: str,
    unit: str | None,
    area: str,
    photos: list[PhotoRef],
    report_id: UUID,
    event_id: UUID,
    received_at: datetime,
) -> ReportSubmitted:
    """The event announcing an accepted report; its photos must already be stored.

    `sent_by` is who signed the request: the reporter, or an integration sending for them
    (then kept as the actor's `via`, so the log says which bridge a report came through).
    `unit` is the report's, named or taken from the signer's account; `area` is the
    deployment's, keying every report that could share an incident to one partition.
    """
    payload = ReportSubmittedPayload(
        report_id=report_id,
        text=form.text,
        category=form.category,
        location=form.location,
        place=form.place,
        unit=unit,
        captured_at=capture_time(form.occurred_at, received_at),
        received_at=received_at,
        photos=photos,
        client_report_id=form.client_report_id,
    )
    via = sent_by if sent_by != reporter_id else None
    reporter = Actor(kind=ActorKind.REPORTER, id=reporter_id, via=via)
    return ReportSubmitted.first(
        key=correlation_key(area), actor=reporter, payload=payload, event_id=event_id
    )
