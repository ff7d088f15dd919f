"""A deploy of the reporter's page, as a phone on a weak link lives through it.

Ingest runs here in the test's own process, on the suite's real stack, once per release
of the page (each a copy of its files that says which it is), on one loopback port that
stays the same from release to release: the browser sees one origin whose files change
under it, as a phone does when ingest is deployed again.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.async_api import BrowserContext, Page, expect
from starlette.types import ASGIApp, Receive, Scope, Send

from qianliyan.ingest.app import create_app
from qianliyan.ingest.settings import IngestSettings
from qianliyan.ingest.web import WEB_DIR, mount_web, page_release
from qianliyan.stack.config import StackConfig
from tests.browser.conftest import MakeUser, sign_in, submitted_for
from tests.integration.alert_receivers import free_port
from tests.integration.topic_reader import wait_for

pytestmark = pytest.mark.browser

# Asks the browser to look for a new release now, as it does when the page is opened;
# the state the new worker settles in once it has fetched the release (`installed`, to
# wait for the page; `redundant`, refused) or "none" when there is no new release.
LOOK_FOR_A_NEW_RELEASE = """async () => {
  const registration = await navigator.serviceWorker.getRegistration();
  const found = new Promise((resolve) =>
    registration.addEventListener("updatefound", () => resolve(registration.installing), {
      once: true,
    }),
  );
  await registration.update();
  const worker = await Promise.race([found, new Promise((r) => setTimeout(r, 10000))]);
  if (!worker) return "none";
  while (worker.state === "installing") {
    await new Promise((r) => worker.addEventListener("statechange", r, { once: true }));
  }
  return worker.state;
}"""
CONTROLLED = "() => navigator.serviceWorker.controller !== null"


@pytest.fixture
def ingest_settings(running_stack: StackConfig, monkeypatch: pytest.MonkeyPatch) -> IngestSettings:
    """Ingest's settings for the suite's stack, as the stack's own ingest reads them."""
    for name, value in running_stack.service_env("ingest").items():
        monkeypatch.setenv(name, value)
    return IngestSettings()


def release_of(tmp_path: Path, name: str) -> Path:
    """A copy of the page's files whose app.js says which copy it is (`pageRelease`)."""
    copy = tmp_path / name
    shutil.copytree(WEB_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    with (copy / "static" / "js" / "app.js").open("a", encoding="utf-8") as app_js:
        app_js.write(f'\nglobalThis.pageRelease = "{name}";\n')
    return copy


def behind_one_balancer(worker_from: Path, rest_from: ASGIApp) -> ASGIApp:
    """Two ingests of two releases behind one address, mid-deploy: the worker is answered
    by the new one (its page files alone, all the worker needs), the rest by the old."""
    new = FastAPI()
    mount_web(new, worker_from)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        target = new if scope.get("path") == "/sw.js" else rest_from
        await target(scope, receive, send)

    return app


@asynccontextmanager
async def serving(app: ASGIApp, port: int) -> AsyncIterator[None]:
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "ingest did not start"
        await asyncio.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        await task


async def running(page: Page) -> object:
    """The release the page's scripts are of."""
    return await page.evaluate("globalThis.pageRelease")


async def kept(page: Page) -> list[str]:
    """The releases the phone keeps, by name."""
    names: list[str] = await page.evaluate("caches.keys()")
    return sorted(name.removeprefix("qianliyan-shell-") for name in names)


async def test_a_deploy_is_taken_whole_once_nothing_typed_would_be_lost(
    running_stack: StackConfig,
    phone: BrowserContext,
    tmp_path: Path,
    make_user: MakeUser,
    ingest_settings: IngestSettings,
) -> None:
    first, second, third = (release_of(tmp_path, n) for n in ("first", "second", "third"))
    reporter = await make_user("j2024-031", "巡检员 李强", roles=["reporter"])
    port = free_port()
    page = await phone.new_page()
    text = page.get_by_label("情况描述（必填）")
    draft = "K7+300 道岔尖轨有裂纹"

    async with serving(create_app(ingest_settings, web_dir=first), port):
        await page.goto(f"http://127.0.0.1:{port}/")
        await page.wait_for_function(CONTROLLED)
        assert await running(page) == "first"
        assert await kept(page) == [page_release(first).name]
        await sign_in(page, reporter)
        await text.fill(draft)  # half a report: a reload would lose it

    async with serving(create_app(ingest_settings, web_dir=second), port):
        assert await page.evaluate(LOOK_FOR_A_NEW_RELEASE) == "installed"
        await page.wait_for_timeout(500)
        assert await running(page) == "first", "reloaded over what was typed"
        assert await text.input_value() == draft

        # Sent, the report is kept on the phone and the form is clear: the new release
        # takes over, and the page reloads into it.
        async with page.expect_navigation():
            await page.get_by_role("button", name="发送报告").click()
        await page.wait_for_function(CONTROLLED)
        assert await running(page) == "second"
        assert await kept(page) == [page_release(second).name]
        # The report sent as the page reloaded is on its list, and in the log once.
        reports = page.locator("#reports > li")
        await expect(reports).to_have_count(1)
        client_report_id = await reports.first.get_attribute("data-id")
        assert client_report_id is not None
        events = await wait_for(lambda: submitted_for(running_stack, client_report_id))
        assert [event.payload.text for event in events] == [draft]

        # Offline, the page opens as that release, every file of it.
        await phone.set_offline(True)
        await page.reload()
        assert await running(page) == "second"
        await phone.set_offline(False)

    # A worker of the third release whose files still come from the second: refused.
    rolling = behind_one_balancer(third, create_app(ingest_settings, web_dir=second))
    async with serving(rolling, port):
        assert await page.evaluate(LOOK_FOR_A_NEW_RELEASE) == "redundant"
        assert await kept(page) == [page_release(second).name]
        await page.reload()
        assert await running(page) == "second"
    assert len(await submitted_for(running_stack, client_report_id)) == 1
