"""Where the alerts go in tests: a chat-app-like webhook endpoint and an SMTP server, both
run by the test on loopback, and the routing file that points notify at them."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import httpx
import uvicorn
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from qianliyan.stack.config import StackConfig
from tests.integration.clients import as_suite
from tests.integration.topic_reader import wait_for


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def new_secret() -> str:
    """A Standard Webhooks secret: whsec_ and base64 of random bytes."""
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


@dataclass
class Hit:
    """One request the receiver saw: when, on which path, what it carried, how it answered."""

    at: float
    path: str
    webhook_id: str
    document: dict[str, Any] | None
    answered: int


@dataclass
class WebhookReceiver:
    """An HTTP endpoint that checks each signature, and fails the first few on purpose;
    `hold_s` keeps the requests on a path waiting that long before they are answered."""

    secret: str
    fail_first: int = 0
    hold_s: dict[str, float] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    arrived: list[str] = field(default_factory=list)  # paths of signed requests, as they come

    def __post_init__(self) -> None:
        self.port = free_port()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def accepted(self, path: str | None = None) -> list[Hit]:
        """Requests answered 200, with a valid signature, on `path` (any when None)."""
        return [h for h in self.hits if h.answered == 200 and path in (None, h.path)]

    async def _receive(self, request: Request) -> JSONResponse:
        body = await request.body()
        path = request.path_params["path"]
        webhook_id = request.headers.get("webhook-id", "")
        try:
            document = Webhook(self.secret).verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.hits.append(Hit(time.time(), path, webhook_id, None, 401))
            return JSONResponse({"error": "bad signature"}, status_code=401)
        self.arrived.append(path)
        await asyncio.sleep(self.hold_s.get(path, 0.0))
        failing = len([h for h in self.hits if h.answered != 401]) < self.fail_first
        status = 503 if failing else 200
        self.hits.append(Hit(time.time(), path, webhook_id, document, status))
        return JSONResponse({"ok": status == 200}, status_code=status)

    async def __aenter__(self) -> WebhookReceiver:
        app = Starlette(routes=[Route("/{path}", self._receive, methods=["POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.05)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None and self._task is not None
        self._server.should_exit = True
        await self._task


class MailBox:
    """An SMTP server on loopback that keeps every message it is sent."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[EmailMessage] = []
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        parsed = message_from_bytes(raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 Message accepted"

    def apprise_url(self, to: str) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=qianliyan@example.org&to={to}&mode=insecure"

    def __enter__(self) -> MailBox:
        self._controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._controller.stop()


async def use_routing(config: StackConfig, text: str, version: str) -> None:
    """Write notify's routing file and wait until notify applies that version."""
    assert config.notify_routing_file is not None
    config.notify_routing_file.write_text(text, encoding="utf-8")

    async def applied() -> bool:
        async with httpx.AsyncClient(headers=as_suite(config)) as client:
            answer = await client.get(f"http://127.0.0.1:{config.notify_port}/v1/routing")
        in_force = answer.json()
        assert in_force["refused_edit"] is None, in_force["refused_edit"]
        return bool(in_force["version"] == version)

    await wait_for(applied)


@asynccontextmanager
async def routing_in_force(config: StackConfig, text: str) -> AsyncIterator[None]:
    """`text` as notify's routing until the block ends, then the routing as it was: for a
    test whose routes would take other tests' alerts."""
    assert config.notify_routing_file is not None
    before = config.notify_routing_file.read_text(encoding="utf-8")
    await use_routing(config, text, yaml.safe_load(text)["version"])
    try:
        yield
    finally:
        await use_routing(config, before, yaml.safe_load(before)["version"])


async def alert_known(config: StackConfig, incident_id: str) -> None:
    """Wait until notify has projected the incident."""

    async def found() -> bool:
        async with httpx.AsyncClient(headers=as_suite(config)) as client:
            url = f"http://127.0.0.1:{config.notify_port}/v1/alerts/{incident_id}"
            return (await client.get(url)).status_code == 200

    await wait_for(found)


async def alert_detail(config: StackConfig, incident_id: str) -> dict[str, Any]:
    """GET /v1/alerts/{id} of an incident notify knows."""
    async with httpx.AsyncClient(headers=as_suite(config)) as client:
        answer = await client.get(f"http://127.0.0.1:{config.notify_port}/v1/alerts/{incident_id}")
    assert answer.status_code == 200, answer.text
    detail: dict[str, Any] = answer.json()
    return detail
