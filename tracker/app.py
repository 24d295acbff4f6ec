"""The aiohttp Application: what it holds, its middleware in order, its routes, and how it runs."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
import time
from typing import AsyncIterator, Callable, Hashable

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware
from passlib.context import CryptContext

from tracker.accounts import Accounts, load_bearer_secret
from tracker import lineprotocol, logs, senders
from tracker import browser
from tracker.alerts import QuietAlerts
from tracker.appkeys import (
    ACCOUNTS, ALERTS, BANS, INFLATE_BUDGET, INFLATE_LEASE, LEADERSHIP, LIVE, LIVE_FEED, METRICS, METRICS_PUBLISHER,
    MIRRORS, PEERS, QUERY_WORKERS, RETENTION, SAMPLES, SETTINGS, SHARED_COUNTS, STREAM_PLACES, WEBHOOKS, WORKER,
)  # fmt: skip
from tracker.bans import BANS_CHANGED, AuthBans
from tracker.config import Settings, record_server_url
from tracker.group import LEADER_RETRY_SECONDS, Leadership, PeerChannel, Worker
from tracker.http import accounts as http_accounts, auth
from tracker.http.cors import CorsPolicy
from tracker.http.forwarded import CLIENT_ADDRESS, forwarded_middleware, parse_networks
from tracker.http.inflating import InflateBudget
from tracker.http import scrape
from tracker.http.responses import InfluxError
from tracker.influx import query, status, write
from tracker.influx.errors import Handler, influx_conventions, preflight
from tracker.influx.workers import QueryWorkers
from tracker.live import LiveHub, StreamPlaces
from tracker.livefeed import JournalFeed
from tracker.metrics import Registry, ServerMetrics, publishing
from tracker.mirror import Mirrors
from tracker.retention import RetentionSweeper
from tracker.storage import AccountStore, JournalReader, MirrorOutbox, SampleStore, settle_writer
from tracker.storage.shared import SharedCounts
from tracker.webhooks import WebhookDestinations

log = logging.getLogger("tracker")

# What a worker tells the others after a commit of its own: read the journal now.
JOURNAL_COMMITTED = b"journal"


class AccessLogger(AbstractAccessLogger):
    """One line per request, without the query string: it may carry `p=` passwords."""

    @property
    def enabled(self) -> bool:
        # Asked once per connection: below INFO aiohttp then skips the logging work entirely.
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %d %.1fms",
            request.get(CLIENT_ADDRESS, request.remote),  # behind a trusted proxy: the client it saw
            request.method,
            request.path,
            response.status,
            time * 1000,
        )


class _BodyTimeout(TimeoutError):
    """The request body did not arrive in time. A TimeoutError, so that aiohttp, which reads what is
    left of an unread body after answering, gives up at once and closes the connection."""


@web.middleware
async def inflate_lease(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The request's share of the server's budget for inflated bodies, all given back once it is done."""
    if not request.body_exists:
        return await handler(request)
    lease = request.app[INFLATE_BUDGET].lease()
    request[INFLATE_LEASE] = lease
    try:
        return await handler(request)
    finally:
        lease.close()


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


def create_app(
    settings: Settings, *, password_context: CryptContext | None = None, worker: Worker | None = None
) -> web.Application:
    """The application; `password_context` replaces the strong default hashing (tests only); `worker`:
    its place in a group of workers (README "Workers"), None for a server of its own."""
    # Middleware, outermost first:
    #   0. measured: every answer counted by its route's pattern and status (GET /metrics).
    #   1. influx_conventions: InfluxDB's headers and error form wrap every answer, even an inner bug's.
    #   2. forwarded (only with trusted proxies): from here on request.remote is the client's address
    #      and request.secure says whether the client used https.
    #   3. body_deadline: a body that does not arrive within read_timeout fails its reader (408).
    #   4. inflate_lease: what the request inflates is charged to the server's budget until it is done.
    # Authentication is no middleware: the views call it (http/auth.py, web.login), counted per
    # client address by app[BANS], and then decide what the user may do.
    server_metrics = ServerMetrics(Registry())
    middlewares: list[Middleware] = [server_metrics.middleware(), influx_conventions]
    if settings.trusted_proxies:
        middlewares.append(forwarded_middleware(parse_networks(settings.trusted_proxies)))
    middlewares.append(body_deadline)
    middlewares.append(inflate_lease)
    app = web.Application(
        middlewares=middlewares,
        client_max_size=settings.max_body_size,
        # We inflate gzip bodies ourselves, with a size cap; aiohttp's own inflating has none.
        # The access log is ours in every runner (tests included), so no password can slip into it.
        handler_args={
            "auto_decompress": False,
            "access_log_class": AccessLogger,
            "access_log": logging.getLogger(logs.ACCESS_LOGGER),
            # A connection must bring each request's head within this time of connecting or of its
            # previous answer, or it is closed: aiohttp's idle timer, which trickled bytes do not reset.
            "keepalive_timeout": settings.read_timeout,
            "max_line_size": settings.max_url_length,
            "max_field_size": settings.max_header_size,
        },
    )
    app[SETTINGS] = settings
    app[METRICS] = server_metrics
    app[WORKER] = worker = worker or Worker.sole(settings.data_dir)
    app[LEADERSHIP] = Leadership.of(worker)
    app[PEERS] = PeerChannel(worker)
    app[INFLATE_BUDGET] = InflateBudget(settings.max_inflight_decompressed)
    app[BANS] = AuthBans(
        max_failures=settings.max_auth_failures,
        window_seconds=settings.auth_failure_window_seconds,
        ban_seconds=settings.auth_ban_seconds,
    )
    # Where alert webhooks may go: asked when an alert is set and by every delivery's connection.
    app[WEBHOOKS] = WebhookDestinations(allow_private=settings.webhook_allow_private)
    if settings.cors_origins:
        app.on_response_prepare.append(CorsPolicy(settings.cors_origins).on_response_prepare)
    app.cleanup_ctx.append(_group)
    app.cleanup_ctx.append(_metrics)
    app.cleanup_ctx.append(functools.partial(_stores, password_context=password_context))
    app.cleanup_ctx.append(_mirrors)  # after _stores: registered before a write is served
    app.cleanup_ctx.append(_query_workers)
    app.cleanup_ctx.append(_live)
    app.cleanup_ctx.append(_retention)
    app.cleanup_ctx.append(_alerts)
    app.cleanup_ctx.append(_token_use)  # after _stores: cleaned up first, so its last flush still has the file
    if worker.index == 0:  # one of a group is enough
        app.on_startup.append(_record_server_url)  # after the cleanup contexts: the data folder is sound
    # Open event streams end at shutdown's start: the server waits for running handlers before cleanup.
    app.on_shutdown.append(_end_streams)
    app.router.add_route("POST", "/write", write.write_v1)
    app.router.add_route("OPTIONS", "/write", preflight)
    app.router.add_route("POST", "/api/v2/write", write.write_v2)
    app.router.add_route("GET", "/query", query.query)
    app.router.add_route("POST", "/query", query.query)
    app.router.add_route("OPTIONS", "/query", preflight)
    app.router.add_route("POST", "/api/v2/query", query.flux_query)
    app.router.add_get("/ping", status.ping)  # add_get answers HEAD too
    app.router.add_route("OPTIONS", "/ping", preflight)
    app.router.add_get("/health", status.health)
    app.router.add_get("/time", status.server_time)
    app.router.add_post("/auth", auth.issue_bearer_token)
    http_accounts.add_routes(app)  # livetracking.io's account API: /register, GET /auth, /user
    scrape.add_routes(app)  # GET /metrics, unless --metrics off
    senders.add_routes(app)  # the phone apps' own protocols and the JSON API
    browser.add_routes(app)  # pages, sign-in, the watch page's JSON and event streams, activities, courses, files
    return app


async def _group(app: web.Application) -> AsyncIterator[None]:
    """A group's worker: its channel to the others, the shared counts (bans, stream places, arrivals)
    and the try for the leader lease. With one worker: a leader from the start, nothing else."""
    worker, peers, leadership, bans = app[WORKER], app[PEERS], app[LEADERSHIP], app[BANS]
    tasks: list[asyncio.Task[None]] = [asyncio.create_task(leadership.run(), name="leadership")]
    shared: SharedCounts | None = None
    if worker.grouped:
        peers.open()
        shared = app[SHARED_COUNTS] = await SharedCounts.open(worker.run_dir, worker.index)
        bans.count_with(shared, peers.notify)
        reload_bans = asyncio.Event()
        peers.on_message(lambda payload: reload_bans.set() if payload == BANS_CHANGED else None)

        async def follow_group_bans() -> None:
            while True:  # on a datagram, and every few seconds in case one was lost
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(reload_bans.wait(), LEADER_RETRY_SECONDS)
                reload_bans.clear()
                try:
                    await bans.reload_group_bans()
                except Exception:
                    log.exception("reading the other workers' bans failed")

        tasks.append(asyncio.create_task(follow_group_bans(), name="group-bans"))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        leadership.close()
        peers.close()
        if shared is not None:
            await shared.close()


async def _metrics(app: web.Application) -> AsyncIterator[None]:
    """With several workers, this worker's numbers published for the one answering a scrape."""
    async with publishing(app[METRICS].registry, app[WORKER]) as publisher:
        if publisher is not None:
            app[METRICS_PUBLISHER] = publisher
        yield


async def _record_server_url(app: web.Application) -> None:
    """Leave this server's URL in the data folder: the CLI prints share links with it."""
    await asyncio.to_thread(record_server_url, app[SETTINGS])


async def _stores(app: web.Application, password_context: CryptContext | None) -> AsyncIterator[None]:
    """Open the account store and the per-user sample files' manager; close both cleanly on shutdown."""
    settings = app[SETTINGS]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    bearer_secret = load_bearer_secret(settings.data_dir)  # before anything opens: it may refuse to start
    account_store = await AccountStore.open(settings.data_dir)
    worker = app[WORKER]
    if worker.grouped:
        # A worker restarted while the others serve: make its predecessor's journal entries durable
        # without re-applying them (the group's supervisor recovered the journal once, at start).
        await asyncio.to_thread(settle_writer, settings.data_dir, worker.journal_key, settings.sqlite_synchronous)
    samples = SampleStore(
        settings.data_dir,
        synchronous=settings.sqlite_synchronous,
        writer_key=worker.journal_key,
        checkpoint_seconds=settings.journal_checkpoint_seconds,
        keep_seconds=settings.journal_keep_seconds,
        column_cache_bytes=settings.column_cache_mb << 20,
    )
    app[ACCOUNTS] = Accounts(
        account_store,
        cache_seconds=settings.auth_cache_seconds,
        default_retention_ns=settings.retention_ns,
        bearer_secret=bearer_secret,
        password_context=password_context,
    )
    app[SAMPLES] = samples
    samples.commit_timers.append(app[METRICS].commit_seconds.observe)
    try:
        yield
    finally:
        await samples.close()  # drains queued writes: everything acknowledged is committed
        await account_store.close()


async def _mirrors(app: web.Application) -> AsyncIterator[None]:
    """The --mirror deliveries (tracker/mirror.py): in every worker the journal knows the mirrors;
    the leader delivers."""
    settings = app[SETTINGS]
    mirrors = Mirrors(
        MirrorOutbox(settings.data_dir),
        settings.mirror_targets,
        max_lag_seconds=settings.mirror_max_lag_seconds,
        retry_max_seconds=settings.mirror_retry_max_seconds,
        timeout_seconds=settings.mirror_timeout_seconds,
    )
    app[MIRRORS] = mirrors
    app[METRICS].watch_mirrors(mirrors.states)
    try:
        await mirrors.start(app[LEADERSHIP])
        yield
    finally:
        await mirrors.close()


async def _query_workers(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    workers = QueryWorkers(settings.query_workers, settings.query_workers_per_user)
    app[QUERY_WORKERS] = workers
    yield
    workers.close()


async def _live(app: web.Application) -> AsyncIterator[None]:
    """The live hub: fan-out of committed samples (read from the journal) to event streams, with its
    buffers swept now and then."""
    settings = app[SETTINGS]
    hub = LiveHub(
        max_streams_per_user=settings.live_max_streams_per_user,
        max_streams=settings.live_max_streams,
        reserved_streams=settings.live_reserved_streams,
        max_streams_per_address=settings.live_max_streams_per_address,
        max_streams_per_link=settings.live_max_streams_per_link,
        buffer_samples=settings.live_buffer_samples,
        buffer_seconds=settings.live_buffer_seconds,
        queue_events=settings.live_queue_events,
    )
    app[LIVE] = hub
    app[METRICS].watch_streams(lambda: hub.open_streams)
    # Fed from the journal: every worker's commits, in the global order, with ids all workers share.
    reader = JournalReader(settings.data_dir)
    feed = JournalFeed(hub, reader)
    await feed.start()
    app[LIVE_FEED] = feed
    # A local commit wakes this feed at once and the other workers' feeds by a datagram; theirs wake
    # ours the same way. A datagram only wakes (anyone local could send one), the feed reads the journal.
    peers = app[PEERS]

    def committed(newest_id: int) -> None:
        feed.wake(newest_id)
        peers.notify(JOURNAL_COMMITTED)

    app[SAMPLES].commit_listeners.append(committed)
    peers.on_message(lambda payload: feed.wake() if payload == JOURNAL_COMMITTED else None)
    places = app[STREAM_PLACES] = StreamPlaces(hub, app.get(SHARED_COUNTS))

    async def sweep() -> None:
        while True:
            await asyncio.sleep(min(60.0, settings.live_buffer_seconds / 4))
            hub.sweep()

    sweeper = asyncio.create_task(sweep())
    feeder = asyncio.create_task(feed.run())
    try:
        yield
    finally:
        hub.close()
        sweeper.cancel()
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        app[SAMPLES].commit_listeners.remove(committed)
        await reader.close()
        await places.close()


async def _retention(app: web.Application) -> AsyncIterator[None]:
    """The sweep that removes samples older than their user's retention; stopped before the stores close."""
    samples = app[SAMPLES]
    writes_to = _writes_in_group(samples) if app[WORKER].grouped else None
    sweeper = RetentionSweeper(samples, app[ACCOUNTS], writes_to=writes_to)
    app[RETENTION] = sweeper
    leadership = app[LEADERSHIP]

    async def sweep_while_leading() -> None:
        await leadership.acquired()  # in one worker of a group only
        await sweeper.run(app[SETTINGS].retention_check_seconds)

    task = asyncio.create_task(sweep_while_leading())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _writes_in_group(samples: SampleStore) -> Callable[[str], Hashable]:
    """What changes whenever a user's file is written by any worker: other workers' commits are not
    counted here, but they change the file's -wal (size, mtime)."""

    def writes_to(user: str) -> tuple[int, tuple[int, int] | None]:
        try:
            wal = os.stat(f"{samples.path_for(user)}-wal")
        except OSError:
            return samples.writes_to(user), None
        return samples.writes_to(user), (wal.st_size, wal.st_mtime_ns)

    return writes_to


async def _alerts(app: web.Application) -> AsyncIterator[None]:
    """Gone-quiet alerts: their deadline watcher and webhook deliveries, stopped before the stores close."""
    alerts = QuietAlerts(app[ACCOUNTS], app[SAMPLES], app[SETTINGS], app[WEBHOOKS], shared=app.get(SHARED_COUNTS))
    alerts.open()
    leadership = app[LEADERSHIP]
    leading: asyncio.Task[None] | None = None
    if leadership.is_leader:  # a server of its own: watching before the first request
        await alerts.start()
    else:  # the deadlines and webhooks run in the group's leader only

        async def start_when_leading() -> None:
            await leadership.acquired()
            await alerts.start()

        leading = asyncio.create_task(start_when_leading())
    app[ALERTS] = alerts
    try:
        yield
    finally:
        if leading is not None:
            leading.cancel()
            await asyncio.gather(leading, return_exceptions=True)
        await alerts.close()


async def _token_use(app: web.Application) -> AsyncIterator[None]:
    """Device tokens' last-used and last-sample times: kept in memory, written every few seconds and at shutdown.

    In every worker of a group: each holds the uses it saw, and the write only moves times forward."""
    accounts, every = app[ACCOUNTS], app[SETTINGS].token_use_flush_seconds

    async def flush() -> None:
        try:
            await accounts.flush_token_use()
        except Exception:  # kept in memory for the next try; never worth stopping the server for
            log.exception("recording device token use failed")

    async def flush_now_and_then() -> None:
        while True:
            await asyncio.sleep(every)
            await flush()

    flusher = asyncio.create_task(flush_now_and_then())
    try:
        yield
    finally:
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher  # a flush under way finishes (or is cancelled) before the last one starts
        await flush()


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


def run(settings: Settings, worker: Worker | None = None) -> None:
    """Serve until SIGINT or SIGTERM; aiohttp then runs the cleanup contexts, closing every file.

    `worker`: one of a group sharing the port (SO_REUSEPORT), started by tracker.supervisor."""
    logs.configure(settings.log_level, worker.name if worker is not None else "")
    logging.getLogger("aiohttp.server").addFilter(_OneLineBadRequests())
    loop = _new_event_loop()

    def listening(_aiohttp_banner: str) -> None:
        # aiohttp calls this once the port is bound: never "listening" before a failure to bind.
        if worker is None:
            log.info("Tracker listening on http://%s:%d, data in %s", settings.host, settings.port, settings.data_dir)
        else:
            log.info("serving http://%s:%d (pid %d)", settings.host, settings.port, os.getpid())
        if worker is None or worker.index == 0:
            log.info("line protocol parser: %s", lineprotocol.IMPLEMENTATION)

    try:
        web.run_app(
            create_app(settings, worker=worker),
            host=settings.host,
            port=settings.port,
            print=listening,
            loop=loop,
            reuse_port=worker is not None,
        )
    finally:
        _exit_if_stuck()


# How long the interpreter may take to exit once the server has shut down.
EXIT_GRACE_SECONDS = 10.0


def _exit_if_stuck() -> None:
    """Started once the server has shut down. A SIGTERM that lands while the server is still
    starting (a worker whose supervisor died that moment) interrupts a cleanup context before its
    `yield`, so what it opened (an SQLite connection's thread) is never closed, and the interpreter
    would wait for that thread for ever: an orphaned worker. A daemon thread ends such a process."""

    def watch() -> None:
        time.sleep(EXIT_GRACE_SECONDS)
        stray = [t.name for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
        log.error("still running %.0f s after shutdown (threads: %s): exiting", EXIT_GRACE_SECONDS, ", ".join(stray))
        logging.shutdown()
        os._exit(1)

    threading.Thread(target=watch, name="tracker exit watchdog", daemon=True).start()


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # a faster event loop where it is available; the standard one otherwise
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
