"""The dispatcher's page in a real browser: Debian's Chromium at a desk, driven by Playwright.

Reports go in through ingest's API as a phone sends them; the page on notify must show
them live (no reload), act on them, ride out a network blip, and say so when someone
else changed an incident first. Each test uses a unit of its own and filters the page by
it, so alerts made by other tests never matter. Each signs in through the page's own form
as a person of its own, and actions are recorded under that person.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Locator,
    Page,
    Route,
    expect,
)

from qianliyan.stack.config import StackConfig
from tests.browser.conftest import MakeUser, Person, session_held, sign_outs_refused
from tests.integration.alert_receivers import (
    WebhookReceiver,
    free_port,
    new_secret,
    routing_in_force,
)
from tests.integration.clients import as_suite, as_user, jpeg_photo, submit
from tests.integration.topic_reader import wait_for

pytestmark = pytest.mark.browser

# A report's way through ingest, Kafka, triage and notify's projection, then the stream.
LIVE_WAIT_MS = 30_000


@pytest.fixture
async def desk(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A dispatch centre's desk screen (its own storage) whose browser prefers Chinese."""
    context = await browser.new_context(viewport={"width": 1600, "height": 1000}, locale="zh-CN")
    yield context
    await context.close()


def notify_url(config: StackConfig) -> str:
    return f"http://127.0.0.1:{config.notify_port}"


def new_unit() -> str:
    return f"测试站{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def dispatcher(make_user: MakeUser) -> Person:
    return await make_user("wangfang", "王芳", roles=["dispatcher"])


async def load_page(desk: BrowserContext, config: StackConfig, unit: str) -> tuple[Page, list[str]]:
    """The page filtered to `unit`, nobody signed in yet; and what the browser will have
    complained of (refused loads, uncaught errors)."""
    page = await desk.new_page()
    problems: list[str] = []
    page.on("console", lambda m: _note_problem(m, problems))
    page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    response = await page.goto(f"{notify_url(config)}/dispatch?unit={quote(unit)}")
    assert response is not None, "no answer for the page"
    assert response.ok, f"GET /dispatch answered {response.status}: does notify mount_web(app)?"
    # Anything set here is gone if the page reloads: the alerts must come without one.
    await page.evaluate("window.sameDocument = true")
    return page, problems


async def sign_in(page: Page, person: Person, *, password: str | None = None) -> None:
    """Fill the sign-in dialog (in Chinese) and send it."""
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_be_visible()
    await dialog.get_by_label("用户名").fill(person.username)
    await dialog.get_by_label("密码").fill(password or person.password)
    await dialog.get_by_role("button", name="登录", exact=True).click()


async def open_page(
    desk: BrowserContext, config: StackConfig, unit: str, person: Person, role: str = "调度员"
) -> tuple[Page, list[str]]:
    """The page filtered to `unit`, signed in as `person`, the stream live; and what the
    browser will have complained of."""
    page, problems = await load_page(desk, config, unit)
    await sign_in(page, person)
    await expect(page.get_by_role("dialog")).to_be_hidden()
    await expect(page.locator("#whoami")).to_have_text(f"{role}：{person.display_name}")
    await expect(page.locator("#connection")).to_have_text("实时")
    await expect(page.locator("#feed-empty")).to_be_visible()
    return page, problems


def _note_problem(message: ConsoleMessage, problems: list[str]) -> None:
    # The browser logs a refused load (a CSP violation, a photo that failed) as an error.
    # So it does an API answer that is not 2xx, or a stream cut while offline: the tests
    # assert those outcomes themselves.
    if message.type == "error" and "/v1/" not in message.location.get("url", ""):
        problems.append(f"{message.text} ({message.location.get('url')})")


async def report(
    config: StackConfig,
    *,
    unit: str,
    place: str,
    text: str,
    photo: bool = True,
    reporter_id: str | None = None,
) -> str:
    """Send a report as a phone does (or, with `reporter_id`, as a chat bridge sends one
    for a worker); its report id."""
    fields = {"text": text, "place": place, "unit": unit}
    if reporter_id is not None:
        fields["reporter_id"] = reporter_id
    answer = await submit(config, fields, [jpeg_photo()] if photo else [])
    assert answer.status_code == 202, answer.text
    return str(answer.json()["report_id"])


async def alert(config: StackConfig, incident_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(headers=as_suite(config), base_url=notify_url(config)) as client:
        answer = await client.get(f"/v1/alerts/{incident_id}")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def act_elsewhere(
    config: StackConfig, incident_id: str, version: int, *, action: str, **fields: str
) -> None:
    """Another dispatcher's action, straight through the API."""
    async with httpx.AsyncClient(
        headers=as_user(config, "值班主任", "dispatcher"), base_url=notify_url(config)
    ) as client:
        answer = await client.post(
            f"/v1/incidents/{incident_id}/actions",
            json={"action": action, "expected_version": version, **fields},
        )
    assert answer.status_code == 202, answer.text


async def settled_version(config: StackConfig, incident_id: str) -> int:
    """The incident's version once nothing is happening to it any more: notify's alerter
    raises an alert a moment after triage, and that is a change too (a new version)."""
    last = None
    for _ in range(15):
        version = int((await alert(config, incident_id))["version"])
        if version == last:
            return version
        last = version
        await asyncio.sleep(2)
    raise AssertionError(f"incident {incident_id} kept changing")


@dataclass
class OpenedAlert:
    """A fresh unit's alert, opened in the dispatch page once its incident stopped changing."""

    page: Page
    problems: list[str]
    place: str
    shown: Locator  # its row in the feed
    detail: Locator  # the detail pane
    incident_id: str
    version: int


async def open_fresh_alert(
    desk: BrowserContext,
    config: StackConfig,
    dispatcher: Person,
    switch: str,
    *,
    unit: str | None = None,
) -> OpenedAlert:
    """Report smoke near `switch` for `unit` (a new one when None), and open its alert on
    the desk."""
    unit = unit or new_unit()
    page, problems = await open_page(desk, config, unit, dispatcher)
    place = f"{switch} {uuid.uuid4().hex[:4]}"
    await report(config, unit=unit, place=place, text=f"{switch}附近冒烟", photo=False)
    shown = row(page, place)
    await expect(shown).to_have_count(1, timeout=LIVE_WAIT_MS)
    incident_id = await shown.get_attribute("data-incident-id")
    assert incident_id
    version = await settled_version(config, incident_id)
    await shown.get_by_role("button").click()
    detail = page.locator("#detail-body")
    await expect(detail).to_have_attribute("data-version", str(version))
    return OpenedAlert(page, problems, place, shown, detail, incident_id, version)


def row(page: Page, place: str) -> Locator:
    return page.locator("#alerts > li", has_text=place)


async def still_same_document(page: Page, problems: list[str]) -> None:
    assert await page.evaluate("window.sameDocument === true"), "the page was reloaded"
    assert problems == [], problems


async def test_a_new_critical_alert_appears_live_and_is_acknowledged(
    running_stack: StackConfig, desk: BrowserContext, dispatcher: Person
) -> None:
    config, unit = running_stack, new_unit()
    page, problems = await open_page(desk, config, unit, dispatcher)
    await expect(page.get_by_role("heading", name="千里眼 · 调度台")).to_be_visible()

    place = f"3号站台 {uuid.uuid4().hex[:4]}"
    await report(
        config, unit=unit, place=place, text="3号站台配电箱冒烟，有焦糊味", reporter_id="巡检员王"
    )

    # It arrives by itself, and stands out: critical, new, counted in the title.
    new_row = row(page, place)
    await expect(new_row).to_have_count(1, timeout=LIVE_WAIT_MS)
    await expect(new_row).to_have_attribute("data-severity", "critical")
    await expect(new_row).to_have_attribute("data-status", "open")
    await expect(new_row).to_have_attribute("data-new", "true")
    await expect(new_row.locator(".sev")).to_have_text("紧急")
    await expect(new_row.locator(".new-badge")).to_have_text("新")
    await expect(page).to_have_title("(1) 新紧急 · 千里眼 · 调度台")
    await expect(page.locator("#new-alerts")).to_contain_text(place)
    incident_id = await new_row.get_attribute("data-incident-id")
    assert incident_id

    # Opened: the photo preview, the place, the unit, the text and why it is critical.
    await new_row.get_by_role("button").click()
    detail = page.locator("#detail-body")
    await expect(detail.get_by_role("heading", name=place)).to_be_visible()
    await expect(new_row).to_have_attribute("data-new", "false")
    await expect(page).to_have_title("千里眼 · 调度台")
    await expect(page.locator("#new-alerts")).to_be_hidden()
    await expect(detail.locator(".report-text")).to_have_text("3号站台配电箱冒烟，有焦糊味")
    await expect(detail.locator(".report-meta")).to_contain_text(unit)
    # Sent by the suite's machine token for a worker, as a chat bridge does.
    await expect(detail.locator(".report-meta")).to_contain_text(
        "报告人 巡检员王（经 token:test-suite 转发）"
    )
    await expect(detail.locator(".reason-summary").first).to_contain_text("火灾或冒烟")
    await expect(detail.locator(".evidence").first).to_have_text("冒烟")
    preview = detail.locator(".photo img")
    await expect(preview).to_have_count(1)
    # Loaded from the photo store (the page's policy allows its origin), not just placed.
    await expect(preview).to_have_js_property("complete", True)
    assert await preview.evaluate("img => img.naturalWidth") > 0
    full_photo = await detail.locator("a.photo").get_attribute("href")
    assert full_photo and "X-Amz-Signature" in full_photo
    assert await detail.locator("a.photo").get_attribute("target") == "_blank"

    # The open alert follows what happens to it, so the version acted on is the latest.
    version = await settled_version(config, incident_id)
    await expect(detail).to_have_attribute("data-version", str(version))

    await detail.get_by_role("button", name="确认接警").click()
    await expect(detail.locator("#detail-status")).to_have_text("已确认")
    await expect(detail.locator("#detail-message")).to_have_text("已完成：确认接警")
    await expect(new_row).to_have_attribute("data-status", "acknowledged")
    await expect(new_row.locator(".status")).to_have_text("已确认")
    acknowledged_entry = detail.locator('.timeline li[data-event-type="AlertAcknowledged"]')
    await expect(acknowledged_entry).to_contain_text(dispatcher.username)
    await expect(detail.get_by_role("button", name="确认接警")).to_have_count(0)

    acknowledged = await alert(config, incident_id)
    assert acknowledged["status"] == "acknowledged"
    assert acknowledged["acknowledged_by"] == dispatcher.username

    # The same screen in English, the choice kept.
    await page.get_by_role("button", name="English").click()
    await expect(page.get_by_role("heading", name="Qianliyan · Dispatch")).to_be_visible()
    await expect(detail.locator("#detail-status")).to_have_text("acknowledged")
    await expect(new_row.locator(".sev")).to_have_text("critical")
    await still_same_document(page, problems)

    # A link to the alert (as a message sent about it carries) opens it, in English now.
    linked = await desk.new_page()
    await linked.goto(f"{notify_url(config)}/?alert={incident_id}")
    assert linked.url.endswith(f"/dispatch?alert={incident_id}")
    await expect(linked.locator("#detail-body").get_by_role("heading", name=place)).to_be_visible()
    await expect(linked.locator("#detail-status")).to_have_text("acknowledged")


async def test_alerts_made_during_a_network_blip_arrive_when_it_ends(
    running_stack: StackConfig, desk: BrowserContext, dispatcher: Person
) -> None:
    config, unit = running_stack, new_unit()
    page, problems = await open_page(desk, config, unit, dispatcher)
    first = f"K88+100 {uuid.uuid4().hex[:4]}"
    await report(config, unit=unit, place=first, text="K88+100 接触网冒烟", photo=False)
    await expect(row(page, first)).to_have_count(1, timeout=LIVE_WAIT_MS)

    await desk.set_offline(True)
    await expect(page.locator("#connection")).to_have_text("网络中断，正在重连…")
    await expect(page.locator("#feed-stale")).to_be_visible()

    second = f"货场 {uuid.uuid4().hex[:4]}"
    await report(config, unit=unit, place=second, text="货场仓库起火，火势较大")
    async with httpx.AsyncClient(headers=as_suite(config), base_url=notify_url(config)) as client:
        for _ in range(60):
            listed = (await client.get("/v1/alerts", params={"unit": unit})).json()["alerts"]
            if len(listed) == 2:
                break
            await page.wait_for_timeout(500)
    assert len(listed) == 2, f"notify never listed the second alert: {listed}"
    await expect(row(page, second)).to_have_count(0)  # still offline: nothing can arrive

    # The first stream after the blip meets a proxy that is not ready yet: a 502, on which
    # the browser gives up that stream for good. The page must open another by itself.
    refused: list[str] = []

    async def refuse_once(route: Route) -> None:
        if refused:
            await route.continue_()
        else:
            refused.append(route.request.url)
            await route.fulfill(status=502, body="Bad Gateway")

    await page.route("**/v1/alerts/stream", refuse_once)
    await desk.set_offline(False)
    await expect(page.locator("#connection")).to_have_text("实时", timeout=20_000)
    assert len(refused) == 1
    arrived = row(page, second)
    await expect(arrived).to_have_count(1, timeout=20_000)
    await expect(arrived).to_have_attribute("data-new", "true")
    await expect(page.locator("#alerts > li")).to_have_count(2)
    await expect(page.locator("#feed-stale")).to_be_hidden()
    # Still live after the blip: a change made now shows too.
    third = f"道口 {uuid.uuid4().hex[:4]}"
    await report(config, unit=unit, place=third, text="道口栏杆被撞断，有人受伤", photo=False)
    await expect(row(page, third)).to_have_count(1, timeout=LIVE_WAIT_MS)
    await still_same_document(page, problems)


async def test_an_action_on_a_version_someone_else_changed_is_refused_and_reloaded(
    running_stack: StackConfig, desk: BrowserContext, dispatcher: Person
) -> None:
    config = running_stack
    opened = await open_fresh_alert(desk, config, dispatcher, "2号道岔")
    page, problems, shown, detail = opened.page, opened.problems, opened.shown, opened.detail
    incident_id, seen_version = opened.incident_id, opened.version
    await expect(detail.get_by_role("heading", name=opened.place)).to_be_visible()

    # The dispatcher starts writing a note; meanwhile another dispatcher assigns the
    # incident. The page hears of it but does not change what the dispatcher is looking at.
    await detail.get_by_role("button", name="添加备注").click()
    await detail.get_by_label("备注", exact=True).fill("已通知车站值班员")
    await act_elsewhere(config, incident_id, seen_version, action="assign", assignee="工务段 李工")
    await expect(detail.locator("#detail-notice")).to_be_visible(timeout=LIVE_WAIT_MS)
    await expect(shown.locator(".cell-assignee")).to_have_text("工务段 李工")
    await expect(detail).to_have_attribute("data-version", str(seen_version))

    await detail.locator("form.action-form").get_by_role("button", name="添加备注").click()
    message = detail.locator("#detail-message")
    await expect(message).to_contain_text("此事件已被他人更改，已重新载入")
    await expect(message).to_contain_text("值班主任：指派给 工务段 李工")  # what changed
    await expect(message).to_have_class("message message-conflict")
    await expect(detail).to_have_attribute("data-version", str(seen_version + 1))
    await expect(detail.locator(".facts")).to_contain_text("工务段 李工")
    await expect(detail.locator("#detail-notice")).to_be_hidden()
    # The note is still there; sent again on what the dispatcher now sees, it goes through.
    await expect(detail.get_by_label("备注", exact=True)).to_have_value("已通知车站值班员")
    await detail.locator("form.action-form").get_by_role("button", name="添加备注").click()
    await expect(message).to_have_text("已完成：添加备注")
    await expect(detail.locator(".timeline li", has_text="已通知车站值班员")).to_have_count(1)

    # With nothing being written, a change made elsewhere just shows up in the open alert.
    version = int(await detail.get_attribute("data-version") or "0")
    await act_elsewhere(config, incident_id, version, action="note", note="车站已派人查看")
    await expect(detail.locator(".timeline li", has_text="车站已派人查看")).to_have_count(1)
    await expect(detail).to_have_attribute("data-version", str(version + 1))
    await expect(detail.locator("#detail-notice")).to_be_hidden()

    now = await alert(config, incident_id)
    notes = [e for e in now["timeline"] if e["event_type"] == "AlertNoteAdded"]
    assert [(n["actor"], n["detail"]["note"]) for n in notes] == [
        (dispatcher.username, "已通知车站值班员"),
        ("值班主任", "车站已派人查看"),
    ]
    await still_same_document(page, problems)


async def test_an_action_while_another_is_being_recorded_is_refused_in_chinese(
    running_stack: StackConfig, desk: BrowserContext, dispatcher: Person
) -> None:
    config = running_stack
    opened = await open_fresh_alert(desk, config, dispatcher, "3号道岔")
    page, detail = opened.page, opened.detail

    # Another dispatcher's action on this version is being recorded (claimed, not yet in
    # the log): this one is refused, and the page says why in the dispatcher's language.
    claim = uuid.uuid4()
    connection = await asyncpg.connect(config.postgres_dsn)
    try:
        await connection.execute(
            "INSERT INTO incident_action_claims (incident_id, version, event_id, claimed_until) "
            "VALUES ($1, $2, $3, now() + interval '5 minutes')",
            uuid.UUID(opened.incident_id),
            opened.version,
            claim,
        )
        await detail.get_by_role("button", name="确认接警").click()
        message = detail.locator("#detail-message")
        await expect(message).to_have_text(
            "操作未执行：另一位调度员对此事件的操作正在记录，请稍后再决定"
        )
    finally:
        await connection.execute("DELETE FROM incident_action_claims WHERE event_id = $1", claim)
        await connection.close()
    await detail.get_by_role("button", name="确认接警").click()
    await expect(page.locator("#detail-message")).to_have_text("已完成：确认接警")
    await still_same_document(page, opened.problems)


async def test_a_wrong_password_is_refused_on_the_form_and_signing_out_asks_again(
    running_stack: StackConfig, desk: BrowserContext, dispatcher: Person
) -> None:
    config, unit = running_stack, new_unit()
    page, problems = await load_page(desk, config, unit)
    dialog = page.get_by_role("dialog")
    await expect(dialog.get_by_role("heading", name="登录调度台")).to_be_visible()
    # Nobody signed in reads nothing: the feed waits behind the dialog.
    await expect(page.locator("#alerts > li")).to_have_count(0)

    await sign_in(page, dispatcher, password="not-the-password")
    await expect(page.locator("#sign-in-error")).to_have_text("用户名或密码错误，或账号已停用。")
    await expect(dialog).to_be_visible()
    await expect(page.locator("#whoami")).to_be_hidden()

    # The right one: the feed (with what is already there) and who is signed in.
    place = f"1号站台 {uuid.uuid4().hex[:4]}"
    await report(config, unit=unit, place=place, text="1号站台有旅客晕倒", photo=False)
    await sign_in(page, dispatcher)
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#whoami")).to_have_text(f"调度员：{dispatcher.display_name}")
    await expect(page.locator("#connection")).to_have_text("实时")
    await expect(row(page, place)).to_have_count(1, timeout=LIVE_WAIT_MS)

    # Signed out, the page asks again; the session no longer works on the server.
    await page.get_by_role("button", name="退出登录").click()
    await expect(dialog).to_be_visible()
    await expect(page.locator("#connection")).to_have_text("未登录")
    assert (await page.request.get(f"{notify_url(config)}/v1/auth/me")).status == 401
    await still_same_document(page, problems)


async def test_a_sign_out_the_server_did_not_take_is_sent_again_until_it_does(
    running_stack: StackConfig, desk: BrowserContext, dispatcher: Person
) -> None:
    """A dispatch centre's shared desk: a sign-out the server did not take (here a 503;
    offline alike) must not leave the session working for whoever sits down next. The page
    says the sign-out has not reached the server and sends it again, across a reload too,
    until the server has ended the session. It once took any failure as signed out."""
    config, unit = running_stack, new_unit()
    page, problems = await open_page(desk, config, unit, dispatcher)
    refusing = True
    refused = await sign_outs_refused(page, lambda: refusing)
    session_works = await session_held(desk, f"{notify_url(config)}/v1/auth/me")

    dialog, pending = page.get_by_role("dialog"), page.locator("#sign-out-pending")
    await page.get_by_role("button", name="退出登录").click()
    await expect(dialog).to_be_visible()
    await expect(pending).to_have_text(
        "退出登录尚未送达服务器，正在重试：在此之前，本机的登录在服务器上仍然有效。"
    )
    assert await session_works(), "the server heard no sign-out"

    # Reloaded meanwhile, the page signs nobody in: it sends the sign-out first.
    await page.reload()
    await expect(dialog).to_be_visible()
    await expect(pending).to_be_visible()
    await expect(page.locator("#whoami")).to_be_hidden()
    assert len(refused) >= 2, refused

    refusing = False

    async def session_ended() -> bool:
        return not await session_works()

    await wait_for(session_ended, timeout_s=20)
    await expect(pending).to_be_hidden()
    await expect(dialog).to_be_visible()
    assert problems == [], problems


async def test_signing_in_while_a_sign_out_is_pending_sends_no_sign_out_during_it(
    running_stack: StackConfig, desk: BrowserContext, dispatcher: Person
) -> None:
    """The next dispatcher signs in at a desk whose sign-out the server has not taken yet.
    A sign-out sent while the sign-in is on its way could carry the new session's cookie,
    or clear the one just set: once, the page's 5 s retry went on during a sign-in."""
    config, unit = running_stack, new_unit()
    page, problems = await open_page(desk, config, unit, dispatcher)
    refusing, signing_in = True, False
    deletes_during_sign_in: list[str] = []

    async def held(route: Route) -> None:
        nonlocal refusing, signing_in
        if route.request.method == "DELETE":
            if signing_in:
                deletes_during_sign_in.append(route.request.url)
            if refusing:
                await route.fulfill(
                    status=503,
                    json={"type": "about:blank", "title": "Service Unavailable", "status": 503},
                )
                return
        elif route.request.method == "POST":
            # Held past the page's retry, with the server taking sign-outs again.
            signing_in, refusing = True, False
            await asyncio.sleep(7)
            signing_in = False
        await route.continue_()

    await page.route("**/v1/auth/session", held)
    pending = page.locator("#sign-out-pending")
    await page.get_by_role("button", name="退出登录").click()
    await expect(pending).to_be_visible()

    await sign_in(page, dispatcher)
    await expect(page.get_by_role("dialog")).to_be_hidden(timeout=20_000)
    await expect(page.locator("#whoami")).to_have_text(f"调度员：{dispatcher.display_name}")
    assert deletes_during_sign_in == []
    await page.wait_for_timeout(6_000)  # past a retry the page might still have due
    assert (await page.request.get(f"{notify_url(config)}/v1/auth/me")).status == 200
    await expect(pending).to_be_hidden()
    assert problems == [], problems


async def test_a_manager_sees_their_units_alerts_and_is_told_they_may_not_override(
    running_stack: StackConfig, desk: BrowserContext, make_user: MakeUser
) -> None:
    config, unit, other_unit = running_stack, new_unit(), new_unit()
    manager = await make_user("zhaoqiang", "赵强", roles=["manager"], units=[unit])
    page, problems = await open_page(desk, config, "", manager, role="主管")
    mine = f"道口 {uuid.uuid4().hex[:4]}"
    theirs = f"道口 {uuid.uuid4().hex[:4]}"
    await report(config, unit=other_unit, place=theirs, text="道口栏杆故障，无法落下", photo=False)
    await report(config, unit=unit, place=mine, text="道口栏杆故障，无法落下", photo=False)
    shown = row(page, mine)
    await expect(shown).to_have_count(1, timeout=LIVE_WAIT_MS)
    incident_id = await shown.get_attribute("data-incident-id")
    assert incident_id
    await settled_version(config, incident_id)
    await expect(row(page, theirs)).to_have_count(0)

    await shown.get_by_role("button").click()
    detail = page.locator("#detail-body")
    await expect(detail.get_by_role("heading", name=mine)).to_be_visible()
    await detail.get_by_role("button", name="更改级别").click()
    form = detail.locator("form.action-form")
    await form.get_by_label("原因").fill("现场核实")
    async with page.expect_response(lambda r: r.url.endswith("/actions")) as answer:
        await form.get_by_role("button", name="更改级别").click()
    refusal = await answer.value
    assert refusal.status == 403
    await expect(detail.locator("#detail-message")).to_have_text((await refusal.json())["detail"])

    # What a manager may do goes through, under their name.
    await detail.get_by_role("button", name="确认接警").click()
    await expect(detail.locator("#detail-status")).to_have_text("已确认")
    assert (await alert(config, incident_id))["acknowledged_by"] == manager.username
    await still_same_document(page, problems)


async def test_when_the_session_ends_the_page_asks_again_and_keeps_the_note_being_written(
    running_stack: StackConfig, desk: BrowserContext, dispatcher: Person
) -> None:
    config = running_stack
    opened = await open_fresh_alert(desk, config, dispatcher, "4号道岔")
    page, problems, detail = opened.page, opened.problems, opened.detail
    await detail.get_by_role("button", name="添加备注").click()
    await detail.get_by_label("备注", exact=True).fill("已通知工务段")

    # The session lapses (its cookie is gone): the action is answered 401.
    await desk.clear_cookies(name="qly_session")
    await detail.locator("form.action-form").get_by_role("button", name="添加备注").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_be_visible()
    await expect(page.locator("#sign-in-why")).to_contain_text("登录已失效")
    await expect(dialog.get_by_label("用户名")).to_have_value(dispatcher.username)

    await sign_in(page, dispatcher)
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#connection")).to_have_text("实时")
    await expect(detail.get_by_label("备注", exact=True)).to_have_value("已通知工务段")
    await detail.locator("form.action-form").get_by_role("button", name="添加备注").click()
    await expect(detail.locator("#detail-message")).to_have_text("已完成：添加备注")
    await expect(detail.locator(".timeline li", has_text="已通知工务段")).to_have_count(1)
    await still_same_document(page, problems)


async def test_the_open_alert_shows_whom_it_reached_and_who_could_not_be_told(
    running_stack: StackConfig, desk: BrowserContext, dispatcher: Person
) -> None:
    config, unit = running_stack, new_unit()
    secret = new_secret()
    # The desk's webhook answers its first call 503; the section chief's is a port nobody
    # listens on, so after three tries eight seconds apart the page must say "call them".
    async with WebhookReceiver(secret, fail_first=1) as hooks:
        routing = f"""\
version: "told-{uuid.uuid4().hex[:8]}"
delivery: {{max_attempts: 3, first_retry: 8s, max_retry: 8s, timeout: 2s}}
recipients:
  - id: duty
    name: 站值班员
    channels:
      - id: wecom
        webhook: "{hooks.url("duty")}"
        secret: "{secret}"
  - id: chief
    name: 段长
    channels:
      - id: wecom
        webhook: "http://127.0.0.1:{free_port()}/hook"
        secret: "{secret}"
routes:
  - id: told-route
    min_severity: major
    units: ["{unit}"]
    escalation:
      - after: 0s
        notify: [duty, chief]
"""
        async with routing_in_force(config, routing):
            opened = await open_fresh_alert(desk, config, dispatcher, "5号道岔", unit=unit)
            page, problems, detail = opened.page, opened.problems, opened.detail
            told = detail.locator("section.told")
            chief = told.locator('li[data-recipient="chief"]')
            # Opened while the chief's tries are still going on (about sixteen seconds).
            await expect(chief).to_contain_text("未送达", timeout=LIVE_WAIT_MS)
            await expect(chief).to_contain_text("段长 (chief)")

            # Nothing moves the incident's version meanwhile: the page reads it again.
            await expect(chief).to_have_class("told-row told-failed", timeout=LIVE_WAIT_MS)
            await expect(chief.locator(".told-state")).to_contain_text("失败，试了 3 次")
            duty = told.locator('li[data-recipient="duty"]')
            await expect(duty.locator(".told-who")).to_have_text("站值班员 (duty)")
            await expect(duty.locator(".told-how")).to_have_text("wecom · 首次通知 · 紧急")
            await expect(duty.locator(".told-state")).to_contain_text("已送达")
            await expect(told.locator(".told-summary")).to_have_text(
                "已送达 1，失败 1（请电话联系）"
            )
            assert [h.answered for h in hooks.hits] == [503, 200]
            await still_same_document(page, problems)


async def test_an_action_on_a_version_a_new_report_moved_says_what_came_in(
    running_stack: StackConfig, desk: BrowserContext, dispatcher: Person
) -> None:
    config = running_stack
    opened = await open_fresh_alert(desk, config, dispatcher, "6号道岔")
    page, detail, incident_id = opened.page, opened.detail, opened.incident_id
    unit = (await alert(config, incident_id))["unit"]

    # While the dispatcher writes a note, a second worker reports the same place: the
    # incident moves on, and no person changed it.
    await detail.get_by_role("button", name="添加备注").click()
    await detail.get_by_label("备注", exact=True).fill("已通知工务段")
    await report(config, unit=unit, place=opened.place, text="6号道岔烟更大了", photo=False)
    await expect(detail.locator("#detail-notice")).to_be_visible(timeout=LIVE_WAIT_MS)
    await detail.locator("form.action-form").get_by_role("button", name="添加备注").click()
    message = detail.locator("#detail-message")
    await expect(message).to_contain_text("此事件有了新情况，已重新载入")
    await expect(message).not_to_contain_text("他人")
    await expect(message.locator(".message-extra").first).to_contain_text("triage：报告分级为")
    await expect(detail.locator(".report-text")).to_have_count(2)

    # A change that leaves no timeline entry (a report's place arriving after its triage)
    # is told by what the dispatcher can see of it. Written here as that projection would
    # write it, and undone after: the suite checks the read models equal a rebuild.
    version = int(await detail.get_attribute("data-version") or "0")
    connection = await asyncpg.connect(config.postgres_dsn)
    incident = uuid.UUID(incident_id)
    try:
        await connection.execute(
            "UPDATE incidents SET version = version + 1, place = '6号道岔北侧' "
            "WHERE incident_id = $1",
            incident,
        )
        await detail.locator("form.action-form").get_by_role("button", name="添加备注").click()
        await expect(message).to_contain_text("此事件有了新情况，已重新载入")
        await expect(message.locator(".message-extra")).to_have_text(
            [f"地点：{opened.place} → 6号道岔北侧"]
        )
        await expect(detail).to_have_attribute("data-version", str(version + 1))
        await detail.locator("form.action-form").get_by_role("button", name="添加备注").click()
        await expect(message).to_have_text("已完成：添加备注")  # projected, at version + 2
    finally:
        # The log never moved the count, nor the place: as a rebuild will have them.
        await connection.execute(
            "UPDATE incidents SET version = version - 1, place = $2 WHERE incident_id = $1",
            incident,
            opened.place,
        )
        await connection.close()
    await still_same_document(page, opened.problems)


async def test_a_delivery_still_retrying_when_the_alert_is_acknowledged_is_told_as_stopped(
    running_stack: StackConfig, desk: BrowserContext, dispatcher: Person
) -> None:
    config, unit = running_stack, new_unit()
    secret = new_secret()
    routing = f"""\
version: "stopped-{uuid.uuid4().hex[:8]}"
delivery: {{max_attempts: 5, first_retry: 60s, max_retry: 60s, timeout: 2s}}
recipients:
  - id: chief
    name: 段长
    channels:
      - id: wecom
        webhook: "http://127.0.0.1:{free_port()}/hook"
        secret: "{secret}"
routes:
  - id: stopped-route
    min_severity: major
    units: ["{unit}"]
    escalation:
      - after: 0s
        notify: [chief]
"""
    async with routing_in_force(config, routing):
        opened = await open_fresh_alert(desk, config, dispatcher, "7号道岔", unit=unit)
        page, problems, detail = opened.page, opened.problems, opened.detail
        chief = detail.locator('section.told li[data-recipient="chief"]')
        await expect(chief).to_contain_text("未送达，已试 1 次", timeout=LIVE_WAIT_MS)

        # Taken in hand: no retry is coming, and the page says so rather than a time.
        await detail.get_by_role("button", name="确认接警").click()
        await expect(detail.locator("#detail-message")).to_have_text("已完成：确认接警")
        await expect(chief.locator(".told-state")).to_contain_text(
            "未送达，试了 1 次；事件已确认，不再重试"
        )
        await expect(chief).to_have_class("told-row told-stopped")
        await expect(detail.locator(".told-summary")).to_have_text("已送达 0，未送达 1")
        # Nor does the page keep reading an alert nobody is being told of any more.
        reads: list[str] = []
        page.on(
            "request",
            lambda request: reads.append(request.url) if "/v1/alerts/" in request.url else None,
        )
        await page.wait_for_timeout(12_000)
        assert reads == []
        await still_same_document(page, problems)
