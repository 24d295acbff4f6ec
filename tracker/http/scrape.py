"""GET /metrics: the whole server's numbers for Prometheus (tracker.metrics), to whom --metrics allows."""

from __future__ import annotations

import asyncio

from aiohttp import web

from tracker.appkeys import METRICS, METRICS_PUBLISHER, SETTINGS
from tracker.http.responses import error_response
from tracker.metrics import CONTENT_TYPE, is_local, merge, render


async def scrape(request: web.Request) -> web.Response:
    if request.app[SETTINGS].metrics == "local" and not is_local(request.remote):
        return error_response(
            403,
            "metrics: answered only to clients on this machine (--metrics local); "
            "scrape from here, or set --metrics open",
        )
    snapshot = request.app[METRICS].registry.snapshot()
    publisher = request.app.get(METRICS_PUBLISHER)
    if publisher is not None:  # the whole server: this worker's live numbers and the others' latest
        snapshot = merge([snapshot, *await asyncio.to_thread(publisher.others)])
    response = web.Response(body=render(snapshot).encode("utf-8"))
    response.headers["Content-Type"] = CONTENT_TYPE
    response.headers["Cache-Control"] = "no-store"
    return response


def add_routes(app: web.Application) -> None:
    if app[SETTINGS].metrics != "off":
        app.router.add_get("/metrics", scrape)
