"""The reporter's page in a real browser: Debian's Chromium, driven by Playwright, as a phone.

The page talks to the suite's real stack (ingest, Kafka, MinIO, triage, notify), so what
is asserted is what a reporter would see, and then what reached the event log. The
reporter signs in through the page's own form; the report is theirs by that session.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image
from playwright.async_api import (
    Browser,
    BrowserContext,
    Dialog,
    Page,
    Playwright,
    Request,
    Route,
    expect,
)

from qianliyan.stack.config import StackConfig
from tests.browser.conftest import (
    MakeUser,
    Person,
    session_held,
    sign_in,
    sign_outs_refused,
    submitted_for,
)
from tests.integration.clients import as_suite, expire_upload
from tests.integration.topic_reader import wait_for

pytestmark = pytest.mark.browser

STAGE_ZH = {"triaged": "已分级，调度中心可见", "alerted": "已通知相关负责人"}
SEVERITY_ZH = {"info": "提示", "minor": "一般", "major": "严重", "critical": "紧急"}
# Long enough for a poll of notify plus triage's consume-produce round trip.
TRIAGE_WAIT_MS = 30_000


@pytest.fixture
async def bare_phone(playwright: Playwright, browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh phone without the service worker: Chromium's offline emulation, and the
    tests' routes, do not hold back the requests a service worker lets through, so a
    sign-out would reach the server."""
    context = await browser.new_context(
        **playwright.devices["Pixel 7"], locale="zh-CN", service_workers="block"
    )
    yield context
    await context.close()


def page_url(config: StackConfig) -> str:
    return f"http://127.0.0.1:{config.ingest_port}/"


def camera_photo(path: Path) -> Path:
    """A photo larger than the page's 2048 px limit, with a random colour (a new sha256)."""
    colour = tuple(random.randrange(256) for _ in range(3))
    Image.new("RGB", (3000, 2000), colour).save(path, format="JPEG", quality=90)
    return path


async def open_page(page: Page, config: StackConfig) -> None:
    response = await page.goto(page_url(config))
    assert response is not None, "no answer for the page"
    assert response.ok, f"GET / answered {response.status}: does ingest call mount_web(app)?"
    # Once the service worker controls the page it has cached the shell: the page opens
    # offline from now on.
    await page.wait_for_function(
        "() => navigator.serviceWorker.controller !== null", timeout=10_000
    )


async def test_a_report_made_offline_is_sent_once_when_the_network_returns(
    running_stack: StackConfig, phone: BrowserContext, tmp_path: Path, make_user: MakeUser
) -> None:
    reporter = await make_user("j2024-017", "巡道工 张伟", roles=["reporter"])
    page = await phone.new_page()
    await open_page(page, running_stack)
    await expect(page.get_by_role("heading", name="千里眼 · 现场报告")).to_be_visible()
    # Nobody is signed in on a new phone: the page asks first.
    await expect(page.locator("#report-form")).to_be_hidden()
    await sign_in(page, reporter)

    text = f"K123+400 附近线路有异物，影响行车。编号 {uuid.uuid4().hex[:8]}"
    await page.get_by_label("情况描述（必填）").fill(text)
    await page.get_by_label("类别（可选）").select_option(label="线路 / 轨道")
    await page.get_by_label("地点（可选）").fill("K123+400")
    await page.locator("#photo-pick").set_input_files(camera_photo(tmp_path / "track.jpg"))
    await expect(page.locator("#photo-previews img")).to_have_count(1)

    await phone.set_offline(True)
    # Two taps in quick succession, as a thumb on a shaking train does.
    await page.get_by_role("button", name="发送报告").dblclick()

    reports = page.locator("#reports > li")
    await expect(reports).to_have_count(1)
    report = reports.first
    await expect(report.locator(".badge")).to_have_text("等待网络")
    await expect(report).to_have_attribute("data-state", "waiting")
    client_report_id = await report.get_attribute("data-id")
    assert client_report_id

    # A reload with no network: the shell comes from the service worker, the report from
    # IndexedDB, still waiting.
    await page.reload()
    await expect(page.get_by_role("heading", name="千里眼 · 现场报告")).to_be_visible()
    # Offline the server cannot be asked: the page goes on as the reporter last signed in.
    await expect(page.locator("#whoami")).to_contain_text(reporter.display_name)
    await expect(page.locator("#report-form")).to_be_visible()
    await expect(reports).to_have_count(1)
    await expect(report).to_have_attribute("data-state", "waiting")

    await phone.set_offline(False)
    await expect(report.locator(".badge")).to_have_text("已接收", timeout=20_000)
    await expect(report.locator(".badge")).to_have_text("已分级", timeout=TRIAGE_WAIT_MS)
    await expect(reports).to_have_count(1)

    events = await submitted_for(running_stack, client_report_id)
    assert len(events) == 1, f"expected one ReportSubmitted, got {len(events)}"
    event = events[0]
    # The severity shown is the one triage gave, in the reporter's language.
    async with httpx.AsyncClient(
        headers=as_suite(running_stack), base_url=page_url(running_stack)
    ) as client:
        status = (await client.get(f"/v1/reports/{event.payload.report_id}")).json()
    # Triaged, and alerted too when the routing names someone for its severity.
    assert status["status"] in ("triaged", "alerted"), status
    await expect(report.locator(".stage")).to_have_text(
        STAGE_ZH[status["status"]], timeout=TRIAGE_WAIT_MS
    )
    shown = f"严重程度：{SEVERITY_ZH[status['severity']]}"
    await expect(report.locator(".severity")).to_have_text(shown)
    assert event.payload.text == text
    assert event.payload.category == "track"
    assert event.payload.place == "K123+400"
    assert event.actor.id == reporter.username  # whoever signed in, not a name typed
    assert len(event.payload.photos) == 1
    photo = event.payload.photos[0]
    # Downscaled on the phone: 3000x2000 became 2048x1365 before it was sent.
    assert (photo.width, photo.height) == (2048, 1365)
    assert photo.content_type == "image/jpeg"


async def test_english_and_a_refusal_shown_with_the_servers_reason_and_not_retried(
    running_stack: StackConfig, phone: BrowserContext, make_user: MakeUser
) -> None:
    page = await phone.new_page()
    posts: list[Request] = []
    page.on(
        "request",
        lambda r: posts.append(r) if r.method == "POST" and "/v1/reports" in r.url else None,
    )
    await open_page(page, running_stack)
    await sign_in(page, await make_user("reporter", "李明", roles=["reporter"]))

    await page.get_by_role("button", name="English").click()
    await expect(page.get_by_role("heading", name="Qianliyan · Field report")).to_be_visible()
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await page.reload()  # the choice is remembered on the phone
    await expect(page.get_by_role("heading", name="Qianliyan · Field report")).to_be_visible()

    # Only spaces: the page lets the server judge it, and the server refuses it.
    await page.get_by_label("What happened (required)").fill("     ")
    async with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith("/v1/reports")
    ) as answer:
        await page.get_by_role("button", name="Send report").click()
    response = await answer.value
    assert response.status == 422
    problem = await response.json()
    assert problem["errors"], problem

    report = page.locator("#reports > li").first
    await expect(report).to_have_attribute("data-state", "failed")
    await expect(report.locator(".badge")).to_have_text("not accepted")
    await expect(report.locator(".problem")).to_have_text(problem["detail"])
    shown = report.locator(".problem-errors li")
    await expect(shown).to_have_count(len(problem["errors"]))
    for position, error in enumerate(problem["errors"]):
        await expect(shown.nth(position)).to_have_text(f"{error['field']}: {error['message']}")

    # Nothing is retried: not on the network coming back, not after the first backoff.
    await page.evaluate("dispatchEvent(new Event('online'))")
    await page.wait_for_timeout(3_000)
    assert len(posts) == 1
    await expect(report).to_have_attribute("data-state", "failed")


async def test_a_refusal_is_told_in_chinese_by_its_code(
    running_stack: StackConfig, phone: BrowserContext, make_user: MakeUser
) -> None:
    page = await phone.new_page()
    await open_page(page, running_stack)
    await sign_in(page, await make_user("reporter", "王芳", roles=["reporter"]))

    await page.get_by_label("情况描述（必填）").fill("     ")
    async with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith("/v1/reports")
    ) as answer:
        await page.get_by_role("button", name="发送报告").click()
    problem = await (await answer.value).json()
    assert problem["code"] == "invalid_report"
    assert [(e["field"], e["code"]) for e in problem["errors"]] == [
        ("report.text", "string_too_short")
    ]

    # The server's words are English; a worker reads what was wrong in Chinese.
    report = page.locator("#reports > li").first
    await expect(report).to_have_attribute("data-state", "failed")
    await expect(report.locator(".problem")).to_have_text("报告内容有误，请修改后重发。")
    await expect(report.locator(".problem-errors li")).to_have_text(["情况描述：不能为空"])
    # A photo just past the limit is told in bytes, and those read as 字节.
    said = await page.evaluate(
        """import("/static/js/i18n.js").then(({ t }) => t("err.photo_too_large", {
             size: "10,485,761 bytes", limit: "10,485,760 bytes" }))"""
    )
    assert said == "文件 10,485,761 字节，超过 10,485,760 字节 的上限"


async def test_a_report_queued_when_the_session_ended_is_sent_after_signing_in_again(
    running_stack: StackConfig, phone: BrowserContext, make_user: MakeUser
) -> None:
    reporter = await make_user("reporter", "车站值班员 陈静", roles=["reporter"])
    page = await phone.new_page()
    await open_page(page, running_stack)
    await sign_in(page, reporter)

    # Written offline; meanwhile the session ends (the cookie is gone, as when it lapses).
    await phone.set_offline(True)
    text = f"站台雨棚漏水，地面湿滑。编号 {uuid.uuid4().hex[:8]}"
    await page.get_by_label("情况描述（必填）").fill(text)
    await page.get_by_role("button", name="发送报告").click()
    report = page.locator("#reports > li").first
    await expect(report).to_have_attribute("data-state", "waiting")
    client_report_id = await report.get_attribute("data-id")
    assert client_report_id
    await phone.clear_cookies(name="qly_session")

    # Back online the server answers 401: the page asks for a sign-in, the report waits.
    await phone.set_offline(False)
    form = page.locator("#sign-in-form")
    await expect(form).to_be_visible(timeout=20_000)
    await expect(page.locator("#sign-in-why")).to_contain_text("登录已失效")
    await expect(form.get_by_label("用户名")).to_have_value(reporter.username)
    await expect(page.locator("#report-form")).to_be_hidden()
    await expect(report).to_have_attribute("data-state", "waiting")
    await expect(report.locator(".note")).to_have_text("登录后自动发送")
    assert await submitted_for(running_stack, client_report_id) == []

    # A wrong password keeps the form, and the report, where they are.
    await form.get_by_label("密码").fill("not-the-password")
    await form.get_by_role("button", name="登录", exact=True).click()
    await expect(page.locator("#sign-in-error")).to_have_text("用户名或密码错误，或账号已停用。")
    await expect(form).to_be_visible()
    await expect(report).to_have_attribute("data-state", "waiting")

    await sign_in(page, reporter)
    await expect(report.locator(".badge")).to_have_text("已分级", timeout=TRIAGE_WAIT_MS)
    events = await submitted_for(running_stack, client_report_id)
    assert len(events) == 1, f"expected one ReportSubmitted, got {len(events)}"
    assert events[0].actor.id == reporter.username
    assert events[0].payload.text == text


async def test_a_sign_in_in_another_tab_holds_back_this_tab_s_waiting_report(
    running_stack: StackConfig, bare_phone: BrowserContext, make_user: MakeUser
) -> None:
    """A shift change on a shared phone with the page open twice: the second tab's sign-in
    gives the cookie to the next worker, and the first tab must not send the last
    worker's waiting report in the next one's name."""
    config = running_stack
    first_worker = await make_user("reporter", "线路工 周明", roles=["reporter"])
    next_worker = await make_user("reporter", "线路工 吴刚", roles=["reporter"])
    first = await bare_phone.new_page()
    await first.goto(page_url(config))
    await sign_in(first, first_worker)
    await first.get_by_label("情况描述（必填）").fill("     ")  # refused by the server
    await first.get_by_role("button", name="发送报告").click()
    await expect(first.locator("#reports > li").first).to_have_attribute("data-state", "failed")
    refused_id = await first.locator("#reports > li").first.get_attribute("data-id")
    refused = first.locator(f'#reports > li[data-id="{refused_id}"]')
    await expect(refused.get_by_role("button")).to_have_count(2)  # edit, remove: theirs
    await first.route("**/v1/reports", lambda route: route.abort())  # no signal, in a tunnel
    text = f"钢轨接头螺栓松动。编号 {uuid.uuid4().hex[:8]}"
    await first.get_by_label("情况描述（必填）").fill(text)
    await first.get_by_role("button", name="发送报告").click()
    await expect(first.locator("#reports > li")).to_have_count(2)
    client_report_id = await first.locator("#reports > li").first.get_attribute("data-id")
    assert client_report_id and client_report_id != refused_id
    report = first.locator(f'#reports > li[data-id="{client_report_id}"]')
    await expect(report).to_have_attribute("data-state", "waiting")

    second = await bare_phone.new_page()
    await second.goto(page_url(config))
    second.once("dialog", lambda dialog: dialog.accept())  # "1 report not sent yet"
    await second.locator("#sign-out").click()
    await sign_in(second, next_worker)
    await first.unroute("**/v1/reports")
    await expect(report.locator(".note")).to_have_text(f"等待 {first_worker.username} 登录后发送")
    await expect(first.locator("#whoami")).to_contain_text(next_worker.display_name)
    await first.evaluate("() => dispatchEvent(new Event('online'))")  # a pass, at once
    await first.wait_for_timeout(6_000)  # past the first retry's 2 s
    assert await submitted_for(config, client_report_id) == []
    await expect(report).to_have_attribute("data-state", "waiting")
    # The last worker's refused report is theirs to edit or remove, not the next one's.
    await expect(refused.get_by_role("button")).to_have_count(0)
    await expect(refused.locator(".note")).to_have_text(
        f"{first_worker.username} 的报告，由其本人登录后修改或移除"
    )


async def test_signing_out_with_reports_unsent_asks_first(
    running_stack: StackConfig, bare_phone: BrowserContext, make_user: MakeUser
) -> None:
    """At a shift change: once signed out, only the writer of an unsent report can send
    it, so the page says so before it signs them out."""
    worker = await make_user("reporter", "线路工 孙立", roles=["reporter"])
    page = await bare_phone.new_page()
    await page.goto(page_url(running_stack))
    await sign_in(page, worker)
    await page.route("**/v1/reports", lambda route: route.abort())  # no signal
    await page.get_by_label("情况描述（必填）").fill(f"护栏破损。编号 {uuid.uuid4().hex[:8]}")
    await page.get_by_role("button", name="发送报告").click()
    await expect(page.locator("#reports > li").first).to_have_attribute("data-state", "waiting")

    asked: list[str] = []

    async def answer(dialog: Dialog, accept: bool) -> None:
        asked.append(dialog.message)
        await (dialog.accept() if accept else dialog.dismiss())

    page.once("dialog", lambda dialog: answer(dialog, accept=False))
    await page.locator("#sign-out").click()
    await page.wait_for_timeout(500)  # the answer to the question is given, and acted on
    assert asked == ["还有 1 份报告未发送。退出后，只有您本人重新登录才能发送。确定退出吗？"]
    await expect(page.locator("#whoami")).to_contain_text(worker.display_name)
    await expect(page.locator("#sign-in-form")).to_be_hidden()

    page.once("dialog", lambda dialog: answer(dialog, accept=True))
    await page.locator("#sign-out").click()
    await expect(page.locator("#sign-in-form")).to_be_visible()
    assert len(asked) == 2


# The phone's storage refusing one write, after `skip` others (full, as IndexedDB says).
FAIL_A_WRITE = """skip => {
  const put = IDBObjectStore.prototype.put;
  let seen = 0;
  IDBObjectStore.prototype.put = function (...args) {
    seen += 1;
    if (seen === skip + 1) {
      throw new DOMException("the quota has been exceeded", "QuotaExceededError");
    }
    return put.apply(this, args);
  };
}"""


async def test_a_storage_failure_is_told_in_chinese_and_does_not_stop_sending(
    running_stack: StackConfig, phone: BrowserContext, make_user: MakeUser
) -> None:
    page = await phone.new_page()
    await open_page(page, running_stack)
    await sign_in(page, await make_user("reporter", "线路工 何平", roles=["reporter"]))
    text = f"信号机灯泡熄灭。编号 {uuid.uuid4().hex[:8]}"
    await page.get_by_label("情况描述（必填）").fill(text)
    await page.evaluate(FAIL_A_WRITE, 0)  # the report itself is not kept
    await page.get_by_role("button", name="发送报告").click()
    await expect(page.locator("#form-error")).to_contain_text("手机存储空间不足，报告未能保存")
    await expect(page.get_by_label("情况描述（必填）")).to_have_value(text)
    await expect(page.locator("#reports > li")).to_have_count(0)

    # Kept this time, but the write that marks it as being sent fails. Nothing else
    # (the network, a sign-in) starts a pass here: sending must go on by itself.
    await page.reload()
    await page.get_by_label("情况描述（必填）").fill(text)
    await page.evaluate(FAIL_A_WRITE, 1)
    await page.get_by_role("button", name="发送报告").click()
    report = page.locator("#reports > li").first
    await expect(report.locator(".badge")).to_have_text("已分级", timeout=TRIAGE_WAIT_MS)


async def signed_in_bare(
    phone: BrowserContext, config: StackConfig, worker: Person
) -> tuple[Page, Callable[[], Awaitable[bool]]]:
    """The page on `phone`, signed in as `worker`; and whether the server still takes the
    session it holds now."""
    page = await phone.new_page()
    await page.goto(page_url(config))
    await sign_in(page, worker)
    return page, await session_held(phone, f"http://127.0.0.1:{config.ingest_port}/v1/auth/me")


async def test_signing_out_offline_ends_the_session_when_the_network_returns(
    running_stack: StackConfig, bare_phone: BrowserContext, make_user: MakeUser
) -> None:
    """A station's shared phone: a worker signs out where there is no network. The page
    cannot end the session then (its cookie is the server's to end); once the network is
    back it must, not sign the phone in again as that worker for the next one's reports."""
    worker = await make_user("reporter", "线路工 周强", roles=["reporter"])
    page, session_works = await signed_in_bare(bare_phone, running_stack, worker)

    await bare_phone.set_offline(True)
    await page.locator("#sign-out").click()
    form = page.locator("#sign-in-form")
    await expect(form).to_be_visible()
    assert "qly_session" in {cookie["name"] for cookie in await bare_phone.cookies()}

    await bare_phone.set_offline(False)
    me = f"http://127.0.0.1:{running_stack.ingest_port}/v1/auth/me"

    async def session_ended() -> bool:
        status: int = await page.evaluate(f"fetch('{me}').then(r => r.status)")
        return status == 401

    await wait_for(session_ended, timeout_s=20)
    assert not await session_works(), "the browser dropped the cookie; the server kept it"
    await expect(form).to_be_visible()
    await expect(page.locator("#report-form")).to_be_hidden()
    await page.reload()
    await expect(form).to_be_visible()


async def test_a_sign_out_the_server_refused_is_sent_again_without_a_reload(
    running_stack: StackConfig, bare_phone: BrowserContext, make_user: MakeUser
) -> None:
    """Online, but the server answered the sign-out with a 503: the page must send it again
    by itself. Once, it waited for the next load or for the network to come back, which on
    a phone that never went offline could be the end of the shift."""
    worker = await make_user("reporter", "线路工 孙涛", roles=["reporter"])
    page, session_works = await signed_in_bare(bare_phone, running_stack, worker)
    refused = await sign_outs_refused(page, lambda: not refused)  # the first only
    await page.locator("#sign-out").click()
    await expect(page.locator("#sign-in-form")).to_be_visible()

    async def refused_once() -> bool:
        return bool(refused)

    await wait_for(refused_once, timeout_s=10)
    assert await session_works(), "the server heard no sign-out"

    async def session_ended() -> bool:
        return not await session_works()

    await wait_for(session_ended, timeout_s=20)


async def test_a_report_held_back_by_the_server_says_why_while_it_waits(
    running_stack: StackConfig, phone: BrowserContext, make_user: MakeUser
) -> None:
    # Once, a 429 (too many attempts) and a 409 (the last attempt still in flight) both
    # read "server unavailable 429/409", as if something were broken.
    page = await phone.new_page()
    await open_page(page, running_stack)
    await sign_in(page, await make_user("reporter", "信号工 赵磊", roles=["reporter"]))
    held_back = [
        (429, "将自动重试（发送过于频繁，稍后再试）"),
        (409, "将自动重试（上一次发送仍在处理）"),
    ]
    answered: list[int] = []

    async def hold_back(route: Route) -> None:
        if route.request.method != "POST" or len(answered) == len(held_back):
            await route.continue_()
            return
        status = held_back[len(answered)][0]
        answered.append(status)
        await route.fulfill(
            status=status,
            headers={"Retry-After": "1"},
            json={"type": "about:blank", "title": "Held back", "status": status, "detail": "x"},
        )

    await page.route("**/v1/reports", hold_back)
    await page.get_by_label("情况描述（必填）").fill(f"信号机灯丝断。编号 {uuid.uuid4().hex[:8]}")
    await page.get_by_role("button", name="发送报告").click()
    report = page.locator("#reports > li").first
    for _, note in held_back:
        await expect(report.locator(".note")).to_have_text(note, timeout=20_000)
    await expect(report.locator(".badge")).to_have_text("已接收", timeout=20_000)
    assert answered == [429, 409]


async def test_a_refusal_of_a_named_photo_other_than_a_missing_upload_is_final(
    running_stack: StackConfig, phone: BrowserContext, tmp_path: Path, make_user: MakeUser
) -> None:
    # Uploading again cures a missing upload only: any other refusal of a named photo
    # would be uploaded and refused again, round after round.
    page = await phone.new_page()
    await open_page(page, running_stack)
    await sign_in(page, await make_user("reporter", "巡道工 钱进", roles=["reporter"]))
    uploads: list[str] = []
    page.on(
        "request",
        lambda r: uploads.append(r.url) if r.method == "POST" and "/v1/photos" in r.url else None,
    )

    async def refuse(route: Route) -> None:
        await route.fulfill(
            status=422,
            json={
                "type": "about:blank",
                "title": "Invalid report",
                "status": 422,
                "detail": "The report part is not valid; see errors.",
                "code": "invalid_report",
                "errors": [
                    {
                        "field": "report.photo_ids.0",
                        "code": "string_pattern_mismatch",
                        "message": "not a photo id",
                    }
                ],
            },
        )

    await page.route("**/v1/reports", refuse)
    await page.get_by_label("情况描述（必填）").fill(f"轨枕裂纹。编号 {uuid.uuid4().hex[:8]}")
    await page.locator("#photo-pick").set_input_files(camera_photo(tmp_path / "sleeper.jpg"))
    await expect(page.locator("#photo-previews img")).to_have_count(1)
    await page.get_by_role("button", name="发送报告").click()
    report = page.locator("#reports > li").first
    await expect(report).to_have_attribute("data-state", "failed", timeout=20_000)
    assert len(uploads) == 1


async def test_photos_go_one_by_one_and_one_that_breaks_off_is_sent_again_alone(
    running_stack: StackConfig, phone: BrowserContext, tmp_path: Path, make_user: MakeUser
) -> None:
    # Once, the report and all its photos were one request: over a slow link five photos
    # never finished in the page's two minutes, and every retry started again from zero.
    page = await phone.new_page()
    await open_page(page, running_stack)
    await sign_in(page, await make_user("reporter", "线路工 孙浩", roles=["reporter"]))
    uploads: list[str] = []

    async def break_off_once(route: Route) -> None:
        uploads.append(route.request.url)
        if len(uploads) == 2:  # the second photo's first upload breaks off
            await route.abort("connectionreset")
        else:
            await route.continue_()

    report_parts: list[bytes] = []
    page.on(
        "request",
        lambda r: (
            report_parts.append(r.post_data_buffer or b"")
            if r.method == "POST" and r.url.endswith("/v1/reports")
            else None
        ),
    )
    await page.route("**/v1/photos", break_off_once)
    await page.get_by_label("情况描述（必填）").fill(f"钢轨断裂。编号 {uuid.uuid4().hex[:8]}")
    photos = [camera_photo(tmp_path / "a.jpg"), camera_photo(tmp_path / "b.jpg")]
    await page.locator("#photo-pick").set_input_files(photos)
    await expect(page.locator("#photo-previews img")).to_have_count(2)
    await page.get_by_role("button", name="发送报告").click()
    report = page.locator("#reports > li").first
    await expect(report.locator(".badge")).to_have_text("已接收", timeout=30_000)

    assert len(uploads) == 3  # the first photo once, the second twice
    assert len(report_parts) == 1 and b'"photo_ids"' in report_parts[0]
    client_report_id = await report.get_attribute("data-id")
    assert client_report_id
    [event] = await submitted_for(running_stack, client_report_id)
    assert [(photo.width, photo.height) for photo in event.payload.photos] == [(2048, 1365)] * 2


async def test_photos_whose_uploads_expired_go_up_again_before_the_report(
    running_stack: StackConfig, phone: BrowserContext, tmp_path: Path, make_user: MakeUser
) -> None:
    # The store removes uploads no report named within a week; a report that waited
    # longer (its reporter signed out, say) must not fail for good while the phone
    # still holds its photos.
    page = await phone.new_page()
    await open_page(page, running_stack)
    await sign_in(page, await make_user("reporter", "桥隧工 吴强", roles=["reporter"]))
    photo_ids: list[str] = []
    uploads: list[str] = []

    async def upload(route: Route) -> None:
        uploads.append(route.request.url)
        response = await route.fetch()
        photo_ids.append((await response.json())["photo_id"])
        await route.fulfill(response=response)

    async def expire_before_first_report(route: Route) -> None:
        if len(uploads) == 1:  # as the lifecycle rule would have, a week on
            expire_upload(running_stack, photo_ids[0])
        await route.continue_()

    await page.route("**/v1/photos", upload)
    await page.route("**/v1/reports", expire_before_first_report)
    await page.get_by_label("情况描述（必填）").fill(f"桥梁支座移位。编号 {uuid.uuid4().hex[:8]}")
    await page.locator("#photo-pick").set_input_files(camera_photo(tmp_path / "bridge.jpg"))
    await expect(page.locator("#photo-previews img")).to_have_count(1)
    await page.get_by_role("button", name="发送报告").click()
    report = page.locator("#reports > li").first
    await expect(report.locator(".badge")).to_have_text("已接收", timeout=30_000)
    assert len(uploads) == 2  # up again after the 422 named it
    client_report_id = await report.get_attribute("data-id")
    assert client_report_id
    [event] = await submitted_for(running_stack, client_report_id)
    assert [photo.sha256 for photo in event.payload.photos] == photo_ids[:1]
