"""Where gone-quiet alert webhooks may go: public addresses only, unless the operator allows the rest.

A webhook URL is chosen by a user, and the server POSTs to it and shows how that went: without a
rule, any account could make the server reach its own loopback, its LAN or a cloud metadata
address, and read port states off the delivery outcome. So `WebhookDestinations.refusal` decides,
for one address, whether a webhook may go there; it is asked twice:

- when an alert is set (the owner's page, the CLI): the URL's host, or every address its name
  resolves to, so the owner hears about it at once;
- for every connection a delivery opens: the alerts' HTTP client creates its sockets through
  `open_socket`, which sees the very address about to be connected to (after aiohttp's own DNS
  lookup, so a name that changed its answer since the alert was set gains nothing; an IP literal
  passes through here too). A refused address raises `DestinationNotAllowed` before the socket
  exists, so nothing is sent and no port is probed.

`--webhook-allow-private` (TRACKER_WEBHOOK_ALLOW_PRIVATE) turns the rule off, e.g. for a Home
Assistant on the LAN.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from urllib.parse import urlsplit

import aiohttp
from aiohttp import AddrInfoType

from tracker.accounts import InvalidAlert

IPAddress = IPv4Address | IPv6Address

# What a refused delivery records: the same words whatever the address, port or reason, so the
# outcome shown to the owner tells nothing about the network behind it.
NOT_ALLOWED = "destination not allowed"

# RFC 1918, ULA and the old site-local: named here, as Python's `is_private` also covers much else
# (and `is_global` misses site-local).
_PRIVATE: tuple[IPv4Network | IPv6Network, ...] = (
    IPv4Network("10.0.0.0/8"), IPv4Network("172.16.0.0/12"), IPv4Network("192.168.0.0/16"),
    IPv6Network("fc00::/7"), IPv6Network("fec0::/10"),
)  # fmt: skip
_CARRIER_GRADE_NAT = IPv4Network("100.64.0.0/10")
_NAT64 = IPv6Network("64:ff9b::/96")  # IPv4 reached through NAT64: judged by the IPv4 inside


def address_refusal(address: IPAddress) -> str | None:
    """The kind of non-public address `address` is (the rule that refuses it), or None if it is public."""
    if isinstance(address, IPv6Address):
        # IPv6 forms that carry an IPv4 address reach that address: judge it (a private one inside
        # ::ffff:0:0/96, 2002::/16 or 64:ff9b::/96 is private).
        inside = address.ipv4_mapped or address.sixtofour
        if address in _NAT64:
            inside = IPv4Address(int(address) & 0xFFFFFFFF)
        if inside is not None:
            refusal = address_refusal(inside)
            if refusal is not None or address.ipv4_mapped or address in _NAT64:
                return refusal
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address in _CARRIER_GRADE_NAT:
        return "carrier-grade NAT"
    if any(address in network for network in _PRIVATE):
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:  # documentation, benchmarking, 0.0.0.0/8, Teredo, ...
        return "non-public"
    return None


class DestinationNotAllowed(OSError):
    """Raised instead of opening a socket to a refused address (an OSError, as aiohttp expects)."""

    def __init__(self) -> None:
        super().__init__(NOT_ALLOWED)


@dataclass(frozen=True, slots=True)
class WebhookDestinations:
    """The rule for webhook destinations, built once from the settings."""

    allow_private: bool = False

    def refusal(self, address: IPAddress) -> str | None:
        """Why a webhook may not go to `address` (a kind of address), or None if it may."""
        if self.allow_private:
            return None
        return address_refusal(address)

    async def check_url(self, url: str, *, timeout: float) -> None:
        """Set time: refuse a URL whose host is, or resolves to any, address the rule refuses."""
        if self.allow_private:
            return  # nothing to refuse: no lookup either
        parts = urlsplit(url)
        host = parts.hostname or ""
        literal = parse_address(host)
        if literal is not None:
            addresses = [literal]
            where = f"{host!r} is"
        else:
            addresses = await _resolve(host, parts.port, timeout)
            where = f"{host!r} resolves to"
        for address in addresses:
            refusal = self.refusal(address)
            if refusal is not None:
                article = "an" if refusal[0] in "aeiou" else "a"
                raise InvalidAlert(
                    f"webhook destination not allowed: {where} {article} {refusal} address; webhooks may only reach "
                    "public addresses unless the server's operator allows the others "
                    "(--webhook-allow-private, TRACKER_WEBHOOK_ALLOW_PRIVATE=1)"
                )

    def open_socket(self, addr_info: AddrInfoType) -> socket.socket:
        """Connect time (aiohttp's socket_factory): a socket for an allowed address, else DestinationNotAllowed."""
        family, kind, proto, _, sockaddr = addr_info
        address = parse_address(str(sockaddr[0]))
        if address is None or self.refusal(address) is not None:  # not an IP address: never
            raise DestinationNotAllowed()
        return socket.socket(family=family, type=kind, proto=proto)

    def connector(self) -> aiohttp.TCPConnector:
        """The connector for webhook deliveries: every socket it opens goes through `open_socket`."""
        return aiohttp.TCPConnector(socket_factory=self.open_socket)


async def _resolve(host: str, port: int | None, timeout: float) -> list[IPAddress]:
    """Every address `host` resolves to, any family (a stricter look than the delivery's own lookup)."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(host, port or 80, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError, TimeoutError):
        raise InvalidAlert(f"the webhook's host {host!r} cannot be resolved (checked before any webhook is sent)") from None
    addresses = [parse_address(str(sockaddr[0])) for *_, sockaddr in infos]
    if not addresses or None in addresses:
        raise InvalidAlert(f"the webhook's host {host!r} cannot be resolved to IP addresses")
    return [address for address in addresses if address is not None]


def parse_address(text: str) -> IPAddress | None:
    """An IP address without its IPv6 zone (fe80::1%eth0: the zone says nothing about what it is), or None."""
    try:
        return ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
