"""The aiohttp Application: what it holds, its middleware in order, its routes, and how it runs."""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

from tracker.accounts import Accounts
from tracker import web as browser
from tracker.appkeys import ACCOUNTS, LIVE, SAMPLES, SETTINGS
from tracker.config import Settings
from tracker.influx import query, status, write
from tracker.influx.errors import Handler, InfluxError, influx_conventions
from tracker.live import LiveHub
from tracker.storage import AccountStore, SampleStore

log = logging.getLogger("tracker")


class AccessLogger(AbstractAccessLogger):
    """One line per request, without the query string: it may carry `p=` passwords."""

    @property
    def enabled(self) -> bool:
        # Asked once per connection: below INFO aiohttp then skips the logging work entirely.
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %d %.1fms",
            request.remote,
            request.method,
            request.path,
            response.status,
            time * 1000,
        )


class _BodyTimeout(TimeoutError):
    """The request body did not arrive in time. A TimeoutError, so that aiohttp, which reads what is
    left of an unread body after answering, gives up at once and closes the connection."""


@web.middleware
async def body_deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A client gets `read_timeout` seconds to send a request's body, then 408: whatever reads the
    body (any view) fails at that moment. (The head's time limit is aiohttp's keepalive_timeout.)"""
    if not request.body_exists:
        return await handler(request)
    timeout = request.app[SETTINGS].read_timeout

    def expire() -> None:
        if not request.content.is_eof():
            request.content.set_exception(_BodyTimeout())

    timer = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        return await handler(request)
    except _BodyTimeout:
        raise InfluxError(408, f"timeout: the request body did not arrive within {timeout:g} s") from None
    finally:
        timer.cancel()


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        # Middleware, outermost first: InfluxDB's headers and error form wrap every answer.
        middlewares=[influx_conventions, body_deadline],
        client_max_size=settings.max_body_size,
        # We inflate gzip bodies ourselves, with a size cap; aiohttp's own inflating has none.
        # The access log is ours in every runner (tests included), so no password can slip into it.
        handler_args={
            "auto_decompress": False,
            "access_log_class": AccessLogger,
            "access_log": logging.getLogger("tracker.access"),
            # A connection must bring each request's head within this time of connecting or of its
            # previous answer, or it is closed: aiohttp's idle timer, which trickled bytes do not reset.
            "keepalive_timeout": settings.read_timeout,
            "max_line_size": settings.max_url_length,
            "max_field_size": settings.max_header_size,
        },
    )
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_stores)
    app.cleanup_ctx.append(_live)
    # Open event streams end at shutdown's start: the server waits for running handlers before cleanup.
    app.on_shutdown.append(_end_streams)
    app.router.add_route("POST", "/write", write.write_v1)
    app.router.add_route("OPTIONS", "/write", write.preflight)
    app.router.add_route("POST", "/api/v2/write", write.write_v2)
    app.router.add_route("GET", "/query", query.query)
    app.router.add_route("POST", "/query", query.query)
    app.router.add_route("OPTIONS", "/query", query.preflight)
    app.router.add_get("/ping", status.ping)  # add_get answers HEAD too
    app.router.add_get("/health", status.health)
    app.router.add_get("/time", status.server_time)
    browser.add_routes(app)  # pages, sign-in, the watch page's JSON and event streams
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


async def _live(app: web.Application) -> AsyncIterator[None]:
    """The live hub: fan-out of committed samples to event streams, with its buffers swept now and then."""
    settings = app[SETTINGS]
    hub = LiveHub(
        max_streams_per_user=settings.live_max_streams_per_user,
        max_streams=settings.live_max_streams,
        buffer_events=settings.live_buffer_events,
        buffer_seconds=settings.live_buffer_seconds,
        queue_events=settings.live_queue_events,
    )
    app[LIVE] = hub

    async def sweep() -> None:
        while True:
            await asyncio.sleep(min(60.0, settings.live_buffer_seconds / 4))
            hub.sweep()

    sweeper = asyncio.create_task(sweep())
    try:
        yield
    finally:
        hub.close()
        sweeper.cancel()


async def _end_streams(app: web.Application) -> None:
    if LIVE in app:
        app[LIVE].close()


class _OneLineBadRequests(logging.Filter):
    """aiohttp logs every malformed request (a request line or header past its limit, bad syntax) as
    an ERROR with a traceback, yet it is the client's mistake: one WARNING line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            message = record.getMessage()
            record.msg, record.args = "%s: %s %s", (message, exc.code, " ".join(str(exc.message).split()))
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def run(settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM; aiohttp then runs the cleanup contexts, closing every file."""
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiohttp.server").addFilter(_OneLineBadRequests())
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
