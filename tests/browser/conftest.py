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
import pytest
from playwright.async_api import Browser, Playwright, async_playwright

from qianliyan.shared.access.store import create_user
from qianliyan.stack.config import StackConfig

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
