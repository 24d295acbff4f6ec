"""GET /metrics: the whole server's numbers for Prometheus (tracker.metrics), to whom --metrics allows."""

from __future__ import annotations

import asyncio
import hmac

from aiohttp import web

from tracker.appkeys import METRICS, METRICS_PUBLISHER, SETTINGS
from tracker.http.responses import error_response
from tracker.metrics import CONTENT_TYPE, is_local, merge, render


def _bearer_matches(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # compare_digest: the time taken says nothing about how much of the token was right.
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


async def scrape(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    if settings.metrics == "local" and not is_local(request.remote):
        return error_response(
            403,
            "metrics: answered only to clients on this machine (--metrics local); "
            "scrape from here, or set --metrics token or open",
        )
    if settings.metrics == "token" and not is_local(request.remote):
        if not _bearer_matches(request, settings.metrics_token):
            return error_response(
                403, "metrics: Authorization: Bearer with the metrics token (TRACKER_METRICS_TOKEN) is needed"
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
