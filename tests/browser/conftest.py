"""What every browser test shares: Debian's Chromium, launched once per module by Playwright.

Playwright's own browser download cannot work here, so the tests drive the distribution's
Chromium. Where it is missing they are skipped (`deploy/local/bin/ensure-chromium`
installs it), except under CI, where the launch must fail loudly instead.

The pages sign in as people do, through their own forms: `make_user` creates the people
straight in the stack's access tables, each with a name of its own (the stack is shared).
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Route,
    async_playwright,
    expect,
)

from qianliyan.shared.access.store import create_user
from qianliyan.shared.events import EventDecodeError, ReportSubmitted, decode
from qianliyan.stack.config import StackConfig
from tests.integration.topic_reader import read_topic

CHROMIUM = Path("/usr/bin/chromium")

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip the browser tests, before any stack starts, where Chromium is not installed."""
    if CHROMIUM.exists() or os.environ.get("CI"):
        return
    skip = pytest.mark.skip(
        reason=f"{CHROMIUM} is missing; install it with deploy/local/bin/ensure-chromium"
    )
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(skip)


@pytest.fixture(scope="module")
async def playwright() -> AsyncIterator[Playwright]:
    async with async_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
async def browser(playwright: Playwright) -> AsyncIterator[Browser]:
    browser = await playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    await browser.close()


@pytest.fixture
async def phone(playwright: Playwright, browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh phone (its own storage) that prefers Chinese."""
    context = await browser.new_context(**playwright.devices["Pixel 7"], locale="zh-CN")
    yield context
    await context.close()


@dataclass(frozen=True)
class Person:
    """Someone who can sign in on a page."""

    username: str
    display_name: str
    password: str


MakeUser = Callable[..., Awaitable[Person]]


@pytest.fixture(scope="session")
async def access_pool(running_stack: StackConfig) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(running_stack.postgres_dsn, min_size=1, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture
def make_user(access_pool: asyncpg.Pool) -> MakeUser:
    """`await make_user("wangfang", "王芳", roles=["dispatcher"])`: a new person, a new name."""

    async def make(
        name: str, display_name: str, *, roles: Iterable[str], units: Iterable[str] = ()
    ) -> Person:
        person = Person(
            username=f"{name}-{uuid.uuid4().hex[:8]}",
            display_name=display_name,
            password=secrets.token_urlsafe(12),
        )
        await create_user(
            access_pool,
            username=person.username,
            display_name=person.display_name,
            password=person.password,
            roles=list(roles),
            units=list(units),
            created_by="tests",
        )
        return person

    return make


async def sign_outs_refused(page: Page, refusing: Callable[[], bool]) -> list[str]:
    """Answer the page's sign-outs with a 503 while `refusing()` says so; the list of those
    refused, filled as they come."""
    refused: list[str] = []

    async def unavailable(route: Route) -> None:
        if route.request.method != "DELETE" or not refusing():
            await route.continue_()
            return
        refused.append(route.request.url)
        await route.fulfill(
            status=503,
            json={"type": "about:blank", "title": "Service Unavailable", "status": 503},
        )

    await page.route("**/v1/auth/session", unavailable)
    return refused


async def session_held(context: BrowserContext, me_url: str) -> Callable[[], Awaitable[bool]]:
    """Whether the server still takes the session `context` holds now: asked with its
    cookie from outside the browser, which clears the cookie of a session that ended."""
    [session] = [c["value"] for c in await context.cookies() if c["name"] == "qly_session"]

    async def works() -> bool:
        async with httpx.AsyncClient(cookies={"qly_session": session}) as client:
            answer = await client.get(me_url)
        assert answer.status_code in (200, 401), answer.text
        return answer.status_code == 200

    return works


async def sign_in(page: Page, person: Person) -> None:
    """Sign in through the page's form, in Chinese."""
    form = page.locator("#sign-in-form")
    await expect(form).to_be_visible()
    await form.get_by_label("用户名").fill(person.username)
    await form.get_by_label("密码").fill(person.password)
    await form.get_by_role("button", name="登录", exact=True).click()
    await expect(page.locator("#whoami")).to_contain_text(person.display_name)
    await expect(form).to_be_hidden()
    await expect(page.locator("#report-form")).to_be_visible()


async def submitted_for(config: StackConfig, client_report_id: str) -> list[ReportSubmitted]:
    """Every ReportSubmitted in the log that carries `client_report_id`."""
    found = []
    for record in await read_topic(config.kafka_bootstrap, "incidents.reports"):
        try:
            event = decode(record.value)
        except EventDecodeError:
            continue
        if (
            isinstance(event, ReportSubmitted)
            and event.payload.client_report_id == client_report_id
        ):
            found.append(event)
    return found
