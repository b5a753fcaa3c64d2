"""Server-side request forgery guard for destinations a tenant chooses (a client's CalDAV URL
and SMTP host): refused when they resolve to loopback, link-local, private, reserved, multicast
or otherwise non-public addresses, or to an address the operator denies (the platform's own
public addresses), unless an allow-list entry permits that address and port.

Checked twice: when an admin writes the connection (gateway, a typed 422) and again right
before every connection (action_executor), because a name may resolve elsewhere later.

Settings (unprefixed, the same for the gateway and action_executor):
- OUTBOUND_ALLOW: comma-separated `host:port`, `ip:port`, `cidr` or `cidr:port` entries
  (`[v6]:port` for IPv6). The embedded default allows its own Radicale and SMTP servers.
- OUTBOUND_DENY: the same syntax; always refused, even if allowed or public.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class UnsafeDestination(ValueError):
    """The gateway answers 422 with error type `unsafe_destination`; the executor fails the
    tool call for good (retrying will not make the address acceptable)."""

    kind = "unsafe_destination"


@dataclass(frozen=True)
class Rule:
    network: Network | None
    """None: `host` is a name, matched as written (case-insensitive)."""
    host: str
    port: int | None
    """None: any port."""

    def matches(self, host: str, address: IPAddress, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is None:
            return self.host == host.lower().rstrip(".")
        return address in self.network


def _rule(entry: str) -> Rule:
    text = entry.strip()
    host, port = text, None
    if text.startswith("["):  # [v6] or [v6]:port
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text)
    try:
        network: Network | None = ipaddress.ip_network(host, strict=False)
    except ValueError:
        if not host or "/" in host:
            raise ValueError(f"not an address, network or host name: {entry!r}") from None
        network = None
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"port out of range in {entry!r}")
    return Rule(network, host.lower(), port)


def parse_rules(text: str) -> tuple[Rule, ...]:
    return tuple(_rule(e) for e in text.split(",") if e.strip())


def _public(address: IPAddress) -> bool:
    # is_global is False for loopback, private (RFC 1918, ULA), link-local, shared
    # (100.64/10), documentation, benchmarking and reserved ranges, and unspecified.
    return address.is_global and not address.is_multicast


@dataclass(frozen=True)
class EgressPolicy:
    allow: tuple[Rule, ...] = ()
    deny: tuple[Rule, ...] = ()

    @classmethod
    def parse(cls, allow: str = "", deny: str = "") -> EgressPolicy:
        return cls(parse_rules(allow), parse_rules(deny))

    def verdict(self, host: str, address: IPAddress, port: int) -> str | None:
        """Why `address` (resolved from `host`) may not be connected to, or None."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback
        if any(r.matches(host, address, port) for r in self.deny):
            return "is one of the platform's own addresses"
        if any(r.matches(host, address, port) for r in self.allow):
            return None
        if not _public(address):
            return "is not a public address (loopback, private, link-local or reserved)"
        return None

    async def check(self, host: str, port: int) -> list[IPAddress]:
        """Resolve `host` and refuse it if any address it resolves to is refused (a name
        with one public and one private address could be steered to the private one)."""
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise UnsafeDestination(f"{host} cannot be resolved") from exc
        # sockaddr[0] is the address text (IPv6 with a `%zone` suffix when scoped).
        addresses = list(dict.fromkeys(ipaddress.ip_address(str(i[4][0]).split("%")[0])
                                       for i in infos))
        for address in addresses:
            if reason := self.verdict(host, address, port):
                shown = host if host == str(address) else f"{host} ({address})"
                raise UnsafeDestination(f"{shown} port {port} {reason}; an operator can "
                                        f"allow it with OUTBOUND_ALLOW")
        return addresses

    async def check_url(self, url: str) -> None:
        parts = urlsplit(url)
        if not parts.hostname:
            raise UnsafeDestination("the URL names no host")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise UnsafeDestination("the URL's port is not a number in range") from None
        await self.check(parts.hostname, port)
