"""The answers every HTTP surface shares: JSON bodies, and the error form.

Errors take InfluxDB 1.x's form (`{"error": ...}` with X-Influxdb-Error) wherever a device or a script
sends: the InfluxDB endpoints, the phone apps' endpoints and the JSON API alike.
"""

from __future__ import annotations

import itertools
import secrets
from typing import Mapping

import orjson
from aiohttp import web

JSON = "application/json"
_MAX_ERROR_HEADER = 1024  # InfluxDB truncates X-Influxdb-Error to this many bytes


class InfluxError(Exception):
    """Raised by a view to answer with InfluxDB's error form."""

    def __init__(
        self,
        status: int,
        message: str,
        headers: Mapping[str, str] | None = None,
        *,
        details: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})  # e.g. Retry-After
        self.details = dict(details or {})  # more keys of the body beside "error", e.g. the JSON API's "errors"


# Control characters cannot go into a header (aiohttp refuses to send them): spaces instead, so a
# multi-line parse error is joined with spaces, and a NUL from a client's input does no harm.
_CONTROL_TO_SPACE = dict.fromkeys([*range(0x20), 0x7F], " ")


def header_safe(text: str) -> str:
    """`text` fit for a header value: UTF-8 (a client's undecodable bytes become '?'), no control characters."""
    return text.encode("utf-8", "replace").decode("utf-8").translate(_CONTROL_TO_SPACE)


def request_id_of(request: web.BaseRequest) -> str:
    """The client's request id (X-Request-Id, else Request-Id), or a new one."""
    given = request.headers.get("X-Request-Id") or request.headers.get("Request-Id")
    return header_safe(given) if given else _new_request_id()


# A new request id: UUID-shaped as InfluxDB's, a random per-process half and a counter. uuid4 asks the
# kernel for randomness on every request, a system call that hands the GIL to other threads.
_ID_PREFIX = secrets.token_hex(8)
_id_counter = itertools.count(1)


def _new_request_id() -> str:
    count = next(_id_counter) & 0xFFFF_FFFF_FFFF_FFFF
    return f"{_ID_PREFIX[:8]}-{_ID_PREFIX[8:12]}-{_ID_PREFIX[12:]}-{count >> 48:04x}-{count & 0xFFFF_FFFF_FFFF:012x}"


def error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None, details: Mapping[str, object] | None = None
) -> web.Response:
    """`{"error":"<msg>"}\\n` (and `details`' keys) with X-Influxdb-Error, or WWW-Authenticate for a 401."""
    message = message.encode("utf-8", "replace").decode("utf-8")  # a message may quote a client's bytes
    body = {"error": message, **(details or {})}
    response = web.Response(status=status, body=orjson.dumps(body) + b"\n", content_type=JSON)
    if headers:
        response.headers.update(headers)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="InfluxDB"'
    else:
        header = message.encode("utf-8")[:_MAX_ERROR_HEADER].decode("utf-8", "ignore")
        response.headers["X-Influxdb-Error"] = header_safe(header)
    return response


def json_response(
    payload: object,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    *,
    pretty: bool = False,
    newline: bool = True,
    private: bool = False,
) -> web.Response:
    """`payload` as JSON (indented if `pretty`), ending in a newline as InfluxDB's answers do unless
    told otherwise; `private`: never cached, never sniffed (what a signed-in browser is shown)."""
    body = orjson.dumps(payload, option=orjson.OPT_INDENT_2 if pretty else 0)
    response = web.Response(status=status, body=body + b"\n" if newline else body, content_type=JSON)
    if private:
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
    if headers:
        response.headers.update(headers)
    return response


def private_json_response(payload: object, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """The browser side's JSON: a signed-in user's, so never cached or sniffed; no trailing newline."""
    return json_response(payload, status, headers, newline=False, private=True)
