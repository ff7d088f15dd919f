"""Event contracts: the envelope, each event family, and the wire codec."""

from qianliyan.shared.events.codec import EventDecodeError, UnknownEvent, decode, encode
from qianliyan.shared.events.envelope import Actor, ActorKind, Event, Payload, new_event_id
from qianliyan.shared.events.incidents import SeverityOverridden, SeverityOverriddenPayload
from qianliyan.shared.events.reports import (
    GeoPoint,
    PhotoRef,
    ReportSubmitted,
    ReportSubmittedPayload,
    ReportTriaged,
    ReportTriagedPayload,
    Severity,
    TriageReason,
)

__all__ = [
    "Actor",
    "ActorKind",
    "Event",
    "EventDecodeError",
    "GeoPoint",
    "Payload",
    "PhotoRef",
    "ReportSubmitted",
    "ReportSubmittedPayload",
    "ReportTriaged",
    "ReportTriagedPayload",
    "Severity",
    "SeverityOverridden",
    "SeverityOverriddenPayload",
    "TriageReason",
    "UnknownEvent",
    "decode",
    "encode",
    "new_event_id",
]
