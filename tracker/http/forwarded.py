"""Who the client is: the socket's peer, or what a trusted reverse proxy says it saw.

`X-Forwarded-For` and `X-Forwarded-Proto` are believed only when the peer is one of the trusted
proxies, and X-Forwarded-For is read from the right: each proxy appends the address it saw, so the
first address from the right that is not a trusted proxy is the client, and anything to its left was
written by that client and proves nothing. The handlers then simply read `request.remote` (the client)
and `request.secure` (https at the client's end).
"""

from __future__ import annotations

import ipaddress
from typing import Awaitable, Callable, Iterable, Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The client address the access log shows: set on the request as the connection delivered it.
CLIENT_ADDRESS = web.RequestKey("client_address", str)


def parse_networks(specs: Iterable[str]) -> tuple[IPNetwork, ...]:
    """'10.0.0.1', '10.0.0.0/8', '::1' -> networks (host bits allowed: '10.1.2.3/8' means 10.0.0.0/8)."""
    return tuple(ipaddress.ip_network(spec.strip(), strict=False) for spec in specs)


def parse_address(text: str) -> IPAddress | None:
    """An address as proxies write it ('1.2.3.4', '1.2.3.4:5678', '[::1]:80', '::1'), or None."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has several colons
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:1.2.3.4 is 1.2.3.4
    return address


def is_trusted(address: IPAddress, proxies: Sequence[IPNetwork]) -> bool:
    return any(address.version == network.version and address in network for network in proxies)


def client_address(peer: IPAddress, forwarded_for: Sequence[str], proxies: Sequence[IPNetwork]) -> IPAddress:
    """The client behind a trusted `peer`, from the X-Forwarded-For header value(s).

    Walks the hops from the right past trusted proxies; the first other address is the client. A hop
    that is not an address stops the walk at the last trusted one (it cannot be told apart from a lie).
    """
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    client = peer
    for hop in reversed(hops):
        if not is_trusted(client, proxies):
            break
        address = parse_address(hop)
        if address is None:
            break
        client = address
    return client


def forwarded_middleware(proxies: Sequence[IPNetwork]) -> Middleware:
    """Replaces the request's remote address and scheme with the client's when the peer is trusted."""

    @web.middleware
    async def forwarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        peer = parse_address(request.remote or "")
        if peer is None or not is_trusted(peer, proxies):
            return await handler(request)
        client = str(client_address(peer, request.headers.getall("X-Forwarded-For", []), proxies))
        # The last value: the one the nearest (trusted) proxy wrote.
        proto = ",".join(request.headers.getall("X-Forwarded-Proto", [])).rpartition(",")[2].strip().lower()
        scheme = proto if proto in ("http", "https") else request.scheme
        request[CLIENT_ADDRESS] = client
        return await handler(request.clone(remote=client, scheme=scheme))

    return forwarded
