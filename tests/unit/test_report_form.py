"""The report parser: any input yields a report or a list of named field errors, nothing else."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qianliyan.ingest.domain.reports import (
    ReportForm,
    ReportFormInvalid,
    build_report_submitted,
    capture_time,
    parse_report_form,
)
from qianliyan.shared.events import GeoPoint
from qianliyan.shared.events.envelope import new_event_id
from qianliyan.shared.events.reports import UNIT_MAX_LENGTH
from qianliyan.shared.text import NOT_PRINTABLE

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
CONTROL_OR_BREAK = re.compile(r"[\x00-\x1f\x7f]")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
report_like = st.fixed_dictionaries(
    {},
    optional={
        "text": st.text(max_size=60),
        "category": st.none() | st.text(max_size=20),
        "place": st.none() | st.text(max_size=20),
        "location": json_values
        | st.fixed_dictionaries(
            {"lat": st.floats(-100, 100), "lon": st.floats(-200, 200)},
        ),
        "occurred_at": st.none()
        | st.text(max_size=30)
        | st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat),
        "client_report_id": st.none() | st.text(max_size=120),
        "reporter_id": st.none() | st.text(max_size=40),
        "unit": st.none() | st.text(max_size=20),
        "extra": json_values,
    },
)


def outcome(raw: str | bytes) -> ReportForm | ReportFormInvalid:
    try:
        return parse_report_form(raw)
    except ReportFormInvalid as invalid:
        return invalid


@given(st.binary(max_size=200) | st.text(max_size=200))
def test_arbitrary_bytes_never_escape_as_another_error(raw: str | bytes) -> None:
    result = outcome(raw)
    if isinstance(result, ReportFormInvalid):
        assert result.errors
        assert all(error["field"].startswith("report") for error in result.errors)


@given(report_like)
def test_report_shaped_documents_parse_or_name_their_fields(document: dict[str, object]) -> None:
    result = outcome(json.dumps(document))
    if isinstance(result, ReportForm):
        assert result.text.strip() == result.text and 1 <= len(result.text) <= 5000
        assert "extra" not in document
        # Nothing accepted holds what PostgreSQL cannot store or a screen cannot show.
        assert not CONTROL.search(result.text)
        labels = [result.category, result.place, result.unit]
        assert not any(CONTROL_OR_BREAK.search(label) for label in labels if label)
        names = [result.client_report_id, result.reporter_id]
        assert not any(CONTROL_OR_BREAK.search(name) for name in names if name)
    else:
        named = {error["field"].split(".")[1] for error in result.errors if "." in error["field"]}
        assert named <= set(document) | {"text"}


def test_stray_control_characters_leave_free_text_but_line_breaks_stay() -> None:
    form = parse_report_form(json.dumps({"text": "\u0000道岔\r\n故障\t2号\u0007\u0085"}))
    assert form.text == "道岔\n故障\t2号"


def test_a_place_unit_and_category_are_one_line() -> None:
    form = parse_report_form(
        json.dumps(
            {
                "text": "x",
                "place": "\u001b3站台\n东端",
                "unit": " 北京站\t ",
                "category": "a\u0000b",
            }
        )
    )
    assert (form.place, form.unit, form.category) == ("3站台 东端", "北京站", "a b")


def test_a_unit_is_as_long_as_every_reader_of_it_takes() -> None:
    # The event, the managers' units and the feed's filter take UNIT_MAX_LENGTH; a form
    # that let a longer unit through would publish a report no event can carry.
    longest = "站" * UNIT_MAX_LENGTH
    assert parse_report_form(json.dumps({"text": "x", "unit": longest})).unit == longest
    with pytest.raises(ReportFormInvalid, match=r"report\.unit"):
        parse_report_form(json.dumps({"text": "x", "unit": longest + "站"}))


def test_a_text_of_control_characters_alone_is_empty() -> None:
    with pytest.raises(ReportFormInvalid, match=r"report\.text"):
        parse_report_form(json.dumps({"text": "\u0000 \u0001"}))


@pytest.mark.parametrize("field", ["client_report_id", "reporter_id"])
@pytest.mark.parametrize("value", ["a\u0000b", "a\nb", "\u007f"])
def test_an_identifier_with_a_control_character_is_refused_by_name(field: str, value: str) -> None:
    with pytest.raises(ReportFormInvalid) as refused:
        parse_report_form(json.dumps({"text": "x", field: value}))
    assert refused.value.errors == [
        {"field": f"report.{field}", "code": "not_printable", "message": NOT_PRINTABLE},
    ]


def test_chinese_text_and_place_are_kept_verbatim() -> None:
    form = parse_report_form(json.dumps({"text": " 线路异物 ", "place": "K123+400"}))
    assert form.text == "线路异物"
    assert form.place == "K123+400"


def test_a_phone_clock_running_ahead_counts_the_report_from_its_arrival() -> None:
    arrived = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    ahead = parse_report_form(json.dumps({"text": "x", "occurred_at": "2026-12-06T10:00:00Z"}))
    assert ahead.occurred_at == arrived + timedelta(hours=2)  # kept as sent, for a retry's key
    assert capture_time(ahead.occurred_at, arrived) == arrived
    # A few minutes' drift is kept, as is any time before the arrival.
    drifted = arrived + timedelta(minutes=9)
    assert capture_time(drifted, arrived) == drifted
    assert capture_time(arrived - timedelta(days=2), arrived) == arrived - timedelta(days=2)
    assert capture_time(None, arrived) == arrived


@pytest.mark.parametrize("moment", ["0001-01-01T05:00:00+08:00", "1969-12-31T23:59:59Z"])
def test_a_capture_time_before_any_phone_clock_is_refused(moment: str) -> None:
    # The year 1 was accepted once, and was a 202 that triage could not place.
    with pytest.raises(ReportFormInvalid, match="before 1970"):
        parse_report_form(json.dumps({"text": "x", "occurred_at": moment}))


def test_each_refusal_names_its_code_and_the_limits_it_names() -> None:
    # What the reporter's page says in Chinese: pydantic's error types, and ours.
    cases = {
        json.dumps({"text": "   "}): ("report.text", "string_too_short", {"min_length": 1}),
        json.dumps({"text": "长" * 5001}): (
            "report.text",
            "string_too_long",
            {"max_length": 5000},
        ),
        json.dumps({"text": "x", "occurred_at": "1969-12-31T23:59:59Z"}): (
            "report.occurred_at",
            "clock_before_1970",
            {},
        ),
        json.dumps({}): ("report.text", "missing", {}),
    }
    for raw, (field, code, context) in cases.items():
        with pytest.raises(ReportFormInvalid) as refused:
            parse_report_form(raw)
        [error] = refused.value.errors
        assert (error["field"], error["code"], error.get("context", {})) == (field, code, context)


def test_a_reset_phone_clock_is_still_a_report() -> None:
    form = parse_report_form(json.dumps({"text": "x", "occurred_at": "1970-01-01T00:00:05Z"}))
    assert form.occurred_at is not None and form.occurred_at.year == 1970


@pytest.mark.parametrize("moment", [0, 1733479200, 1.5, "0", "0.0", "1733479200", "-5", "1.5e2"])
def test_a_capture_time_is_a_date_and_time_never_a_number_of_seconds(moment: object) -> None:
    # Pydantic alone reads a number as seconds since 1970: 0 was a report from 1970.
    with pytest.raises(ReportFormInvalid, match=r"occurred_at: .*must be a date and time"):
        parse_report_form(json.dumps({"text": "x", "occurred_at": moment}))


def test_a_capture_time_without_timezone_is_refused() -> None:
    with pytest.raises(ReportFormInvalid, match="occurred_at"):
        parse_report_form(json.dumps({"text": "x", "occurred_at": "2026-11-25T02:10:00"}))


def test_reports_that_may_share_an_incident_share_a_key_whatever_they_name() -> None:
    # Two departments at one spot, a place name and none, either side of any map grid:
    # triage can only group what reaches it on one partition.
    forms = [
        ReportForm(text="道岔故障", unit="北京南站", place="3号站台"),
        ReportForm(text="道岔故障", unit="丰台西站", location=GeoPoint(lat=39.8250, lon=116.3249)),
        ReportForm(text="道岔故障", location=GeoPoint(lat=39.8250, lon=116.3251)),
        ReportForm(text="道岔故障"),
    ]
    events = [
        build_report_submitted(
            form=form,
            reporter_id="rep-a",
            sent_by="rep-a",
            unit=form.unit,
            area="华北路局",
            photos=[],
            report_id=new_event_id(),
            event_id=new_event_id(),
            received_at=datetime.now(UTC),
        )
        for form in forms
    ]
    assert {event.key for event in events} == {"area:华北路局"}
    assert [event.payload.unit for event in events] == ["北京南站", "丰台西站", None, None]
