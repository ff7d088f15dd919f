"""Grouping reports about the same thing into one incident, deterministically.

Two reports belong together when they were captured close in time and either name the
same place with similar text, or were taken close to each other. Times are the phone's
capture times, so a report that arrives hours late joins the incident it belongs to.

The grouper is a fold over the reports of one partition in log order: the same log
gives the same incidents whatever the batches were, and a restarted triage rebuilds
its state by folding the partition's history again. Reports that could belong together
share a partition because ingest keys them by their correlation area.
"""

from __future__ import annotations

import bisect
import math
import operator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from uuid import UUID

from qianliyan.shared.events import GeoPoint, ReportSubmitted
from qianliyan.shared.events.reports import AREA_KEY_PREFIX
from qianliyan.triage.domain.folding import fold

ANONYMOUS = "anonymous"


@dataclass(frozen=True, slots=True)
class GroupingPolicy:
    """How close in time, space and wording two reports must be to share an incident."""

    window: timedelta = timedelta(minutes=60)
    distance_m: float = 500.0
    text_similarity: float = 0.2
    # Reports captured this long before the newest one seen are forgotten.
    memory: timedelta = timedelta(hours=48)


@dataclass(frozen=True, slots=True)
class Trace:
    """What grouping remembers of one report."""

    report_id: UUID
    incident_id: UUID
    captured_at: datetime
    place: str | None
    location: GeoPoint | None
    bigrams: frozenset[str]
    reporter_id: str
    # The area the report was keyed by ("" for keys of before areas): reports of two
    # areas never share an incident, though two areas' keys may share a partition.
    area: str = ""


@dataclass(frozen=True, slots=True)
class IncidentAssignment:
    """The incident a report joined, and who has reported it so far."""

    incident_id: UUID
    opened_by: UUID
    reporters: frozenset[str]
    evidence: str | None


def normalise_place(place: str | None, unit: str | None = None) -> str | None:
    """A place as compared: within its unit (every station has a "3站台"), and case and
    spacing do not matter."""
    if not place:
        return None
    name = fold(place).replace(" ", "")
    if not name:
        return None
    return f"{fold(unit or '').replace(' ', '')}/{name}"


def text_bigrams(text: str) -> frozenset[str]:
    """Character pairs of the text without spaces: a similarity that needs no word breaks."""
    compact = fold(text).replace(" ", "")
    return frozenset(map(operator.add, compact, compact[1:])) or frozenset([compact])


def similarity(left: frozenset[str], right: frozenset[str]) -> float:
    """Jaccard similarity of two bigram sets."""
    if not left or not right:
        return 0.0
    return len(left & right) / len(left | right)


_EARTH_RADIUS_M = 6_371_000


def distance_m(a: GeoPoint, b: GeoPoint) -> float:
    """Great-circle distance in metres (haversine)."""
    lat1, lat2 = math.radians(a.lat), math.radians(b.lat)
    dlat, dlon = lat2 - lat1, math.radians(b.lon - a.lon)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * _EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@dataclass(slots=True)
class IncidentGrouper:
    """The grouping state of one partition; `assign` is the step of the fold.

    A new report joins the incident of the first remembered report (in log order) it is
    related to. Only two kinds of report can be related, so memory is indexed by both:
    by place (same place, similar text) and, for reports with a position, by band of
    latitude and then capture time (close by: two reports within `distance_m` are at
    most one band apart, whatever their longitude, and a bureau's thousands of located
    reports an hour are not all compared with each new one). Memory is also indexed by
    capture time, to forget what is past the horizon, and by incident, so an incident's
    reports are at hand.
    """

    policy: GroupingPolicy = field(default_factory=GroupingPolicy)
    _by_report: dict[UUID, _Remembered] = field(default_factory=dict)
    _by_time: list[tuple[datetime, int, UUID]] = field(default_factory=list)  # sorted
    _by_place: dict[str, list[_Remembered]] = field(default_factory=dict)  # in log order
    # Per band of latitude (`_band`), sorted by capture time.
    _located: dict[int, list[tuple[datetime, int, UUID]]] = field(default_factory=dict)
    _members: dict[UUID, list[Trace]] = field(default_factory=dict)  # in log order
    _seen: int = 0
    _newest: datetime | None = None

    def assign(self, submitted: ReportSubmitted) -> IncidentAssignment:
        """The incident `submitted` belongs to; seeing a report again gives the same answer."""
        report = submitted.payload
        known = self._by_report.get(report.report_id)
        trace = self._remember(submitted) if known is None else known.trace
        # A report captured before the memory's horizon is forgotten as soon as it is seen:
        # it stands alone.
        members = self._members.get(trace.incident_id) or [trace]
        reporters = frozenset(t.reporter_id for t in members if t.reporter_id != ANONYMOUS)
        evidence = None
        if trace.incident_id != report.report_id:
            evidence = f"joins incident {trace.incident_id} ({len(members)} reports)"
        return IncidentAssignment(trace.incident_id, members[0].report_id, reporters, evidence)

    def _remember(self, submitted: ReportSubmitted) -> Trace:
        report = submitted.payload
        candidate = Trace(
            report_id=report.report_id,
            incident_id=report.report_id,
            captured_at=report.captured_at,
            place=normalise_place(report.place, report.unit),
            location=report.location,
            bigrams=text_bigrams(report.text),
            reporter_id=submitted.actor.id,
            area=submitted.key if submitted.key.startswith(AREA_KEY_PREFIX) else "",
        )
        match = self._first_related(candidate)
        trace = candidate if match is None else replace(candidate, incident_id=match.incident_id)
        remembered = _Remembered(self._seen, trace)
        self._seen += 1
        self._by_report[trace.report_id] = remembered
        entry = (trace.captured_at, remembered.order, trace.report_id)
        bisect.insort(self._by_time, entry)
        if trace.place is not None:
            self._by_place.setdefault(trace.place, []).append(remembered)
        if trace.location is not None:
            bisect.insort(self._located.setdefault(self._band(trace.location), []), entry)
        self._members.setdefault(trace.incident_id, []).append(trace)
        self._forget_old(trace.captured_at)
        return trace

    def _first_related(self, new: Trace) -> Trace | None:
        """The related trace that came first in the log: among those at the same place,
        and those with a position captured close enough in time."""
        first: _Remembered | None = None
        for known in self._by_place.get(new.place, ()) if new.place is not None else ():
            if self._related(known.trace, new):
                first = known
                break  # the list is in log order
        if new.location is not None:
            window, band = self.policy.window, self._band(new.location)
            for nearby in (self._located.get(b) for b in (band - 1, band, band + 1)):
                if not nearby:
                    continue
                low = bisect.bisect_left(nearby, (new.captured_at - window,))
                high = bisect.bisect_right(nearby, (new.captured_at + window, math.inf))
                for _, order, report_id in nearby[low:high]:
                    if first is not None and order > first.order:
                        continue
                    known = self._by_report[report_id]
                    if self._related(known.trace, new):
                        first = known
        return first.trace if first is not None else None

    def _band(self, location: GeoPoint) -> int:
        """The band of latitude, `distance_m` high, that `location` lies in: the distance
        between two points is at least the distance between their latitudes."""
        return math.floor(math.radians(location.lat) * _EARTH_RADIUS_M / self.policy.distance_m)

    def _related(self, known: Trace, new: Trace) -> bool:
        if abs(known.captured_at - new.captured_at) > self.policy.window:
            return False
        if known.area != new.area:
            return False
        if (
            known.location is not None
            and new.location is not None
            and distance_m(known.location, new.location) <= self.policy.distance_m
        ):
            return True
        same_place = known.place is not None and known.place == new.place
        return same_place and similarity(known.bigrams, new.bigrams) >= self.policy.text_similarity

    def _forget_old(self, captured_at: datetime) -> None:
        if self._newest is None or captured_at > self._newest:
            self._newest = captured_at
        horizon = self._newest - self.policy.memory
        # The indexes by time are in capture order: what is past the horizon is a prefix,
        # and in a steady stream it is the one oldest report (counted, not searched for).
        cut = _count_before(self._by_time, horizon)
        if not cut:
            return
        gone = self._by_time[:cut]
        del self._by_time[:cut]
        for entry in gone:
            remembered = self._by_report.pop(entry[2])
            trace = remembered.trace
            if trace.location is not None:
                band = self._band(trace.location)
                nearby = self._located[band]
                del nearby[bisect.bisect_left(nearby, entry)]
                if not nearby:
                    del self._located[band]
            if trace.place is not None:
                at_place = self._by_place[trace.place]
                at_place.remove(remembered)
                if not at_place:
                    del self._by_place[trace.place]
            members = self._members[trace.incident_id]
            members.remove(trace)
            if not members:
                del self._members[trace.incident_id]


def _count_before(by_time: list[tuple[datetime, int, UUID]], moment: datetime) -> int:
    """How many entries of a list in capture order were captured before `moment`."""
    count = 0
    while count < len(by_time) and by_time[count][0] < moment:
        count += 1
    return count


@dataclass(frozen=True, slots=True)
class _Remembered:
    """A trace and its place in the log, which decides between related reports."""

    order: int
    trace: Trace
