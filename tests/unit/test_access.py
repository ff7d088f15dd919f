"""Who may do what, decided from plain values: roles, reach, the unit tree, and tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from qianliyan.notify.api.access import NewMachineToken, UserChange
from qianliyan.shared.access.org import Org, parse_org
from qianliyan.shared.access.policy import (
    NotAllowed,
    Permission,
    Principal,
    Reach,
    Role,
    may_reach_unit,
    may_read_report,
    reporter_of_submission,
    unit_of_submission,
    visible_units,
)
from qianliyan.shared.access.store import User, user_change
from qianliyan.shared.access.tokens import (
    RevocationList,
    Revocations,
    TokenRefused,
    TokenSigner,
    TokensUncheckable,
    TokenVerifier,
)
from qianliyan.shared.config_files import ConfigFileError
from qianliyan.shared.events import ActorKind
from qianliyan.shared.settings import OidcSettings

ORG_FILE = """\
version: "1"
units:
  - id: 北京站段
  - id: 丰台站
    parent: 北京站段
  - id: 丰台西站
    parent: 丰台站
  - id: 北京南站
    parent: 北京站段
  - id: 京沪线工务段
"""


CYCLE = "  - id: 北京站段\n    parent: 丰台西站\n"


@pytest.fixture
def org() -> Org:
    return parse_org(ORG_FILE)


def person(*roles: Role, units: tuple[str, ...] = (), name: str = "p") -> Principal:
    return Principal(
        subject=name, display_name=name, kind="user", roles=frozenset(roles), units=frozenset(units)
    )


def machine(*scopes: Permission, units: tuple[str, ...] = ()) -> Principal:
    """An integration's token (a chat bridge, say) with `scopes`, limited to `units`."""
    return Principal(
        subject="token:bridge",
        display_name="bridge",
        kind="machine",
        scopes=frozenset(scopes),
        units=frozenset(units),
    )


def test_a_unit_sees_every_station_below_it(org: Org) -> None:
    assert org.below(["丰台站"]) == {"丰台站", "丰台西站"}
    assert org.below(["北京站段"]) == {"北京站段", "丰台站", "丰台西站", "北京南站"}
    assert org.below(["不在文件里"]) == {"不在文件里"}


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (ORG_FILE + "  - id: 丰台站\n", 11, "listed twice"),
        (ORG_FILE.replace("parent: 丰台站", "parent: 丰台东站"), 7, "not a listed unit"),
        (
            ORG_FILE.replace("  - id: 北京站段\n", "  - id: 北京站段\n    parent: 丰台西站\n"),
            4,
            "cycle",
        ),
        (ORG_FILE.replace('version: "1"', "version: 2026-11-25"), 1, "version in quotes"),
        (ORG_FILE.replace("id: 北京南站", "id: ' 北京南站'"), 8, "reports write it '北京南站'"),
        (ORG_FILE.replace("parent: 丰台站", "parent: '丰台站 '"), 7, "spaces at an end"),
        (ORG_FILE + "units:\n  - id: 丰台站\n", 11, "'units' appears twice in one place"),
    ],
)
def test_a_bad_organisation_file_is_refused_naming_its_line(
    text: str, line: int, message: str
) -> None:
    with pytest.raises(ConfigFileError, match=message) as refused:
        parse_org(text)
    assert refused.value.line == line


def test_a_manager_reaches_their_units_and_stations_only(org: Org) -> None:
    manager = person(Role.MANAGER, units=("丰台站",))
    assert may_reach_unit(manager, Permission.READ_ALERTS, "丰台西站", org)
    assert not may_reach_unit(manager, Permission.READ_ALERTS, "北京南站", org)
    assert not may_reach_unit(manager, Permission.READ_ALERTS, None, org)
    assert not manager.may(Permission.OVERRIDE_SEVERITY)
    assert visible_units(manager, Permission.READ_ALERTS, org) == frozenset({"丰台站", "丰台西站"})
    assert visible_units(person(Role.DISPATCHER), Permission.READ_ALERTS, org) is None
    assert visible_units(person(Role.REPORTER), Permission.READ_ALERTS, org) == frozenset()


def test_a_report_is_read_by_its_reporter_its_managers_and_dispatch(org: Org) -> None:
    report = {"reporter_id": "rep-a", "unit": "丰台西站"}
    readers = {
        "own reporter": person(Role.REPORTER, name="rep-a"),
        "dispatcher": person(Role.DISPATCHER),
        "manager": person(Role.MANAGER, units=("北京站段",)),
    }
    strangers = {
        "other reporter": person(Role.REPORTER, name="rep-b"),
        "other manager": person(Role.MANAGER, units=("京沪线工务段",)),
        "ops": person(Role.OPS),
        "admin": person(Role.ADMIN),
    }
    assert all(may_read_report(p, **report, org=org) for p in readers.values())
    assert not any(may_read_report(p, **report, org=org) for p in strangers.values())


def test_roles_add_up_to_the_widest_reach() -> None:
    both = person(Role.REPORTER, Role.MANAGER, units=("丰台站",))
    assert both.reach(Permission.READ_REPORTS) is Reach.UNITS
    assert person(Role.DISPATCHER, Role.MANAGER).reach(Permission.READ_ALERTS) is Reach.ALL
    assert person(Role.DISPATCHER).as_actor().kind is ActorKind.DISPATCHER
    assert person(Role.MANAGER).as_actor().kind is ActorKind.MANAGER


def test_a_machine_token_holds_its_scopes_over_its_units() -> None:
    bridge = machine(Permission.READ_ALERTS, units=("丰台站",))
    assert bridge.reach(Permission.READ_ALERTS) is Reach.UNITS
    assert not bridge.may(Permission.SUBMIT_REPORTS)
    assert bridge.as_actor().kind is ActorKind.SERVICE


def test_whom_a_report_is_from() -> None:
    reporter = person(Role.REPORTER, name="rep-a")
    assert reporter_of_submission(reporter, None) == "rep-a"
    assert reporter_of_submission(reporter, "rep-a") == "rep-a"
    with pytest.raises(NotAllowed, match="cannot be sent as rep-b"):
        reporter_of_submission(reporter, "rep-b")
    with pytest.raises(NotAllowed, match="may not send"):
        reporter_of_submission(person(Role.DISPATCHER), None)
    assert reporter_of_submission(machine(Permission.SUBMIT_FOR_OTHERS), "wx-123") == "wx-123"


def test_a_report_naming_no_unit_is_of_the_signers_only_unit(org: Org) -> None:
    worker = person(Role.REPORTER, units=("丰台西站",), name="rep-a")
    assert unit_of_submission(worker, None, org) == "丰台西站"
    assert unit_of_submission(worker, "", org) == "丰台西站"
    # A worker at another station's scene says so, and the report is of that station.
    assert unit_of_submission(worker, "北京南站", org) == "北京南站"
    assert unit_of_submission(worker, "某个未列出的车站", org) == "某个未列出的车站"
    # Of two units, neither is the report's; of none, there is nothing to take.
    two_units = person(Role.REPORTER, units=("丰台站", "丰台西站"))
    assert unit_of_submission(two_units, None, org) is None
    assert unit_of_submission(person(Role.REPORTER), None, org) is None
    station_bridge = machine(Permission.SUBMIT_FOR_OTHERS, units=("北京南站",))
    assert unit_of_submission(station_bridge, None, org) == "北京南站"
    # A provider's claim that cannot be a unit's name is left out, not a failed report.
    for claimed, taken in (("丰台\n西站 ", "丰台 西站"), ("x" * 101, None), ("\t", None)):
        assert unit_of_submission(person(Role.REPORTER, units=(claimed,)), None, org) == taken


@pytest.mark.parametrize("scope", [Permission.SUBMIT_FOR_OTHERS, Permission.SUBMIT_REPORTS])
def test_an_integration_limited_to_units_sends_reports_of_them_only(
    org: Org, scope: Permission
) -> None:
    bridge = machine(scope, units=("丰台站",))
    # Its unit and what lies below it: a unit's bridge forwards its stations' reports.
    assert unit_of_submission(bridge, "丰台站", org) == "丰台站"
    assert unit_of_submission(bridge, "丰台西站", org) == "丰台西站"
    # Another unit's report would page that unit's managers.
    for elsewhere in ("北京南站", "北京站段", "未列出的站"):
        with pytest.raises(NotAllowed, match=f"sends reports of 丰台站 .*, not of {elsewhere}"):
            unit_of_submission(bridge, elsewhere, org)
    # A token for every unit names any.
    assert unit_of_submission(machine(scope), "北京南站", org) == "北京南站"


# --- tokens -------------------------------------------------------------------------------

KEY = Ed25519PrivateKey.generate()
SIGNER = TokenSigner(KEY)


def verifier(revocations: Revocations | None = None) -> TokenVerifier:
    async def load() -> Revocations:
        return revocations or Revocations(frozenset(), {})

    return TokenVerifier(SIGNER.public_key, RevocationList(load, refresh_s=60))


def user_token(ttl: timedelta = timedelta(hours=1)) -> str:
    return SIGNER.for_user(
        username="disp", display_name="调度", roles=["dispatcher"], units=[], ttl=ttl
    ).token


async def test_a_token_round_trips_to_its_principal() -> None:
    principal = await verifier().verify(user_token())
    assert (principal.subject, principal.display_name, principal.roles) == (
        "disp",
        "调度",
        frozenset({Role.DISPATCHER}),
    )


async def test_expired_tampered_foreign_and_unknown_tokens_are_refused() -> None:
    with pytest.raises(TokenRefused, match="expired"):
        await verifier().verify(user_token(ttl=timedelta(minutes=-5)))
    header, _, signature = user_token().split(".")
    admin = SIGNER.for_user(
        username="disp", display_name="d", roles=["admin"], units=[], ttl=timedelta(hours=1)
    ).token.split(".")[1]
    with pytest.raises(TokenRefused, match="signature"):
        await verifier().verify(f"{header}.{admin}.{signature}")
    foreign = TokenSigner(Ed25519PrivateKey.generate()).for_user(
        username="disp", display_name="d", roles=["admin"], units=[], ttl=timedelta(hours=1)
    )
    with pytest.raises(TokenRefused, match="signature"):
        await verifier().verify(foreign.token)
    stranger = jwt.encode({"iss": "elsewhere", "sub": "x"}, "s" * 32, algorithm="HS256")
    with pytest.raises(TokenRefused, match="not issued by anyone"):
        await verifier().verify(stranger)
    with pytest.raises(TokenRefused, match="malformed"):
        await verifier().verify("not.a.token")


async def test_revoked_tokens_and_tokens_from_before_a_cut_off_are_refused() -> None:
    issued = SIGNER.for_user(
        username="disp", display_name="d", roles=["dispatcher"], units=[], ttl=timedelta(hours=1)
    )
    by_id = Revocations(frozenset({issued.token_id}), {})
    with pytest.raises(TokenRefused, match="revoked"):
        await verifier(by_id).verify(issued.token)
    later = datetime.now(UTC) + timedelta(seconds=5)
    with pytest.raises(TokenRefused, match="revoked"):
        await verifier(Revocations(frozenset(), {"disp": later})).verify(issued.token)
    # Within one second, what came first still decides: a token issued just after a
    # cut-off works, and the cut-off voids one issued just before it.
    cut = datetime.now(UTC)
    after = SIGNER.for_user(
        username="disp", display_name="d", roles=["dispatcher"], units=[], ttl=timedelta(hours=1)
    )
    assert await verifier(Revocations(frozenset(), {"disp": cut})).verify(after.token)
    later_cut = datetime.now(UTC) + timedelta(microseconds=1)
    with pytest.raises(TokenRefused, match="revoked"):
        await verifier(Revocations(frozenset(), {"disp": later_cut})).verify(after.token)


async def test_the_last_revocations_read_stay_through_an_outage() -> None:
    answers: list[Revocations | Exception] = [
        ConnectionRefusedError("down"),
        Revocations(frozenset({"t1"}), {}),
        ConnectionRefusedError("down again"),
    ]

    async def load() -> Revocations:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    revocations = RevocationList(load, refresh_s=0)
    with pytest.raises(TokensUncheckable):
        await revocations.current()  # nothing read yet: no token can be checked
    assert (await revocations.current()).token_ids == {"t1"}
    assert (await revocations.current()).token_ids == {"t1"}  # the outage keeps the last


async def test_an_unreachable_identity_provider_is_an_outage_not_a_bad_token() -> None:
    # Nothing listens on port 9 of loopback: the discovery document cannot be fetched.
    issuer = "http://127.0.0.1:9"
    checker = TokenVerifier(
        SIGNER.public_key,
        RevocationList(lambda: _no_revocations(), refresh_s=60),
        oidc=OidcSettings(issuer=issuer),
    )
    token = jwt.encode({"iss": issuer, "sub": "u", "aud": "qianliyan"}, "k" * 32, "HS256")
    with pytest.raises(TokensUncheckable, match="out of reach"):
        await checker.verify(token)


async def _no_revocations() -> Revocations:
    return Revocations(frozenset(), {})


@pytest.mark.parametrize("days", [True, "30", 30.5])
def test_a_token_s_lifetime_must_be_a_whole_number_of_days(days: object) -> None:
    with pytest.raises(ValidationError, match="expires_in_days"):
        NewMachineToken.model_validate(
            {"name": "bridge", "scopes": ["reports:submit-for-others"], "expires_in_days": days}
        )


@pytest.mark.parametrize("disabled", [1, "yes", "true"])
def test_disabling_someone_takes_true_or_false_only(disabled: object) -> None:
    with pytest.raises(ValidationError, match="disabled"):
        UserChange.model_validate({"disabled": disabled})


def test_a_change_to_a_person_is_recorded_field_by_field_and_a_password_only_as_changed() -> None:
    before = User("wang", "王工", ("reporter",), (), disabled=False)
    after = User("wang", "王工", ("manager", "reporter"), ("丰台站",), disabled=True)
    assert user_change(before, after, password_changed=True) == {
        "roles": {"from": ["reporter"], "to": ["manager", "reporter"]},
        "units": {"from": [], "to": ["丰台站"]},
        "disabled": {"from": False, "to": True},
        "password": "changed",
    }
    assert user_change(before, before, password_changed=False) == {}
