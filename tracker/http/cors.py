"""CORS for InfluxDB's endpoints (/query, /write, /ping), off unless the operator allows origins.

A named origin (https://grafana.example.org) may call them with a password it sends itself (the
Authorization header, or u=/p=); "*" lets any page read, without Authorization, what anonymous
callers may read (public users), and never write. No answer ever allows credentials: a browser then
sends no cookie or remembered password across origins, so another site cannot read what a signed-in
visitor may.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

CORS_PATHS = frozenset({"/query", "/write", "/ping"})
ANY_ORIGIN = "*"
# What InfluxDB's clients and a page's fetch() send, and the headers they read.
_NAMED_HEADERS = "Authorization, Content-Type, Content-Encoding, Accept, Accept-Encoding"
_ANY_HEADERS = "Content-Type, Accept, Accept-Encoding"
_EXPOSED = "Date, Request-Id, X-Request-Id, X-Influxdb-Version, X-Influxdb-Build, X-Influxdb-Error"
_METHODS = "GET, HEAD, POST, OPTIONS"
_PREFLIGHT_MAX_AGE = "600"


def check_origin(origin: str) -> None:
    """'*' or an origin as a browser sends it: scheme://host[:port], lowercase, no path."""
    if origin == ANY_ORIGIN:
        return
    parts = urlsplit(origin)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.path
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
        or origin != origin.lower()
    ):
        raise ValueError(f"cors origin must be * or scheme://host[:port] in lowercase, got {origin!r}")


class CorsPolicy:
    """Adds CORS headers to answers on CORS_PATHS as they are sent (streamed answers and errors too)."""

    def __init__(self, origins: tuple[str, ...]) -> None:
        self.any_origin = ANY_ORIGIN in origins
        self.named = frozenset(origin for origin in origins if origin != ANY_ORIGIN)

    async def on_response_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        if request.path not in CORS_PATHS:
            return
        if self.named:
            response.headers.add("Vary", "Origin")  # the answer differs by origin: caches must know
        origin = request.headers.get("Origin")
        if origin is None:
            return
        if origin in self.named:
            response.headers["Access-Control-Allow-Origin"] = origin
            allowed_headers = _NAMED_HEADERS
        elif self.any_origin and request.path != "/write":
            response.headers["Access-Control-Allow-Origin"] = ANY_ORIGIN
            allowed_headers = _ANY_HEADERS
        else:
            return
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response.headers["Access-Control-Allow-Methods"] = _METHODS
            response.headers["Access-Control-Allow-Headers"] = allowed_headers
            response.headers["Access-Control-Max-Age"] = _PREFLIGHT_MAX_AGE
        else:
            response.headers["Access-Control-Expose-Headers"] = _EXPOSED
