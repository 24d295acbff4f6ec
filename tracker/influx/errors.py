"""InfluxDB 1.x response conventions: version headers, request ids, and the error body form."""

from __future__ import annotations

import logging
import uuid
from typing import Awaitable, Callable, Mapping

import orjson
from aiohttp import web

from tracker.storage import StorageUnavailable

INFLUX_VERSION = "1.8.10"  # what clients read from X-Influxdb-Version; we speak 1.8's dialect
JSON = "application/json"
_MAX_ERROR_HEADER = 1024  # InfluxDB truncates X-Influxdb-Error to this many bytes
# A full or read-only disk answers 503 with this Retry-After: Telegraf keeps such a batch and retries
# it, influxdb-client waits this long. Short, so that data flows again soon after space is freed.
STORAGE_RETRY_AFTER_SECONDS = 10
log = logging.getLogger(__name__)


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
    return header_safe(given) if given else str(uuid.uuid4())


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


def json_response(payload: object, *, status: int = 200, pretty: bool = False) -> web.Response:
    option = orjson.OPT_INDENT_2 if pretty else 0
    return web.Response(status=status, body=orjson.dumps(payload, option=option) + b"\n", content_type=JSON)


def no_content() -> web.Response:
    response = web.Response(status=204)
    # InfluxDB labels even its empty answers as JSON; some clients look.
    response.headers["Content-Type"] = JSON
    return response


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def influx_conventions(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Version and request-id headers on every answer; InfluxError becomes InfluxDB's error form."""
    request_id = request_id_of(request)
    try:
        response = await handler(request)
    except InfluxError as exc:
        response = error_response(exc.status, exc.message, exc.headers, exc.details)
    except StorageUnavailable as exc:
        # The disk's fault, not the client's and not a bug: 503, try again later (the sample store logs
        # the file and SQLite's own error).
        response = error_response(503, str(exc), {"Retry-After": str(STORAGE_RETRY_AFTER_SECONDS)})
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        # aiohttp's own refusals (unknown route, wrong method, too large) in InfluxDB's form.
        response = error_response(exc.status, exc.reason, {k: v for k, v in exc.headers.items() if k == "Allow"})
    except ConnectionResetError:
        # The client hung up mid-request (a phone losing signal): nobody is left to answer.
        log.debug("client went away during %s %s", request.method, request.path)
        response = error_response(400, "client closed the connection")
    except Exception:
        # A bug, not the client's fault: say so without leaking internals, and keep the trace in the log.
        log.exception("unhandled error on %s %s", request.method, request.path)
        response = error_response(500, "internal error; see the server log")
    response.headers["X-Influxdb-Version"] = INFLUX_VERSION
    response.headers["X-Influxdb-Build"] = "OSS"
    response.headers["Request-Id"] = request_id
    response.headers["X-Request-Id"] = request_id
    return response
