"""Who may do what, against the running services: every role at every door.

Each endpoint is tried by each kind of caller; the allowed get their answer and everyone
else a 401 (no or a bad token) or a 403 (a good token without the right). Tokens are
signed with the stack's own key, as signing in would give them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from qianliyan.shared.access import store
from qianliyan.shared.access.org import DEFAULT_ORG, parse_org
from qianliyan.shared.access.policy import Permission
from qianliyan.shared.access.tokens import TokenSigner, load_signing_key, new_token_id
from qianliyan.stack.config import StackConfig
from qianliyan.stack.infra import Service
from tests.integration.alert_receivers import routing_in_force
from tests.integration.clients import (
    TRIAGED,
    as_suite,
    as_user,
    bearer,
    jpeg_photo,
    submit,
    submitted_events,
    user_token,
)
from tests.integration.test_alert_stream import read_until
from tests.integration.topic_reader import wait_for

# Stations of the packaged organisation file: 丰台西站 is under 丰台站; 北京南站 is not.
STATION = "丰台西站"


@dataclass(frozen=True)
class Scene:
    """A report of reporter `rep-a` at 丰台西站, triaged into an incident."""

    report_id: str
    incident_id: str


@pytest_asyncio.fixture(scope="module")
async def scene(running_stack: StackConfig) -> Scene:
    config = running_stack
    accepted = await submit(
        config,
        {"text": "接触网断线冒烟", "place": f"K{uuid4().hex[:4]}", "unit": STATION},
        [jpeg_photo()],
        auth=as_user(config, "rep-a", "reporter"),
    )
    assert accepted.status_code == 202, accepted.text
    report_id = accepted.json()["report_id"]

    async def triaged() -> dict[str, Any] | None:
        async with httpx.AsyncClient(headers=as_suite(config)) as client:
            answer = await client.get(
                f"http://127.0.0.1:{config.notify_port}/v1/reports/{report_id}"
            )
        view: dict[str, Any] = answer.json()
        return view if answer.status_code == 200 and view["status"] in TRIAGED else None

    view = await wait_for(triaged, timeout_s=60)
    assert view["reporter_id"] == "rep-a"
    assert view["reporter_via"] is None  # sent by the reporter, not on their behalf
    return Scene(report_id=report_id, incident_id=view["incident_id"])


CALLERS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    # caller: (user name, roles, units)
    "reporter": ("rep-a", ("reporter",), ()),
    "other-reporter": ("rep-b", ("reporter",), ()),
    "dispatcher": ("disp", ("dispatcher",), ()),
    "manager": ("mgr-ft", ("manager",), ("丰台站",)),
    "other-manager": ("mgr-nz", ("manager",), ("北京南站",)),
    "ops": ("op", ("ops",), ()),
    "admin": ("adm", ("admin",), ()),
}


def headers_of(config: StackConfig, caller: str) -> dict[str, str]:
    if caller == "nobody":
        return {}
    name, roles, units = CALLERS[caller]
    return as_user(config, name, *roles, units=units)


def url(config: StackConfig, service: str, path: str) -> str:
    return f"http://127.0.0.1:{config.service_port(service)}{path}"


async def sign_in(
    client: httpx.AsyncClient,
    config: StackConfig,
    username: str,
    password: str,
    *,
    service: str = "ingest",
    path: str = "/v1/auth/token",
) -> httpx.Response:
    """A sign-in with a user name and password (an API client's, unless `path` says the
    page's session)."""
    return await client.post(
        url(config, service, path), json={"username": username, "password": password}
    )


async def add_dispatcher(
    client: httpx.AsyncClient, config: StackConfig, name: str, password: str
) -> None:
    """A person at a dispatch desk, added by the admin."""
    created = await client.post(
        url(config, "notify", "/v1/access/users"),
        json={"username": name, "display_name": "值班员", "password": password,
              "roles": ["dispatcher"]},
        headers=headers_of(config, "admin"),
    )  # fmt: skip
    assert created.status_code == 201, created.text


async def refused_everywhere(client: httpx.AsyncClient, config: StackConfig, token: str) -> bool:
    """Whether every service that signs people in now refuses `token`."""
    answers = [
        await client.get(url(config, service, "/v1/auth/me"), headers=bearer(token))
        for service in ("ingest", "notify")
    ]
    return all(answer.status_code == 401 for answer in answers)


# (service, method, path, body, {caller: expected status}); callers not named get 403,
# and "nobody" always gets 401.
DOORS = [
    (
        "ingest",
        "GET",
        "/v1/reports/{report}",
        {"reporter": 200, "dispatcher": 200, "manager": 200},
    ),
    ("notify", "GET", "/v1/reports/{report}", {"reporter": 200, "dispatcher": 200, "manager": 200}),
    ("notify", "GET", "/v1/alerts", {"dispatcher": 200, "manager": 200, "other-manager": 200}),
    ("notify", "GET", "/v1/alerts/{incident}", {"dispatcher": 200, "manager": 200}),
    ("notify", "GET", "/v1/incidents/{incident}", {"dispatcher": 200, "manager": 200}),
    ("notify", "GET", "/v1/routing", {"ops": 200, "admin": 200}),
    ("notify", "GET", "/v1/contributions?unit=丰台西站", {"manager": 200, "admin": 200}),
    ("notify", "GET", "/v1/audit", {"ops": 200, "admin": 200}),
    ("notify", "GET", "/v1/audit/access", {"ops": 200, "admin": 200}),
    ("notify", "GET", "/v1/access/users", {"admin": 200}),
    ("notify", "GET", "/v1/access/tokens", {"admin": 200}),
    ("triage", "GET", "/v1/rules", {"ops": 200, "admin": 200}),
    # Changes, with bodies that are empty or name nothing that exists: the allowed get as far
    # as the validation or the lookup, everyone else is stopped at the door.
    ("ingest", "POST", "/v1/photos", {"reporter": 422, "other-reporter": 422}),
    ("notify", "POST", "/v1/access/users", {"admin": 422}),
    ("notify", "PATCH", "/v1/access/users/no-such-person", {"admin": 404}),
    ("notify", "POST", "/v1/access/tokens", {"admin": 422}),
    ("notify", "POST", "/v1/access/tokens/no-such-token/revoke", {"admin": 422}),
    # A note on a version long gone: those who may act get as far as the version check.
    (
        "notify",
        "POST",
        "/v1/incidents/{incident}/actions",
        {"dispatcher": 409, "manager": 409},
    ),
]

# What each change is sent; other changes are sent an empty body.
BODIES: dict[str, dict[str, Any]] = {
    "/v1/incidents/{incident}/actions": {
        "action": "note",
        "note": "门禁测试",
        "expected_version": 999_999,
    },
}


@pytest.mark.parametrize(("service", "method", "path", "allowed"), DOORS)
async def test_each_role_passes_the_doors_it_may_and_no_other(
    running_stack: StackConfig,
    scene: Scene,
    service: str,
    method: str,
    path: str,
    allowed: dict[str, int],
) -> None:
    config = running_stack
    target = url(config, service, path.format(report=scene.report_id, incident=scene.incident_id))
    seen = {}
    async with httpx.AsyncClient() as client:
        for caller in ["nobody", *CALLERS]:
            body: dict[str, Any] | None = None
            if method != "GET" and service == "notify":
                body = BODIES.get(path, {})
            answer = await client.request(
                method, target, headers=headers_of(config, caller), json=body
            )
            seen[caller] = answer.status_code
            if answer.status_code in (401, 403):
                assert answer.headers["content-type"] == "application/problem+json"
    expected = {caller: allowed.get(caller, 403) for caller in CALLERS} | {"nobody": 401}
    assert seen == expected


async def test_a_manager_sees_only_the_alerts_of_their_units(
    running_stack: StackConfig, scene: Scene
) -> None:
    config = running_stack
    feeds = {}
    async with httpx.AsyncClient() as client:
        for caller in ("manager", "other-manager", "dispatcher"):
            answer = await client.get(
                url(config, "notify", "/v1/alerts"),
                params={"limit": 200},
                headers=headers_of(config, caller),
            )
            feeds[caller] = {
                (a["incident_id"], a["unit"], frozenset(a["units"]))
                for a in answer.json()["alerts"]
            }
    assert (scene.incident_id, STATION, frozenset([STATION])) in feeds["manager"]
    # Each incident listed has a report from one of the manager's units.
    assert all(units & {"丰台站", "丰台西站"} for _, _, units in feeds["manager"])
    assert all("北京南站" in units for _, _, units in feeds["other-manager"])
    assert (scene.incident_id, STATION, frozenset([STATION])) in feeds["dispatcher"]


async def test_contributions_without_a_unit_are_those_the_caller_may_see(
    running_stack: StackConfig, scene: Scene
) -> None:
    config = running_stack

    async def units_seen_by(caller: str) -> set[str]:
        async with httpx.AsyncClient(headers=headers_of(config, caller)) as client:
            answer = await client.get(url(config, "notify", "/v1/contributions"))
        assert answer.status_code == 200, answer.text
        return {row["name"] for row in answer.json()["units"]}

    # The scene's report is at 丰台西站, a station under 丰台站.
    mine = await units_seen_by("manager")
    assert STATION in mine
    assert mine <= {"丰台站", STATION}, mine
    assert STATION not in await units_seen_by("other-manager")
    assert STATION in await units_seen_by("admin")


async def test_actions_need_the_right_to_act_on_that_unit(
    running_stack: StackConfig, scene: Scene
) -> None:
    config = running_stack
    target = url(config, "notify", f"/v1/incidents/{scene.incident_id}/actions")

    async def act(caller: str, **action: Any) -> httpx.Response:
        async with httpx.AsyncClient(headers=headers_of(config, caller)) as client:
            version = (
                await client.get(
                    url(config, "notify", f"/v1/incidents/{scene.incident_id}"),
                    headers=as_suite(config),
                )
            ).json()["version"]
            return await client.post(target, json={"expected_version": version, **action})

    note = {"action": "note", "note": "现场已派人"}
    for caller in ("nobody", "reporter", "other-manager", "ops", "admin"):
        assert (await act(caller, **note)).status_code in (401, 403), caller
    override = await act("manager", action="override_severity", severity="minor", reason="x")
    assert override.status_code == 403
    assert "override severity" in override.json()["detail"]
    assert (await act("manager", **note)).status_code == 202

    # The audit trail names the manager, from the token, for that incident.
    async def audited() -> list[dict[str, Any]] | None:
        async with httpx.AsyncClient(headers=headers_of(config, "admin")) as client:
            answer = await client.get(
                url(config, "notify", "/v1/audit"),
                params={"actor": "mgr-ft", "incident_id": scene.incident_id},
            )
        entries: list[dict[str, Any]] = answer.json()["entries"]
        return entries or None

    [entry] = await wait_for(audited)
    assert entry["event_type"] == "AlertNoteAdded" and entry["incident_id"] == scene.incident_id


async def test_a_reporter_sends_only_as_themselves(running_stack: StackConfig) -> None:
    config = running_stack
    report = {"text": "站台积水", "unit": STATION}
    mine = await submit(config, report, [], auth=as_user(config, "rep-c", "reporter"))
    assert mine.status_code == 202
    posing = await submit(
        config, {**report, "reporter_id": "rep-a"}, [], auth=as_user(config, "rep-c", "reporter")
    )
    assert posing.status_code == 403 and "cannot be sent as rep-a" in posing.json()["detail"]
    not_a_reporter = await submit(config, report, [], auth=headers_of(config, "dispatcher"))
    assert not_a_reporter.status_code == 403
    assert (await submit(config, report, [], auth={})).status_code == 401


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["roles"] = ["admin"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{signature}"


async def test_expired_tampered_and_foreign_tokens_are_refused(running_stack: StackConfig) -> None:
    config = running_stack
    expired = user_token(config, "disp", ["dispatcher"], ttl=timedelta(seconds=-120))
    tampered = _tampered(user_token(config, "rep-a", ["reporter"]))
    foreign = (
        TokenSigner(Ed25519PrivateKey.generate())
        .for_user(
            username="disp", display_name="d", roles=["admin"], units=[], ttl=timedelta(hours=1)
        )
        .token
    )
    reasons = {}
    async with httpx.AsyncClient() as client:
        for name, token in {"expired": expired, "tampered": tampered, "foreign": foreign}.items():
            for service, path in (("notify", "/v1/access/users"), ("ingest", "/v1/photos")):
                answer = await client.request(
                    "GET" if service == "notify" else "POST",
                    url(config, service, path),
                    headers=bearer(token),
                )
                assert answer.status_code == 401, (name, service, answer.text)
                reasons[name] = answer.json()["detail"]
    assert "expired" in reasons["expired"]
    assert "signature" in reasons["tampered"] and "signature" in reasons["foreign"]


async def test_signing_in_disabling_and_revoking(running_stack: StackConfig) -> None:
    config = running_stack
    admin = headers_of(config, "admin")
    name = f"worker-{uuid4().hex[:6]}"
    async with httpx.AsyncClient() as client:
        created = await client.post(
            url(config, "notify", "/v1/access/users"),
            json={
                "username": name,
                "display_name": "张工",
                "password": "correct horse battery",
                "roles": ["reporter"],
            },
            headers=admin,
        )
        assert created.status_code == 201, created.text
        again = await client.post(
            url(config, "notify", "/v1/access/users"),
            json={"username": name, "display_name": "x", "password": "x" * 12, "roles": ["ops"]},
            headers=admin,
        )
        assert again.status_code == 409
        # A sign-in name is ASCII, as the schema says to any client: 王 goes in the
        # display name.
        unicode = await client.post(
            url(config, "notify", "/v1/access/users"),
            json={"username": "ù", "display_name": "x", "password": "x" * 12, "roles": ["ops"]},
            headers=admin,
        )
        assert unicode.status_code == 422
        assert unicode.json()["errors"][0]["code"] == "string_pattern_mismatch"
        wrong = await sign_in(client, config, name, "wrong horse battery")
        assert wrong.status_code == 401
        signed_in = await sign_in(client, config, name, "correct horse battery")
        assert signed_in.status_code == 200, signed_in.text
        token = signed_in.json()["access_token"]
        assert token not in (await _service_logs(config))
        me = await client.get(url(config, "notify", "/v1/auth/me"), headers=bearer(token))
        assert me.json()["username"] == name and me.json()["roles"] == ["reporter"]

        disabled = await client.patch(
            url(config, "notify", f"/v1/access/users/{name}"),
            json={"disabled": True},
            headers=admin,
        )
        assert disabled.json()["disabled"] is True

        await wait_for(lambda: refused_everywhere(client, config, token), timeout_s=10)
        after = await sign_in(client, config, name, "correct horse battery", service="notify")
        assert after.status_code == 401

        issued = await client.post(
            url(config, "notify", "/v1/access/tokens"),
            json={"name": "wecom-bridge", "scopes": ["reports:submit-for-others"]},
            headers=admin,
        )
        assert issued.status_code == 201, issued.text
        machine = issued.json()
        sent = await submit(
            config, {"text": "桥接测试", "reporter_id": "wx-123"}, [], auth=bearer(machine["token"])
        )
        assert sent.status_code == 202
        read = await client.get(
            url(config, "notify", "/v1/alerts"), headers=bearer(machine["token"])
        )
        assert read.status_code == 403
        revoked = await client.post(
            url(config, "notify", f"/v1/access/tokens/{machine['token_id']}/revoke"),
            json={"reason": "bridge retired"},
            headers=admin,
        )
        assert revoked.json()["revoked_at"] is not None

        async def refused() -> bool:
            answer = await client.get(
                url(config, "ingest", "/v1/auth/me"), headers=bearer(machine["token"])
            )
            return answer.status_code == 401 and "revoked" in answer.json()["detail"]

        await wait_for(refused, timeout_s=10)
        escalate = await client.post(
            url(config, "notify", "/v1/access/tokens"),
            json={"name": "sneaky", "scopes": ["access:manage"]},
            headers=admin,
        )
        assert escalate.status_code == 422


async def test_a_machine_token_signed_out_stays_void_for_its_whole_life(
    running_stack: StackConfig,
) -> None:
    """A sign-out voided a token for a session's 12 hours, so a 90-day machine token
    worked again after them; and an admin's revocation after the sign-out changed
    nothing: whoever held the token could sign it out first and outlive the revocation."""
    config = running_stack
    admin = headers_of(config, "admin")
    connection = await asyncpg.connect(config.postgres_dsn)

    async def void_until(token_id: str) -> datetime:
        until: datetime = await connection.fetchval(
            "SELECT expires_at FROM access_revoked_tokens WHERE token_id = $1", token_id
        )
        return until

    try:
        async with httpx.AsyncClient() as client:

            async def issue() -> dict[str, Any]:
                issued = await client.post(
                    url(config, "notify", "/v1/access/tokens"),
                    json={"name": f"bridge-{uuid4().hex[:6]}", "scopes": ["alerts:read"]},
                    headers=admin,
                )
                assert issued.status_code == 201, issued.text
                token: dict[str, Any] = issued.json()
                return token

            signed_out = await issue()
            answer = await client.delete(
                url(config, "notify", "/v1/auth/session"), headers=bearer(signed_out["token"])
            )
            assert answer.status_code == 204
            expires = datetime.fromisoformat(signed_out["expires_at"])
            assert await void_until(signed_out["token_id"]) >= expires - timedelta(seconds=1)

            # Signed out under the release before, for 12 hours: the admin's revocation
            # lengthens it to the token's life.
            earlier = await issue()
            await connection.execute(
                "INSERT INTO access_revoked_tokens (token_id, expires_at, revoked_by, reason) "
                "VALUES ($1, now() + interval '12 hours', 'bridge', 'signed out')",
                earlier["token_id"],
            )
            revoked = await client.post(
                url(config, "notify", f"/v1/access/tokens/{earlier['token_id']}/revoke"),
                json={"reason": "bridge retired"},
                headers=admin,
            )
            assert revoked.status_code == 200, revoked.text
            expires = datetime.fromisoformat(earlier["expires_at"])
            assert await void_until(earlier["token_id"]) >= expires - timedelta(seconds=1)
    finally:
        await connection.close()


@pytest.mark.parametrize(
    ("scope", "paths"),
    [
        (Permission.READ_AUDIT, ("/v1/audit", "/v1/audit/access")),
        # Every unit's recipients: once, a token of 丰台站 read them all.
        (Permission.READ_ROUTING, ("/v1/routing",)),
    ],
)
async def test_a_token_limited_to_units_cannot_read_what_is_read_whole(
    running_stack: StackConfig, scope: Permission, paths: tuple[str, ...]
) -> None:
    config = running_stack
    async with httpx.AsyncClient() as client:
        refused = await client.post(
            url(config, "notify", "/v1/access/tokens"),
            json={"name": "reader", "scopes": [scope.value], "units": ["丰台站"]},
            headers=headers_of(config, "admin"),
        )
    assert refused.status_code == 422
    assert f"{scope.value} reads every unit's at once" in refused.text
    # One issued before that was refused reads nothing there either.
    earlier = (
        TokenSigner(load_signing_key(config.token_key_file))
        .for_machine(
            token_id=new_token_id(),
            name="reader",
            scopes=[scope],
            units=["丰台站"],
            expires_at=datetime.now(UTC) + timedelta(days=1),
        )
        .token
    )
    async with httpx.AsyncClient() as client:
        for path in paths:
            answer = await client.get(url(config, "notify", path), headers=bearer(earlier))
            assert answer.status_code == 403, (path, answer.text)
            assert "for some units only" in answer.json()["detail"]


async def test_a_station_s_bridge_sends_reports_of_its_units_and_none_of_another(
    running_stack: StackConfig,
) -> None:
    config = running_stack
    async with httpx.AsyncClient() as client:
        issued = await client.post(
            url(config, "notify", "/v1/access/tokens"),
            json={
                "name": f"fengtai-bridge-{uuid4().hex[:6]}",
                "scopes": ["reports:submit-for-others"],
                "units": ["丰台站"],
            },
            headers=headers_of(config, "admin"),
        )
    assert issued.status_code == 201, issued.text
    bridge = bearer(issued.json()["token"])
    report = {"text": "调车场道岔卡阻", "reporter_id": "wx-ft-1"}

    # Its unit's reports, and those of the yard below it (the packaged organisation file).
    for unit in (None, "丰台站", "丰台西站"):
        sent = await submit(config, {**report, "unit": unit}, [], auth=bridge)
        assert sent.status_code == 202, (unit, sent.text)
        [event] = await submitted_events(config, sent.json()["report_id"])
        assert event.payload.unit == (unit or "丰台站")

    # Another unit's report would page that unit's managers.
    key = f"bridge-{uuid4().hex}"
    refused = await submit(
        config, {**report, "unit": "北京南站"}, [], auth=bridge, idempotency_key=key
    )
    assert refused.status_code == 403, refused.text
    detail = refused.json()["detail"]
    assert "sends reports of 丰台站 and the units below them, not of 北京南站" in detail
    # Refused, it took nothing: the corrected report goes with the same key.
    corrected = await submit(
        config, {**report, "unit": "丰台西站"}, [], auth=bridge, idempotency_key=key
    )
    assert corrected.status_code == 202, corrected.text
    # A worker may name any unit: they may be at another station's scene.
    worker = as_user(config, f"rep-{uuid4().hex[:6]}", "reporter", units=["丰台站"])
    sent = await submit(config, {"text": "在北京南站看到", "unit": "北京南站"}, [], auth=worker)
    assert sent.status_code == 202, sent.text


async def test_ingest_and_notify_name_the_organisation_file_they_read_as_they_start(
    running_stack: StackConfig,
) -> None:
    # The two must read one file (INGEST_ORG_FILE and NOTIFY_ORG_FILE): their logs show it.
    version = parse_org(DEFAULT_ORG.read_text(encoding="utf-8")).version
    for service in ("ingest", "notify"):
        log = (running_stack.data_dir / "logs" / f"{service}.log").read_text(errors="replace")
        assert f"organisation {version} loaded from {DEFAULT_ORG}" in log, service


async def test_who_changed_which_person_and_token_is_in_the_audit(
    running_stack: StackConfig,
) -> None:
    config = running_stack
    admin, name = headers_of(config, "admin"), f"mgr-{uuid4().hex[:6]}"
    people = url(config, "notify", "/v1/access/users")
    async with httpx.AsyncClient(headers=admin) as client:
        password = "first horse battery"
        added = await client.post(
            people,
            json={"username": name, "display_name": "李段长", "password": password,
                  "roles": ["reporter"]},
        )  # fmt: skip
        assert added.status_code == 201, added.text
        new_password = "second horse battery"
        changes = [
            {"roles": ["manager"], "units": ["丰台站"], "password": new_password},
            {"display_name": "李段长"},  # as it was: nothing changes, nothing is recorded
            {"disabled": True},
        ]
        for change in changes:
            answer = await client.patch(f"{people}/{name}", json=change)
            assert answer.status_code == 200, answer.text
        issued = await client.post(
            url(config, "notify", "/v1/access/tokens"),
            json={"name": f"bridge-{name}", "scopes": ["reports:submit-for-others"]},
        )
        token_id = issued.json()["token_id"]
        for _ in range(2):  # revoking again is no second change
            revoked = await client.post(
                url(config, "notify", f"/v1/access/tokens/{token_id}/revoke"),
                json={"reason": "桥接停用"},
            )
            assert revoked.status_code == 200, revoked.text

    async def trail(caller: str, **query: str) -> httpx.Response:
        async with httpx.AsyncClient(headers=headers_of(config, caller)) as client:
            return await client.get(url(config, "notify", "/v1/audit/access"), params=query)

    person = (await trail("ops", subject=name)).json()["entries"]
    assert [(e["actor"], e["action"]) for e in person] == [
        ("adm", "user_changed"),
        ("adm", "user_changed"),
        ("adm", "user_added"),
    ]
    assert person[0]["detail"] == {"disabled": {"from": False, "to": True}}
    assert person[1]["detail"] == {
        "roles": {"from": ["reporter"], "to": ["manager"]},
        "units": {"from": [], "to": ["丰台站"]},
        "password": "changed",
    }
    assert person[2]["detail"] == {"display_name": "李段长", "roles": ["reporter"], "units": []}
    shown = json.dumps(person, ensure_ascii=False)
    assert password not in shown and new_password not in shown and "argon2" not in shown

    token = (await trail("admin", subject=token_id)).json()["entries"]
    assert [e["action"] for e in token] == ["token_revoked", "token_issued"]
    assert token[0]["detail"] == {"name": f"bridge-{name}", "reason": "桥接停用"}
    assert token[1]["detail"]["scopes"] == ["reports:submit-for-others"]
    added_only = (await trail("admin", subject=name, action="user_added")).json()["entries"]
    assert len(added_only) == 1
    assert (await trail("admin", action="user_deleted")).status_code == 422
    # A time is ISO 8601: "0" once read as 1970 (pydantic's seconds since the epoch).
    numeric = await trail("admin", until="0.0")
    assert numeric.status_code == 422
    assert numeric.json()["errors"][0]["field"] == "query.until"
    # A count is digits: pydantic alone reads "1.0" as 1.
    fractional = await trail("admin", limit="1.0")
    assert fractional.status_code == 422
    assert fractional.json()["errors"][0]["field"] == "query.limit"
    assert (await trail("dispatcher")).status_code == 403


async def test_signing_in_and_out_and_refused_attempts_are_in_the_audit(
    running_stack: StackConfig,
) -> None:
    config = running_stack
    name, password = f"desk-{uuid4().hex[:6]}", "correct horse battery"
    async with httpx.AsyncClient() as client:
        await add_dispatcher(client, config, name, password)
        wrong = await sign_in(client, config, name, "wrong horse battery")
        assert wrong.status_code == 401
        page = await sign_in(
            client, config, name, password, service="notify", path="/v1/auth/session"
        )
        assert page.status_code == 200, page.text
        api = await sign_in(client, config, name, password)
        assert api.status_code == 200, api.text
        token = api.json()["access_token"]
        client.cookies.clear()  # the bearer token signs out, not the page's cookie
        signed_out = await client.delete(
            url(config, "notify", "/v1/auth/session"), headers=bearer(token)
        )
        assert signed_out.status_code == 204, signed_out.text
        answer = await client.get(
            url(config, "notify", "/v1/audit/access"),
            params={"subject": name},
            headers=headers_of(config, "ops"),
        )
    entries = answer.json()["entries"]
    assert [(e["actor"], e["action"]) for e in entries] == [
        (name, "signed_out"),
        (name, "signed_in"),
        (name, "signed_in"),
        ("anonymous", "sign_in_refused"),
        ("adm", "user_added"),
    ]
    assert entries[0]["detail"] == {"via": "token"}
    assert [e["detail"]["via"] for e in entries[1:4]] == ["token", "page", "token"]
    assert {e["detail"]["address"] for e in entries[1:4]} == {"127.0.0.1"}
    assert password not in json.dumps(entries)


async def test_a_sign_out_sent_twice_is_one_sign_out_in_the_audit(
    running_stack: StackConfig,
) -> None:
    # Two instances may each be asked to sign the same token out before either knows.
    name, token_id = f"twice-{uuid4().hex[:6]}", f"session-{uuid4().hex}"
    until = datetime.now(UTC) + timedelta(hours=1)
    pool = await asyncpg.create_pool(running_stack.postgres_dsn, min_size=1, max_size=2)
    try:
        for _ in range(2):
            await store.sign_out(pool, token_id, username=name, expires_at=until, via="page")
        actions = await pool.fetch("SELECT action FROM access_changes WHERE subject = $1", name)
        revoked = await pool.fetchval(
            "SELECT count(*) FROM access_revoked_tokens WHERE token_id = $1", token_id
        )
    finally:
        await pool.close()
    assert [row["action"] for row in actions] == ["signed_out"]
    assert revoked == 1


async def test_a_page_s_sign_in_ends_the_session_whose_cookie_it_replaces(
    running_stack: StackConfig,
) -> None:
    # A shared desk whose last sign-out never reached the server: the next person's
    # sign-in replaces the cookie, and must not leave the old token working elsewhere.
    config = running_stack
    password = "correct horse battery"
    first, second = f"shift-a-{uuid4().hex[:6]}", f"shift-b-{uuid4().hex[:6]}"
    async with httpx.AsyncClient() as admin_client:
        for name in (first, second):
            await add_dispatcher(admin_client, config, name, password)
    async with httpx.AsyncClient() as desk:

        async def page_sign_in(name: str, service: str = "notify", **headers: str) -> str:
            """`name` signs in on the desk's page; the token of their session."""
            answer = await desk.post(
                url(config, service, "/v1/auth/session"),
                json={"username": name, "password": password},
                headers=headers,
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["username"] == name
            return str(desk.cookies["qly_session"])

        first_token = await page_sign_in(first)
        second_token = await page_sign_in(second)
        await wait_for(lambda: refused_everywhere(desk, config, first_token), timeout_s=10)
        me = await desk.get(url(config, "notify", "/v1/auth/me"))
        assert me.status_code == 200 and me.json()["username"] == second
        # The cookie goes to every port of the host: ingest's page ends notify's session.
        await page_sign_in(first, "ingest")
        await wait_for(lambda: refused_everywhere(desk, config, second_token), timeout_s=10)
        # A cookie whose token no longer works has nothing to end: the sign-in goes on.
        desk.cookies.clear()
        desk.cookies.set("qly_session", second_token, domain="127.0.0.1")
        await page_sign_in(second)

        # Another site's page (a sibling host sends the cookie too) may not sign the desk in.
        held = desk.cookies["qly_session"]
        for site in ("same-site", "cross-site"):
            refused = await desk.post(
                url(config, "notify", "/v1/auth/session"),
                json={"username": first, "password": password},
                headers={"Sec-Fetch-Site": site},
            )
            assert refused.status_code == 403, refused.text
            assert refused.json()["title"] == "Sign-in from another site"
        assert desk.cookies["qly_session"] == held
        assert not await refused_everywhere(desk, config, held)
        trails = {
            name: (
                await desk.get(
                    url(config, "notify", "/v1/audit/access"),
                    params={"subject": name},
                    headers=headers_of(config, "ops"),
                )
            ).json()["entries"]
            for name in (first, second)
        }
    # Newest first: who ended a session is the one who signed in in its place.
    assert [(e["actor"], e["action"], e["detail"]) for e in trails[second][:3]] == [
        (second, "signed_in", {"via": "page", "address": "127.0.0.1"}),
        (first, "signed_out", {"via": "page", "replaced_by": first}),
        (second, "signed_in", {"via": "page", "address": "127.0.0.1"}),
    ]
    assert [(e["actor"], e["action"], e["detail"]) for e in trails[first][:3]] == [
        (first, "signed_in", {"via": "page", "address": "127.0.0.1"}),
        (second, "signed_out", {"via": "page", "replaced_by": second}),
        (first, "signed_in", {"via": "page", "address": "127.0.0.1"}),
    ]


async def _service_logs(config: StackConfig) -> str:
    logs = config.data_dir / "logs"
    return "".join(path.read_text(errors="replace") for path in logs.glob("*.log"))


async def test_a_page_s_cookie_needs_the_csrf_token_to_change_anything(
    running_stack: StackConfig, scene: Scene
) -> None:
    config = running_stack
    name = f"desk-{uuid4().hex[:6]}"
    async with httpx.AsyncClient() as client:
        await add_dispatcher(client, config, name, "p" * 12)
    async with httpx.AsyncClient(base_url=url(config, "notify", "")) as page:
        signed_in = await page.post(
            "/v1/auth/session", json={"username": name, "password": "p" * 12}
        )
        assert signed_in.status_code == 200
        cookie = signed_in.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        incident = (await page.get(f"/v1/incidents/{scene.incident_id}")).json()
        note = {"action": "note", "note": "跨站", "expected_version": incident["version"]}
        forged = await page.post(f"/v1/incidents/{scene.incident_id}/actions", json=note)
        assert forged.status_code == 403 and "CSRF" in forged.json()["title"]
        csrf = page.cookies["qly_csrf"]
        honest = await page.post(
            f"/v1/incidents/{scene.incident_id}/actions",
            json=note,
            headers={"x-csrf-token": csrf},
        )
        assert honest.status_code == 202, honest.text
        out = await page.delete("/v1/auth/session", headers={"x-csrf-token": csrf})
        assert out.status_code == 204
        assert (await page.get("/v1/auth/me")).status_code == 401


async def test_a_webhook_aimed_inside_is_refused_naming_its_line(
    running_stack: StackConfig,
) -> None:
    config = running_stack
    assert config.notify_routing_file is not None
    good = config.notify_routing_file.read_text(encoding="utf-8")
    bad = good.replace(
        "    name: 段值班领导 / Section duty chief\n",
        "    name: 段值班领导 / Section duty chief\n"
        "    channels:\n"
        '      - webhook: "http://169.254.169.254/latest/meta-data"\n'
        '        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"\n',
    )
    assert bad != good
    line = bad.splitlines().index('      - webhook: "http://169.254.169.254/latest/meta-data"') + 1
    try:
        config.notify_routing_file.write_text(bad, encoding="utf-8")

        async def refused() -> str | None:
            async with httpx.AsyncClient(headers=headers_of(config, "ops")) as client:
                answer = await client.get(url(config, "notify", "/v1/routing"))
            refusal: str | None = answer.json()["refused_edit"]
            return refusal

        refusal = await wait_for(refused, timeout_s=15)
        assert f"line {line}" in refusal and "metadata" in refusal
    finally:
        config.notify_routing_file.write_text(good, encoding="utf-8")


async def test_ops_see_the_organisation_in_force_and_route_units_it_does_not_list(
    running_stack: StackConfig,
) -> None:
    config = running_stack
    assert config.notify_routing_file is not None
    good = config.notify_routing_file.read_text(encoding="utf-8")
    version = f"typo-{uuid4().hex[:6]}"
    typo = re.sub(r'(?m)^version: ".*"$', f'version: "{version}"', good).replace(
        "  - id: major\n    min_severity: major\n",
        "  - id: major\n    min_severity: major\n    units: [北京南占, 北京南站]\n",
    )
    assert "北京南占" in typo and version in typo
    async with routing_in_force(config, typo), httpx.AsyncClient() as client:
        answer = await client.get(
            url(config, "notify", "/v1/routing"), headers=headers_of(config, "ops")
        )
    in_force = answer.json()
    assert in_force["version"] == version
    assert in_force["unlisted_units"] == [
        "route 'major' names unit '北京南占', which the organisation file does not list"
    ]
    organisation = in_force["organisation"]
    assert organisation["file"] == str(DEFAULT_ORG) and organisation["units"] > 1
    assert organisation["version"] and organisation["refused_edit"] is None


async def test_rate_limits_are_hit_and_recovered(running_stack: StackConfig) -> None:
    config = running_stack
    limited = Service(
        config,
        "ingest",
        instance=7,
        env={
            "INGEST_ACCESS__SIGN_IN_LIMIT": "3/4 seconds",
            "INGEST_ACCESS__SUBMIT_LIMIT": "2/4 seconds",
        },
    )
    limited.start()
    try:
        base = f"http://127.0.0.1:{config.service_port('ingest', 7)}"
        async with httpx.AsyncClient(base_url=base) as client:
            tries = [
                await client.post(
                    "/v1/auth/token", json={"username": "nobody-here", "password": "guess"}
                )
                for _ in range(4)
            ]
            assert [t.status_code for t in tries] == [401, 401, 401, 429]
            assert int(tries[-1].headers["Retry-After"]) >= 1
            me = as_user(config, f"rep-{uuid4().hex[:6]}", "reporter")
            photo = [("photo", ("p.jpg", jpeg_photo(), "image/jpeg"))]
            sent = [
                (await client.post("/v1/photos", files=photo, headers=me)).status_code
                for _ in range(3)
            ]
            assert sent == [201, 201, 429]
            # Another person at the same address is not held back by the first one's limit.
            other = as_user(config, f"rep-{uuid4().hex[:6]}", "reporter")
            assert (await client.post("/v1/photos", files=photo, headers=other)).status_code == 201
            await asyncio.sleep(int(tries[-1].headers["Retry-After"]) + 1)
            recovered = await client.post(
                "/v1/auth/token", json={"username": "nobody-here", "password": "guess"}
            )
            assert recovered.status_code == 401
            assert (await client.post("/v1/photos", files=photo, headers=me)).status_code == 201
    finally:
        limited.stop()


async def test_limits_count_per_address_and_per_user_name_each(
    running_stack: StackConfig,
) -> None:
    """Loopback has many addresses (127.0.0.2, .3, ...): each stands for another phone."""
    config = running_stack
    limited = Service(
        config,
        "ingest",
        instance=8,
        env={
            "INGEST_ACCESS__SIGN_IN_LIMIT": "3/5 seconds",
            "INGEST_ACCESS__SUBMIT_ADDRESS_LIMIT": "3/5 seconds",
        },
    )
    limited.start()
    base = f"http://127.0.0.1:{config.service_port('ingest', 8)}"

    def client_at(address: str) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(local_address=address)
        return httpx.AsyncClient(base_url=base, transport=transport)

    async def sign_in(address: str, name: str) -> int:
        async with client_at(address) as client:
            answer = await client.post("/v1/auth/token", json={"username": name, "password": "x"})
        return answer.status_code

    async def send_photo(address: str, reporter: str) -> int:
        photo = [("photo", ("p.jpg", jpeg_photo(), "image/jpeg"))]
        async with client_at(address) as client:
            answer = await client.post(
                "/v1/photos", files=photo, headers=as_user(config, reporter, "reporter")
            )
        return answer.status_code

    try:
        # One name guessed from three addresses: the name is held back, wherever from.
        name = f"target-{uuid4().hex[:6]}"
        tried = [await sign_in(f"127.0.0.{2 + i}", name) for i in range(3)]
        assert [*tried, await sign_in("127.0.0.5", name)] == [401, 401, 401, 429]
        # Many names from one address: the address is held back, whatever the name.
        names = [f"spray-{uuid4().hex[:6]}" for _ in range(4)]
        assert [await sign_in("127.0.0.6", n) for n in names] == [401, 401, 401, 429]
        assert await sign_in("127.0.0.7", names[-1]) == 401  # another phone, a fresh name
        # Reports: three people behind one address fill its window, a fourth waits, and a
        # person elsewhere does not.
        people = [f"rep-{uuid4().hex[:6]}" for _ in range(4)]
        sent = [await send_photo("127.0.0.8", person) for person in people]
        assert sent == [201, 201, 201, 429]
        assert await send_photo("127.0.0.9", people[-1]) == 201
        await asyncio.sleep(6)  # the window moves on
        assert await send_photo("127.0.0.8", people[-1]) == 201
        assert await sign_in("127.0.0.6", names[-1]) == 401
    finally:
        limited.stop()


async def test_pages_carry_their_security_headers(running_stack: StackConfig) -> None:
    config = running_stack
    async with httpx.AsyncClient() as client:
        for service, path in (("ingest", "/"), ("notify", "/dispatch")):
            answer = await client.get(url(config, service, path), follow_redirects=True)
            assert answer.status_code == 200, (service, path)
            headers = answer.headers
            policy = headers["content-security-policy"]
            assert "default-src 'self'" in policy, policy
            assert "frame-ancestors 'none'" in policy, policy
            assert "'unsafe-inline'" not in policy.split("script-src")[-1].split(";")[0]
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["referrer-policy"] == "no-referrer"
            assert "camera=" in headers["permissions-policy"]


async def test_a_trailing_slash_is_not_a_redirect_but_the_dispatch_page_takes_it(
    running_stack: StackConfig,
) -> None:
    config = running_stack
    async with httpx.AsyncClient() as client:
        page = await client.get(url(config, "notify", "/dispatch/"))
        for service, path in (("notify", "/v1/alerts/"), ("ingest", "/v1/reports/")):
            answer = await client.post(url(config, service, path), json={})
            assert answer.status_code == 404, (service, path)
            assert answer.headers["content-type"] == "application/problem+json"
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]


async def test_a_body_over_the_limit_is_refused_at_the_door(running_stack: StackConfig) -> None:
    config = running_stack
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            url(config, "notify", "/v1/auth/token"),
            content=b"{" + b" " * (300 * 1024) + b"}",
            headers={"content-type": "application/json"},
        )
    assert answer.status_code == 413
    assert answer.headers["content-type"] == "application/problem+json"

    async def chunks() -> AsyncIterator[bytes]:
        # Sent without a length: counted as it arrives.
        for _ in range(300):
            yield b" " * 1024

    async with httpx.AsyncClient() as client:
        streamed = await client.post(
            url(config, "notify", "/v1/auth/token"),
            content=chunks(),
            headers={"content-type": "application/json"},
        )
    assert streamed.status_code == 413
    assert streamed.headers["content-type"] == "application/problem+json"
    # Said alike whether the length was declared or counted: a page keys on the code.
    assert answer.json()["code"] == streamed.json()["code"] == "request_too_large"

    # Ingest takes photos, so its door is wider, but it has one; triage takes no body. Only
    # the head is sent: a declared length over the limit is refused before any body.
    for service, path, length in (("ingest", "/v1/photos", 41 * 1024 * 1024), ("triage", "/", 2)):
        status, content_type = await _answer_to_a_head(config, service, path, length)
        assert (status, content_type) == (413, "application/problem+json"), service


async def _answer_to_a_head(
    config: StackConfig, service: str, path: str, length: int
) -> tuple[int, str]:
    """Send a POST's head declaring `length` bytes and no body; the answer's status and type."""
    reader, writer = await asyncio.open_connection("127.0.0.1", config.service_port(service))
    try:
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n".encode()
        )
        await writer.drain()
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode()
    finally:
        writer.close()
    status = int(head.split(" ", 2)[1])
    fields = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line)
    return status, {k.lower(): v for k, v in fields.items()}.get("content-type", "")


# --- a site with an identity provider, and photo links that expire ------------------------


class _Provider:
    """A stand-in OpenID Connect provider on loopback: discovery and its signing keys."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk |= {"kid": "test-key", "use": "sig", "alg": "RS256"}
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                documents = {
                    "/.well-known/openid-configuration": {
                        "issuer": provider.issuer,
                        "jwks_uri": f"{provider.issuer}/jwks",
                    },
                    "/jwks": {"keys": [jwk]},
                }
                body = json.dumps(documents.get(self.path, {})).encode()
                self.send_response(200 if self.path in documents else 404)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": self.issuer, "aud": "qianliyan", "iat": now, "exp": now + 600} | claims
        return jwt.encode(payload, self.key, algorithm="RS256", headers={"kid": "test-key"})


@pytest.fixture(scope="module")
def provider() -> Iterator[_Provider]:
    found = _Provider()
    yield found
    found.server.shutdown()


@pytest_asyncio.fixture(scope="module")
async def site_notify(running_stack: StackConfig, provider: _Provider) -> AsyncIterator[str]:
    """A notify instance that trusts the provider and gives photo links of two seconds."""
    service = Service(
        running_stack,
        "notify",
        instance=7,
        env={
            "NOTIFY_ACCESS__OIDC__ISSUER": provider.issuer,
            "NOTIFY_STORAGE__LINK_TTL_S": "2",
        },
    )
    service.start()
    try:
        yield f"http://127.0.0.1:{running_stack.service_port('notify', 7)}"
    finally:
        service.stop()


async def test_tokens_of_the_site_s_identity_provider_are_accepted(
    site_notify: str, provider: _Provider, scene: Scene
) -> None:
    manager = provider.token(sub="u-42", name="王段长", roles=["manager"], units=["丰台站"])
    stranger = provider.token(sub="u-43", roles=["dispatcher"], aud="another-app")
    async with httpx.AsyncClient(base_url=site_notify) as client:
        me = await client.get("/v1/auth/me", headers=bearer(manager))
        assert me.status_code == 200, me.text
        assert me.json() | {"expires_at": None} == {
            "username": "oidc:u-42",
            "display_name": "王段长",
            "roles": ["manager"],
            "units": ["丰台站"],
            "expires_at": None,
        }
        alert = await client.get(f"/v1/alerts/{scene.incident_id}", headers=bearer(manager))
        assert alert.status_code == 200
        assert (await client.get("/v1/auth/me", headers=bearer(stranger))).status_code == 401


async def test_signing_out_a_provider_s_token_without_an_id_voids_the_person_s_tokens(
    site_notify: str, provider: _Provider
) -> None:
    """A token with an id stops working alone. One without cannot be named, so every
    token of that person issued until then stops working, and a later one works."""
    with_id = provider.token(sub="u-44", roles=["dispatcher"], jti=str(uuid4()))
    same_person = provider.token(sub="u-44", roles=["dispatcher"], jti=str(uuid4()))
    # Issued by a provider whose clock runs five seconds ahead of ours.
    ahead = int(time.time()) + 5
    without_id = provider.token(sub="u-45", roles=["dispatcher"], iat=ahead)
    elsewhere = provider.token(sub="u-45", roles=["dispatcher"], jti="")  # an empty id
    async with httpx.AsyncClient(base_url=site_notify) as client:

        async def works(token: str) -> bool:
            return (await client.get("/v1/auth/me", headers=bearer(token))).status_code == 200

        signed_out = await client.delete("/v1/auth/session", headers=bearer(with_id))
        assert signed_out.status_code == 204, signed_out.text
        assert (await works(with_id), await works(same_person)) == (False, True)

        signed_out = await client.delete("/v1/auth/session", headers=bearer(without_id))
        assert signed_out.status_code == 204, signed_out.text
        assert (await works(without_id), await works(elsewhere)) == (False, False)
        # The next sign-in at the provider works (its iat in whole seconds, after the one
        # signed out with).
        assert await works(provider.token(sub="u-45", roles=["dispatcher"], iat=ahead + 1))


async def test_a_photo_link_stops_working_when_it_expires(
    running_stack: StackConfig, site_notify: str, scene: Scene
) -> None:
    config = running_stack
    async with httpx.AsyncClient(base_url=site_notify, headers=as_suite(config)) as client:
        detail = (await client.get(f"/v1/alerts/{scene.incident_id}")).json()
    link = detail["reports"][0]["photos"][0]["url"]
    assert "X-Amz-Expires=2" in link
    async with httpx.AsyncClient() as anyone:
        assert (await anyone.get(link)).status_code == 200
        await asyncio.sleep(3.5)
        expired = await anyone.get(link)
    assert expired.status_code == 403 and b"expired" in expired.content.lower()


def test_the_first_start_made_an_admin_who_can_sign_in(running_stack: StackConfig) -> None:
    password = running_stack.admin_password_file.read_text()
    assert oct(running_stack.admin_password_file.stat().st_mode & 0o777) == "0o600"
    assert oct(running_stack.token_key_file.stat().st_mode & 0o777) == "0o600"
    answer = httpx.post(
        url(running_stack, "notify", "/v1/auth/token"),
        json={"username": "admin", "password": password},
    )
    assert answer.status_code == 200 and "admin" in answer.json()["roles"]
    assert datetime.fromisoformat(answer.json()["expires_at"]) > datetime.now(UTC)


async def test_a_live_stream_ends_when_its_token_is_revoked(running_stack: StackConfig) -> None:
    config = running_stack
    admin = headers_of(config, "admin")
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=30.0)) as client:
        issued = await client.post(
            url(config, "notify", "/v1/access/tokens"),
            json={"name": "wall-display", "scopes": ["alerts:read"]},
            headers=admin,
        )
        display = issued.json()
        async with client.stream(
            "GET", url(config, "notify", "/v1/alerts/stream"), headers=bearer(display["token"])
        ) as stream:
            assert stream.status_code == 200
            await client.post(
                url(config, "notify", f"/v1/access/tokens/{display['token_id']}/revoke"),
                json={"reason": "display taken down"},
                headers=admin,
            )
            async with asyncio.timeout(25):
                async for _ in stream.aiter_lines():
                    pass  # pings and alerts until the service ends the stream
        again = await client.get(
            url(config, "notify", "/v1/alerts/stream"), headers=bearer(display["token"])
        )
        assert again.status_code == 401


async def triaged_report(
    config: StackConfig, report: dict[str, Any], auth: dict[str, str]
) -> dict[str, Any]:
    """Send `report` as whom `auth` names, and its view in notify once it is triaged."""
    accepted = await submit(config, report, [], auth=auth)
    assert accepted.status_code == 202, accepted.text
    report_url = url(config, "notify", f"/v1/reports/{accepted.json()['report_id']}")

    async def triaged() -> dict[str, Any] | None:
        async with httpx.AsyncClient(headers=as_suite(config)) as client:
            answer = await client.get(report_url)
        view: dict[str, Any] = answer.json()
        return view if answer.status_code == 200 and view["status"] in TRIAGED else None

    found: dict[str, Any] = await wait_for(triaged, timeout_s=60)
    return found


async def test_reports_at_one_spot_are_one_incident_whatever_else_they_name(
    running_stack: StackConfig,
) -> None:
    """Three reports within 100 m: one naming a place, one from the reporter's page (no
    unit, no place: the worker's account gives the unit), one of another unit. Triage
    groups only what shares a partition, so all three must; keyed by what each names,
    they were split whenever their keys hashed apart."""
    config = running_stack
    lat, lon = 20 + random.random(), 110 + random.random()  # nobody else's
    first = await triaged_report(
        config,
        {
            "text": "道岔区有异物侵限",
            "place": f"道岔{uuid4().hex[:4]}",
            "location": {"lat": lat, "lon": lon},
        },
        as_user(config, "rep-b", "reporter"),
    )
    from_the_page = await triaged_report(
        config,
        {"text": "道岔那边有异物", "location": {"lat": lat + 0.0009, "lon": lon}},
        as_user(config, "rep-fx", "reporter", units=(STATION,)),
    )
    other_unit = await triaged_report(
        config,
        {"text": "异物侵限", "unit": "北京南站", "location": {"lat": lat - 0.0009, "lon": lon}},
        as_user(config, "rep-bn", "reporter"),
    )
    assert (first["unit"], from_the_page["unit"], other_unit["unit"]) == (None, STATION, "北京南站")
    incidents = {first["incident_id"], from_the_page["incident_id"], other_unit["incident_id"]}
    assert incidents == {first["incident_id"]}, "triage did not group the three reports"
    # The page's report reached its worker's manager, through the unit the account gave it.
    async with httpx.AsyncClient() as client:
        answer = await client.get(
            url(config, "notify", "/v1/alerts"),
            params={"limit": 200},
            headers=headers_of(config, "manager"),
        )
    assert first["incident_id"] in {a["incident_id"] for a in answer.json()["alerts"]}


async def test_a_manager_reaches_an_incident_their_worker_reported_though_another_unit_opened_it(
    running_stack: StackConfig,
) -> None:
    """Two departments at one spot: a worker of 北京南站 reports first, one of 丰台西站
    after, and triage makes it one incident. 丰台站's manager (over 丰台西站) lists it,
    follows it live, opens it and acts on it; a manager of neither unit cannot."""
    config = running_stack
    spot = {"lat": 20 + random.random(), "lon": 110 + random.random()}  # nobody else's

    async def reported(unit: str, text: str) -> dict[str, Any]:
        report = {"text": text, "unit": unit, "place": f"信号楼{uuid4().hex[:4]}", "location": spot}
        return await triaged_report(config, report, as_user(config, "rep-a", "reporter"))

    incident_id = (await reported("北京南站", "信号楼配电室冒烟"))["incident_id"]
    connection = await asyncpg.connect(config.postgres_dsn)
    try:
        before = await connection.fetchval("SELECT COALESCE(max(change_id), 0) FROM feed_changes")
    finally:
        await connection.close()
    joined = await reported(STATION, "信号楼旁有烟")
    assert joined["incident_id"] == incident_id, "triage did not group the two reports"

    manager = headers_of(config, "manager")
    stranger = as_user(config, "mgr-jh", "manager", units=("京沪线工务段",))
    async with httpx.AsyncClient() as client:

        async def feed(headers: dict[str, str], **params: Any) -> dict[str, Any]:
            answer = await client.get(
                url(config, "notify", "/v1/alerts"),
                params={"limit": 200, **params},
                headers=headers,
            )
            return {a["incident_id"]: a for a in answer.json()["alerts"]}

        listed = (await feed(manager))[incident_id]
        assert (listed["unit"], sorted(listed["units"])) == ("北京南站", ["丰台西站", "北京南站"])
        assert incident_id in await feed(headers_of(config, "dispatcher"), unit=STATION)
        assert incident_id not in await feed(stranger)

        detail = url(config, "notify", f"/v1/alerts/{incident_id}")
        refused = await client.get(detail, headers=stranger)
        assert refused.status_code == 403
        # Nor does the refusal tell a stranger whose incident it is.
        assert "站" not in refused.text, refused.text
        shown = await client.get(detail, headers=manager)
        assert shown.status_code == 200
        assert sorted(shown.json()["units"]) == ["丰台西站", "北京南站"]
        note = {
            "action": "note",
            "note": "丰台西站已派人",
            "expected_version": shown.json()["version"],
        }
        act = url(config, "notify", f"/v1/incidents/{incident_id}/actions")
        refused = await client.post(act, json=note, headers=stranger)
        assert refused.status_code == 403 and "站" not in refused.text, refused.text
        assert (await client.post(act, json=note, headers=manager)).status_code == 202

    # The live stream tells the manager of the change their worker's report made.
    events = await read_until(config, before, incident_id, caller=manager)
    assert all(set(event["units"]) & {"丰台站", "丰台西站"} for _, event in events)
