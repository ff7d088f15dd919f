"""Severity from the rule file: Chinese and English, places, photos, night, with reasons."""

from __future__ import annotations

import re
from datetime import datetime
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest

from qianliyan.ingest.web import WEB_DIR
from qianliyan.shared.events import (
    Actor,
    ActorKind,
    PhotoRef,
    ReportSubmitted,
    ReportSubmittedPayload,
    ReportTriaged,
    Severity,
)
from qianliyan.shared.events.reports import PAGE_CATEGORIES
from qianliyan.triage.domain.incidents import normalise_place, text_bigrams
from qianliyan.triage.domain.rules import LoadedRules, categories_off_the_page, parse_rules
from qianliyan.triage.domain.severity import SCALE, decide_severity
from qianliyan.triage.domain.triage import TriagePipeline
from qianliyan.triage.rulebook import DEFAULT_RULES

RULES = parse_rules(DEFAULT_RULES.read_text(encoding="utf-8"))
SHANGHAI = ZoneInfo("Asia/Shanghai")
AFTERNOON = datetime(2026, 11, 25, 15, 0, tzinfo=SHANGHAI)
PHOTO = PhotoRef(
    sha256="a" * 64,
    object_key="photos/aa/" + "a" * 64,
    content_type="image/jpeg",
    size_bytes=10,
    width=1,
    height=1,
)


def report(
    text: str,
    *,
    place: str | None = None,
    at: datetime = AFTERNOON,
    photos: int = 0,
) -> ReportSubmittedPayload:
    return ReportSubmittedPayload(
        report_id=uuid4(),
        text=text,
        place=place,
        captured_at=at,
        received_at=at,
        photos=[PHOTO] * photos,
    )


def rule_ids(payload: ReportSubmittedPayload, rules: LoadedRules = RULES) -> set[str]:
    return {reason.rule_id for reason in decide_severity(payload, rules).reasons}


@pytest.mark.parametrize(
    ("text", "severity", "rule_id"),
    [
        ("站台东侧配电箱冒烟", Severity.CRITICAL, "fire-smoke"),
        ("二道岔区发现线路异物", Severity.MAJOR, "line-obstruction"),
        ("Signal failure at the yard throat", Severity.MAJOR, "signal-failure"),
        ("SMOKE coming from the cab", Severity.CRITICAL, "fire-smoke"),
        ("候车室拥挤", Severity.MINOR, "crowding"),
    ],
)
def test_keywords_decide_severity_with_evidence(
    text: str, severity: Severity, rule_id: str
) -> None:
    decision = decide_severity(report(text), RULES)
    assert decision.severity is severity
    assert rule_id in {reason.rule_id for reason in decision.reasons}
    assert all(reason.evidence for reason in decision.reasons)


def test_the_most_severe_matching_rule_wins_and_every_match_is_a_reason() -> None:
    decision = decide_severity(report("信号故障，同时有人受伤"), RULES)
    assert decision.severity is Severity.CRITICAL
    assert {reason.rule_id for reason in decision.reasons} == {"signal-failure", "injury"}


def test_nothing_matching_is_info_without_reasons_even_at_night_with_a_photo() -> None:
    night = datetime(2026, 11, 25, 2, 10, tzinfo=SHANGHAI)
    decision = decide_severity(report("灯泡坏了一个", at=night, photos=1), RULES)
    assert decision.severity is Severity.INFO
    assert decision.reasons == ()


def test_main_line_and_night_raise_what_a_keyword_found() -> None:
    day_yard = decide_severity(report("发现异物", place="编组场"), RULES)
    assert day_yard.severity is Severity.MAJOR
    night_main = decide_severity(
        report("发现异物", place="K123+400", at=datetime(2026, 11, 25, 23, 30, tzinfo=SHANGHAI)),
        RULES,
    )
    assert night_main.severity is Severity.CRITICAL
    evidence = {reason.rule_id: reason.evidence for reason in night_main.reasons}
    assert evidence["on-main-line"] == ["place K123+400 is main_line"]
    assert evidence["night"] == ["captured at 23:30 local time"]


def test_night_is_judged_in_the_rule_files_time_zone() -> None:
    # 15:30 UTC is 23:30 in Shanghai.
    utc = datetime(2026, 11, 25, 15, 30, tzinfo=ZoneInfo("UTC"))
    assert "night" in rule_ids(report("积水", at=utc))


def test_a_photo_is_noted_as_evidence_without_raising() -> None:
    decision = decide_severity(report("积水", photos=2), RULES)
    assert decision.severity is Severity.MAJOR
    assert "photo-evidence" in {reason.rule_id for reason in decision.reasons}


def test_transform_continues_the_correlation_and_stamps_the_rule_version() -> None:
    payload = report("脱轨")
    submitted = ReportSubmitted.first(
        key=str(payload.report_id),
        actor=Actor(kind=ActorKind.REPORTER, id="w1"),
        payload=payload,
    )
    pipeline = TriagePipeline(lambda: RULES, output_topic="out")
    [(topic, triaged)] = pipeline.transform(submitted, 0)
    assert topic == "out"
    assert isinstance(triaged, ReportTriaged)
    assert triaged.correlation_id == submitted.correlation_id
    assert triaged.causation_id == submitted.event_id
    assert triaged.payload.rule_set_version == RULES.version == "2026-12-08.5"
    assert pipeline.transform(triaged, 0) == []
    # The same submission seen twice yields the same event, which readers drop as a copy.
    [(_, again)] = pipeline.transform(submitted, 0)
    assert again.event_id == triaged.event_id


def test_a_batch_is_triaged_under_the_rules_in_force_as_it_begins() -> None:
    edited = parse_rules(
        DEFAULT_RULES.read_text(encoding="utf-8").replace('"2026-12-08.5"', '"2026-12-08.6"')
    )
    in_force = [RULES]
    pipeline = TriagePipeline(lambda: in_force[0], output_topic="out")
    submitted = [
        ReportSubmitted.first(
            key=str(uuid4()), actor=Actor(kind=ActorKind.REPORTER, id="w1"), payload=report(text)
        )
        for text in ("脱轨", "积水", "冒烟")
    ]
    batch = pipeline.for_batch(0)
    [(_, first)] = batch(submitted[0])
    in_force[0] = edited  # the file changes while the batch is under way
    versions = [first] + [output for event in submitted[1:] for _, output in batch(event)]
    assert [v.payload.rule_set_version for v in versions] == ["2026-12-08.5"] * 3  # type: ignore[attr-defined]
    [(_, next_batch)] = pipeline.for_batch(0)(submitted[0])
    assert next_batch.payload.rule_set_version == "2026-12-08.6"  # type: ignore[attr-defined]


def rules_with(hours: str, patterns: str = "['正线']") -> LoadedRules:
    return parse_rules(
        f"""\
version: "t"
places:
  - kind: main_line
    patterns: {patterns}
rules:
  - id: smoke
    summary: Smoke
    keywords: [冒烟]
    severity: minor
  - id: in-hours
    summary: In the hours
    hours: "{hours}"
    raise_by: 1
  - id: on-main-line
    summary: Main line
    place_kinds: [main_line]
    raise_by: 1
"""
    )


@pytest.mark.parametrize(
    ("hours", "inside", "outside"),
    [
        ("22-6", [22, 23, 0, 5], [6, 12, 21]),
        ("0-24", [0, 12, 23], []),
        ("22-24", [22, 23], [0, 21]),
        ("24-6", [0, 5], [6, 23]),
        ("8-17", [8, 16], [7, 17]),
    ],
)
def test_an_hours_window_holds_from_its_start_up_to_its_end(
    hours: str, inside: list[int], outside: list[int]
) -> None:
    rules = rules_with(hours)
    for hour in inside:
        at = datetime(2026, 11, 25, hour, 30, tzinfo=SHANGHAI)
        assert "in-hours" in rule_ids(report("冒烟", at=at), rules), hour
    for hour in outside:
        at = datetime(2026, 11, 25, hour, 30, tzinfo=SHANGHAI)
        assert "in-hours" not in rule_ids(report("冒烟", at=at), rules), hour


def test_each_place_pattern_is_its_own_expression_with_its_own_flags() -> None:
    # Inline flags and groups are each pattern's own, as the file's author wrote them.
    rules = rules_with("0-24", patterns="['正线', '(?i)main LINE', '(x)', '(a)\\1']")
    assert "on-main-line" in rule_ids(report("冒烟", place="Main line 3"), rules)
    assert "on-main-line" in rule_ids(report("冒烟", place="aa"), rules)
    assert "on-main-line" not in rule_ids(report("冒烟", place="ab"), rules)


def test_keywords_are_text_not_patterns_and_every_one_found_is_evidence() -> None:
    rules = parse_rules(
        """\
version: "t"
rules:
  - id: odd-keywords
    summary: Keywords with characters a regex would read
    keywords: ["K1+2", "a.b", "(x)", 线路异物, 异物]
    severity: minor
"""
    )
    assert rule_ids(report("K11+2 axb x"), rules) == set()
    [reason] = decide_severity(report("在K1+2处 (X) 发现线路异物"), rules).reasons
    # Overlapping keywords are each named, as a reader of the reason would expect.
    assert reason.evidence == ["K1+2", "(x)", "线路异物", "异物"]


@pytest.mark.parametrize(
    ("text", "severity", "rule_ids"),
    [
        # The commonest line of a field report: nobody hurt. It is not an injury.
        ("道岔区发现异物，已清理，无人受伤", Severity.MAJOR, {"line-obstruction"}),
        ("配电箱冒烟，没有人受伤", Severity.CRITICAL, {"fire-smoke"}),
        ("巡视一遍，未发现异物，无积水", Severity.INFO, set()),
        ("Checked the cab: no smoke, nobody injured", Severity.INFO, set()),
        # A keyword outside its phrases still counts, and only listed phrases excuse one.
        ("无人受伤，但有一人流血", Severity.CRITICAL, {"injury"}),
        ("制动失效，无法避免碰撞", Severity.CRITICAL, {"derailment-collision"}),
        ("异物已清除，又发现落石", Severity.MAJOR, {"line-obstruction"}),
        # A report that leaves the matter open is read as the worse case: asked about...
        ("旅客被夹在车门处，尚未确认有无人员受伤", Severity.CRITICAL, {"injury"}),
        ("3号车厢有没有冒烟？请立即检查", Severity.CRITICAL, {"fire-smoke"}),
        ("有 没有人受伤", Severity.CRITICAL, {"injury"}),
        ("是否无人受伤，待核实", Severity.CRITICAL, {"injury"}),
        ("无人受伤吗？", Severity.CRITICAL, {"injury"}),
        ("No smoke? Check car 3", Severity.CRITICAL, {"fire-smoke"}),
        # ...or before what happened.
        ("列车未脱轨前曾剧烈晃动", Severity.CRITICAL, {"derailment-collision"}),
        # Asked about later in its sentence or clause, or doubted before it in its clause.
        ("no injuries? check car 3", Severity.CRITICAL, {"injury"}),
        ("No one injured, right?", Severity.CRITICAL, {"injury"}),
        ("没有人受伤了吗？", Severity.CRITICAL, {"injury"}),
        ("无人受伤，对吧？", Severity.CRITICAL, {"injury"}),
        ("没有冒烟吧", Severity.CRITICAL, {"fire-smoke"}),
        ("未确认无人受伤", Severity.CRITICAL, {"injury"}),
        ("需要确认无人受伤", Severity.CRITICAL, {"injury"}),
        ("正在核实无人受伤", Severity.CRITICAL, {"injury"}),
        ("需要进一步确认无人受伤", Severity.CRITICAL, {"injury"}),
        ("请确认无人受伤", Severity.CRITICAL, {"injury"}),
        ("未经现场确认无人受伤", Severity.CRITICAL, {"injury"}),
        ("是不是没有人受伤还不清楚", Severity.CRITICAL, {"injury"}),
        ("在未脱轨以前，车厢剧烈晃动", Severity.CRITICAL, {"derailment-collision"}),
        # An exception in its sentence: someone is.
        ("除司机外无人受伤", Severity.CRITICAL, {"injury"}),
        ("除了司机，其他人无人受伤", Severity.CRITICAL, {"injury"}),
        ("无人受伤（司机除外）", Severity.CRITICAL, {"injury"}),
        ("No one injured except the driver", Severity.CRITICAL, {"injury"}),
        ("Nobody was hurt apart from the driver", Severity.CRITICAL, {"injury"}),
        ("Except the driver, no one was hurt", Severity.CRITICAL, {"injury"}),
        # Only beside the phrase it qualifies.
        ("除司机外无人受伤，无冒烟", Severity.CRITICAL, {"injury"}),
        ("Fire drill on platform 2 for all staff except drivers", Severity.INFO, set()),
        ("No one was hurt but the train is delayed", Severity.INFO, set()),
        ("排除外部干扰后，无人受伤", Severity.INFO, set()),
        ("除雪车在站外作业，无人受伤", Severity.INFO, set()),
        # Said plainly, with what comes next in the report: still excused.
        ("现场无人受伤前方线路正常", Severity.INFO, set()),
        ("没有冒烟前往现场确认中", Severity.INFO, set()),
        ("无人受伤 前方已封锁", Severity.INFO, set()),
        ("无人受伤。请问需要支援吗？", Severity.INFO, set()),
        ("Nobody injured. Can you send a crew?", Severity.INFO, set()),
        # A check said done affirms; a clearing away is no exception.
        ("经确认无人受伤", Severity.INFO, set()),
        ("已核实无人受伤", Severity.INFO, set()),
        ("现场确认：无人受伤，无冒烟", Severity.INFO, set()),
        ("故障已排除，无人受伤", Severity.INFO, set()),
        ("已清除了异物，无人受伤", Severity.MAJOR, {"line-obstruction"}),
        ("No one was injured", Severity.INFO, set()),
        ("Nobody was hurt, no flames seen", Severity.INFO, set()),
        ("經確認無人受傷", Severity.INFO, set()),
        ("Smoke detector test on platform 2, no fire", Severity.INFO, set()),
        ("The driver wasn’t hurt", Severity.INFO, set()),  # a phone's apostrophe
        ("未造成人员伤亡", Severity.INFO, set()),
        ("检查中没有明火，无火情", Severity.INFO, set()),
        # Words that hold a keyword's letters, and the track's own sense of 轻伤 and 重伤.
        ("Skilled crew sent to gate 3", Severity.INFO, set()),
        ("Ticket machine app crashed", Severity.INFO, set()),
        ("Fatal error on the display board", Severity.INFO, set()),
        ("Signal struck by lightning, now working", Severity.INFO, set()),
        ("Power killed on the overhead line for the works", Severity.INFO, set()),
        ("K125+300处钢轨重伤", Severity.INFO, set()),
        ("巡检发现轻伤钢轨一处，钢轨严重伤损", Severity.INFO, set()),
        # Another thing that holds the keyword.
        ("Floodlight out at gate 3", Severity.INFO, set()),
        ("Fire drill at 10:00 on platform 2", Severity.INFO, set()),
        # An English phrase begins a word: "no smoke" is not in "casino smoke".
        ("Casino smoke drifting over the yard", Severity.CRITICAL, {"fire-smoke"}),
        # Only negations excuse: an extinguisher used means a fire.
        ("Fire extinguisher discharged in car 3", Severity.CRITICAL, {"fire-smoke"}),
    ],
)
def test_a_keyword_inside_a_phrase_that_says_the_opposite_does_not_count(
    text: str, severity: Severity, rule_ids: set[str]
) -> None:
    decision = decide_severity(report(text), RULES)
    assert (decision.severity, {reason.rule_id for reason in decision.reasons}) == (
        severity,
        rule_ids,
    )


@pytest.mark.parametrize(
    ("text", "rule_id"),
    [
        # Someone struck, hurt or killed, in the words the field uses.
        ("列车撞人", "derailment-collision"),
        ("有人被列车撞伤", "derailment-collision"),
        ("列车撞上汽车", "derailment-collision"),
        ("Train collided with a truck at the crossing", "derailment-collision"),
        ("Man hit by a train near K12", "derailment-collision"),
        ("乘客摔伤", "injury"),
        ("一人死亡", "injury"),
        ("Passenger hurt on the stairs", "injury"),
        ("Worker killed by falling rail", "injury"),
        ("失火了", "fire-smoke"),
        ("车厢燃烧", "fire-smoke"),
        ("候车室发生爆炸", "fire-smoke"),
        ("Explosion in the hall", "fire-smoke"),
        # Written in traditional characters, as a phone set to them writes.
        ("3站台火災", "fire-smoke"),
        ("配電箱冒煙", "fire-smoke"),
        ("著火了", "fire-smoke"),
        ("列車脫軌", "derailment-collision"),
        ("乘客受傷", "injury"),
        ("道岔有異物", "line-obstruction"),
        ("地道積水", "flooding"),
        ("信號機故障", "signal-failure"),
    ],
)
def test_the_shipped_rules_know_the_field_s_words_for_what_matters_most(
    text: str, rule_id: str
) -> None:
    decision = decide_severity(report(text), RULES)
    assert rule_id in {reason.rule_id for reason in decision.reasons}, decision
    floor = {r.id: r.severity for r in RULES.spec.rules if r.severity is not None}[rule_id]
    assert SCALE.index(decision.severity) >= SCALE.index(floor)


def test_the_evidence_names_only_keywords_found_outside_the_excusing_phrases() -> None:
    [reason] = decide_severity(report("无人受伤，但有一人流血"), RULES).reasons
    assert reason.evidence == ["流血"]
    [reason] = decide_severity(report("异物已清除，又发现落石"), RULES).reasons
    assert reason.evidence == ["落石"]
    [reason] = decide_severity(report("Skilled worker hurt"), RULES).reasons
    assert reason.evidence == ["hurt"]  # not "killed", inside "skilled"


@pytest.mark.parametrize(
    ("text", "rule_id"),
    [
        ("ＦＩＲＥ near platform", "fire-smoke"),  # full-width, as a Chinese keyboard types it
        ("SIGNAL  FAILURE at the throat", "signal-failure"),
        ("signal\nfailure since 6:00", "signal-failure"),
    ],
)
def test_text_is_compared_as_read_not_as_typed(text: str, rule_id: str) -> None:
    assert rule_id in rule_ids(report(text))


def test_a_full_width_kilometre_post_is_on_the_main_line() -> None:
    decision = decide_severity(report("发现异物", place="Ｋ１２３＋４００"), RULES)
    assert "on-main-line" in {reason.rule_id for reason in decision.reasons}
    assert decision.severity is Severity.CRITICAL


def test_a_place_typed_full_width_is_the_same_place() -> None:
    assert normalise_place("３站台", "北京南站") == normalise_place("3站台", "北京南站")
    assert text_bigrams("ＦＩＲＥ") == text_bigrams("fire")


def test_the_page_offers_the_categories_rules_are_checked_against() -> None:
    page = (WEB_DIR / "index.html").read_text(encoding="utf-8")
    category_list = page[page.index('<select id="category"') : page.index("</select>")]
    offered = re.findall(r'<option value="([^"]*)"', category_list)
    assert offered == ["", *PAGE_CATEGORIES]
    words = (WEB_DIR / "static" / "js" / "i18n.js").read_text(encoding="utf-8")
    for category in PAGE_CATEGORIES:  # in Chinese and in English
        assert words.count(f'"cat.{category}":') == 2, category


def test_a_rule_naming_a_category_the_page_does_not_offer_is_pointed_out() -> None:
    rules = parse_rules(
        'version: "c1"\n'
        "rules:\n"
        "  - id: signal-fault\n"
        "    summary: Signal fault\n"
        "    categories: [signal, Track, trak, 桥梁]\n"
        "    severity: major\n"
        "  - id: crowding\n"
        "    summary: Crowding\n"
        "    categories: [passengers]\n"
        "    severity: minor\n"
    )
    assert categories_off_the_page(rules.spec) == {
        "signal-fault": [
            "'Track' (did you mean 'track'?)",
            "'trak' (did you mean 'track'?)",
            "'桥梁'",
        ]
    }
    assert categories_off_the_page(RULES.spec) == {}
