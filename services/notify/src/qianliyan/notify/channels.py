"""Sending one message through one channel: Apprise for chat apps and e-mail, signed webhooks.

Every failure comes back as `DeliveryFailed` with a reason fit for the record; a channel
never raises anything else, so one bad channel cannot stop the alerter.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

import apprise
import httpx
from standardwebhooks import Webhook

from qianliyan.notify.domain.messages import Message
from qianliyan.notify.domain.routing import Channel

log = logging.getLogger(__name__)

_ERROR_LIMIT = 1000


class DeliveryFailed(Exception):
    """The channel did not take the message; `str()` says why."""


async def send(
    channel: Channel,
    message: Message,
    document: dict[str, Any],
    *,
    delivery_id: str,
    timeout_s: float,
    http: httpx.AsyncClient,
) -> None:
    """Deliver `message` (or, to a webhook, `document`) once, or raise `DeliveryFailed`."""
    try:
        async with asyncio.timeout(timeout_s):
            if channel.webhook is not None:
                await _post_signed(channel, document, delivery_id=delivery_id, http=http)
            else:
                await _through_apprise(channel, message)
    except TimeoutError:
        raise DeliveryFailed(f"{channel.kind}: no answer within {timeout_s:g}s") from None
    except DeliveryFailed:
        raise
    except Exception as exc:  # a channel library's own failure is this delivery's failure
        raise DeliveryFailed(
            f"{channel.kind}: {type(exc).__name__}: {exc}"[:_ERROR_LIMIT]
        ) from None


async def _post_signed(
    channel: Channel, document: dict[str, Any], *, delivery_id: str, http: httpx.AsyncClient
) -> None:
    """POST the JSON document with Standard Webhooks headers: id, timestamp, HMAC signature.

    The id is the delivery's key, the same on every retry, so a receiver can drop repeats.
    """
    assert channel.webhook is not None and channel.secret is not None
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    now = datetime.now(UTC)
    signature = Webhook(channel.secret.get_secret_value()).sign(delivery_id, now, body)
    answer = await http.post(
        channel.webhook.get_secret_value(),
        content=body.encode(),
        headers={
            "content-type": "application/json; charset=utf-8",
            "webhook-id": delivery_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        },
    )
    if not answer.is_success:
        raise DeliveryFailed(f"webhook answered {answer.status_code} {answer.reason_phrase}")


async def _through_apprise(channel: Channel, message: Message) -> None:
    assert channel.apprise is not None
    notifier = apprise.Apprise()
    if not notifier.add(channel.apprise.get_secret_value()):
        raise DeliveryFailed(f"{channel.kind}: Apprise does not understand this URL")
    # Apprise reports why it failed only in its log; keep what it said for the record.
    with apprise.LogCapture(level=logging.WARNING) as captured:  # type: ignore[no-untyped-call]
        delivered = await notifier.async_notify(title=message.title, body=message.body)
        said = captured.getvalue().strip()
    if not delivered:
        reason = said.splitlines()[-1] if said else "the service refused the message"
        raise DeliveryFailed(f"{channel.kind}: {reason}"[:_ERROR_LIMIT])
