"""Alert routing: the file is checked naming its line, and escalation is decided purely."""

from __future__ import annotations

import hashlib
import os
import textwrap
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from uuid import uuid4

import pytest

from qianliyan.notify.app import DEFAULT_ROUTING
from qianliyan.notify.domain.alerting import (
    DeliveryKey,
    OpenIncident,
    QuietIncidents,
    RaisedAlert,
    plan_alert,
    telling,
)
from qianliyan.notify.domain.messages import AlertFacts, compose
from qianliyan.notify.domain.outbound import OutboundPolicy
from qianliyan.notify.domain.routing import (
    Delivery,
    Routing,
    parse_routing,
    retry_delay,
    units_not_listed,
)
from qianliyan.shared.config_files import ConfigFileError, WatchedFile
from qianliyan.shared.events import Severity

ROUTING = """\
version: "r1"
timezone: Asia/Shanghai
quiet_hours:
  hours: "22-7"
  applies_below: major
recipients:
  - id: duty
    name: 值班台
    channels:
      - apprise: "mailto://smtp.example.org:2525?to=duty@example.org"
  - id: chief
    name: Chief
    language: en
    channels:
      - id: hook
        webhook: "https://hooks.example.org/q"
        secret: "whsec_c2VjcmV0c2VjcmV0c2VjcmV0"
      - apprise: "mailto://smtp.example.org:2525?to=chief@example.org"
routes:
  - id: station-a
    min_severity: minor
    units: [A站]
    escalation:
      - after: 0m
        notify: [duty]
      - after: 10m
        notify: [chief]
    repeat_every: 30m
  - id: anywhere-critical
    min_severity: critical
    escalation:
      - after: 0s
        notify: [chief]
"""

# 10:00 in Shanghai, well outside quiet hours.
MORNING = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


def routing() -> Routing:
    return parse_routing(ROUTING)


def _digest(written: str) -> str:
    return hashlib.sha256(written.encode()).hexdigest()[:8]


# A channel without an id is named by its kind and a digest of its target as written.
DUTY_MAIL = f"mailto-{_digest('mailto://smtp.example.org:2525?to=duty@example.org')}"
CHIEF_MAIL = f"mailto-{_digest('mailto://smtp.example.org:2525?to=chief@example.org')}"


def test_a_channel_keeps_its_name_whatever_is_added_around_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Named by its place in the list, a channel added in front of another took its name,
    and every open alert was told again on both."""
    monkeypatch.setenv("QLY_TEST_KEY", "one")
    wecom = '      - apprise: "wecombot://${QLY_TEST_KEY}"\n'
    mail = '      - apprise: "mailto://smtp.example.org:2525?to=chief@example.org"\n'

    def labels(channels: str) -> list[str]:
        text = ROUTING.replace(
            '      - apprise: "mailto://smtp.example.org:2525?to=duty@example.org"\n', channels
        )
        return [label for label, _ in parse_routing(text).recipient("duty").labelled_channels()]

    [alone] = labels(wecom)
    assert alone == f"wecombot-{_digest('wecombot://${QLY_TEST_KEY}')}"  # as written
    assert labels(mail + wecom) == [CHIEF_MAIL, alone]
    assert labels(wecom + mail) == [alone, CHIEF_MAIL]
    monkeypatch.setenv("QLY_TEST_KEY", "rotated")  # a new key for the same chat group
    assert labels(wecom) == [alone]


def test_deliveries_recorded_under_a_place_in_the_list_are_the_same_channel_s() -> None:
    """Releases before named a channel without an id `kind-index`: an upgrade tells nobody
    again what such a delivery told."""
    loaded = routing()
    assert loaded.label_now("chief", "mailto-1") == CHIEF_MAIL
    assert loaded.label_now("chief", "hook") == "hook"
    assert loaded.label_now("chief", "mailto-0") == "mailto-0"  # index 0 is the webhook
    assert loaded.label_now("gone", "mailto-0") == "mailto-0"


def refused(text: str) -> ConfigFileError:
    with pytest.raises(ConfigFileError) as caught:
        parse_routing(textwrap.dedent(text))
    return caught.value


def test_the_packaged_default_loads() -> None:
    loaded = parse_routing(DEFAULT_ROUTING.read_text(encoding="utf-8"))
    assert loaded.route_for(Severity.CRITICAL, None, None) is not None
    assert loaded.route_for(Severity.MINOR, None, None) is None


@pytest.mark.parametrize(
    ("edit", "line", "message"),
    [
        (("min_severity: minor", "min_severity: dire"), 21, "routes.0.min_severity"),
        (("notify: [chief]\n    repeat", "notify: [boss]\n    repeat"), 27, "'boss' is not one"),
        (("after: 10m", "after: soon"), 26, "duration"),
        (("id: chief", "id: duty"), 11, "recipients.1.id: id 'duty' is used twice"),
        (('hours: "22-7"', 'hours: "late"'), 4, "22-7"),
        (('hours: "22-7"', 'hours: "22-24"'), 4, "(from 22:00 to 07:00), each 0 to 23"),
        (('secret: "whsec_', 'secret: "plain_'), 15, "whsec_"),
        (('webhook: "https://hooks', 'webhook: "ftp://hooks'), 15, "http(s)"),
        (("after: 10m", "after: 0m"), 20, "later and later"),
        # Unquoted, YAML reads the number 1.1: alerts would name a version not written.
        (('version: "r1"', "version: 1.10"), 1, "write the version in quotes"),
        (("    units: [A站]", "    units: [A站]\n    min_severity: major"), 23, "'min_severity'"),
        (('apprise: "mailto://smtp', 'apprise: "smtp'), 10, "a URL that names its service"),
        (
            ("recipients:", "delivery:\n  first_retry: 1h\n  max_retry: 10m\nrecipients:"),
            7,
            "first_retry is longer than max_retry",
        ),
    ],
)
def test_a_bad_file_is_refused_naming_its_line(
    edit: tuple[str, str], line: int, message: str
) -> None:
    error = refused(ROUTING.replace(*edit, 1))
    assert error.line == line, str(error)
    assert message in str(error)


def test_a_route_naming_a_unit_the_organisation_does_not_list_is_pointed_out() -> None:
    typo = parse_routing(ROUTING.replace("units: [A站]", "units: [A战, B站]"))
    assert units_not_listed(typo, {"A站", "B站"}) == [
        "route 'station-a' names unit 'A战', which the organisation file does not list"
    ]
    assert units_not_listed(routing(), {"A站"}) == []


def test_secrets_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    text = ROUTING.replace("whsec_c2VjcmV0c2VjcmV0c2VjcmV0", "${TEST_HOOK_SECRET}")
    monkeypatch.delenv("TEST_HOOK_SECRET", raising=False)
    error = refused(text)
    assert error.line == 17 and "TEST_HOOK_SECRET is not set" in str(error)
    monkeypatch.setenv("TEST_HOOK_SECRET", "whsec_ZnJvbWVudg==")
    channel = parse_routing(text).recipient("chief").channels[0]
    assert channel.secret is not None and channel.secret.get_secret_value() == "whsec_ZnJvbWVudg=="
    assert "ZnJvbWVudg" not in repr(channel)  # secrets never show in logs


def test_the_first_matching_route_wins() -> None:
    loaded = routing()
    assert loaded.route_for(Severity.MINOR, "A站", None).id == "station-a"  # type: ignore[union-attr]
    assert loaded.route_for(Severity.CRITICAL, "A站", None).id == "station-a"  # type: ignore[union-attr]
    assert loaded.route_for(Severity.CRITICAL, "B站", None).id == "anywhere-critical"  # type: ignore[union-attr]
    assert loaded.route_for(Severity.MAJOR, "B站", None) is None
    assert loaded.route_for(Severity.INFO, "A站", None) is None


def incident(
    severity: Severity = Severity.MAJOR,
    *,
    raised_at: datetime | None = None,
    step: int = 0,
    last_received_at: datetime = MORNING,
    round_: int = 0,
) -> OpenIncident:
    alert = (
        RaisedAlert(raised_at=raised_at, step=step, severity=severity, unit="A站", place="站台")
        if raised_at
        else None
    )
    return OpenIncident(
        incident_id=uuid4(),
        round=round_,
        severity=severity,
        unit="A站",
        place="站台",
        last_received_at=last_received_at,
        alert=alert,
    )


def test_an_unalerted_incident_is_raised_once_it_matches_a_route() -> None:
    plan = plan_alert(incident(), routing(), MORNING)
    assert plan.raise_route == "station-a" and plan.deliveries == ()
    assert plan_alert(incident(Severity.INFO), routing(), MORNING).raise_route is None


def test_history_re_triaged_pages_nobody() -> None:
    old = incident(last_received_at=MORNING - timedelta(days=3))
    assert plan_alert(old, routing(), MORNING).raise_route is None
    # The default horizon is a day: a report that arrived just inside it still pages.
    recent = incident(last_received_at=MORNING - timedelta(hours=23))
    assert plan_alert(recent, routing(), MORNING).raise_route == "station-a"


def test_an_incident_reopened_is_raised_afresh_however_old_its_reports() -> None:
    # Resolved on day one, reopened on day three: the fault is back, and a person said so.
    reopened = incident(last_received_at=MORNING - timedelta(days=3), round_=1)
    assert plan_alert(reopened, routing(), MORNING).raise_route == "station-a"


def test_an_alert_waits_a_moment_for_the_report_its_triage_came_before() -> None:
    loaded, quiet = routing(), QuietIncidents()
    # Triaged critical a second ago; its report's unit and place are not read yet.
    waiting = replace(
        incident(Severity.CRITICAL),
        unit=None,
        place=None,
        awaiting_report_since=MORNING - timedelta(seconds=1),
    )
    held = plan_alert(waiting, loaded, MORNING)
    assert held.raise_route is None
    assert held.next_due_at == MORNING + timedelta(seconds=4)  # the default wait is 5s
    quiet.note(waiting, loaded, held, settled=set())
    assert quiet.is_quiet(waiting, loaded, MORNING + timedelta(seconds=3))
    # The report is read: planned again at once, and raised by the route of its unit.
    arrived = replace(waiting, unit="A站", place="站台", awaiting_report_since=None)
    assert not quiet.is_quiet(arrived, loaded, MORNING + timedelta(seconds=1))
    assert plan_alert(arrived, loaded, MORNING + timedelta(seconds=1)).raise_route == "station-a"
    # A report that never comes holds nobody back beyond the wait. A triage clock a
    # little ahead of ours still holds; one far ahead has gone wrong, and holds nothing.
    late = plan_alert(waiting, loaded, MORNING + timedelta(seconds=4))
    assert late.raise_route == "anywhere-critical"
    ahead = replace(waiting, awaiting_report_since=MORNING + timedelta(milliseconds=30))
    assert plan_alert(ahead, loaded, MORNING).next_due_at == MORNING + timedelta(seconds=5.03)
    wrong = replace(waiting, awaiting_report_since=MORNING + timedelta(minutes=10))
    assert plan_alert(wrong, loaded, MORNING).raise_route == "anywhere-critical"
    # An alert already raised is never held: an incident's later reports do not wait.
    raised = replace(waiting, alert=RaisedAlert(MORNING, 0, Severity.CRITICAL))
    assert plan_alert(raised, loaded, MORNING).deliveries


def test_escalation_steps_fall_due_in_turn_then_repeat() -> None:
    loaded = routing()
    at_raise = plan_alert(incident(raised_at=MORNING), loaded, MORNING)
    assert [(d.step, d.recipient, d.channel) for d in at_raise.deliveries] == [
        (0, "duty", DUTY_MAIL)
    ]
    assert at_raise.escalate_to is None
    assert at_raise.next_due_at == MORNING + timedelta(minutes=10)

    later = plan_alert(incident(raised_at=MORNING), loaded, MORNING + timedelta(minutes=10))
    assert later.escalate_to == 1
    assert {(d.step, d.recipient, d.channel) for d in later.deliveries} == {
        (0, "duty", DUTY_MAIL),
        (1, "chief", "hook"),
        (1, "chief", CHIEF_MAIL),
    }
    # Already projected at step 1: no second escalation event.
    same = plan_alert(incident(raised_at=MORNING, step=1), loaded, MORNING + timedelta(minutes=11))
    assert same.escalate_to is None

    repeated = plan_alert(
        incident(raised_at=MORNING, step=1), loaded, MORNING + timedelta(minutes=41)
    )
    assert repeated.escalate_to == 2
    # The repeat is the chief's message now; step 1 was theirs before it.
    assert {d.step for d in repeated.deliveries if d.recipient == "chief"} == {2}
    assert repeated.next_due_at == MORNING + timedelta(minutes=70)


def test_low_severities_wait_out_quiet_hours_and_severe_ones_do_not() -> None:
    loaded = routing()
    # 23:30 in Shanghai.
    night = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)
    minor = plan_alert(incident(Severity.MINOR, raised_at=night), loaded, night)
    assert minor.deliveries == ()
    # Quiet hours end at 07:00 Shanghai, which is 23:00 UTC.
    assert minor.next_due_at == datetime(2026, 11, 25, 23, 0, tzinfo=UTC)
    morning = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)
    assert plan_alert(incident(Severity.MINOR, raised_at=night), loaded, morning).deliveries

    major = plan_alert(incident(Severity.MAJOR, raised_at=night), loaded, night)
    assert [d.recipient for d in major.deliveries] == ["duty"]


def test_steps_held_back_together_tell_each_recipient_once_at_the_newest() -> None:
    # Raised at 23:30 in Shanghai, minor: the chief's step and fourteen repeats fall due
    # in the night, and all wait for 07:00. Each recipient is told once, by the newest.
    night = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)
    morning = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)
    plan = plan_alert(incident(Severity.MINOR, raised_at=night), routing(), morning)
    assert plan.escalate_to == 15
    assert sorted((d.step, d.recipient, d.channel) for d in plan.deliveries) == [
        (0, "duty", DUTY_MAIL),
        (15, "chief", "hook"),
        (15, "chief", CHIEF_MAIL),
    ]


def test_an_incident_grown_more_severe_tells_its_route_again_at_the_new_level() -> None:
    # Raised "major" at 10:00 and the duty desk told; at 10:05 a report (or a dispatcher)
    # makes it critical. "Critical" is news to the desk, though step 0 was sent already.
    loaded = routing()
    major = incident(raised_at=MORNING)
    told = set(plan_alert(major, loaded, MORNING).deliveries)
    assert {(d.severity, d.step, d.recipient) for d in told} == {(Severity.MAJOR, 0, "duty")}

    worse = replace(major, severity=Severity.CRITICAL)
    upgrade = plan_alert(worse, loaded, MORNING + timedelta(minutes=5))
    assert (upgrade.upgrade_to, upgrade.upgrade_route) == (Severity.CRITICAL, "station-a")
    assert {(d.severity, d.step, d.recipient) for d in upgrade.deliveries} == {
        (Severity.CRITICAL, 0, "duty")
    }
    assert not upgrade.needs_nothing(told)
    assert upgrade.escalate_to is None  # the clock is the raise time's: step 1 at 10:10

    # Once projected, the alert stands at critical: no second upgrade, and each step is
    # told at that level, the chief's included.
    upgraded = replace(
        worse, alert=RaisedAlert(MORNING, 0, Severity.MAJOR, Severity.CRITICAL, "A站", "站台")
    )
    later = plan_alert(upgraded, loaded, MORNING + timedelta(minutes=10))
    assert later.upgrade_to is None
    assert {(d.severity, d.step, d.recipient) for d in later.deliveries} == {
        (Severity.CRITICAL, 0, "duty"),
        (Severity.CRITICAL, 1, "chief"),
    }
    # Made milder again: nobody is told of that, and nothing told is told again.
    milder = replace(upgraded, severity=Severity.MAJOR)
    calmer = plan_alert(milder, loaded, MORNING + timedelta(minutes=6))
    assert calmer.upgrade_to is None
    assert calmer.needs_nothing(set(upgrade.deliveries))


def test_an_alert_is_routed_for_the_unit_and_place_it_was_raised_for() -> None:
    # Raised "major" at 10:00 for A站 and its desk told; then a report captured earlier at
    # B站, naming another place, joins: the incident's unit and place (its earliest
    # report's) become B站's, which no route takes at "major". The chief's step at 10:10
    # still falls due, and whatever the severity does next goes by A站.
    loaded = routing()
    on_a = RaisedAlert(MORNING, 0, Severity.MAJOR, unit="A站", place="站台")
    joined = replace(incident(), alert=on_a, unit="B站", place="信号楼")
    ten_past = MORNING + timedelta(minutes=10)
    later = plan_alert(joined, loaded, ten_past)
    assert {(d.step, d.recipient) for d in later.deliveries} == {(0, "duty"), (1, "chief")}
    assert later.escalate_to == 1
    # Made milder by a dispatcher: still A站's route, which takes "minor".
    minor = plan_alert(replace(joined, severity=Severity.MINOR), loaded, ten_past)
    assert {(d.step, d.recipient) for d in minor.deliveries} == {(0, "duty"), (1, "chief")}
    # Grown critical: where "critical" at A站 goes (A站's route, the first that takes it).
    worse = plan_alert(replace(joined, severity=Severity.CRITICAL), loaded, ten_past)
    assert worse.upgrade_route == "station-a"
    # Upgraded, then lowered again after yet another unit's report joined: still A站's.
    upgraded = replace(joined, unit="C站", alert=replace(on_a, upgraded_to=Severity.CRITICAL))
    assert {d.recipient for d in plan_alert(upgraded, loaded, ten_past).deliveries} == {
        "duty",
        "chief",
    }
    # A routing edit holds: A站 taken off the route, the alert goes where A站 goes now.
    first, rest = loaded.spec.routes[0], loaded.spec.routes[1:]
    moved = loaded.spec.model_copy(
        update={"routes": [first.model_copy(update={"units": ["C站"]}), *rest]}
    )
    assert plan_alert(joined, replace(loaded, spec=moved), ten_past).deliveries == ()
    # An alert with neither unit nor place (a release before kept none) goes by the incident's.
    unknown = replace(joined, unit="A站", alert=replace(on_a, unit=None, place=None))
    assert {d.recipient for d in plan_alert(unknown, loaded, ten_past).deliveries} == {
        "duty",
        "chief",
    }
    # Its messages name A站 and its place too: the chief was chosen for A站, not B站.
    chief = next(d for d in later.deliveries if d.recipient == "chief")
    told = telling(chief, joined)
    assert (told.unit, told.place) == ("A站", "站台")
    unknown_told = telling(chief, unknown)
    assert (unknown_told.unit, unknown_told.place) == ("A站", "信号楼")


def test_a_receiver_sees_the_id_it_always_saw_at_the_raised_level_and_a_new_one_after() -> None:
    major = incident(raised_at=MORNING)
    [at_raise] = plan_alert(major, routing(), MORNING).deliveries
    told = telling(at_raise, major)
    # As every release before upgrades made it: a repeat sent across our upgrade is dropped.
    assert told.delivery_id == f"{major.incident_id}:0:0:duty:{DUTY_MAIL}"
    assert not told.upgraded

    worse = replace(major, severity=Severity.CRITICAL)
    [upgraded] = plan_alert(worse, routing(), MORNING).deliveries
    told_again = telling(upgraded, worse)
    assert told_again.delivery_id == f"{major.incident_id}:0:0:duty:{DUTY_MAIL}:critical"
    assert told_again.upgraded
    # Back to major before the chief's step fell due: it is told at the level reached, once,
    # but the message does not say the incident grew worse.
    calmer = replace(
        major, alert=RaisedAlert(MORNING, 1, Severity.MAJOR, Severity.CRITICAL, "A站", "站台")
    )
    plan = plan_alert(calmer, routing(), MORNING + timedelta(minutes=10))
    [chief, *_] = [d for d in plan.deliveries if d.recipient == "chief"]
    assert chief.severity == Severity.CRITICAL and not telling(chief, calmer).upgraded


def test_a_minor_alert_held_for_the_night_that_grows_major_is_told_at_once() -> None:
    # 23:30 in Shanghai: minor waits for 07:00; major does not wait, upgraded or not.
    night = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)
    held = incident(Severity.MINOR, raised_at=night)
    assert plan_alert(held, routing(), night).deliveries == ()
    worse = replace(held, severity=Severity.MAJOR)
    plan = plan_alert(worse, routing(), night + timedelta(minutes=5))
    assert plan.upgrade_to == Severity.MAJOR
    assert [(d.severity, d.step, d.recipient) for d in plan.deliveries] == [
        (Severity.MAJOR, 0, "duty")
    ]


def test_an_upgrade_after_steps_fell_due_tells_each_recipient_once_at_the_newest() -> None:
    # Major, unacknowledged past the chief's step; then critical: both are told again.
    loaded = routing()
    worse = replace(
        incident(Severity.CRITICAL),
        alert=RaisedAlert(MORNING, 1, Severity.MAJOR, None, "A站", "站台"),
    )
    plan = plan_alert(worse, loaded, MORNING + timedelta(minutes=12))
    assert plan.upgrade_to == Severity.CRITICAL
    assert sorted((d.severity, d.step, d.recipient, d.channel) for d in plan.deliveries) == [
        (Severity.CRITICAL, 0, "duty", DUTY_MAIL),
        (Severity.CRITICAL, 1, "chief", "hook"),
        (Severity.CRITICAL, 1, "chief", CHIEF_MAIL),
    ]


def test_an_incident_whose_steps_are_sent_is_not_planned_again_until_its_next_step() -> None:
    loaded, quiet = routing(), QuietIncidents()
    alerted = incident(raised_at=MORNING)
    plan = plan_alert(alerted, loaded, MORNING)
    quiet.note(alerted, loaded, plan, settled=set(plan.deliveries))
    assert quiet.is_quiet(alerted, loaded, MORNING + timedelta(minutes=9))
    assert not quiet.is_quiet(alerted, loaded, MORNING + timedelta(minutes=10))  # step 1 due
    # Anything about the incident changes, or the routing is loaded anew: planned again.
    assert not quiet.is_quiet(replace(alerted, severity=Severity.CRITICAL), loaded, MORNING)
    assert not quiet.is_quiet(
        replace(alerted, alert=RaisedAlert(MORNING, 1, Severity.MAJOR, None, "A站", "站台")),
        loaded,
        MORNING,
    )
    assert not quiet.is_quiet(replace(alerted, round=1, alert=None), loaded, MORNING)
    assert not quiet.is_quiet(alerted, routing(), MORNING)
    quiet.keep_only([])  # acknowledged, so no longer open
    assert not quiet.is_quiet(alerted, loaded, MORNING)


def test_an_incident_with_anything_left_to_do_is_planned_every_moment() -> None:
    loaded, quiet = routing(), QuietIncidents()
    unraised = incident()
    quiet.note(unraised, loaded, plan_alert(unraised, loaded, MORNING), settled=set())
    assert not quiet.is_quiet(unraised, loaded, MORNING)
    alerted = incident(raised_at=MORNING)
    plan = plan_alert(alerted, loaded, MORNING)
    quiet.note(alerted, loaded, plan, settled=set(plan.deliveries))
    assert quiet.is_quiet(alerted, loaded, MORNING)
    # A delivery held by a claim is not settled: the claim may run out, and it goes again.
    quiet.note(alerted, loaded, plan, settled=set())
    assert not quiet.is_quiet(alerted, loaded, MORNING)


def test_history_and_incidents_no_route_takes_stay_quiet_however_long() -> None:
    loaded, quiet = routing(), QuietIncidents()
    for nothing_to_do in (
        incident(last_received_at=MORNING - timedelta(days=3)),
        incident(Severity.INFO),
    ):
        plan = plan_alert(nothing_to_do, loaded, MORNING)
        quiet.note(nothing_to_do, loaded, plan, settled=set())
        assert quiet.is_quiet(nothing_to_do, loaded, MORNING + timedelta(days=30))


@pytest.mark.parametrize(
    ("severity", "raised_at"),
    [
        (Severity.MAJOR, MORNING),
        (Severity.MINOR, datetime(2026, 11, 25, 14, 50, tzinfo=UTC)),  # 22:50, quiet hours
    ],
)
def test_a_quiet_incident_would_have_been_planned_to_do_nothing(
    severity: Severity, raised_at: datetime
) -> None:
    # Minute by minute for twelve hours, as the alerter does its moments: whenever the
    # incident is skipped, planning it would have given nothing to do.
    loaded, quiet = routing(), QuietIncidents()
    alerted = incident(severity, raised_at=raised_at)
    settled: set[DeliveryKey] = set()
    planned = 0
    for minute in range(12 * 60):
        now = raised_at + timedelta(minutes=minute)
        plan = plan_alert(alerted, loaded, now)
        if quiet.is_quiet(alerted, loaded, now):
            assert plan.escalate_to is None and set(plan.deliveries) <= settled, minute
            continue
        planned += 1
        settled |= set(plan.deliveries)  # sent
        if plan.escalate_to is not None:  # recorded, then projected
            alert = RaisedAlert(raised_at, plan.escalate_to, severity)
            alerted = replace(alerted, alert=alert)
            plan = plan_alert(alerted, loaded, now)
        quiet.note(alerted, loaded, plan, settled)
    assert 0 < planned < 60, planned  # at its steps, not every minute
    assert settled  # its steps were sent


def test_retries_back_off_exponentially_up_to_a_cap_then_stop() -> None:
    policy = Delivery(
        max_attempts=5, first_retry=timedelta(seconds=10), max_retry=timedelta(seconds=60)
    )
    delays = [retry_delay(policy, attempt, jitter=0.0) for attempt in range(1, 6)]
    assert delays == [
        timedelta(seconds=10),
        timedelta(seconds=20),
        timedelta(seconds=40),
        timedelta(seconds=60),
        None,
    ]
    jittered = retry_delay(policy, 1, jitter=0.99)
    assert jittered is not None and timedelta(seconds=8) <= jittered < timedelta(seconds=10)


def test_messages_speak_the_recipients_language() -> None:
    facts = AlertFacts(
        incident_id=uuid4(),
        severity=Severity.CRITICAL,
        place="K12+300",
        unit="A站",
        report_count=3,
        opened_at=MORNING,
        first_text="接触网断线冒烟" * 30,
        reasons=("Fire or smoke reported / 火灾或冒烟",),
    )
    zh = compose(facts, step=0, language="zh", timezone="Asia/Shanghai", link="http://x/?a=1")
    assert zh.title == "[紧急] A站 · K12+300"
    assert "3 份报告" in zh.body and "首报 11-25 10:00" in zh.body and "http://x/?a=1" in zh.body
    assert len(zh.body.splitlines()[0]) == 140  # a long text is cut, not the whole report
    en = compose(facts, step=2, language="en", timezone="Asia/Shanghai", link=None)
    assert en.title == "[Escalation 2] [Critical] A站 · K12+300"
    assert "3 report(s)" in en.body
    # Told again because the incident grew worse: the title says so before the severity.
    zh = compose(facts, step=0, language="zh", timezone="Asia/Shanghai", link=None, upgraded=True)
    assert zh.title == "【级别上调】[紧急] A站 · K12+300"
    en = compose(facts, step=1, language="en", timezone="Asia/Shanghai", link=None, upgraded=True)
    assert en.title == "[Escalation 1] [Now more severe] [Critical] A站 · K12+300"


def test_a_title_is_one_line_whatever_an_older_event_carries() -> None:
    # It is an e-mail's subject: a line break there would end it, or be refused.
    facts = AlertFacts(
        incident_id=uuid4(),
        severity=Severity.MAJOR,
        place="3站台\r\n东端",
        unit="\u0000 \t",
        report_count=1,
        opened_at=None,
        first_text=None,
        reasons=(),
    )
    zh = compose(facts, step=0, language="zh", timezone="Asia/Shanghai", link=None)
    assert zh.title == "[严重] 3站台 东端"


def test_a_bad_edit_keeps_the_last_good_routing(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING, encoding="utf-8")
    watched = WatchedFile(path, parse_routing, what="routing")
    path.write_text(ROUTING.replace('version: "r1"', "version: [oops"), encoding="utf-8")
    os.utime(path, ns=(1, 1))
    assert watched.current().version == "r1"
    assert watched.last_error is not None and "routing.yaml, line 2" in watched.last_error


def test_an_unknown_time_zone_is_refused_naming_its_line() -> None:
    error = refused(ROUTING.replace("timezone: Asia/Shanghai", "timezone: Mars/Olympus"))
    assert error.line == 2 and "unknown time zone 'Mars/Olympus'" in str(error)


@pytest.mark.parametrize(
    ("edit", "line", "message"),
    [
        (
            ("https://hooks.example.org/q", "http://127.0.0.1:9/x"),
            16,
            "recipients.1.channels.0.webhook: webhook http://127.0.0.1:9 points at a loopback "
            "address (127.0.0.1), which is not on NOTIFY_OUTBOUND_ALLOW",
        ),
        (
            ("https://hooks.example.org/q", "http://169.254.169.254/latest/meta-data"),
            16,
            "the cloud metadata address (169.254.169.254)",
        ),
        (
            ("https://hooks.example.org/q", "http://localhost:8080/q"),
            16,
            "webhook http://localhost:8080 names a loopback host (localhost)",
        ),
        (
            ("https://hooks.example.org/q", "https://[fd12::1]/q"),
            16,
            "a private address (fd12::1)",
        ),
        (
            ("mailto://smtp.example.org:2525?to=duty", "mailto://10.2.3.4:2525?to=duty"),
            10,
            "recipients.0.channels.0.apprise: apprise mailto://10.2.3.4:2525 points at a private",
        ),
        (
            ("smtp.example.org:2525?to=chief", "user:pw@example.org?smtp=192.168.1.5&to=chief"),
            18,
            "points at a private address (192.168.1.5)",
        ),
    ],
)
def test_a_channel_pointing_inside_is_refused_naming_its_line(
    edit: tuple[str, str], line: int, message: str
) -> None:
    error = refused(ROUTING.replace(*edit, 1))
    assert error.line == line, str(error)
    assert message in str(error)
    assert "/x" not in str(error) and "pw" not in str(error)  # no paths or passwords shown


def test_allowed_internal_targets_load_and_the_policy_stays_with_the_routing() -> None:
    text = ROUTING.replace("https://hooks.example.org/q", "http://127.0.0.1:9/x").replace(
        "mailto://smtp.example.org:2525", "mailto://localhost:2525"
    )
    outbound = OutboundPolicy.from_entries(["127.0.0.1", "localhost"])
    loaded = parse_routing(text, outbound=outbound)
    assert loaded.outbound == outbound
    assert routing().outbound == OutboundPolicy()  # told nothing: public targets only
    # The same file, held to a policy that lists only the webhook's address.
    error = refused_with(text, OutboundPolicy.from_entries(["127.0.0.1/32"]))
    assert error.line == 10 and "names a loopback host (localhost)" in str(error)


def test_a_watched_routing_file_is_held_to_the_policy_on_every_edit(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING, encoding="utf-8")
    outbound = OutboundPolicy.from_entries(["10.0.0.0/8"])
    watched = WatchedFile(path, partial(parse_routing, outbound=outbound), what="routing")
    allowed = ROUTING.replace("hooks.example.org", "10.9.9.9").replace('"r1"', '"r2"')
    path.write_text(allowed, encoding="utf-8")
    os.utime(path, ns=(1, 1))
    assert watched.current().version == "r2" and watched.current().outbound == outbound
    inside = ROUTING.replace("hooks.example.org", "192.168.0.9").replace('"r1"', '"r3"')
    path.write_text(inside, encoding="utf-8")
    os.utime(path, ns=(2, 2))
    assert watched.current().version == "r2"
    assert watched.last_error is not None and "line 16" in watched.last_error


def refused_with(text: str, outbound: OutboundPolicy) -> ConfigFileError:
    with pytest.raises(ConfigFileError) as caught:
        parse_routing(text, outbound=outbound)
    return caught.value
