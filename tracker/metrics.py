"""GET /metrics: the server's numbers in Prometheus text format 0.0.4 (README "Metrics").

One small registry per worker process of counters, gauges and histograms, labelled only with
bounded values (a route's canonical path, a method, a status code: never a user, a URL or an
address). Whoever has something to count registers it once on `app[METRICS]` and updates it in
place; a scrape renders a snapshot. What the mirror to a time-series database reports (queue
depth, lag, last error) registers here the same way.

With several workers a scrape reaches one of them at random, yet must answer for the whole server.
Each worker publishes its snapshot to `run/metrics-<index>.json` every PUBLISH_SECONDS (written
aside, then renamed: a reader never sees half a file), and the worker answering a scrape merges its
live snapshot with the others' files: counters and histograms add up, each gauge merges as it says
(open streams add up, uptime is the oldest worker's). This is the simplest correct mechanism: no
message has to arrive (a datagram may be lost) and nothing is counted twice, and the cost on a
request is one dict update. The price is that another worker's numbers may be up to PUBLISH_SECONDS
old. A restarted worker starts from its predecessor's published counters, so the server's counters
never go down while it runs.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import ipaddress
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, Mapping

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

from tracker.group import Worker
from tracker.mirror import MirrorState

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PUBLISH_SECONDS = 1.0
WRITE_ROUTES = frozenset({"/write", "/api/v2/write"})  # their 204s are timed as write latency
# Methods are labels as they are; any other a client invents counts as "other" (bounded labels).
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Seconds: a write is usually a few ms, a group commit below one.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

Labels = tuple[str, ...]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(slots=True)
class Counter:
    """A count moved by `inc`, or read at each scrape (`read`) from what counts it already."""

    name: str
    help: str
    labels: Labels = ()
    read: Callable[[], Mapping[Labels, float]] | None = None
    values: dict[Labels, float] = field(default_factory=dict)

    def inc(self, label_values: Labels = (), amount: float = 1.0) -> None:
        self.values[label_values] = self.values.get(label_values, 0.0) + amount

    def current(self) -> dict[Labels, float]:
        return dict(self.read()) if self.read is not None else dict(self.values)


@dataclass(slots=True)
class Gauge:
    """A value set now and then (`set`), or read at each scrape (`read`). `merge`: how workers'
    values make the server's: "sum" (open streams, memory) or "max" (uptime)."""

    name: str
    help: str
    labels: Labels = ()
    merge: str = "sum"
    read: Callable[[], Mapping[Labels, float]] | None = None
    values: dict[Labels, float] = field(default_factory=dict)

    def set(self, value: float, label_values: Labels = ()) -> None:
        self.values[label_values] = value

    def current(self) -> dict[Labels, float]:
        return dict(self.read()) if self.read is not None else dict(self.values)


@dataclass(slots=True)
class Histogram:
    """Per label set: counts per bucket (not cumulative; the last is past the largest bound) and the sum."""

    name: str
    help: str
    buckets: tuple[float, ...]
    labels: Labels = ()
    values: dict[Labels, list[float]] = field(default_factory=dict)

    def observe(self, value: float, label_values: Labels = ()) -> None:
        counts = self.values.get(label_values)
        if counts is None:
            counts = self.values[label_values] = [0.0] * (len(self.buckets) + 2)
        counts[bisect.bisect_left(self.buckets, value)] += 1  # le is inclusive: value == bound falls in it
        counts[-1] += value


Metric = Counter | Gauge | Histogram


class Registry:
    """One worker's metrics, by name; each registered once."""

    def __init__(self) -> None:
        self._metrics: dict[str, Metric] = {}

    def _add(self, metric: Metric) -> Any:
        if metric.name in self._metrics:
            raise ValueError(f"metric {metric.name} is registered twice")
        self._metrics[metric.name] = metric
        return metric

    def counter(
        self, name: str, help: str, labels: Labels = (), *, read: Callable[[], Mapping[Labels, float]] | None = None
    ) -> Counter:
        return self._add(Counter(name, help, labels, read))  # type: ignore[no-any-return]

    def gauge(
        self, name: str, help: str, labels: Labels = (), *, merge: str = "sum",
        read: Callable[[], Mapping[Labels, float]] | None = None,
    ) -> Gauge:  # fmt: skip
        if merge not in ("sum", "max"):
            raise ValueError(f"gauge merge must be sum or max, got {merge!r}")
        return self._add(Gauge(name, help, labels, merge, read))  # type: ignore[no-any-return]

    def histogram(self, name: str, help: str, buckets: tuple[float, ...], labels: Labels = ()) -> Histogram:
        if list(buckets) != sorted(set(buckets)):
            raise ValueError("histogram buckets must be increasing")
        return self._add(Histogram(name, help, buckets, labels))  # type: ignore[no-any-return]

    def snapshot(self) -> dict[str, Any]:
        """Every metric's description and values, as JSON can carry them (a worker's published file)."""
        out: dict[str, Any] = {}
        for metric in self._metrics.values():
            entry: dict[str, Any] = {"help": metric.help, "labels": list(metric.labels)}
            if isinstance(metric, (Counter, Gauge)):
                try:
                    values = metric.current()
                except Exception:  # a reader's failure must not fail the whole scrape
                    log.exception("reading metric %s failed", metric.name)
                    values = {}
                entry.update(series=[[list(k), v] for k, v in values.items()])
                if isinstance(metric, Counter):
                    entry.update(type="counter")
                else:
                    entry.update(type="gauge", merge=metric.merge)
            else:
                entry.update(
                    type="histogram", buckets=list(metric.buckets),
                    series=[[list(k), list(v)] for k, v in metric.values.items()],
                )  # fmt: skip
            out[metric.name] = entry
        return out

    def continue_from(self, snapshot: Mapping[str, Any]) -> None:
        """Start this worker's counters and histograms where a predecessor's published snapshot left them."""
        for name, entry in snapshot.items():
            metric = self._metrics.get(name)
            if isinstance(metric, Counter) and metric.read is None and entry.get("type") == "counter":
                for labels, value in entry["series"]:
                    metric.inc(tuple(labels), float(value))
            elif isinstance(metric, Histogram) and entry.get("type") == "histogram":
                if list(metric.buckets) != entry.get("buckets"):
                    continue  # another version's buckets: they cannot be added up
                for labels, counts in entry["series"]:
                    mine = metric.values.setdefault(tuple(labels), [0.0] * (len(metric.buckets) + 2))
                    for i, count in enumerate(counts):
                        mine[i] += float(count)


def merge(snapshots: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The server's snapshot from its workers': the first snapshot's descriptions, every worker's values."""
    merged: dict[str, Any] = {}
    series: dict[str, dict[Labels, Any]] = {}
    for snapshot in snapshots:
        for name, entry in snapshot.items():
            if name not in merged:
                merged[name] = {**entry, "series": []}
                series[name] = {}
            mine, kind = series[name], merged[name]["type"]
            if entry["type"] != kind or (kind == "histogram" and entry["buckets"] != merged[name]["buckets"]):
                continue  # a worker of another version during an upgrade: left out rather than mixed
            for labels, value in entry["series"]:
                key = tuple(labels)
                if key not in mine:
                    mine[key] = list(value) if kind == "histogram" else value
                elif kind == "histogram":
                    mine[key] = [a + b for a, b in zip(mine[key], value)]
                elif kind == "gauge" and entry.get("merge") == "max":
                    mine[key] = max(mine[key], value)
                else:
                    mine[key] = mine[key] + value
    for name, entry in merged.items():
        entry["series"] = [[list(k), v] for k, v in series[name].items()]
    return merged


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value)) if value != int(value) else str(int(value))


def _label_text(names: Iterable[str], values: Iterable[str]) -> str:
    pairs = [
        f'{name}="{value.replace(chr(92), chr(92) * 2).replace(chr(10), chr(92) + "n").replace(chr(34), chr(92) + chr(34))}"'
        for name, value in zip(names, values)
    ]
    return "{" + ",".join(pairs) + "}" if pairs else ""


def render(snapshot: Mapping[str, Any]) -> str:
    """Prometheus text exposition format 0.0.4."""
    lines: list[str] = []
    for name, entry in snapshot.items():
        help_text = entry["help"].replace("\\", "\\\\").replace("\n", "\\n")
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {entry['type']}")
        names = entry["labels"]
        for labels, value in sorted(entry["series"], key=lambda item: item[0]):
            if entry["type"] != "histogram":
                lines.append(f"{name}{_label_text(names, labels)} {_number(value)}")
                continue
            cumulative = 0.0
            for bound, count in zip([*entry["buckets"], math.inf], value[:-1]):
                cumulative += count
                # Bounds as Prometheus' own clients spell them (1.0, not 1): one series per bound across servers.
                text = _label_text([*names, "le"], [*labels, "+Inf" if math.isinf(bound) else repr(float(bound))])
                lines.append(f"{name}_bucket{text} {_number(cumulative)}")
            lines.append(f"{name}_sum{_label_text(names, labels)} {_number(value[-1])}")
            lines.append(f"{name}_count{_label_text(names, labels)} {_number(cumulative)}")
    return "\n".join(lines) + "\n"


def resident_memory_bytes() -> dict[Labels, float]:
    """This process's resident set (Linux /proc); nothing elsewhere."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return {}
    return {(): float(pages * os.sysconf("SC_PAGE_SIZE"))}


class ServerMetrics:
    """Tracker's own metrics, registered on one registry: requests, writes, samples, commits, streams, process."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        started = time.monotonic()
        self.requests = registry.counter(
            "tracker_http_requests_total",
            "HTTP requests answered, by route (its pattern, not the URL), method and status code.",
            ("route", "method", "code"),
        )
        self.write_seconds = registry.histogram(
            "tracker_write_duration_seconds",
            "Seconds from a write request's arrival to its 204 (the samples committed).",
            LATENCY_BUCKETS, ("route",),
        )  # fmt: skip
        self.samples_written = registry.counter(
            "tracker_samples_written_total", "Samples committed, every way in (line protocol, phone apps, JSON API, files)."
        )
        self.commit_seconds = registry.histogram(
            "tracker_sqlite_commit_duration_seconds",
            "Seconds of one group commit of the sample writer (the journal and every user file in it).",
            COMMIT_BUCKETS,
        )
        registry.gauge(
            "tracker_uptime_seconds", "Seconds since the server (its oldest worker) started.", merge="max",
            read=lambda: {(): time.monotonic() - started},
        )  # fmt: skip
        registry.gauge(
            "tracker_workers", "Worker processes whose numbers this answer holds.", read=lambda: {(): 1.0}
        )
        registry.gauge(
            "process_resident_memory_bytes", "Resident memory of the server, all workers together.",
            read=resident_memory_bytes,
        )  # fmt: skip
        self.open_streams = registry.gauge("tracker_live_streams", "Open live event streams (watch pages, apps).")

    def watch_streams(self, count: Callable[[], int]) -> None:
        self.open_streams.read = lambda: {(): float(count())}

    def watch_mirrors(self, states: Callable[[], Iterable[MirrorState]]) -> None:
        """The --mirror deliveries, labelled by their URL (without credentials). Only the leading
        worker delivers; the others report zeros, so the server's value is the largest."""

        def each(value: Callable[[MirrorState], float | None]) -> Callable[[], dict[Labels, float]]:
            return lambda: {(s.target,): float(v) for s in states() if (v := value(s)) is not None}

        per_mirror: tuple[tuple[str, str, str, Callable[[MirrorState], float | None]], ...] = (
            ("gauge", "tracker_mirror_queue_entries", "Journal entries (write batches) waiting to be delivered to the mirror.",
             lambda s: s.queue_depth),
            ("gauge", "tracker_mirror_lag_seconds", "Age of the oldest entry waiting for the mirror; 0 when it is caught up.",
             lambda s: s.lag_seconds),
            ("counter", "tracker_mirror_delivered_points_total", "Points the mirror's target acknowledged (since the deliverer started).",
             lambda s: s.delivered_points),
            ("counter", "tracker_mirror_rejected_entries_total", "Journal entries the target refused as bad points (HTTP 400/422): skipped.",
             lambda s: s.rejected_entries),
            ("gauge", "tracker_mirror_dropped_entries", "Journal entries dropped undelivered after --mirror-max-lag, over the journal's life.",
             lambda s: s.dropped_entries),
            ("gauge", "tracker_mirror_alarm", "1 while entries were dropped and nothing has been delivered since.",
             lambda s: 1.0 if s.alarm else 0.0),
            ("gauge", "tracker_mirror_last_delivery_timestamp_seconds", "Unix time of the mirror's last delivered batch.",
             lambda s: s.last_delivery_at),
            ("gauge", "tracker_mirror_last_error_timestamp_seconds", "Unix time of the mirror's last failed delivery.",
             lambda s: s.last_error_at),
        )  # fmt: skip
        for kind, name, help_text, value in per_mirror:
            if kind == "counter":
                self.registry.counter(name, help_text, ("mirror",), read=each(value))
            else:
                self.registry.gauge(name, help_text, ("mirror",), merge="max", read=each(value))
        self.registry.gauge(
            "tracker_mirror_last_error_info", "The mirror's last error, as the label `error` (value 1).",
            ("mirror", "error"), merge="max",
            read=lambda: {(s.target, s.last_error[:200]): 1.0 for s in states() if s.last_error},
        )  # fmt: skip

    def middleware(self) -> Middleware:
        """Counts every answer by its route's pattern; times the write routes' 204s."""
        requests, write_seconds = self.requests, self.write_seconds

        @web.middleware
        async def measured(request: web.Request, handler: Handler) -> web.StreamResponse:
            started = time.perf_counter()
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:
                status = exc.status
                raise
            finally:
                # An unmatched URL counts as "unmatched": a route label is never a client's raw path.
                route = request.match_info.route.resource
                pattern = route.canonical if route is not None else "unmatched"
                method = request.method if request.method in _METHODS else "other"
                requests.inc((pattern, method, str(status)))
                if status == 204 and pattern in WRITE_ROUTES:
                    write_seconds.observe(time.perf_counter() - started, (pattern,))

        return measured


class Publisher:
    """A grouped worker's snapshot in the run folder, for the worker answering a scrape."""

    def __init__(self, registry: Registry, worker: Worker) -> None:
        self._registry = registry
        self._worker = worker

    def _path(self, index: int) -> Path:
        return self._worker.run_dir / f"metrics-{index}.json"

    def resume(self) -> None:
        """A restarted worker continues its predecessor's counts."""
        try:
            previous = orjson.loads(self._path(self._worker.index).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return
        self._registry.continue_from(previous)

    def publish(self, snapshot: Mapping[str, Any]) -> None:
        path = self._path(self._worker.index)
        partial = path.with_suffix(".partial")
        partial.write_bytes(orjson.dumps(snapshot))
        os.replace(partial, path)

    def others(self) -> list[dict[str, Any]]:
        """The other workers' latest published snapshots (file reads: off the event loop)."""
        snapshots = []
        for index in range(self._worker.count):
            if index == self._worker.index:
                continue
            try:
                snapshots.append(orjson.loads(self._path(index).read_bytes()))
            except (OSError, orjson.JSONDecodeError):
                continue  # not started yet: its numbers come with its first publication
        return snapshots

    async def run(self) -> None:
        while True:
            await asyncio.sleep(PUBLISH_SECONDS)
            try:
                # The snapshot on the loop (where the numbers change), the file write off it.
                await asyncio.to_thread(self.publish, self._registry.snapshot())
            except OSError as exc:
                log.error("publishing this worker's metrics failed: %s", exc)


@contextlib.asynccontextmanager
async def publishing(registry: Registry, worker: Worker) -> AsyncIterator[Publisher | None]:
    """With several workers: resume, publish every PUBLISH_SECONDS and once more at the end."""
    if not worker.grouped:
        yield None
        return
    publisher = Publisher(registry, worker)
    await asyncio.to_thread(publisher.resume)
    task = asyncio.create_task(publisher.run(), name="metrics-publisher")
    try:
        yield publisher
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        with contextlib.suppress(OSError):
            await asyncio.to_thread(publisher.publish, registry.snapshot())


def is_local(address: str | None) -> bool:
    """The client is this machine (loopback, IPv4 or IPv6)."""
    if not address:
        return False
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return parsed.is_loopback
