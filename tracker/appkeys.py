"""Typed keys for what the Application holds; set up in app.py, read by the views."""

from __future__ import annotations

from aiohttp import web

from tracker.accounts import Accounts
from tracker.bans import AuthBans
from tracker.alerts import QuietAlerts
from tracker.config import Settings
from tracker.group import Leadership, PeerChannel, Worker
from tracker.influx.workers import QueryWorkers
from tracker.http.inflating import InflateBudget, InflateLease
from tracker.live import LiveHub, StreamPlaces
from tracker.livefeed import JournalFeed
from tracker.metrics import Publisher, ServerMetrics
from tracker.mirror import Mirrors
from tracker.retention import RetentionSweeper
from tracker.storage import SampleStore
from tracker.storage.shared import SharedCounts
from tracker.webhooks import WebhookDestinations

SETTINGS = web.AppKey("settings", Settings)
SAMPLES = web.AppKey("samples", SampleStore)
ACCOUNTS = web.AppKey("accounts", Accounts)
LIVE = web.AppKey("live", LiveHub)
# The journal feed of LIVE: `app[LIVE_FEED].wake()` when another worker process has committed.
LIVE_FEED = web.AppKey("live_feed", JournalFeed)
RETENTION = web.AppKey("retention", RetentionSweeper)
# The --mirror deliveries; `app[MIRRORS].states()`: queue depth, lag, last error of each (for /metrics).
MIRRORS = web.AppKey("mirrors", Mirrors)
BANS = web.AppKey("bans", AuthBans)
ALERTS = web.AppKey("alerts", QuietAlerts)
QUERY_WORKERS = web.AppKey("query_workers", QueryWorkers)
WEBHOOKS = web.AppKey("webhooks", WebhookDestinations)
# The worker processes of one `serve --workers N` (README "Workers"); with one worker: WORKER.count 1,
# a leadership held from the start, a channel that sends nothing, no SHARED_COUNTS.
WORKER = web.AppKey("worker", Worker)
LEADERSHIP = web.AppKey("leadership", Leadership)
PEERS = web.AppKey("peers", PeerChannel)
SHARED_COUNTS = web.AppKey("shared_counts", SharedCounts)
STREAM_PLACES = web.AppKey("stream_places", StreamPlaces)
INFLATE_BUDGET = web.AppKey("inflate_budget", InflateBudget)
# The request's share of INFLATE_BUDGET: set by the app's middleware, given back when the request is done.
INFLATE_LEASE = web.RequestKey("inflate_lease", InflateLease)
# GET /metrics: this worker's registry (README "Metrics"), and with several workers its publisher,
# which also reads the other workers' numbers.
METRICS = web.AppKey("metrics", ServerMetrics)
METRICS_PUBLISHER = web.AppKey("metrics_publisher", Publisher)
