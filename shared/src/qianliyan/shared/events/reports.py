"""Events about field reports: submitted by a phone, triaged by the rules."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, Field

from qianliyan.shared.events.envelope import Event, Payload

SHA256_HEX = r"^[0-9a-f]{64}$"

PhotoContentType = Literal["image/jpeg", "image/png", "image/webp"]


class GeoPoint(Payload):
    """A WGS84 position as the phone reported it."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    accuracy_m: float | None = Field(default=None, ge=0)


class PhotoRef(Payload):
    """A photo stored in the object store, addressed by the sha256 of its bytes."""

    sha256: str = Field(pattern=SHA256_HEX)
    object_key: str
    content_type: PhotoContentType
    size_bytes: int = Field(gt=0)
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    preview_key: str | None = None
    taken_at: AwareDatetime | None = Field(
        default=None, description="When the camera says it took the photo (from its EXIF)"
    )
    location: GeoPoint | None = Field(
        default=None, description="Where the camera says it took the photo (from its EXIF)"
    )


UNIT_MAX_LENGTH = 100

# The categories the reporter's page offers (its list in `web/index.html`). A report's
# category is free text, since an integration may send its own, so a rule naming another
# one is allowed, but it matches no report sent from the page: a typo shows nowhere else.
PAGE_CATEGORIES = (
    "track", "signal", "overhead_line", "rolling_stock", "station", "passengers",
    "weather", "safety", "other",
)  # fmt: skip


class ReportSubmittedPayload(Payload):
    """What a reporter sent, as ingest accepted it."""

    report_id: UUID
    text: str = Field(max_length=5000)
    category: str | None = Field(default=None, max_length=100)
    location: GeoPoint | None = None
    place: str | None = Field(default=None, max_length=200, description="A named place")
    unit: str | None = Field(
        default=None, max_length=UNIT_MAX_LENGTH, description="Reporter's unit/station"
    )
    captured_at: AwareDatetime = Field(description="When the phone captured the report")
    received_at: AwareDatetime = Field(description="When ingest accepted it")
    photos: list[PhotoRef] = Field(default_factory=list, max_length=5)
    client_report_id: str | None = Field(default=None, max_length=100)


def correlation_key(area: str) -> str:
    """The Kafka key of a ReportSubmitted: the area whose reports may share an incident.

    Triage groups reports by folding one partition in log order, deterministically, so
    every report that could join another's incident must be on its partition. Reports
    join when one unit names one place, or when they were taken within a few hundred
    metres of each other, whatever their units (two departments at one spot) and whether
    or not they name a place. No key finer than the whole area keeps both: keyed by unit,
    place or map cell, such reports were split over partitions whenever the keys hashed
    apart, or sat either side of a cell's edge. An area is a deployment's (a railway
    bureau's) reports, a few a second at its peak, far below one partition's triage.
    """
    return AREA_KEY_PREFIX + "".join(area.casefold().split())


AREA_KEY_PREFIX = "area:"


class ReportSubmitted(Event):
    """A report from the field was accepted: its photos are stored, it is in the log."""

    type: Literal["ReportSubmitted"] = "ReportSubmitted"
    version: Literal[1] = 1
    payload: ReportSubmittedPayload


class Severity(StrEnum):
    """The fixed severity scale, most severe first."""

    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    INFO = "info"


# The scale in order, least severe first: comparisons and "at least" filters use it.
SEVERITY_SCALE: tuple[Severity, ...] = (
    Severity.INFO,
    Severity.MINOR,
    Severity.MAJOR,
    Severity.CRITICAL,
)


class TriageReason(Payload):
    """One rule that matched, and the evidence it matched on."""

    rule_id: str
    summary: str
    evidence: list[str] = Field(default_factory=list)


class ReportTriagedPayload(Payload):
    """The severity the rules gave a report, why, and the incident it belongs to."""

    report_id: UUID
    incident_id: UUID
    severity: Severity
    rule_set_version: str
    reasons: list[TriageReason] = Field(default_factory=list)
    captured_at: AwareDatetime


class ReportTriaged(Event):
    """Triage decided a report's severity and incident."""

    type: Literal["ReportTriaged"] = "ReportTriaged"
    version: Literal[1] = 1
    payload: ReportTriagedPayload
