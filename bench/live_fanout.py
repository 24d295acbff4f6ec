"""Live fan-out benchmark: riders post samples, viewers watch them arrive over Server-Sent Events.

    .venv/bin/python bench/live_fanout.py http://127.0.0.1:8086 --server-pid PID

R riders (users user0..user{R-1}, passwords password0..) each post one sample per write, at --rate
samples/s, through the InfluxDB-compatible POST /write. V viewers, spread evenly over the riders,
hold open GET /api/watch/USER/events, so the riders must be watchable without signing in
(`tracker user public userN on`). Reported:

- latency from the moment a write's 204 reaches the rider to the moment the sample's event reaches
  a viewer (both clocks are this process's monotonic clock). The server publishes right after the
  commit, before it answers, so an event can beat its 204 to this process: such latencies are
  negative and kept that way;
- events expected (samples x viewers of that rider), received, missing and duplicated;
- the server's resident memory (VmRSS of --server-pid, default env A_PID, and its worker processes) before the viewers
  connect and once they are all open, and the difference per open viewer.

Exit status: 0 when every event arrived exactly once, 1 when any is missing or duplicated (or a
write failed, or a stream was reset or cut off), 2 when the run could not be set up.
Only loopback servers are accepted; every network wait has a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import ipaddress
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

WRITE_TIMEOUT = aiohttp.ClientTimeout(total=10.0)
# The server sends `: ping` every 15 s on a quiet stream, so a read gap beyond this means it is gone.
STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=5.0, sock_read=45.0)
CONNECT_TIMEOUT = 10.0  # per viewer, until the stream's headers have arrived


class SetupError(Exception):
    """The run could not start (bad URL, server not reachable, streams not opened): exit 2."""


@dataclass
class Rider:
    index: int
    user: str
    authorization: str  # the Basic credentials header (userN:passwordN)
    last_ns: int = 0
    posted: dict[int, float] = field(default_factory=dict)  # sample time (ns) -> monotonic time of the 204
    write_ms: list[float] = field(default_factory=list)  # request sent -> 204 received
    failures: list[str] = field(default_factory=list)
    late: int = 0  # writes that started behind schedule (the server or this client could not keep up)

    def next_timestamp(self) -> int:
        """Wall-clock ns, strictly increasing per rider, so every sample is a new one."""
        self.last_ns = max(time.time_ns(), self.last_ns + 1)
        return self.last_ns

    def line(self, t_ns: int) -> bytes:
        n = len(self.posted)
        lat = 52.52 + 0.001 * self.index + 0.00001 * n
        lng = 13.40 + 0.001 * self.index + 0.00001 * n
        return f"samples lat={lat:.6f},lng={lng:.6f},hr_bpm={120 + n % 40} {t_ns}".encode()


@dataclass
class Viewer:
    index: int
    rider: Rider
    opened: asyncio.Future[None]
    arrivals: dict[int, list[float]] = field(default_factory=dict)  # sample time (ns) -> monotonic arrival times
    resets: int = 0
    denied: int = 0
    error: str | None = None  # why the stream failed or ended early


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("url", help="the server, e.g. http://127.0.0.1:8086 (loopback only)")
    p.add_argument("--riders", type=int, default=10, help="users posting samples: user0.. (default 10)")
    p.add_argument(
        "--viewers", type=int, default=100, help="open event streams, spread evenly over the riders (default 100)"
    )
    p.add_argument("--rate", type=float, default=1.0, help="samples per second per rider, one per write (default 1.0)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of posting (default 30)")
    p.add_argument(
        "--server-pid", type=int, default=None, help="the server's process id, for its memory (default env A_PID)"
    )
    p.add_argument("--open-timeout", type=float, default=15.0, help="seconds to wait until every stream is open (15)")
    p.add_argument(
        "--drain", type=float, default=5.0, help="seconds to wait for the last events after the last write (5)"
    )
    p.add_argument("--target-p99-ms", type=float, default=50.0, help="the p99 latency target to report against (50)")
    args = p.parse_args(argv)
    if args.riders < 1 or args.viewers < 1 or args.rate <= 0 or args.duration <= 0:
        p.error("--riders, --viewers, --rate and --duration must be positive")
    if args.server_pid is None and os.environ.get("A_PID", "").isdigit():
        args.server_pid = int(os.environ["A_PID"])
    return args


def loopback_base(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise SetupError(f"not an http URL: {url!r}")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SetupError(f"{host} is not a loopback address: this benchmark only runs against a local server")
    return url.rstrip("/")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants: a server with worker processes counts whole."""
    found = [pid]
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                found += process_tree(int(child))
    except (OSError, ValueError):
        pass
    return found


def memory_kib(pid: int | None) -> int | None:
    """The resident set size in KiB (VmRSS) of the process and its descendants, or None when unknown."""
    if pid is None:
        return None
    total = 0
    try:
        for member in process_tree(pid):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return total or None


async def post(session: aiohttp.ClientSession, base: str, rider: Rider) -> None:
    """One write of one new sample; the 204's arrival time is recorded under the sample's time."""
    t_ns = rider.next_timestamp()
    sent = time.monotonic()
    try:
        async with session.post(
            f"{base}/write",
            params={"db": rider.user, "precision": "ns"},
            data=rider.line(t_ns),
            headers={"Authorization": rider.authorization},
            timeout=WRITE_TIMEOUT,
        ) as response:
            answered = time.monotonic()
            if response.status == 204:
                rider.posted[t_ns] = answered
                rider.write_ms.append((answered - sent) * 1000)
            else:
                body = (await response.text())[:200]
                rider.failures.append(f"HTTP {response.status}: {body}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        rider.failures.append(f"{type(exc).__name__}: {exc}")


async def ride(session: aiohttp.ClientSession, base: str, rider: Rider, rate: float, start: float, end: float) -> None:
    """Post at `rate` per second from `start` (each rider at its own phase) until `end`."""
    interval = 1.0 / rate
    due = start
    while due < end:
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -interval:
            rider.late += 1
            due = time.monotonic()  # behind schedule: go on from now rather than bursting to catch up
        await post(session, base, rider)
        due += interval


async def watch(session: aiohttp.ClientSession, base: str, viewer: Viewer) -> None:
    """Hold one event stream open, recording when each sample's event arrives. Runs until cancelled."""
    url = f"{base}/api/watch/{viewer.rider.user}/events"
    try:
        async with session.get(url, headers={"Accept": "text/event-stream"}, timeout=STREAM_TIMEOUT) as response:
            if response.status != 200:
                body = (await response.text())[:200]
                hint = (
                    f" (make it watchable: tracker user public {viewer.rider.user} on)"
                    if response.status in (401, 403)
                    else ""
                )
                raise SetupError(f"GET {url}: HTTP {response.status} {body}{hint}")
            # The server registers the subscription before it sends the headers: from here on nothing is missed.
            viewer.opened.set_result(None)
            name, data = "message", list[bytes]()
            async for raw in response.content:
                arrived = time.monotonic()
                line = raw.rstrip(b"\r\n")
                if not line:  # a blank line ends the event
                    if data:
                        record(viewer, name, b"\n".join(data), arrived)
                    name, data = "message", list[bytes]()
                    continue
                if line.startswith(b":"):
                    continue  # comment: the heartbeat
                key, _, value = line.partition(b":")
                if value.startswith(b" "):
                    value = value[1:]
                if key == b"event":
                    name = value.decode()
                elif key == b"data":
                    data.append(value)
                # id: and retry: need no handling here: this client never reconnects
            viewer.error = "the server ended the stream"
    except SetupError as exc:
        if not viewer.opened.done():
            viewer.opened.set_exception(exc)
        viewer.error = str(exc)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        message = f"{type(exc).__name__}: {exc}"
        if not viewer.opened.done():
            viewer.opened.set_exception(SetupError(f"GET {url}: {message}"))
        viewer.error = message


def record(viewer: Viewer, name: str, data: bytes, arrived: float) -> None:
    if name == "samples":
        for sample in json.loads(data)["samples"]:
            viewer.arrivals.setdefault(sample["t"], []).append(arrived)
    elif name == "reset":
        viewer.resets += 1  # the server dropped this viewer's queue: events were lost
    elif name == "denied":
        viewer.denied += 1


def all_received(viewers: list[Viewer]) -> bool:
    return all(t in v.arrivals for v in viewers for t in v.rider.posted)


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


@dataclass
class Outcome:
    ok: bool
    lines: list[str]


async def run(args: argparse.Namespace) -> Outcome:
    base = loopback_base(args.url)
    riders = [Rider(i, f"user{i}", basic(f"user{i}", f"password{i}")) for i in range(args.riders)]
    loop = asyncio.get_running_loop()
    viewers = [Viewer(j, riders[j % args.riders], loop.create_future()) for j in range(args.viewers)]
    per_rider = [sum(1 for v in viewers if v.rider is r) for r in riders]

    write_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.riders))
    stream_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    streams: list[asyncio.Task[None]] = []
    try:
        # Warm-up: each rider's first write pays one-time costs (its file, the password check);
        # none of that belongs in the latencies, and no viewer is listening yet.
        await asyncio.gather(*(post(write_session, base, r) for r in riders))
        failed = [f"{r.user}: {r.failures[0]}" for r in riders if r.failures]
        if failed:
            raise SetupError("warm-up writes failed: " + "; ".join(failed))
        for r in riders:
            r.posted.clear()
            r.write_ms.clear()

        rss_before = memory_kib(args.server_pid)
        opening = time.monotonic()
        streams = [asyncio.create_task(watch(stream_session, base, v)) for v in viewers]
        try:
            async with asyncio.timeout(args.open_timeout):
                await asyncio.gather(*(v.opened for v in viewers))
        except TimeoutError:
            open_now = sum(1 for v in viewers if v.opened.done() and not v.opened.exception())
            raise SetupError(
                f"only {open_now} of {args.viewers} streams opened within {args.open_timeout:g} s"
            ) from None
        open_seconds = time.monotonic() - opening
        await asyncio.sleep(1.0)  # let the server settle before reading its memory
        rss_open = memory_kib(args.server_pid)

        start = time.monotonic() + 0.2
        end = start + args.duration
        interval = 1.0 / args.rate
        await asyncio.gather(
            *(ride(write_session, base, r, args.rate, start + interval * r.index / args.riders, end) for r in riders)
        )
        drained = time.monotonic() + args.drain
        while not all_received(viewers) and time.monotonic() < drained:
            await asyncio.sleep(0.05)
        rss_after = memory_kib(args.server_pid)
    finally:
        for task in streams:
            task.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
        await write_session.close()
        await stream_session.close()

    return report(args, riders, viewers, per_rider, open_seconds, (rss_before, rss_open, rss_after))


def report(
    args: argparse.Namespace,
    riders: list[Rider],
    viewers: list[Viewer],
    per_rider: list[int],
    open_seconds: float,
    rss: tuple[int | None, int | None, int | None],
) -> Outcome:
    posted = sum(len(r.posted) for r in riders)
    expected = sum(len(r.posted) * n for r, n in zip(riders, per_rider))
    latencies: list[float] = []
    missing = duplicates = unexpected = 0
    for v in viewers:
        sent = v.rider.posted
        for t, arrivals in v.arrivals.items():
            if t not in sent:
                unexpected += len(arrivals)  # a sample whose write did not get its 204 here
                continue
            duplicates += len(arrivals) - 1
            latencies.append((arrivals[0] - sent[t]) * 1000)
        missing += sum(1 for t in sent if t not in v.arrivals)
    received = sum(len(a) for v in viewers for a in v.arrivals.values())
    failures = [f"{r.user}: {f}" for r in riders for f in r.failures]
    resets = sum(v.resets for v in viewers)
    denied = sum(v.denied for v in viewers)
    broken = [f"viewer {v.index} ({v.rider.user}): {v.error}" for v in viewers if v.error]

    spread = f"{min(per_rider)}" if min(per_rider) == max(per_rider) else f"{min(per_rider)}-{max(per_rider)}"
    lines = [
        (
            f"fan-out: {args.riders} riders x {args.rate:g} samples/s, {args.viewers} viewers ({spread} per rider), "
            f"{args.duration:g} s of writes"
        ),
        f"  streams open         {args.viewers} in {open_seconds * 1000:.0f} ms",
        f"  samples posted       {posted:,} ({posted / args.duration:.1f}/s; {sum(r.late for r in riders)} writes behind schedule)",
    ]
    write_ms = sorted(ms for r in riders for ms in r.write_ms)
    if write_ms:
        lines.append(
            f"  write round trip     p50 {percentile(write_ms, 50):.2f} ms, p99 {percentile(write_ms, 99):.2f} ms"
        )
    lines += [
        f"  events expected      {expected:,}",
        f"  events received      {received:,}",
        f"  missing              {missing:,}",
        f"  duplicates           {duplicates:,}",
    ]
    if unexpected:
        lines.append(f"  unexpected           {unexpected:,} (samples whose write got no 204 here)")
    if latencies:
        latencies.sort()
        early = sum(1 for ms in latencies if ms < 0)
        p99 = percentile(latencies, 99)
        lines += [
            "  latency, write's 204 -> event at a viewer (ms):",
            (
                f"    p50 {percentile(latencies, 50):.2f}   p90 {percentile(latencies, 90):.2f}   "
                f"p99 {p99:.2f}   max {latencies[-1]:.2f}   min {latencies[0]:.2f}"
            ),
            f"    {early:,} of {len(latencies):,} events arrived before their 204 (negative latency)",
            f"    target p99 < {args.target_p99_ms:g} ms: {'met' if p99 < args.target_p99_ms else 'NOT met'}",
        ]
    before, opened, after = rss
    if before is not None and opened is not None:
        per_viewer = (opened - before) / args.viewers
        lines.append(
            f"  server memory        RSS {before:,} KiB before the viewers, {opened:,} KiB with {args.viewers} open: "
            f"{per_viewer:.1f} KiB per open viewer"
        )
        if after is not None:
            lines.append(f"                       RSS {after:,} KiB after the writes")

    else:
        lines.append("  server memory        unknown (give --server-pid or A_PID of a server on this machine)")

    problems = []
    if missing or duplicates:
        problems.append(f"{missing} events missing, {duplicates} duplicated")
    if failures:
        problems.append(f"{len(failures)} writes failed, first: {failures[0]}")
    if resets or denied:
        problems.append(f"{resets} resets and {denied} denials on the streams")
    if broken:
        problems.append(f"{len(broken)} streams failed, first: {broken[0]}")
    if posted == 0:
        problems.append("no sample was posted")
    lines += [f"FAILED: {p}" for p in problems]
    return Outcome(not problems, lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # Everything is bounded: a stuck server cannot hold the benchmark forever.
    deadline = CONNECT_TIMEOUT + args.open_timeout + args.duration + args.drain + 30.0

    async def bounded() -> Outcome:
        async with asyncio.timeout(deadline):
            return await run(args)

    try:
        outcome = asyncio.run(bounded())
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TimeoutError:
        print(f"error: the benchmark did not finish within {deadline:g} s", file=sys.stderr)
        return 2
    print("\n".join(outcome.lines))
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
