"""A deploy of the reporter's page, as a phone on a weak link lives through it.

The page is ingest's own (`mount_web`) over copies of its files, served on one loopback
port that stays the same from release to release, so the browser sees one origin whose
files change under it. Nothing here needs the rest of the stack: the page's requests to
the API are answered 404, which it takes as nobody being signed in.
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
from playwright.async_api import BrowserContext, Page
from starlette.types import ASGIApp, Receive, Scope, Send

from qianliyan.ingest.web import WEB_DIR, mount_web, page_release
from tests.integration.alert_receivers import free_port

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


def release_of(tmp_path: Path, name: str) -> Path:
    """A copy of the page's files whose app.js says which copy it is (`pageRelease`)."""
    copy = tmp_path / name
    shutil.copytree(WEB_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    with (copy / "static" / "js" / "app.js").open("a", encoding="utf-8") as app_js:
        app_js.write(f'\nglobalThis.pageRelease = "{name}";\n')
    return copy


def page_app(web_dir: Path) -> FastAPI:
    app = FastAPI()
    mount_web(app, web_dir)
    return app


def behind_one_balancer(worker_from: ASGIApp, rest_from: ASGIApp) -> ASGIApp:
    """Two ingests of two releases behind one address, mid-deploy: the worker is answered
    by the new one, the page's files by the old one."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        target = worker_from if scope.get("path") == "/sw.js" else rest_from
        await target(scope, receive, send)

    return app


@asynccontextmanager
async def serving(app: ASGIApp, port: int) -> AsyncIterator[None]:
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the page's server did not start"
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
    phone: BrowserContext, tmp_path: Path
) -> None:
    first, second, third = (release_of(tmp_path, n) for n in ("first", "second", "third"))
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    page = await phone.new_page()
    username = page.locator("#sign-in-username")

    async with serving(page_app(first), port):
        await page.goto(url)
        await page.wait_for_function("() => navigator.serviceWorker.controller !== null")
        assert await running(page) == "first"
        assert await kept(page) == [page_release(first).name]
        await username.fill("zhangwei")  # half a sign-in: a reload would lose it

    async with serving(page_app(second), port):
        assert await page.evaluate(LOOK_FOR_A_NEW_RELEASE) == "installed"
        await page.wait_for_timeout(500)
        assert await running(page) == "first", "reloaded over what was typed"
        assert await username.input_value() == "zhangwei"

        # Nothing typed any more: the new release takes over and the page reloads into it.
        async with page.expect_navigation():
            await username.fill("")
        await page.wait_for_function("() => navigator.serviceWorker.controller !== null")
        assert await running(page) == "second"
        assert await kept(page) == [page_release(second).name]

        # Offline, the page opens as that release, every file of it.
        await phone.set_offline(True)
        await page.reload()
        assert await running(page) == "second"
        await phone.set_offline(False)

    # A worker of the third release whose files still come from the second: refused.
    async with serving(behind_one_balancer(page_app(third), page_app(second)), port):
        assert await page.evaluate(LOOK_FOR_A_NEW_RELEASE) == "redundant"
        assert await kept(page) == [page_release(second).name]
        await page.reload()
        assert await running(page) == "second"
