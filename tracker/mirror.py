"""Mirrors: every committed sample also written, as InfluxDB line protocol, to a time-series database.

The outbox is the write journal (tracker/storage/journal.py): an entry is recorded in the same
transaction that commits the samples, and the checkpoint keeps it until every mirror has delivered
it (a per-mirror delivered-id cursor in the journal, moved after the target acknowledged). So a
mirror costs an acknowledged write nothing beyond the journal record it already had, survives
restarts and SIGKILL (the cursor is only moved after delivery: at least once), and delivers in commit
order, so in order per user. One process delivers: the leader of a group of workers.

A point goes out as measurement `samples`, the user as tag `user=NAME` beside the sample's own tags,
the fields as stored, the time in nanoseconds. The same point sent twice is the same point in the
target (InfluxDB and VictoriaMetrics keep one value per series and time), which makes redelivery
after a crash harmless. Deletions (DELETE, DROP SERIES) are not mirrored: the mirror is a copy of
what was written. A target gone longer than --mirror-max-lag costs it the entries that waited that
long (the journal drops them, with an error in the log and the state's alarm); Tracker's own store
never loses anything for a mirror.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import aiohttp

from tracker.group import Leadership
from tracker.storage import DELETE_ENTRY, MirrorOutbox, decode_point_tuples

log = logging.getLogger(__name__)

Tags = tuple[tuple[str, str], ...]

MEASUREMENT = "samples"
USER_TAG = "user"
BATCH_ENTRIES = 1000  # journal entries read per batch
BATCH_BYTES = 2_000_000  # journal blob bytes per request, about 50,000 points (a bigger entry goes alone)
POLL_SECONDS = 0.2  # how often an idle mirror looks for new entries
FIRST_RETRY_SECONDS = 0.5
# Answers that say the points themselves are refused (a field's type conflicts with the target's
# series, say): retrying cannot help, so the batch is counted as rejected and delivery goes on.
REJECTED_STATUSES = (400, 422)


@dataclass(frozen=True, slots=True)
class MirrorTarget:
    """Where a mirror writes: `url` with its credentials taken out into `headers`."""

    key: str  # the URL without credentials: names the mirror in the journal and the logs
    kind: str  # "influxdb-v1" (InfluxDB 1.x, VictoriaMetrics) or "influxdb-v2"
    url: str
    headers: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, raw: str) -> MirrorTarget:
        """A --mirror URL; ValueError naming the rule it breaks."""
        parts = urlsplit(raw.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"mirror {_redacted(raw)!r}: must be an http:// or https:// URL with a host")
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "precision"]
        names = {k for k, _ in query}
        headers: list[tuple[str, str]] = []
        if parts.path.endswith("/api/v2/write"):
            kind = "influxdb-v2"
            if not {"bucket", "org"} <= names:
                raise ValueError(f"mirror {_redacted(raw)!r}: an /api/v2/write URL needs bucket= and org=")
            if parts.password:  # http://:TOKEN@host/api/v2/write?...
                headers.append(("Authorization", f"Token {unquote(parts.password)}"))
        elif parts.path.endswith("/write"):
            kind = "influxdb-v1"
            if parts.username or parts.password:
                credentials = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
                headers.append(("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode()))
        else:
            raise ValueError(
                f"mirror {_redacted(raw)!r}: the path must end in /write (InfluxDB 1.x, VictoriaMetrics), "
                "/influx/write or /api/v2/write (InfluxDB 2.x)"
            )
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        netloc = host + (f":{parts.port}" if parts.port else "")
        url = urlunsplit((parts.scheme, netloc, parts.path, urlencode(query), ""))
        return cls(key=url, kind=kind, url=url, headers=tuple(headers))


def _redacted(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.password is None:
        return raw
    return raw.replace(f":{parts.password}@", ":***@", 1)


# --------------------------------------------------------------------------------------------------
# Line protocol


def _escape_key(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _field_value(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return None


def encode_lines(user: str, points: Iterable[tuple[int, Tags, dict[str, Any]]]) -> list[str]:
    """The user's points, (time ns, tags, fields) as the journal keeps them, as lines of
    `samples,user=NAME,<tags> <fields> <time ns>`."""
    lines = []
    # A batch's points share a few tag sets and field names: each is escaped once.
    prefixes: dict[Tags, str] = {}
    keys: dict[str, str] = {}
    for time_ns, tags, fields in points:
        prefix = prefixes.get(tags)
        if prefix is None:
            own = sorted((k, v) for k, v in (*tags, (USER_TAG, user)) if v != "" and (k != USER_TAG or v == user))
            prefix = prefixes[tags] = MEASUREMENT + "".join(f",{_escape_key(k)}={_escape_key(v)}" for k, v in own)
        parts = []
        for name, value in fields.items():
            if type(value) is float and value - value == 0.0:  # a finite float: nearly every value
                text = repr(value)
            elif (encoded := _field_value(value)) is not None:
                text = encoded
            else:
                continue
            key = keys.get(name)
            if key is None:
                key = keys[name] = _escape_key(name)
            parts.append(f"{key}={text}")
        if parts:
            lines.append(f"{prefix} {','.join(parts)} {time_ns}")
    return lines


def encode_batch(rows: list[tuple[int, str, str, bytes, int]]) -> tuple[bytes, int]:
    """(the request body, points in it) for journal rows; deletions are left out (module docstring)."""
    lines: list[str] = []
    for _id, user, on_conflict, blob, _at in rows:
        if on_conflict != DELETE_ENTRY:
            lines.extend(encode_lines(user, decode_point_tuples(blob)))
    return ("\n".join(lines) + "\n").encode() if lines else b"", len(lines)


def _exit_with_parent(parent_pid: int) -> None:
    """In the encoder process: end it when the server is gone. A SIGKILLed server runs no shutdown,
    and the pool's process would otherwise wait for work forever."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


class BatchEncoder:
    """encode_batch in a process of its own. It is Python at about 3 µs a point; in the serving
    process it would hold the GIL the writes need (it cost the batch workload a third of its
    throughput, measured). Off it, an acknowledged write pays nothing for it, and the delivery lags
    instead when a core cannot keep up. One process for all mirrors, started with the first batch,
    started again if it dies."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    async def encode(self, rows: list[tuple[int, str, str, bytes, int]]) -> tuple[bytes, int]:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                initializer=_exit_with_parent, initargs=(os.getpid(),),
            )  # fmt: skip
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, encode_batch, rows)
        except BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None  # the next try starts a new one
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


# --------------------------------------------------------------------------------------------------
# Delivery


@dataclass(slots=True)
class MirrorState:
    """What a mirror is up to, for logs and the metrics endpoint."""

    target: str
    max_lag_seconds: float
    delivering: bool = False  # this process delivers (the leader)
    queue_depth: int = 0  # journal entries waiting
    lag_seconds: float = 0.0  # age of the oldest entry waiting
    delivered_points: int = 0  # since this process started
    rejected_entries: int = 0  # refused by the target (400): skipped
    dropped_entries: int = 0  # given up after max lag: over the journal's life
    last_error: str | None = None
    last_error_at: float | None = None  # time.time()
    last_delivery_at: float | None = None
    alarm: str | None = None  # set when entries were dropped; cleared by the next delivery
    _lag_warned: bool = field(default=False, repr=False)


class MirrorDelivery:
    """Delivers one mirror's entries from the outbox, in order, batched, retrying with backoff."""

    def __init__(
        self,
        target: MirrorTarget,
        outbox: MirrorOutbox,
        session: aiohttp.ClientSession,
        encoder: BatchEncoder,
        *,
        max_lag_seconds: float,
        retry_max_seconds: float,
        timeout_seconds: float,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.target = target
        self.state = MirrorState(target.key, max_lag_seconds)
        self._outbox = outbox
        self._session = session
        self._encoder = encoder
        self._retry_max = retry_max_seconds
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._poll = poll_seconds

    async def run(self) -> None:
        state = self.state
        state.delivering = True
        _, state.dropped_entries = await self._outbox.cursor(self.target.key)
        backoff = FIRST_RETRY_SECONDS
        while True:
            try:
                delivered = await self._step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the target down, slow or refusing; the journal unreadable for a moment
                state.last_error, state.last_error_at = _describe(exc), time.time()
                log.warning("mirror %s: %s; retrying in %.1f s", self.target.key, state.last_error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._retry_max)
                continue
            backoff = FIRST_RETRY_SECONDS
            if not delivered:
                await asyncio.sleep(self._poll)

    async def _step(self) -> bool:
        """Deliver one batch; False when there was nothing to deliver."""
        state, key = self.state, self.target.key
        delivered_id, dropped = await self._outbox.cursor(key)
        if dropped > state.dropped_entries:
            state.alarm = (
                f"{dropped - state.dropped_entries} journal entries were dropped undelivered: "
                f"the target was unreachable for more than {state.max_lag_seconds:g} s"
            )
            log.error("mirror %s: %s", key, state.alarm)
            state.dropped_entries = dropped
        await self._note_backlog(delivered_id)
        rows = await self._outbox.entries(delivered_id, BATCH_ENTRIES, BATCH_BYTES)
        if not rows:
            return False
        body, points = await self._encoder.encode(rows)
        if body:
            await self._post(body, len(rows))
        await self._outbox.delivered(key, rows[-1][0])
        state.delivered_points += points
        state.last_delivery_at = time.time()
        state.alarm = None  # the target takes writes again
        return True

    async def _post(self, body: bytes, entries: int) -> None:
        headers = {"Content-Type": "text/plain; charset=utf-8", **dict(self.target.headers)}
        async with self._session.post(self.target.url, data=body, headers=headers, timeout=self._timeout) as response:
            if response.status // 100 == 2:
                return
            text = (await response.text(errors="replace"))[:300].strip()
            if response.status in REJECTED_STATUSES:
                self.state.rejected_entries += entries
                self.state.last_error, self.state.last_error_at = f"HTTP {response.status}: {text}", time.time()
                log.error("mirror %s refused a batch of %d entries, skipped: HTTP %d %s",
                          self.target.key, entries, response.status, text)  # fmt: skip
                return
            raise MirrorRefused(f"HTTP {response.status}: {text}")

    async def _note_backlog(self, delivered_id: int) -> None:
        state = self.state
        state.queue_depth, oldest_ns = await self._outbox.backlog(delivered_id)
        state.lag_seconds = max(0.0, time.time() - oldest_ns / 1e9) if oldest_ns is not None else 0.0
        if state.lag_seconds > state.max_lag_seconds / 2 and not state._lag_warned:
            state._lag_warned = True
            log.error("mirror %s is %.0f s behind; past %g s its oldest entries are dropped",
                      state.target, state.lag_seconds, state.max_lag_seconds)  # fmt: skip
        elif state.lag_seconds <= state.max_lag_seconds / 2:
            state._lag_warned = False


class MirrorRefused(Exception):
    """The target answered, but not with success (and not with a refusal of the points themselves)."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


class Mirrors:
    """Every configured mirror of this process; they deliver only while this worker leads."""

    def __init__(
        self,
        outbox: MirrorOutbox,
        targets: Iterable[MirrorTarget],
        *,
        max_lag_seconds: float,
        retry_max_seconds: float,
        timeout_seconds: float,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._outbox = outbox
        self._session: aiohttp.ClientSession | None = None
        self._encoder = BatchEncoder()
        self._targets = list(targets)
        self._max_lag = max_lag_seconds
        self._retry_max = retry_max_seconds
        self._timeout = timeout_seconds
        self._poll = poll_seconds
        self._deliveries: list[MirrorDelivery] = []
        self._tasks: list[asyncio.Task[None]] = []

    def states(self) -> list[MirrorState]:
        return [delivery.state for delivery in self._deliveries]

    async def start(self, leadership: Leadership) -> None:
        """Register the mirrors in the journal (before any write is served: from then on entries wait
        for them), then deliver once this worker leads."""
        await self._outbox.register({target.key: int(self._max_lag * 1e9) for target in self._targets})
        if not self._targets:
            return
        self._session = aiohttp.ClientSession()
        self._deliveries = [
            MirrorDelivery(
                target, self._outbox, self._session, self._encoder, max_lag_seconds=self._max_lag,
                retry_max_seconds=self._retry_max, timeout_seconds=self._timeout, poll_seconds=self._poll,
            )  # fmt: skip
            for target in self._targets
        ]

        async def deliver_when_leading(delivery: MirrorDelivery) -> None:
            await leadership.acquired()
            await delivery.run()

        self._tasks = [asyncio.create_task(deliver_when_leading(d)) for d in self._deliveries]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        await asyncio.to_thread(self._encoder.close)
        await self._outbox.close()
