"""Where alerts may go: any public host, and an internal one only when ops list it.

Alerts carry incident data, and the routing file that says where they go is edited by
hand. A channel pointed inside the network (the cloud metadata service at
169.254.169.254, an admin page on loopback, a database's HTTP port) would make the alerter
a way in (server-side request forgery). So every target is judged:

- public addresses are always allowed. The allow-list names the exceptions to "nothing
  internal", not every destination: chat apps, mail providers and partners' webhooks are
  added by editing the routing alone, and a routing editor can already send alerts to any
  public host, since that is the job. What we stop is reaching *inside*.
- internal addresses (loopback, private, link-local, carrier-grade NAT, unspecified,
  multicast, reserved, anything else not globally routable) and names reserved for local
  use are refused unless `NOTIFY_OUTBOUND_ALLOW` lists them, e.g. an intranet WeCom
  gateway, or the test suite's receivers on 127.0.0.1.

Entries of the allow-list, one of:

    host         a host name, as written in the routing file (case-insensitive), any port
    host:port    that name on that port only
    address      an IP address (10.1.2.3, ::1), any port; 10.1.2.3:8443 or [::1]:8443 for one port
    network      a CIDR network (10.1.2.0/24, fd00::/8), any port

A listed name is trusted wherever it resolves; an unlisted name is judged by the addresses
it resolves to. A port-bound entry matches only when the target's port is known (written
in the URL, or http's and https's default).

Targets are judged twice. When the routing file is read, hosts written as IP addresses and
names reserved for local use (localhost, *.local, *.internal, ...) are judged without DNS,
so the file is refused at the line at fault. Before each delivery, the addresses the host
resolves to then are judged, all of them: a public name that points inside, or is changed
to, is refused too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)
from urllib.parse import parse_qsl, urlsplit

ALLOW_SETTING = "NOTIFY_OUTBOUND_ALLOW"

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

_DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
_CARRIER_GRADE_NAT = IPv4Network("100.64.0.0/10")
_PRIVATE = (
    IPv4Network("10.0.0.0/8"),
    IPv4Network("172.16.0.0/12"),
    IPv4Network("192.168.0.0/16"),
    IPv6Network("fc00::/7"),
)
_NAT64 = IPv6Network("64:ff9b::/96")
_METADATA = {IPv4Address("169.254.169.254"), IPv6Address("fd00:ec2::254")}
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
# Special-use names that never leave the local network (RFC 6761, 6762, 8375; ICANN 2024).
_LOCAL_SUFFIXES = (".local", ".internal", ".home.arpa", ".localdomain")


@dataclass(frozen=True, slots=True)
class Target:
    """A host a channel connects to, with its port when known; shown without secrets."""

    scheme: str
    host: str
    port: int | None

    def __str__(self) -> str:
        # Only scheme, host and port: paths, queries and user info may hold tokens.
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}" + (f":{self.port}" if self.port is not None else "")


def target(scheme: str, host: str, port: int | None) -> Target:
    """A target with its host written one way: lower case, no brackets, no trailing dot."""
    return Target(scheme.lower(), host.strip("[]").rstrip(".").lower(), port)


def written_targets(url: str) -> list[Target]:
    """The hosts a channel URL names: its own host, and for e-mail an `smtp=` server.

    For Apprise services addressed by a token (`wecombot://KEY`) the "host" is that token;
    it is returned too, and judged only if it looks like an address or a local name.
    """
    parts = urlsplit(url)
    if not parts.hostname:
        return []
    scheme = parts.scheme.lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:  # a token with a colon (tgram://123:ABC) is no host and port
        port = None
    found = [target(scheme, parts.hostname, port)]
    if scheme in ("mailto", "mailtos"):
        for key, value in parse_qsl(parts.query):
            if key.lower() == "smtp" and value:
                found.append(target(scheme, value, port))
    return found


def internal_kind(address: Address) -> str | None:
    """What makes `address` internal ('a loopback address', ...), or None when public."""
    if isinstance(address, IPv6Address):
        # IPv4 carried in IPv6 reaches that IPv4 address: judge that one. (NAT64 addresses
        # of public hosts are how IPv6-only clusters reach them, so they must pass.)
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return internal_kind(embedded)
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address in _METADATA:
        return "the cloud metadata address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address in _CARRIER_GRADE_NAT:
        return "a carrier-grade NAT address"
    if any(address in network for network in _PRIVATE):
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if isinstance(address, IPv6Address) and address.is_site_local:
        return "a site-local address"
    if not address.is_global:
        return "an address that is not publicly routable"
    return None


def local_name_kind(host: str) -> str | None:
    """What makes a host name local by definition ('a loopback host', ...), or None."""
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return "a loopback host"
    if host.endswith(_LOCAL_SUFFIXES):
        return "a host of the local network"
    return None


def literal_address(host: str) -> Address | None:
    """The host as an IP address, when it is written as one."""
    try:
        return ip_address(host)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class AllowedTarget:
    """One entry of the allow-list: a host name or a network, maybe bound to a port."""

    entry: str
    name: str | None = None
    network: Network | None = None
    port: int | None = None

    def admits_name(self, target: Target) -> bool:
        """Whether this entry lists the target's host name (and port)."""
        return self.name == target.host and self._admits_port(target.port)

    def admits_address(self, address: Address, port: int | None) -> bool:
        """Whether this entry's network holds `address` (on `port`)."""
        return (
            self.network is not None
            and address.version == self.network.version
            and address in self.network
            and self._admits_port(port)
        )

    def _admits_port(self, port: int | None) -> bool:
        return self.port is None or self.port == port


def allowed_target(entry: str) -> AllowedTarget:
    """Read one allow-list entry, or raise `ValueError` naming it and what is accepted."""
    try:
        allowed = _read_entry(entry)
    except ValueError as exc:
        raise ValueError(f"{ALLOW_SETTING} entry {entry!r}: {exc}") from None
    if allowed is None:
        raise ValueError(
            f"{ALLOW_SETTING} entry {entry!r} is not a host name, host:port, IP address or "
            "CIDR network (e.g. 'gateway.corp.example', 'gateway.corp.example:8443', "
            "'127.0.0.1', '10.1.2.0/24')"
        )
    return allowed


def _read_entry(entry: str) -> AllowedTarget | None:
    text = entry.strip().lower()
    if "://" in text:
        return None  # a URL: only its host belongs on the list
    if "/" in text:
        return AllowedTarget(entry, network=ip_network(text))
    if text.startswith("["):  # [IPv6] or [IPv6]:port
        inside, _, rest = text[1:].partition("]")
        port = _port(rest.removeprefix(":")) if rest else None
        return AllowedTarget(entry, network=ip_network(IPv6Address(inside)), port=port)
    if (address := literal_address(text)) is not None:
        return AllowedTarget(entry, network=ip_network(address))
    host, colon, port_text = text.partition(":")
    port = _port(port_text) if colon else None
    if (address := literal_address(host)) is not None:
        return AllowedTarget(entry, network=ip_network(address), port=port)
    name = host.rstrip(".")
    labels = name.split(".")
    # A numeric last label is no name: most likely a mistyped address (10.0.0.300).
    if name and all(_LABEL.match(label) for label in labels) and not labels[-1].isdigit():
        return AllowedTarget(entry, name=name, port=port)
    return None


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"port {text!r} is not a number from 1 to 65535")
    return int(text)


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """Which internal targets alerts may go to; public ones always may (see the module)."""

    allowed: tuple[AllowedTarget, ...] = ()

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> OutboundPolicy:
        """The policy of an allow-list, or `ValueError` naming the first bad entry."""
        return cls(tuple(allowed_target(entry) for entry in entries if entry.strip()))

    def refusal(self, target: Target, *, what: str) -> str | None:
        """Why `what` ('webhook', 'apprise') may not go to `target`, judged as written.

        None when it may, or when only DNS can tell (the name is judged at delivery).
        """
        address = literal_address(target.host)
        if address is not None:
            return self._address_refusal(target, [address], what=what, verb="points at")
        kind = local_name_kind(target.host)
        if kind is None or self._lists_name(target):
            return None
        return self._refused(what, target, f"names {kind} ({target.host})", target.host)

    def refusal_after_resolving(
        self, target: Target, addresses: Iterable[Address], *, what: str
    ) -> str | None:
        """Why `what` may not go to `target`, whose host resolved to `addresses`; or None.

        Any one internal address that is not allowed refuses the whole target, since a
        connection to the name may use any of them.
        """
        written = self.refusal(target, what=what)
        if written is not None or self._lists_name(target):
            return written
        return self._address_refusal(target, addresses, what=what, verb="resolves to")

    def _address_refusal(
        self, target: Target, addresses: Iterable[Address], *, what: str, verb: str
    ) -> str | None:
        for address in addresses:
            kind = internal_kind(address)
            if kind is not None and not any(
                allowed.admits_address(address, target.port) for allowed in self.allowed
            ):
                return self._refused(what, target, f"{verb} {kind} ({address})", str(address))
        return None

    def _lists_name(self, target: Target) -> bool:
        return any(allowed.admits_name(target) for allowed in self.allowed)

    @staticmethod
    def _refused(what: str, target: Target, why: str, to_list: str) -> str:
        return (
            f"{what} {target} {why}, which is not on {ALLOW_SETTING} "
            f"(list {to_list!r} there if alerts are meant to go to it)"
        )


# No internal targets at all: what a service that was told nothing allows.
PUBLIC_ONLY = OutboundPolicy()
