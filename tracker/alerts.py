"""Gone-quiet alerts: notice when a user (or one of their devices) stops sending, and tell a webhook.

Every way in calls `QuietAlerts.saw_points(user, points)` after each commit (tracker.ingest.commit).
That call is synchronous and cheap (a few dict updates, at most one heap push): it never waits for the
network or the disk, so it cannot slow a write down.

An alert is "live" once data arrives for it (any device of the user, or the one device it names).
Its deadline is the arrival time plus its quiet time; a single background task keeps one heap entry
per live alert and sleeps until the earliest. An entry that comes due after more data arrived is
pushed again for the new deadline, so a phone posting every second costs nothing here. When an
entry really is due, the alert fires once ("quiet") and stays fired until data arrives again, which
sends "back". Quiet time is measured on the server's clock from when data arrived, so a phone with a
wrong clock or a backlog of old samples neither fires nor silences an alert.

Restarts: whether an alert has fired is kept in the accounts file, so a restart neither repeats a
"quiet" nor loses the "back". At start an alert is live only if its user's (or device's) newest
stored sample is younger than the quiet time, and its deadline counts from that sample; anyone
already silent before the restart stays silent (no burst of alerts at start).

Several workers (README "Workers"): only the leader watches deadlines and delivers. Every worker
keeps its own last-seen table from its own writes and notes when data arrived per user and device in
the group's shared file every ARRIVALS_FLUSH_SECONDS; the leader reads what the others noted as
often, and before firing an alert it reads once more and waits ARRIVALS_GRACE_SECONDS past the
deadline, so a device sending to another worker never looks quiet. The other workers (followers)
keep the alerts too, only to show their state: fired or not as the leader wrote it in the accounts
file, live from the arrivals. Fired state is in the accounts
file, so a new leader (the old one died) neither repeats a "quiet" nor loses the "back".

Delivery: one JSON POST per notice, retried with exponential backoff and jitter on network errors,
timeouts, 5xx, 408 and 429 (other answers are final), a bounded number of times. Notices of one
alert go out in order (a "back" waits for its "quiet" to be delivered or given up). Every outcome
(and every failed attempt) is written to the alert's row, shown to the owner, and logged.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
import sqlite3
import time
from dataclasses import dataclass
from itertools import count
from typing import Any, Callable, Iterable, Protocol
from urllib.parse import urlsplit

import aiohttp
import orjson

from tracker import __version__
from tracker.accounts import Accounts
from tracker.config import Settings
from tracker.rules import iso_time
from tracker.storage import DEVICE_TAG, AlertRecord, SampleStore, device_last_seen
from tracker.storage.shared import SharedCounts
from tracker.webhooks import NOT_ALLOWED, DestinationNotAllowed, WebhookDestinations

log = logging.getLogger(__name__)

QUIET = "quiet"
BACK = "back"
# The state of a notice's delivery as stored and shown.
DELIVERED, RETRYING, FAILED = "ok", "retrying", "failed"
RETRY_STATUSES = frozenset({408, 429})
ARRIVALS_FLUSH_SECONDS = 1.0
ARRIVALS_GRACE_SECONDS = 2.5  # past two flushes: what another worker saw before a deadline is known then


class TaggedPoint(Protocol):
    @property
    def tags(self) -> tuple[tuple[str, str], ...]: ...

    @property
    def time(self) -> int: ...


def device_of(tags: Iterable[tuple[str, str]]) -> str | None:
    for key, value in tags:
        if key == DEVICE_TAG:
            return value
    return None


@dataclass(slots=True)
class _Seen:
    """One device of a user: its newest sample time, and when data for it last arrived (if since start)."""

    newest_ns: int
    arrived: float | None = None  # clock(); None: known only from storage


@dataclass(eq=False, slots=True)
class _Watch:
    """One alert: its settings and where it stands."""

    id: int
    owner: str
    device: str  # '' = any device of the owner
    quiet_seconds: float
    webhook_url: str
    fired: bool
    arrived: float | None = None  # clock() of the latest data for this alert; None: not live
    last_sample_ns: int | None = None
    generation: int = 0  # a heap entry counts only while it carries the current generation
    scheduled: float | None = None  # the deadline of the valid heap entry, if any
    removed: bool = False
    delivery: asyncio.Task[None] | None = None  # the latest notice; the next one waits for it

    def matches(self, device: str | None) -> bool:
        return not self.device or self.device == device


@dataclass(slots=True)
class _Notice:
    kind: str
    payload: dict[str, Any]
    fired_ns: int | None  # what the alert's fired state becomes (kept in the accounts file)


class QuietAlerts:
    """The watcher (deadlines) and the webhook delivery of every user's gone-quiet alerts."""

    def __init__(
        self,
        accounts: Accounts,
        samples: SampleStore,
        settings: Settings,
        destinations: WebhookDestinations,
        *,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedCounts | None = None,
    ) -> None:
        self._accounts = accounts
        self._samples = samples
        self._settings = settings
        self._destinations = destinations
        self._clock = clock
        self._watches: dict[str, dict[str, _Watch]] = {}  # owner -> device ('' = any) -> alert
        self._heap: list[tuple[float, int, int, _Watch]] = []  # (deadline, tie-break, generation, alert)
        self._tie = count()
        self._seen: dict[str, dict[str | None, _Seen]] = {}  # user -> device -> last seen
        self._seeded: set[str] = set()  # users whose last-seen table includes what storage knows
        self._wakeup = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._version: int | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._closed = False
        # In a group (then `clock` must be time.monotonic, one clock for every process): the shared file,
        # arrivals not yet noted there, and how far the leader has read the others' arrivals.
        self._shared = shared
        self._grace = ARRIVALS_GRACE_SECONDS if shared is not None else 0.0
        self._unnoted: dict[tuple[str, str | None], tuple[int, float]] = {}
        self._arrivals_read = 0
        self._noter: asyncio.Task[None] | None = None
        self._leading = False  # watching deadlines and delivering: started

    # ----- lifecycle -----

    def open(self) -> None:
        """In every worker of a group: note arrivals in the shared file (the leader reads them)."""
        if self._shared is not None:
            self._noter = asyncio.create_task(self._note_arrivals_now_and_then(), name="alert-arrivals")

    async def start(self) -> None:
        """Watch deadlines and deliver: in one worker only (the leader)."""
        # Every socket a delivery opens goes through the destination rule (trust_env=False: no
        # proxy could connect on our behalf to what the rule refuses).
        self._http = aiohttp.ClientSession(
            connector=self._destinations.connector(),
            headers={"User-Agent": f"Tracker/{__version__}"},
            trust_env=False,
            raise_for_status=False,
        )
        self._leading = True
        await self._read_arrivals()
        await self.reload()
        for watches in self._watches.values():  # those a follower knew have no deadline yet
            for watch in watches.values():
                self._schedule(watch)
        self._runner = asyncio.create_task(self._run(), name="quiet-alerts")

    async def close(self) -> None:
        """Stop watching; notices still being retried are dropped (their row says "retrying")."""
        self._closed = True
        tasks = [t for t in (self._runner, self._noter, *self._deliveries) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()

    # ----- data arriving (the write path: synchronous, never raises) -----

    def saw(self, user: str, device: str | None, newest_ns: int) -> None:
        """Data for `user` (and its `device` tag, None without one) was just committed."""
        try:
            self._saw(user, device, newest_ns)
        except Exception:
            log.exception("gone-quiet bookkeeping for %s failed", user)

    def saw_points(self, user: str, points: Iterable[TaggedPoint]) -> None:
        """`saw` once per device among the committed points, with that device's newest time."""
        newest: dict[str | None, int] = {}
        tags: tuple[tuple[str, str], ...] | None = None
        device: str | None = None
        for point in points:
            if point.tags != tags:  # a batch mostly repeats one tag set: look the device up once
                tags = point.tags
                device = device_of(tags)
            if point.time > newest.get(device, -(2**63)):
                newest[device] = point.time
        for device, time_ns in newest.items():
            self.saw(user, device, time_ns)

    def _saw(self, user: str, device: str | None, newest_ns: int, arrived: float | None = None) -> None:
        """`arrived`: when data arrived at another worker (None: here, now)."""
        if self._closed:
            return
        now = self._clock() if arrived is None else arrived
        devices = self._seen.setdefault(user, {})
        seen = devices.get(device)
        if seen is None:
            devices[device] = _Seen(newest_ns, now)
        else:
            seen.newest_ns = max(seen.newest_ns, newest_ns)
            seen.arrived = now if arrived is None else max(now, seen.arrived or now)
        if self._shared is not None and arrived is None:
            key = (user, device)
            noted_ns, _ = self._unnoted.get(key, (newest_ns, now))
            self._unnoted[key] = (max(noted_ns, newest_ns), now)
        for watch in self._watches.get(user, {}).values():
            if not watch.matches(device):
                continue
            previous_arrival, previous_sample = watch.arrived, watch.last_sample_ns
            if arrived is not None and previous_arrival is not None and previous_arrival >= now:
                watch.last_sample_ns = max(newest_ns, previous_sample or newest_ns)
                continue  # news from another worker older than what is known: changes nothing
            watch.arrived = now
            watch.last_sample_ns = max(newest_ns, previous_sample or newest_ns)
            if not self._leading:
                continue  # the leader fires and delivers; here only what the owner's page shows
            if watch.fired:
                watch.fired = False
                silent = self._silence(now, previous_arrival, previous_sample)
                self._notify(watch, BACK, silent, fired_ns=None)
            self._schedule(watch)

    def _silence(self, now: float, arrived: float | None, sample_ns: int | None) -> float | None:
        """Seconds without data: by the server's clock when known, else since the newest stored sample."""
        if arrived is not None:
            return now - arrived
        if sample_ns is not None:
            return max(0.0, (time.time_ns() - sample_ns) / 1e9)
        return None

    # ----- last seen per device -----

    async def last_seen(self, user: str) -> dict[str | None, int]:
        """The newest sample time (ns) of each device of the user; None is samples without a device tag.

        Never after now: a sample within the tolerance ahead of the clock counts as seen now, and one
        further ahead (stored before such samples were refused) is not counted at all.
        """
        if user not in self._seeded:
            stored = await device_last_seen(self._samples, user, time.time_ns() + self._settings.max_future_ns)
            devices = self._seen.setdefault(user, {})
            for device, newest_ns in stored.items():
                seen = devices.get(device)
                if seen is None:
                    devices[device] = _Seen(newest_ns)
                elif newest_ns > seen.newest_ns:
                    seen.newest_ns = newest_ns
            self._seeded.add(user)
        if self._shared is not None:  # what the other workers of the group committed (noted every second)
            devices = self._seen.setdefault(user, {})
            for device, newest_ns in (await self._shared.newest_of(user)).items():
                seen = devices.get(device)
                if seen is None:
                    devices[device] = _Seen(newest_ns)
                elif newest_ns > seen.newest_ns:
                    seen.newest_ns = newest_ns
        now_ns = time.time_ns()
        return {device: min(seen.newest_ns, now_ns) for device, seen in self._seen.get(user, {}).items()}

    # ----- what the owner sees -----

    def state(self, owner: str, device: str) -> dict[str, Any]:
        """"waiting" (no data since it was set or since start), "live" (deadline running) or "quiet" (fired)."""
        watch = self._watches.get(owner, {}).get(device)
        if watch is None:
            return {"state": "unknown", "last_sample_ns": None, "quiet_in_seconds": None}
        if watch.fired:
            state = "quiet"
        elif watch.arrived is None:
            state = "waiting"
        else:
            state = "live"
        remaining = None
        if state == "live" and watch.arrived is not None:
            remaining = max(0.0, watch.arrived + watch.quiet_seconds - self._clock())
        last_sample_ns = None if watch.last_sample_ns is None else min(watch.last_sample_ns, time.time_ns())  # never ahead
        return {"state": state, "last_sample_ns": last_sample_ns, "quiet_in_seconds": remaining}

    # ----- settings: loaded at start, and again whenever the accounts file changed -----

    async def reload(self) -> None:
        """Bring the alerts in memory in line with the accounts file (the CLI may have changed it)."""
        async with self._reload_lock:
            self._version = await self._accounts.data_version()
            records = await self._accounts.list_alerts()
            for owner in {record.owner for record in records}:
                await self.last_seen(owner)  # what storage knows, once per user
            # No await from here on: no data can arrive half-way through the switch.
            current: dict[str, dict[str, _Watch]] = {}
            for record in records:
                watch = self._watches.get(record.owner, {}).get(record.device)
                if watch is None or watch.id != record.id:
                    watch = self._new_watch(record)
                if not self._leading:  # fired or not is the leader's to say (in the accounts file)
                    watch.fired = record.fired_ns is not None
                if watch.quiet_seconds != record.quiet_seconds or watch.webhook_url != record.webhook_url:
                    watch.webhook_url = record.webhook_url
                    if watch.quiet_seconds != record.quiet_seconds:
                        watch.quiet_seconds = record.quiet_seconds
                        watch.scheduled = None  # the deadline moved, maybe earlier: a fresh heap entry
                        self._schedule(watch)
                current.setdefault(record.owner, {})[record.device] = watch
            for owner, watches in self._watches.items():
                for device, watch in watches.items():
                    if current.get(owner, {}).get(device) is not watch:
                        watch.removed = True
            self._watches = current
            self._wakeup.set()

    async def refresh(self) -> None:
        """`reload` if anything in the accounts file changed since the last one."""
        if not self._leading:
            await self._read_arrivals()  # a follower's page shows what the other workers got too
        if await self._accounts.data_version() != self._version:
            await self.reload()

    def _new_watch(self, record: AlertRecord) -> _Watch:
        watch = _Watch(
            record.id, record.owner, record.device, record.quiet_seconds, record.webhook_url,
            fired=record.fired_ns is not None,
        )  # fmt: skip
        candidates = [s for d, s in self._seen.get(record.owner, {}).items() if watch.matches(d)]
        if candidates:
            watch.last_sample_ns = max(s.newest_ns for s in candidates)
            arrivals = [s.arrived for s in candidates if s.arrived is not None]
            now = self._clock()
            if arrivals:
                watch.arrived = max(arrivals)
            else:
                # Known only from storage (a restart): live if the newest sample is recent enough,
                # counting from its time (never from the future: a phone's clock may be ahead).
                age = max(0.0, (time.time_ns() - watch.last_sample_ns) / 1e9)
                if age < watch.quiet_seconds:
                    watch.arrived = now - age
        self._schedule(watch)
        return watch

    # ----- deadlines -----

    def _schedule(self, watch: _Watch) -> None:
        """Make sure the alert has a heap entry no later than its deadline (if it is live)."""
        if watch.fired or watch.removed or watch.arrived is None or not self._leading:
            return
        deadline = watch.arrived + watch.quiet_seconds
        if watch.scheduled is not None and watch.scheduled <= deadline:
            return  # the entry comes due first and pushes itself again for the later deadline
        watch.generation += 1
        watch.scheduled = deadline
        heapq.heappush(self._heap, (deadline, next(self._tie), watch.generation, watch))
        if self._heap[0][3] is watch:
            self._wakeup.set()

    async def _run(self) -> None:
        check = self._settings.alert_check_seconds
        next_reload = self._clock() + check
        next_read = self._clock() + ARRIVALS_FLUSH_SECONDS
        while True:
            now = self._clock()
            try:
                due = bool(self._heap) and self._heap[0][0] + self._grace <= now
                if self._shared is not None and (now >= next_read or due):
                    next_read = now + ARRIVALS_FLUSH_SECONDS
                    await self._read_arrivals()  # before firing: the device may be sending to another worker
                    now = self._clock()
                self._fire_due(now)
                if now >= next_reload:
                    next_reload = now + check
                    await self.refresh()
            except Exception:  # a bad moment (a locked file, a bug) must not end the watching
                log.exception("checking gone-quiet alerts failed")
            self._wakeup.clear()
            wake_at = next_reload if self._shared is None else min(next_reload, next_read)
            if self._heap:
                wake_at = min(wake_at, self._heap[0][0] + self._grace)
            try:
                await asyncio.wait_for(self._wakeup.wait(), max(0.0, wake_at - self._clock()))
            except asyncio.TimeoutError:
                pass

    def _fire_due(self, now: float) -> None:
        while self._heap and self._heap[0][0] + self._grace <= now:
            _deadline, _tie, generation, watch = heapq.heappop(self._heap)
            if generation != watch.generation:
                continue  # superseded by a newer entry
            watch.scheduled = None
            if watch.removed or watch.fired or watch.arrived is None:
                continue
            if watch.arrived + watch.quiet_seconds > now:
                self._schedule(watch)  # data arrived meanwhile
                continue
            watch.fired = True
            self._notify(watch, QUIET, now - watch.arrived, fired_ns=time.time_ns())

    # ----- arrivals at the other workers of a group -----

    async def _note_arrivals_now_and_then(self) -> None:
        assert self._shared is not None
        while True:
            await asyncio.sleep(ARRIVALS_FLUSH_SECONDS)
            if not self._unnoted:
                continue
            unnoted, self._unnoted = self._unnoted, {}
            try:
                await self._shared.note_arrivals([(u, d, ns, at) for (u, d), (ns, at) in unnoted.items()])
            except sqlite3.Error as exc:  # kept for the next try
                log.error("noting arrivals for the gone-quiet alerts failed: %s", exc)
                for key, value in unnoted.items():
                    self._unnoted.setdefault(key, value)

    async def _read_arrivals(self) -> None:
        if self._shared is None:
            return
        for arrival in await self._shared.arrivals_since(self._arrivals_read):
            self._arrivals_read = arrival.seq
            self._saw(arrival.user, arrival.device, arrival.newest_ns, arrival.arrived)

    # ----- delivery -----

    def _notify(self, watch: _Watch, kind: str, silent_seconds: float | None, *, fired_ns: int | None) -> None:
        now_ns = time.time_ns()
        payload = {
            "kind": kind,
            "user": watch.owner,
            "device": watch.device or None,
            "last_sample_time": iso_time(watch.last_sample_ns) if watch.last_sample_ns is not None else None,
            "quiet_minutes": round(silent_seconds / 60, 2) if silent_seconds is not None else None,
            "after_minutes": round(watch.quiet_seconds / 60, 2),
            "at": iso_time(now_ns),
            "watch_url": f"{self._settings.external_url()}/watch/{watch.owner}",
        }
        notice = _Notice(kind, payload, fired_ns)
        previous = watch.delivery
        task = asyncio.create_task(self._deliver(watch, notice, previous))
        watch.delivery = task
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, watch: _Watch, notice: _Notice, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # one alert's notices in order; its outcome is its own
        where = f"{notice.kind} alert of {watch.owner}" + (f" ({watch.device})" if watch.device else "")
        try:
            await self._accounts.set_alert_fired(watch.id, notice.fired_ns)
        except sqlite3.Error as exc:
            log.error("saving the state of the %s failed: %s", where, exc)
        settings = self._settings
        host = urlsplit(watch.webhook_url).hostname  # never the whole URL: it may carry a secret
        body = orjson.dumps(notice.payload)
        for attempt in range(1, settings.alert_attempts + 1):
            status, problem = await self._post(watch.webhook_url, body)
            if problem is None:
                log.info("delivered the %s to %s (HTTP %s, attempt %d)", where, host, status, attempt)
                await self._record(watch, notice, DELIVERED, status, None, attempt)
                return
            # A refused destination is not retried: it would be refused again.
            retry = problem != NOT_ALLOWED and (status is None or status >= 500 or status in RETRY_STATUSES)
            if attempt == settings.alert_attempts or not retry:
                log.error("gave up delivering the %s to %s after %d attempt(s): %s", where, host, attempt, problem)
                await self._record(watch, notice, FAILED, status, problem, attempt)
                return
            delay = min(settings.alert_retry_max_seconds, settings.alert_retry_seconds * 2 ** (attempt - 1))
            delay *= random.uniform(0.5, 1.0)  # jitter: webhooks that failed together do not retry together
            log.warning(
                "delivering the %s to %s failed (attempt %d): %s; retrying in %.1f s", where, host, attempt, problem, delay
            )
            await self._record(watch, notice, RETRYING, status, problem, attempt)
            await asyncio.sleep(delay)

    async def _post(self, url: str, body: bytes) -> tuple[int | None, str | None]:
        """(HTTP status or None, what went wrong or None)."""
        assert self._http is not None
        timeout = self._settings.alert_timeout_seconds
        try:
            async with self._http.post(
                url,
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as response:
                status = response.status
        except asyncio.TimeoutError:
            return None, f"no answer within {timeout:g} s"
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, DestinationNotAllowed):
                return None, NOT_ALLOWED  # never the address or port: the owner must not learn the network
            return None, " ".join(str(exc).split()) or type(exc).__name__
        except (aiohttp.ClientError, ValueError, OSError) as exc:
            return None, " ".join(str(exc).split()) or type(exc).__name__
        if 200 <= status < 300:
            return status, None
        return status, f"HTTP {status}"

    async def _record(
        self, watch: _Watch, notice: _Notice, state: str, status: int | None, problem: str | None, attempts: int
    ) -> None:
        try:
            await self._accounts.record_alert_delivery(watch.id, notice.kind, state, status, problem, attempts)
        except sqlite3.Error as exc:
            log.error("saving a delivery outcome of %s's alert failed: %s", watch.owner, exc)
