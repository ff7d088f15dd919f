"""Which dispatcher actions apply in which incident status, and the events they become."""

from __future__ import annotations

from uuid import uuid4

import pytest
from pydantic import TypeAdapter

from qianliyan.notify.domain.actions import (
    ActionRefused,
    ActionRequest,
    IncidentStatus,
    check_allowed,
    status_after,
    to_event,
)
from qianliyan.shared.events import Actor, ActorKind, AlertResolved, SeverityOverridden

PARSE: TypeAdapter[ActionRequest] = TypeAdapter(ActionRequest)
DISPATCHER = Actor(kind=ActorKind.DISPATCHER, id="d1")


def request(action: str, **fields: object) -> ActionRequest:
    return PARSE.validate_python({"action": action, "expected_version": 3, **fields})


@pytest.mark.parametrize(
    ("action", "fields", "status", "refusal"),
    [
        ("acknowledge", {}, "acknowledged", "already acknowledged"),
        ("acknowledge", {}, "resolved", "reopen it first"),
        ("assign", {"assignee": "x"}, "resolved", "reopen it first"),
        ("resolve", {"resolution": "done"}, "resolved", "reopen it first"),
        ("reopen", {"reason": "again"}, "open", "only a resolved incident"),
        ("override_severity", {"severity": "major", "reason": "r"}, "resolved", "reopen it first"),
    ],
)
def test_actions_that_make_no_sense_now_are_refused(
    action: str, fields: dict[str, object], status: IncidentStatus, refusal: str
) -> None:
    asked = request(action, **fields)
    with pytest.raises(ActionRefused, match=refusal):
        check_allowed(asked, status)
    # Its event meets the same rule when projected: another action may have landed first.
    event = to_event(asked, actor=DISPATCHER, incident_id=uuid4(), event_id=uuid4())
    with pytest.raises(ActionRefused, match=refusal):
        check_allowed(event, status)


@pytest.mark.parametrize("status", ["open", "acknowledged", "resolved"])
def test_a_note_is_always_allowed(status: IncidentStatus) -> None:
    asked = request("note", note="n")
    check_allowed(asked, status)
    check_allowed(to_event(asked, actor=DISPATCHER, incident_id=uuid4(), event_id=uuid4()), status)


def test_actions_become_events_of_their_dispatcher() -> None:
    incident_id, event_id = uuid4(), uuid4()
    event = to_event(
        request("resolve", resolution="清除"),
        actor=DISPATCHER,
        incident_id=incident_id,
        event_id=event_id,
    )
    assert isinstance(event, AlertResolved)
    assert (event.event_id, event.key, event.actor.id) == (event_id, str(incident_id), "d1")
    assert event.payload.acted_on_version == 3
    assert status_after(event, "acknowledged") == "resolved"
    override = to_event(
        request("override_severity", severity="critical", reason="现场确认"),
        actor=DISPATCHER,
        incident_id=incident_id,
        event_id=uuid4(),
    )
    assert isinstance(override, SeverityOverridden)
    assert status_after(override, "acknowledged") == "acknowledged"


def test_an_unknown_action_is_refused_by_the_parser() -> None:
    with pytest.raises(ValueError, match="action"):
        request("teleport")


def test_who_acted_is_not_the_client_s_to_say() -> None:
    # The actor comes from the token; a request naming someone is refused, not believed.
    with pytest.raises(ValueError, match="dispatcher_id"):
        request("acknowledge", dispatcher_id="someone-else")


@pytest.mark.parametrize("version", [True, "3", 3.5])
def test_the_version_seen_must_be_a_whole_number(version: object) -> None:
    with pytest.raises(ValueError, match="expected_version"):
        request("acknowledge", expected_version=version)


@pytest.mark.parametrize(
    ("action", "field", "extra"),
    [
        ("note", "note", {}),
        ("resolve", "resolution", {}),
        ("reopen", "reason", {}),
        ("override_severity", "reason", {"severity": "major"}),
    ],
)
def test_free_text_loses_stray_control_characters_and_keeps_line_breaks(
    action: str, field: str, extra: dict[str, object]
) -> None:
    # PostgreSQL cannot store NUL: a note holding one would be accepted and never shown.
    parsed = request(action, **{field: " 复查\u0000无异常\r\n第二行\u0007 ", **extra})
    assert getattr(parsed, field) == "复查无异常\n第二行"
    with pytest.raises(ValueError, match="at least 1 character"):
        request(action, **{field: "\u0000\u0001", **extra})


def test_an_assignee_with_a_control_character_is_refused() -> None:
    with pytest.raises(ValueError, match="assignee"):
        request("assign", assignee="工务段\u0000李")
