"""Liveness and clock: /ping and /health as InfluxDB answers them, and /time for phones' clocks."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from aiohttp import web

from tracker.http.responses import json_response
from tracker.influx.errors import INFLUX_VERSION, no_content


async def ping(request: web.Request) -> web.Response:
    if request.rel_url.query.get("verbose", "") not in ("", "0", "false"):
        return json_response({"version": INFLUX_VERSION})
    return no_content()


async def health(request: web.Request) -> web.Response:
    return json_response(
        {
            "checks": [],
            "message": "ready for queries and writes",
            "name": "influxdb",
            "status": "pass",
            "version": INFLUX_VERSION,
        }
    )


async def server_time(request: web.Request) -> web.Response:
    """The server's clock in every precision a phone may send, read once, plus an RFC 3339 form."""
    now_ns = time.time_ns()
    iso = datetime.fromtimestamp(now_ns // 1_000_000_000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return json_response(
        {
            "s": now_ns // 1_000_000_000,
            "ms": now_ns // 1_000_000,
            "u": now_ns // 1_000,
            "ns": now_ns,
            "rfc3339": f"{iso}.{now_ns % 1_000_000_000:09d}Z",
        }
    )
