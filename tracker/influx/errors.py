"""InfluxDB 1.x response conventions: version headers, request ids, and errors in its form on every answer
(the error form itself is in tracker.http.responses)."""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

from aiohttp import web

from tracker.appkeys import SETTINGS
from tracker.http.responses import JSON, InfluxError, error_response, request_id_of
from tracker.storage import StorageUnavailable

INFLUX_VERSION = "1.8.10"  # what clients read from X-Influxdb-Version; we speak 1.8's dialect
# A full or read-only disk answers 503 with this Retry-After: Telegraf keeps such a batch and retries
# it, influxdb-client waits this long. Short, so that data flows again soon after space is freed.
STORAGE_RETRY_AFTER_SECONDS = 10
log = logging.getLogger(__name__)


def no_content() -> web.Response:
    response = web.Response(status=204)
    # InfluxDB labels even its empty answers as JSON; some clients look.
    response.headers["Content-Type"] = JSON
    return response


async def preflight(request: web.Request) -> web.Response:
    """OPTIONS on InfluxDB's endpoints: 204, and CORS headers where configured (tracker.http.cors)."""
    return no_content()


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
    if "WWW-Authenticate" in response.headers:
        # error_response challenges with InfluxDB's realm; the operator may name another.
        response.headers["WWW-Authenticate"] = f'Basic realm="{request.app[SETTINGS].realm}"'
    response.headers["X-Influxdb-Version"] = INFLUX_VERSION
    response.headers["X-Influxdb-Build"] = "OSS"
    response.headers["Request-Id"] = request_id
    response.headers["X-Request-Id"] = request_id
    return response
