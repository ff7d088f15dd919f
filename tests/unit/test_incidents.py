"""Grouping reports into incidents: by time, place, wording and distance; deterministic."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from qianliyan.shared.events import (
    Actor,
    ActorKind,
    GeoPoint,
    ReportSubmitted,
    ReportSubmittedPayload,
    ReportTriaged,
    Severity,
)
from qianliyan.triage.domain.incidents import (
    IncidentGrouper,
    Trace,
    distance_m,
    normalise_place,
    text_bigrams,
)
from qianliyan.triage.domain.rules import parse_rules
from qianliyan.triage.domain.triage import TriagePipeline
from qianliyan.triage.rulebook import DEFAULT_RULES

RULES = parse_rules(DEFAULT_RULES.read_text(encoding="utf-8"))
T0 = datetime(2026, 11, 25, 14, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def report(
    text: str,
    *,
    minutes: float = 0,
    place: str | None = None,
    at: tuple[float, float] | None = None,
    reporter: str = "w1",
    received_late_by: timedelta = timedelta(0),
    unit: str | None = None,
) -> ReportSubmitted:
    captured = T0 + timedelta(minutes=minutes)
    payload = ReportSubmittedPayload(
        report_id=uuid4(),
        text=text,
        place=place,
        unit=unit,
        location=GeoPoint(lat=at[0], lon=at[1]) if at else None,
        captured_at=captured,
        received_at=captured + received_late_by,
    )
    return ReportSubmitted.first(
        key=str(payload.report_id),
        actor=Actor(kind=ActorKind.REPORTER, id=reporter),
        payload=payload,
    )


def incidents(reports: list[ReportSubmitted]) -> list[UUID]:
    grouper = IncidentGrouper()
    return [grouper.assign(r).incident_id for r in reports]


def test_same_place_similar_text_close_in_time_is_one_incident() -> None:
    a = report("3号站台配电箱冒烟", place="3号站台")
    b = report("3号站台 配电箱在冒烟", place="3号 站台", minutes=12, reporter="w2")
    assert incidents([a, b]) == [a.payload.report_id] * 2


def test_same_place_different_matter_is_another_incident() -> None:
    a = report("3号站台配电箱冒烟", place="3号站台")
    b = report("有旅客遗失行李箱", place="3号站台", minutes=5)
    assert len(set(incidents([a, b]))) == 2


def test_close_positions_group_even_with_different_words() -> None:
    a = report("线路上有异物", at=(39.9000, 116.4000))
    b = report("a tree fell on the track", at=(39.9020, 116.4010), minutes=20)
    assert distance_m(a.payload.location, b.payload.location) < 500  # type: ignore[arg-type]
    assert len(set(incidents([a, b]))) == 1


def test_close_positions_group_across_the_edge_of_the_grouper_s_bands_of_latitude() -> None:
    # 39.9029° is an edge between two of the 500 m bands located reports are indexed by.
    a = report("线路上有异物", at=(39.9026, 116.4000))
    b = report("a tree fell on the track", at=(39.9032, 116.4000), minutes=20)
    c = report("接触网异常", at=(39.9032, 116.5000), minutes=25)  # same band, 8.5 km east
    assert incidents([a, b, c]) == [a.payload.report_id] * 2 + [c.payload.report_id]


def test_reports_of_two_areas_sharing_a_partition_never_share_an_incident() -> None:
    # Two bureaus of one cluster whose keys hash to one partition: one grouper folds both.
    a = report("3站台积水", place="3站台", at=(39.9, 116.4))
    b = report("3站台积水严重", place="3站台", at=(39.9, 116.4), minutes=5)
    c = report("3站台积水", place="3站台", at=(39.9, 116.4), minutes=6)
    a, b, c = (
        r.model_copy(update={"key": k}) for r, k in ((a, "area:x"), (b, "area:y"), (c, "area:x"))
    )
    assert incidents([a, b, c]) == [a.payload.report_id, b.payload.report_id, a.payload.report_id]


def test_far_apart_in_time_is_another_incident() -> None:
    a = report("3号站台冒烟", place="3号站台")
    b = report("3号站台冒烟", place="3号站台", minutes=180)
    assert len(set(incidents([a, b]))) == 2


def test_a_report_arriving_hours_late_joins_by_its_capture_time() -> None:
    a = report("K123+400 落石", place="K123+400", minutes=0)
    later = report("K123+400 发现异物", place="K123+400", minutes=300)
    offline = report(
        "K123+400 有落石", place="K123+400", minutes=10, received_late_by=timedelta(hours=6)
    )
    ids = incidents([a, later, offline])
    assert ids[2] == ids[0] != ids[1]


def test_seeing_a_report_again_gives_the_same_answer() -> None:
    grouper = IncidentGrouper()
    a, b = report("冒烟", place="p"), report("冒烟了", place="p", minutes=1)
    first = [grouper.assign(r).incident_id for r in (a, b)]
    assert [grouper.assign(r).incident_id for r in (a, b)] == first


def test_three_independent_reporters_raise_the_severity() -> None:
    pipeline = TriagePipeline(lambda: RULES, output_topic="t")
    severities = []
    for i, reporter in enumerate(("w1", "w2", "w3")):
        [(_, triaged)] = pipeline.transform(
            report("候车室拥挤", place="候车室", minutes=i, reporter=reporter), 0
        )
        assert isinstance(triaged, ReportTriaged)
        severities.append(triaged.payload.severity)
    assert severities == [Severity.MINOR, Severity.MINOR, Severity.MAJOR]
    assert isinstance(triaged, ReportTriaged)
    assert "independent-reporters" in {reason.rule_id for reason in triaged.payload.reasons}
    assert triaged.key == str(triaged.payload.incident_id)


def test_one_person_reporting_three_times_is_not_three_reporters() -> None:
    pipeline = TriagePipeline(lambda: RULES, output_topic="t")
    for i in range(3):
        [(_, triaged)] = pipeline.transform(report("候车室拥挤", place="候车室", minutes=i), 0)
    assert isinstance(triaged, ReportTriaged)
    assert triaged.payload.severity is Severity.MINOR


texts = st.sampled_from(["站台冒烟", "站台在冒烟", "线路异物", "行李遗失", "信号故障"])
places = st.sampled_from([None, "1号站台", "2号站台", "K10+100"])
streams = st.lists(
    st.tuples(texts, places, st.integers(0, 300), st.sampled_from(["a", "b", "c"])),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(streams, st.lists(st.integers(1, 6), min_size=1, max_size=10))
def test_grouping_does_not_depend_on_batch_boundaries(
    stream: list[tuple[str, str | None, int, str]], cuts: list[int]
) -> None:
    reports = [report(t, place=p, minutes=m, reporter=r) for t, p, m, r in stream]
    whole = incidents(reports)

    # The same log, processed in batches of arbitrary sizes by one pipeline.
    pipeline = TriagePipeline(lambda: RULES, output_topic="t")
    batched: list[UUID] = []
    position, sizes = 0, iter(cuts * (len(reports) + 1))
    while position < len(reports):
        size = next(sizes)
        for submitted in reports[position : position + size]:
            [(_, triaged)] = pipeline.transform(submitted, 0)
            batched.append(triaged.payload.incident_id)  # type: ignore[attr-defined]
        position += size
    assert batched == whole

    # A restarted triage folds the first part of the log again, then carries on.
    half = len(reports) // 2
    restarted = TriagePipeline(lambda: RULES, output_topic="t")
    restarted.replay(0, reports[:half])
    rest = [restarted.transform(r, 0)[0][1].payload.incident_id for r in reports[half:]]  # type: ignore[attr-defined]
    assert rest == whole[half:]


def test_the_same_place_name_at_two_units_is_two_places() -> None:
    grouper = IncidentGrouper()
    here = report("3站台冒烟", place="3站台", unit="北京南站")
    there = report("3站台冒烟", minutes=5, place="3站台", unit="丰台站")
    same = report("3站台冒烟很大", minutes=6, place=" 3 站台", unit="北京南站")
    first, second, third = (grouper.assign(r).incident_id for r in (here, there, same))
    assert second != first and third == first


def test_a_report_captured_before_the_memory_horizon_stands_alone() -> None:
    grouper = IncidentGrouper()
    grouper.assign(report("站台积水", minutes=60 * 72, place="1站台"))
    # Arrives after the phone was offline for three days: older than the 48 h memory.
    late = report("站台积水严重", minutes=0, place="1站台")
    assignment = grouper.assign(late)
    assert assignment.incident_id == late.payload.report_id
    assert assignment.opened_by == late.payload.report_id


class _ReferenceGrouper:
    """The grouping rule in its plainest form: scan everything remembered, in log order."""

    def __init__(self) -> None:
        self.grouper = IncidentGrouper()
        self.traces: list[tuple[UUID, UUID, datetime, str]] = []  # report, incident, at, who
        self.trace_of: dict[UUID, Trace] = {}

    def assign(self, submitted: ReportSubmitted) -> tuple[UUID, UUID, frozenset[str]]:
        payload = submitted.payload
        new = Trace(
            payload.report_id,
            payload.report_id,
            payload.captured_at,
            normalise_place(payload.place, payload.unit),
            payload.location,
            text_bigrams(payload.text),
            submitted.actor.id,
            submitted.key if submitted.key.startswith("area:") else "",
        )
        known = [t for t in self.traces if t[0] == payload.report_id]
        if known:
            incident = known[0][1]
        else:
            incident = payload.report_id
            for report_id, incident_id, _, _ in self.traces:
                if self.grouper._related(self.trace_of[report_id], new):
                    incident = incident_id
                    break
            self.traces.append((payload.report_id, incident, payload.captured_at, new.reporter_id))
            self.trace_of[payload.report_id] = new
            newest = max(t[2] for t in self.traces)
            self.traces = [t for t in self.traces if t[2] >= newest - timedelta(hours=48)]
        members = [t for t in self.traces if t[1] == incident] or [
            (payload.report_id, incident, payload.captured_at, new.reporter_id)
        ]
        reporters = frozenset(t[3] for t in members if t[3] != "anonymous")
        return incident, members[0][0], reporters


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["站台积水", "站台积水严重", "信号故障", "信号机故障", "扶梯停运"]),
            st.sampled_from(["1站台", "2站台", None]),
            # minutes: mostly within a few windows of each other, some up to 60 h apart
            st.integers(min_value=-150, max_value=150) | st.integers(-60 * 60, 60 * 60),
            st.sampled_from(["w1", "w2", "w3", "anonymous"]),
            st.booleans(),  # seen again (a redelivery) rather than new
            # no position, two about 140 m apart, one a few km away, and two 67 m apart
            # either side of the edge between two bands of latitude the grouper indexes by
            st.sampled_from(
                [
                    None,
                    (39.9, 116.4),
                    (39.901, 116.401),
                    (39.95, 116.45),
                    (39.9026, 116.4),
                    (39.9032, 116.4),
                ]
            ),
        ),
        max_size=40,
    )
)
def test_the_indexed_grouper_answers_as_the_plain_scan_does(
    steps: list[tuple[str, str | None, int, str, bool, tuple[float, float] | None]],
) -> None:
    fast, plain = IncidentGrouper(), _ReferenceGrouper()
    seen: list[ReportSubmitted] = []
    for text, place, minutes, reporter, again, at in steps:
        submitted = (
            seen[-1]
            if again and seen
            else report(text, minutes=minutes, place=place, reporter=reporter, at=at)
        )
        seen.append(submitted)
        got = fast.assign(submitted)
        assert (got.incident_id, got.opened_by, got.reporters) == plain.assign(submitted)
