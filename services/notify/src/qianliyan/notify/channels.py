"""Sending one message through one channel: Apprise for chat apps and e-mail, signed webhooks.

Every failure comes back as `DeliveryFailed` with a reason fit for the record; a channel
never raises anything else, so one bad channel cannot stop the alerter.

Before anything is sent, the hosts a channel connects to are resolved and held to the
outbound policy (`domain.outbound`): a name that resolves inside the network is refused
like a written internal address. A name could still resolve to a public address for the
check and to an internal one a moment later for the connection (DNS rebinding), so a
plain-http webhook connects to the very address that was judged; over https the
certificate is checked against the name, which no internal server can show for a name
someone else controls. Webhooks never follow redirects.

Apprise connects by itself, so its hosts are judged by a resolution just before it does:
a DNS answer that changes within that moment, or a redirect its HTTP services follow, is
beyond this check. Apprise services named by a token (`wecombot://KEY`) talk to their
provider's own fixed address and have no host of ours to judge.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from datetime import UTC, datetime
from ipaddress import ip_address
from typing import Any

import apprise
import httpx
from standardwebhooks import Webhook

from qianliyan.notify.domain.messages import Message
from qianliyan.notify.domain.outbound import Address, OutboundPolicy, Target, target
from qianliyan.notify.domain.routing import Channel

log = logging.getLogger(__name__)

_ERROR_LIMIT = 1000
_DEFAULT_PORTS = {"http": 80, "https": 443}


class DeliveryFailed(Exception):
    """The channel did not take the message; `str()` says why, in at most `_ERROR_LIMIT`
    characters (a receiver's reason phrase or a library's error can be any length, and the
    failure is recorded in an event that takes 2,000)."""

    def __init__(self, why: str) -> None:
        super().__init__(why[:_ERROR_LIMIT])


async def send(
    channel: Channel,
    message: Message,
    document: dict[str, Any],
    *,
    delivery_id: str,
    timeout_s: float,
    http: httpx.AsyncClient,
    outbound: OutboundPolicy,
) -> None:
    """Deliver `message` (or, to a webhook, `document`) once, or raise `DeliveryFailed`.

    A target that `outbound` does not allow is refused before anything is sent.
    """
    try:
        async with asyncio.timeout(timeout_s):
            if channel.webhook is not None:
                await _post_signed(
                    channel, document, delivery_id=delivery_id, http=http, outbound=outbound
                )
            else:
                await _through_apprise(channel, message, outbound=outbound)
    except TimeoutError:
        raise DeliveryFailed(f"{channel.kind}: no answer within {timeout_s:g}s") from None
    except DeliveryFailed:
        raise
    except Exception as exc:  # a channel library's own failure is this delivery's failure
        raise DeliveryFailed(f"{channel.kind}: {type(exc).__name__}: {exc}") from None


async def _post_signed(
    channel: Channel,
    document: dict[str, Any],
    *,
    delivery_id: str,
    http: httpx.AsyncClient,
    outbound: OutboundPolicy,
) -> None:
    """POST the JSON document with Standard Webhooks headers: id, timestamp, HMAC signature.

    The id is the delivery's key, the same on every retry, so a receiver can drop repeats.
    """
    assert channel.webhook is not None and channel.secret is not None
    url = httpx.URL(channel.webhook.get_secret_value())
    # The host as httpx reads it: the one it would otherwise have connected to.
    host = target(url.scheme, url.host, url.port or _DEFAULT_PORTS[url.scheme])
    addresses = await _allowed_addresses(host, outbound, what="webhook")
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    now = datetime.now(UTC)
    signature = Webhook(channel.secret.get_secret_value()).sign(delivery_id, now, body)
    headers = {
        "content-type": "application/json; charset=utf-8",
        "webhook-id": delivery_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    # A redirect could point anywhere, unjudged.
    request: dict[str, Any] = {"content": body.encode(), "follow_redirects": False}
    if url.scheme == "https":
        # Not pinned: the certificate binds the name, and pooled connections are keyed by
        # address, so one name's verified connection could carry another name's requests.
        answer = await http.post(url, headers=headers, **request)
    else:
        headers["host"] = url.netloc.decode("ascii")
        answer = await _post_pinned(http, url, addresses, headers=headers, **request)
    if not answer.is_success:
        raise DeliveryFailed(f"webhook answered {answer.status_code} {answer.reason_phrase}")


async def _post_pinned(
    http: httpx.AsyncClient, url: httpx.URL, addresses: list[Address], **request: Any
) -> httpx.Response:
    """POST to `url` at the first of the judged `addresses` that takes the connection.

    They are tried in the resolver's order, as a connection to the name would try them.
    """
    *others, last = addresses
    for address in others:
        with contextlib.suppress(httpx.ConnectError):
            return await http.post(url.copy_with(host=str(address)), **request)
    return await http.post(url.copy_with(host=str(last)), **request)


async def _through_apprise(channel: Channel, message: Message, *, outbound: OutboundPolicy) -> None:
    assert channel.apprise is not None
    notifier = apprise.Apprise()
    if not notifier.add(channel.apprise.get_secret_value()):
        raise DeliveryFailed(f"{channel.kind}: Apprise does not understand this URL")
    for host in apprise_targets(notifier[0], scheme=channel.kind):
        await _allowed_addresses(host, outbound, what="apprise")
    # Apprise reports why it failed only in its log; keep what it said for the record.
    with apprise.LogCapture(level=logging.WARNING) as captured:  # type: ignore[no-untyped-call]
        delivered = await notifier.async_notify(title=message.title, body=message.body)
        said = captured.getvalue().strip()
    if not delivered:
        reason = said.splitlines()[-1] if said else "the service refused the message"
        raise DeliveryFailed(f"{channel.kind}: {reason}")


def apprise_targets(service: Any, *, scheme: str) -> list[Target]:
    """The host an Apprise service connects to, or none when its "host" is a token.

    Apprise declares a `host` token for the services that connect where the URL says
    (json://, mailto://, ntfy://, gotify://, ...). E-mail connects to its SMTP server,
    which `smtp=` or the provider's template may put elsewhere than the URL's host.
    """
    if "host" not in getattr(service, "template_tokens", {}):
        return []
    host = getattr(service, "smtp_host", None) or getattr(service, "host", None)
    port = getattr(service, "port", None)
    if not isinstance(host, str) or not host:
        return []
    return [target(scheme, host, port if isinstance(port, int) else None)]


async def _allowed_addresses(
    judged: Target, outbound: OutboundPolicy, *, what: str
) -> list[Address]:
    """The addresses `judged` resolves to now, or `DeliveryFailed` if one is not allowed."""
    try:
        addresses = await resolve(judged.host, judged.port)
    except OSError as exc:
        raise DeliveryFailed(f"{what} {judged}: cannot resolve the host: {exc}") from None
    if not addresses:
        raise DeliveryFailed(f"{what} {judged}: the host resolves to no address")
    refusal = outbound.refusal_after_resolving(judged, addresses, what=what)
    if refusal is not None:
        raise DeliveryFailed(refusal)
    return addresses


async def resolve(host: str, port: int | None) -> list[Address]:
    """The addresses a connection to `host` may use, in the resolver's order of preference."""
    found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[Address] = []
    for *_, sockaddr in found:
        address = ip_address(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses
