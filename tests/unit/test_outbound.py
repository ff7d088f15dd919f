"""Outgoing alert targets: public hosts go, internal ones only when NOTIFY_OUTBOUND_ALLOW
lists them; judged as written when the routing is read, and as resolved before each send."""

from __future__ import annotations

from ipaddress import ip_address
from uuid import uuid4

import apprise
import httpx
import pytest

from qianliyan.notify import channels
from qianliyan.notify.channels import DeliveryFailed, apprise_targets, send
from qianliyan.notify.domain.messages import Message
from qianliyan.notify.domain.outbound import (
    PUBLIC_ONLY,
    Address,
    OutboundPolicy,
    Target,
    internal_kind,
    literal_address,
    target,
    written_targets,
)
from qianliyan.notify.domain.routing import Channel
from qianliyan.notify.settings import NotifySettings
from qianliyan.shared.events import AlertDeliveryFailedPayload, Severity

SECRET = "whsec_c2VjcmV0c2VjcmV0c2VjcmV0"


def webhook(url: str) -> Target:
    [found] = written_targets(url)
    return found


def refusal(url: str, policy: OutboundPolicy = PUBLIC_ONLY) -> str | None:
    return policy.refusal(webhook(url), what="webhook")


def test_the_refusal_names_the_target_why_and_what_to_do() -> None:
    assert refusal("http://127.0.0.1:9/x?token=s3cret") == (
        "webhook http://127.0.0.1:9 points at a loopback address (127.0.0.1), which is not "
        "on NOTIFY_OUTBOUND_ALLOW (list '127.0.0.1' there if alerts are meant to go to it)"
    )


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.8.9.10", "a loopback address"),
        ("[::1]", "a loopback address"),
        ("10.1.2.3", "a private address"),
        ("172.16.0.1", "a private address"),
        ("172.31.255.254", "a private address"),
        ("192.168.1.1", "a private address"),
        ("[fd12:3456::1]", "a private address"),
        ("169.254.169.254", "the cloud metadata address"),
        ("[fd00:ec2::254]", "the cloud metadata address"),
        ("169.254.10.1", "a link-local address"),
        ("[fe80::1]", "a link-local address"),
        ("0.0.0.0", "an unspecified address"),
        ("[::]", "an unspecified address"),
        ("224.0.0.1", "a multicast address"),
        ("[ff02::1]", "a multicast address"),
        ("100.64.0.1", "a carrier-grade NAT address"),
        ("240.0.0.1", "a reserved address"),
        ("192.0.2.10", "an address that is not publicly routable"),
        # IPv4 inside IPv6 is judged as the IPv4 address it reaches.
        ("[::ffff:127.0.0.1]", "a loopback address"),
        ("[64:ff9b::a00:1]", "a private address"),
        ("[2002:a9fe:a9fe::]", "the cloud metadata address"),
    ],
)
def test_internal_addresses_are_refused_as_written(host: str, why: str) -> None:
    reason = refusal(f"https://{host}/hook")
    assert reason is not None and f"points at {why} (" in reason


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("localhost", "a loopback host"),
        ("LocalHost.", "a loopback host"),
        ("ip6-localhost", "a loopback host"),
        ("api.localhost", "a loopback host"),
        ("metadata.google.internal", "a host of the local network"),
        ("printer.local", "a host of the local network"),
        ("router.home.arpa", "a host of the local network"),
    ],
)
def test_names_reserved_for_local_use_are_refused_without_dns(host: str, why: str) -> None:
    reason = refusal(f"http://{host}:8080/hook")
    assert reason is not None and f"names {why} (" in reason


@pytest.mark.parametrize(
    "url",
    [
        "https://8.8.8.8/hook",
        "https://[2606:4700:4700::1111]/hook",
        "https://[64:ff9b::808:808]/hook",  # NAT64 of a public address
        "https://hooks.example.org/hook",  # a name: judged when resolved, before sending
        "https://metadata/hook",  # likewise
    ],
)
def test_public_and_undecided_targets_pass_as_written(url: str) -> None:
    assert refusal(url) is None


def test_listed_names_addresses_and_networks_are_allowed() -> None:
    policy = OutboundPolicy.from_entries(
        [
            " Gateway.Corp.Example ",
            "wecom.corp.example:8443",
            "10.1.2.0/24",
            "127.0.0.1",
            "[::1]:9000",
            "172.20.0.5:25",
        ]
    )

    def judged(url: str) -> str | None:
        """As before a send, with every name resolving to an internal address."""
        host = webhook(url)
        resolved = literal_address(host.host) or ip_address("10.9.9.9")
        return policy.refusal_after_resolving(host, [resolved], what="webhook")

    for allowed in [
        "http://gateway.corp.example/x",
        "http://GATEWAY.corp.example.:81/x",
        "https://wecom.corp.example:8443/x",
        "http://10.1.2.200/x",
        "http://127.0.0.1:53124/x",
        "http://[::1]:9000/x",
    ]:
        assert judged(allowed) is None, allowed
    for outside in [
        "https://wecom.corp.example/x",  # listed for 8443 only
        "http://10.1.3.1/x",
        "http://127.0.0.2/x",
        "http://[::1]:9001/x",
        "http://172.20.0.5/x",
        "http://localhost:53124/x",  # a name is listed by name, not by its address
    ]:
        assert judged(outside) is not None, outside
    # A port-bound entry needs a known port: an Apprise URL without one has none.
    mail = Target("mailto", "172.20.0.5", None)
    assert policy.refusal(mail, what="apprise") is not None


@pytest.mark.parametrize(
    ("entry", "said"),
    [
        ("http://gateway.corp.example/", "is not a host name, host:port, IP address or CIDR"),
        ("10.1.2.5/24", "has host bits set"),
        ("gateway:0", "port '0' is not a number from 1 to 65535"),
        ("gateway:http", "port 'http'"),
        ("two words", "is not a host name"),
        ("[::1]:x", "port 'x'"),
    ],
)
def test_a_bad_entry_is_refused_naming_it(entry: str, said: str) -> None:
    with pytest.raises(ValueError, match="NOTIFY_OUTBOUND_ALLOW entry") as caught:
        OutboundPolicy.from_entries(["127.0.0.1", entry])
    assert repr(entry) in str(caught.value) and said in str(caught.value)


def test_the_setting_reads_commas_or_json_and_fails_at_start_naming_the_entry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOTIFY_OUTBOUND_ALLOW", " 127.0.0.1, [::1]:8443 ,gw.corp.example")
    assert NotifySettings().outbound_allow == ["127.0.0.1", "[::1]:8443", "gw.corp.example"]
    monkeypatch.setenv("NOTIFY_OUTBOUND_ALLOW", '["10.0.0.0/8"]')
    assert NotifySettings().outbound_allow == ["10.0.0.0/8"]
    monkeypatch.delenv("NOTIFY_OUTBOUND_ALLOW")
    assert NotifySettings().outbound_allow == []
    monkeypatch.setenv("NOTIFY_OUTBOUND_ALLOW", "127.0.0.1,10.0.0.300")
    with pytest.raises(ValueError, match=r"outbound_allow[\s\S]*'10.0.0.300'"):
        NotifySettings()


def addresses(*texts: str) -> list[Address]:
    return [ip_address(text) for text in texts]


def test_a_name_is_judged_by_every_address_it_resolves_to() -> None:
    hook = webhook("https://hooks.example.org/q")
    public = addresses("93.184.216.34")
    assert PUBLIC_ONLY.refusal_after_resolving(hook, public, what="webhook") is None
    reason = PUBLIC_ONLY.refusal_after_resolving(
        hook, addresses("93.184.216.34", "10.0.0.5"), what="webhook"
    )
    assert reason == (
        "webhook https://hooks.example.org:443 resolves to a private address (10.0.0.5), which "
        "is not on NOTIFY_OUTBOUND_ALLOW (list '10.0.0.5' there if alerts are meant to go to it)"
    )
    metadata = addresses("::ffff:169.254.169.254")
    assert "the cloud metadata address" in str(
        PUBLIC_ONLY.refusal_after_resolving(hook, metadata, what="webhook")
    )
    # Allowed by the network its addresses are in, or by its name wherever it resolves.
    by_network = OutboundPolicy.from_entries(["10.0.0.0/24"])
    inside = addresses("10.0.0.5")
    assert by_network.refusal_after_resolving(hook, inside, what="webhook") is None
    by_name = OutboundPolicy.from_entries(["hooks.example.org"])
    assert by_name.refusal_after_resolving(hook, addresses("192.168.9.9"), what="webhook") is None
    # A name reserved for local use stays refused whatever it resolves to.
    local = webhook("http://localhost/q")
    reason = PUBLIC_ONLY.refusal_after_resolving(local, addresses("8.8.8.8"), what="webhook")
    assert reason is not None and "names a loopback host" in reason


def test_the_hosts_an_apprise_url_names() -> None:
    assert written_targets("mailto://user:pw@example.org?smtp=10.0.0.9&to=a@example.org") == [
        Target("mailto", "example.org", None),
        Target("mailto", "10.0.0.9", None),
    ]
    # A token in the host's place is no address and no local name: nothing to judge as written.
    [token] = written_targets("wecombot://AbCdEf123")
    assert PUBLIC_ONLY.refusal(token, what="apprise") is None
    [telegram] = written_targets("tgram://123456789:AAHabc/12345")  # not host:port
    assert telegram.port is None and PUBLIC_ONLY.refusal(telegram, what="apprise") is None
    assert internal_kind(ip_address("8.8.8.8")) is None


def test_apprise_services_that_connect_where_the_url_says_are_judged_and_tokens_not() -> None:
    def hosts(url: str) -> list[Target]:
        return apprise_targets(apprise.Apprise.instantiate(url), scheme=url.split(":")[0])

    assert hosts("json://10.0.0.5:8080/x") == [target("json", "10.0.0.5", 8080)]
    # E-mail connects to its SMTP server, which `smtp=` may put anywhere.
    assert hosts("mailto://user:pw@example.com?smtp=10.0.0.9") == [target("mailto", "10.0.0.9", 25)]
    assert hosts("wecombot://AbCdEf123") == []
    assert hosts("tgram://123456789:AAHabc/12345") == []


class FakeResolver:
    """Answers every host with the addresses given, and counts the questions."""

    def __init__(self, *answer: str) -> None:
        self.answer = addresses(*answer)
        self.asked: list[tuple[str, int | None]] = []

    async def __call__(self, host: str, port: int | None) -> list[Address]:
        self.asked.append((host, port))
        if not self.answer:
            raise OSError("[Errno -2] Name or service not known")
        return self.answer


class Receiver:
    """An httpx transport that records requests and answers them with one status."""

    def __init__(
        self, status: int = 200, *, unreachable: tuple[str, ...] = (), reason: bytes | None = None
    ) -> None:
        self.status = status
        self.unreachable = unreachable
        self.reason = reason
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.host in self.unreachable:
            raise httpx.ConnectError("connection refused", request=request)
        self.requests.append(request)
        headers = {"location": "http://169.254.169.254/"} if self.status == 302 else {}
        extensions = {"reason_phrase": self.reason} if self.reason is not None else {}
        return httpx.Response(self.status, headers=headers, extensions=extensions)


def channel(**fields: str) -> Channel:
    return Channel.model_validate(fields)


async def deliver(to: Channel, receiver: Receiver, outbound: OutboundPolicy = PUBLIC_ONLY) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as http:
        await send(
            to,
            Message(title="t", body="b"),
            {"type": "qianliyan.alert"},
            delivery_id="d-1",
            timeout_s=5,
            http=http,
            outbound=outbound,
        )


async def test_a_webhook_whose_name_resolves_inside_is_refused_before_sending(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolver = FakeResolver("93.184.216.34", "10.0.0.5")
    monkeypatch.setattr(channels, "resolve", resolver)
    receiver = Receiver()
    hook = channel(webhook="https://hooks.example.org/q", secret=SECRET)
    with pytest.raises(DeliveryFailed, match=r"resolves to a private address \(10\.0\.0\.5\)"):
        await deliver(hook, receiver)
    assert resolver.asked == [("hooks.example.org", 443)] and receiver.requests == []
    # Listed, it goes.
    await deliver(hook, receiver, OutboundPolicy.from_entries(["10.0.0.0/8"]))
    assert len(receiver.requests) == 1


async def test_a_plain_http_webhook_connects_to_the_address_that_was_judged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(channels, "resolve", FakeResolver("93.184.216.34"))
    receiver = Receiver()
    await deliver(channel(webhook="http://hooks.example.org:8080/q?k=1", secret=SECRET), receiver)
    [request] = receiver.requests
    assert str(request.url) == "http://93.184.216.34:8080/q?k=1"
    assert request.headers["host"] == "hooks.example.org:8080"
    assert request.headers["webhook-id"] == "d-1" and request.headers["webhook-signature"]
    # Over https the name is kept: its certificate is checked against it.
    await deliver(channel(webhook="https://hooks.example.org/q", secret=SECRET), receiver)
    assert receiver.requests[-1].url.host == "hooks.example.org"


async def test_a_pinned_webhook_tries_each_judged_address_in_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(channels, "resolve", FakeResolver("2606:4700::6810:84e5", "93.184.216.34"))
    receiver = Receiver(unreachable=("2606:4700::6810:84e5",))
    await deliver(channel(webhook="http://hooks.example.org/q", secret=SECRET), receiver)
    [request] = receiver.requests
    assert request.url.host == "93.184.216.34" and request.headers["host"] == "hooks.example.org"


async def test_a_webhook_redirect_is_not_followed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(channels, "resolve", FakeResolver("93.184.216.34"))
    receiver = Receiver(302)
    with pytest.raises(DeliveryFailed, match="webhook answered 302"):
        await deliver(channel(webhook="https://hooks.example.org/q", secret=SECRET), receiver)
    assert len(receiver.requests) == 1


async def test_a_receiver_s_endless_reason_is_cut_to_what_its_failure_event_takes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reason phrase of any length (here 5,000 characters) used to make the failure's
    event invalid: unrecorded, the delivery was tried again past its last attempt."""
    monkeypatch.setattr(channels, "resolve", FakeResolver("93.184.216.34"))
    receiver = Receiver(503, reason=b"x" * 5000)
    with pytest.raises(DeliveryFailed) as failed:
        await deliver(channel(webhook="https://hooks.example.org/q", secret=SECRET), receiver)
    assert str(failed.value).startswith("webhook answered 503 xxx")
    assert len(str(failed.value)) == 1000
    AlertDeliveryFailedPayload(
        incident_id=uuid4(),
        round=0,
        severity=Severity.MAJOR,
        step=0,
        recipient="duty",
        channel="webhook-0",
        attempt=1,
        error=str(failed.value),
    )


async def test_a_host_that_does_not_resolve_fails_the_delivery_saying_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(channels, "resolve", FakeResolver())
    with pytest.raises(DeliveryFailed, match=r"webhook https://nowhere.example.org:443: cannot"):
        await deliver(channel(webhook="https://nowhere.example.org/q", secret=SECRET), Receiver())


async def test_an_apprise_host_that_resolves_inside_is_refused_before_apprise_sends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolver = FakeResolver("169.254.169.254")
    monkeypatch.setattr(channels, "resolve", resolver)
    refused = r"apprise json://hooks\.example\.org resolves to the cloud metadata address"
    with pytest.raises(DeliveryFailed, match=refused):
        await deliver(channel(apprise="json://hooks.example.org/alerts"), Receiver())
    assert resolver.asked == [("hooks.example.org", None)]


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "127.1"])
async def test_loopback_written_the_old_numeric_ways_is_refused_once_resolved(host: str) -> None:
    # Not an address as written, so the routing file takes it; the resolver reads it as
    # 127.0.0.1 (without asking DNS), and the delivery is refused before any connection.
    hook = channel(webhook=f"http://{host}:9/x", secret=SECRET)
    receiver = Receiver()
    with pytest.raises(DeliveryFailed, match=r"resolves to a loopback address \(127\.0\.0\.1\)"):
        await deliver(hook, receiver)
    assert receiver.requests == []
