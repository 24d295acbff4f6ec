"""The aiohttp Application: what it holds, its middleware in order, its routes, and how it runs."""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from tracker.accounts import Accounts
from tracker.appkeys import ACCOUNTS, SAMPLES, SETTINGS
from tracker.config import Settings
from tracker.influx import query, status, write
from tracker.influx.errors import influx_conventions
from tracker.storage import AccountStore, SampleStore

log = logging.getLogger("tracker")


class AccessLogger(AbstractAccessLogger):
    """One line per request, without the query string: it may carry `p=` passwords."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %d %.1fms",
            request.remote,
            request.method,
            request.path,
            response.status,
            time * 1000,
        )


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        # Middleware, outermost first: InfluxDB's headers and error form wrap every answer.
        middlewares=[influx_conventions],
        client_max_size=settings.max_body_size,
        # We inflate gzip bodies ourselves, with a size cap; aiohttp's own inflating has none.
        # The access log is ours in every runner (tests included), so no password can slip into it.
        handler_args={
            "auto_decompress": False,
            "access_log_class": AccessLogger,
            "access_log": logging.getLogger("tracker.access"),
        },
    )
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_stores)
    app.router.add_route("POST", "/write", write.write_v1)
    app.router.add_route("OPTIONS", "/write", write.preflight)
    app.router.add_route("POST", "/api/v2/write", write.write_v2)
    app.router.add_route("GET", "/query", query.query)
    app.router.add_route("POST", "/query", query.query)
    app.router.add_route("OPTIONS", "/query", query.preflight)
    app.router.add_get("/ping", status.ping)  # add_get answers HEAD too
    app.router.add_get("/health", status.health)
    app.router.add_get("/time", status.server_time)
    return app


async def _stores(app: web.Application) -> AsyncIterator[None]:
    """Open the account store and the per-user sample files' manager; close both cleanly on shutdown."""
    settings = app[SETTINGS]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    account_store = await AccountStore.open(settings.data_dir)
    samples = SampleStore(settings.data_dir, synchronous=settings.sqlite_synchronous)
    app[ACCOUNTS] = Accounts(account_store, cache_seconds=settings.auth_cache_seconds)
    app[SAMPLES] = samples
    try:
        yield
    finally:
        await samples.close()  # drains queued writes: everything acknowledged is committed
        await account_store.close()


def run(settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM; aiohttp then runs the cleanup contexts, closing every file."""
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    loop = _new_event_loop()
    log.info("Tracker listening on http://%s:%d, data in %s", settings.host, settings.port, settings.data_dir)
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        print=None,
        loop=loop,
    )


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # a faster event loop where it is available; the standard one otherwise
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
