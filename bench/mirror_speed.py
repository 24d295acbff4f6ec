"""The mirror's cost and throughput (workload `mirror` of `make bench`), against a local VictoriaMetrics.

1. Cost per acknowledged write: two fresh Trackers on copies of the same prepared folder (users
   user0..user99), A without a mirror and B with `--mirror` to VictoriaMetrics, compared by
   bench/compare.sh (B_URL: the same priming writes, then batch and live in the order A, B, A, B).
   Printed: req/s, lines/s, p50/p99 of each, B/A and the cost (1 - B/A) per workload, best of the
   rounds; after each of B's runs its queue depth and lag; then how long B took to drain.
2. Throughput: a third Tracker whose mirror's VictoriaMetrics is not running yet takes a backlog of
   --backlog points (/write bodies of 5,000 lines, 8 fields, users in turn); then VictoriaMetrics starts
   and the time until the queue is empty gives points/s delivered; VictoriaMetrics' own export is
   counted to check every point arrived. Last, the batch workload (wrk, 4 connections) runs against it
   with the target up: points acknowledged/s beside points delivered/s, until the queue is empty again.

Usage: .venv/bin/python bench/mirror_speed.py --prepared DATA_DIR [--duration 10] [--backlog 500000]
Needs wrk and victoria-metrics; without either it says so and exits 0 (bench/run.sh goes on).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sides import (
    HERE,
    Run,
    best,
    compare,
    cpu_seconds,
    exit_on_signals,
    metrics,
    pid,
    show,
    start_tracker,
    stop_process,
    tool,
)

from tests.victoria import VICTORIA_METRICS, VictoriaMetricsProcess

USERS = 100
BODY_LINES = 5_000  # as the batch workload
QUEUE = "tracker_mirror_queue_entries"
LAG = "tracker_mirror_lag_seconds"
DELIVERED = "tracker_mirror_delivered_points_total"
DRAIN_TIMEOUT_SECONDS = 600.0
BACKLOG_T0 = 1_400_000_000  # seconds; each user's backlog is its own run of seconds from here
STEADY_T0 = 1_200_000_000  # the steady-state batch run, apart from compare.sh's batch rounds
COST_TARGET = 0.10


def basic(user: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:password{user.removeprefix('user')}".encode()).decode()


def body(first_second: int, lines: int) -> bytes:
    """Lines like the batch workload's: 8 fields, one second apart."""
    return "\n".join(
        f"samples lat={48.1 + (s % 3600) * 1e-5:.6f},lng={11.5 + (s % 1800) * 1e-5:.6f},alt_m={520 + s % 40}.5,"
        f"spd_kph={28 + s % 6}.25,hr_bpm={120 + s % 50},cad_rpm={85 + s % 9},pwr_w={180 + s % 120},"
        f"dist_km={(s % 10000) * 0.0078:.3f} {s}"
        for s in range(first_second, first_second + lines)
    ).encode()


def write_backlog(url: str, points: int) -> float:
    """`points` points through POST /write, users in turn, 4 connections; seconds it took."""
    port = int(url.rsplit(":", 1)[1])
    bodies = points // BODY_LINES
    per_user = (bodies + USERS - 1) // USERS

    # Made before the clock starts (the nth body of every user is the same), so that the rate is the server's.
    payloads = [body(BACKLOG_T0 + nth * BODY_LINES, BODY_LINES) for nth in range(per_user)]

    def post(index: int) -> None:
        user, payload = f"user{index % USERS}", payloads[index // USERS]
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        try:
            connection.request("POST", f"/write?db={user}&precision=s", payload, {"Authorization": basic(user)})
            response = connection.getresponse()
            response.read()
            if response.status != 204:
                raise SystemExit(f"backlog write for {user} answered {response.status}")
        finally:
            connection.close()

    assert per_user * BODY_LINES <= 86_400 * 365  # stays well inside each user's own run of seconds
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(post, range(bodies)))
    return time.monotonic() - started


def wait_drained(url: str, timeout: float = DRAIN_TIMEOUT_SECONDS) -> tuple[float, dict[str, float]]:
    """Polls GET /metrics until the mirror's queue is empty: seconds waited and the last reading."""
    started = time.monotonic()
    while True:
        reading = metrics(url)
        if reading.get(QUEUE, 0) == 0:
            return time.monotonic() - started, reading
        if time.monotonic() - started > timeout:
            raise SystemExit(f"the mirror did not drain within {timeout:.0f} s: {reading.get(QUEUE):.0f} entries left")
        time.sleep(0.05)


def exported_points(victoria: VictoriaMetricsProcess) -> int:
    """Points VictoriaMetrics holds: distinct (user, time) of one field every point carries."""
    seen: set[tuple[str, int]] = set()
    for series in victoria.export('{__name__="samples_hr_bpm"}'):
        user = series["metric"].get("user", "")
        seen.update((user, t) for t in series["timestamps"])
    return len(seen)


def cost_table(runs: list[Run]) -> None:
    print("\nmirror cost, best of the rounds (A: no mirror, B: --mirror to VictoriaMetrics)")
    print(f"{'workload':<9} {'A req/s':>10} {'B req/s':>10} {'A lines/s':>11} {'B lines/s':>11} {'B/A':>6} "
          f"{'cost':>7} {'A p50/p99 ms':>14} {'B p50/p99 ms':>14}")  # fmt: skip
    for workload, lines in (("batch", BODY_LINES), ("live", 1)):
        a, b = best(runs, workload, "A"), best(runs, workload, "B")
        if not (a and b and a.rps and b.rps):
            print(f"{workload:<9} no complete pair of runs")
            continue
        ratio = b.rps / a.rps
        cost = 1 - ratio
        verdict = "within" if cost < COST_TARGET else "over"
        print(f"{workload:<9} {a.rps:>10.1f} {b.rps:>10.1f} {a.rps * lines:>11,.0f} {b.rps * lines:>11,.0f} "
              f"{ratio:>6.2f} {cost:>6.1%} {show(a.p50_ms, '.2f'):>6}/{show(a.p99_ms, '.1f'):<7} "
              f"{show(b.p50_ms, '.2f'):>6}/{show(b.p99_ms, '.1f'):<7} {verdict} the {COST_TARGET:.0%} target"
              + ("" if not (a.non2xx or b.non2xx or a.errors or b.errors) else "  (runs with errors: not comparable)"))


def measure_cost(stack: contextlib.ExitStack, scratch: Path, prepared: Path, duration: int) -> None:
    victoria = VictoriaMetricsProcess(scratch / "vm-cost")
    stack.callback(victoria.stop)
    victoria.start()
    plain = start_tracker(stack, prepared, scratch / "a", [])
    mirrored = start_tracker(stack, prepared, scratch / "b", ["--mirror", victoria.write_url])
    env = {**os.environ, "DUR": str(duration), "A_PID": pid(plain), "B_PID": pid(mirrored),
           "B_METRICS": f"^({QUEUE}|{LAG})"}  # fmt: skip
    print(f"cost: A {plain.url} (no mirror), B {mirrored.url} (--mirror {victoria.write_url})", flush=True)
    target_pid = str(victoria.process.pid) if victoria.process else ""
    processes = {"A": pid(plain), "B": pid(mirrored), "VictoriaMetrics": target_pid}
    before = {name: cpu_seconds(int(number)) for name, number in processes.items() if number}
    runs = compare(plain.url, mirrored.url, "Tracker --mirror", "batch live", env)
    cost_table(runs)
    # The target shares this machine's cores with A and B: how much of them it took is part of B's cost here.
    used = {name: cpu_seconds(int(processes[name])) - seconds for name, seconds in before.items()}
    print("CPU seconds used during the comparison: " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in used.items()))
    waited, reading = wait_drained(mirrored.url)
    print(f"B's mirror drained {waited:.1f} s after the last run: queue {reading.get(QUEUE, 0):.0f} entries, "
          f"lag {reading.get(LAG, 0):.1f} s, {reading.get(DELIVERED, 0):,.0f} points delivered in all")


def measure_throughput(stack: contextlib.ExitStack, scratch: Path, prepared: Path, duration: int, backlog: int) -> None:
    victoria = VictoriaMetricsProcess(scratch / "vm-backlog")  # its port is chosen now, it starts later
    stack.callback(victoria.stop)
    # A short retry ceiling, so the drain below measures delivery, not the back-off's last wait.
    tracker = start_tracker(stack, prepared, scratch / "c", ["--mirror", victoria.write_url, "--mirror-retry-max", "1"])
    points = backlog // BODY_LINES * BODY_LINES
    print(f"\nthroughput: {points:,} points written while the target is down", flush=True)
    seconds = write_backlog(tracker.url, points)
    queued = metrics(tracker.url)
    print(f"  written in {seconds:.1f} s ({points / seconds:,.0f} points/s acknowledged); "
          f"queue {queued.get(QUEUE, 0):,.0f} entries, lag {queued.get(LAG, 0):.1f} s")
    started = time.monotonic()
    victoria.start()
    up = time.monotonic()
    first_delivery = None
    while True:
        reading = metrics(tracker.url)
        if first_delivery is None and reading.get(DELIVERED, 0) > 0:
            first_delivery = time.monotonic()
        if reading.get(QUEUE, 0) == 0:
            break
        if time.monotonic() - started > DRAIN_TIMEOUT_SECONDS:
            raise SystemExit(f"the backlog did not drain within {DRAIN_TIMEOUT_SECONDS:.0f} s")
        time.sleep(0.05)
    drained = time.monotonic()
    delivered = reading.get(DELIVERED, 0)
    held = exported_points(victoria)
    from_first = drained - (first_delivery or up)
    print(f"  VictoriaMetrics up in {up - started:.1f} s; queue empty {drained - up:.1f} s later "
          f"({from_first:.1f} s from the first delivery): {delivered:,.0f} points delivered, "
          f"{delivered / max(from_first, 1e-9):,.0f} points/s")
    print(f"  VictoriaMetrics holds {held:,} of the {points:,} points"
          + ("" if held == points else "  MISSING POINTS"))
    if held != points:
        raise SystemExit(1)

    print(f"  steady state: the batch workload ({duration} s, 4 connections) with the target up", flush=True)
    before = metrics(tracker.url).get(DELIVERED, 0)
    report = scratch / "steady.txt"
    started = time.monotonic()
    env = {**os.environ, "DB": "user0", "BASIC": basic("user0").removeprefix("Basic "), "T0": str(STEADY_T0)}
    with report.open("w") as out:
        wrk = stack.enter_context(_popen(["wrk", "-t1", "-c4", f"-d{duration}s", "--timeout", "30s",
                                          "-s", str(HERE / "batch.lua"), tracker.url], env, out))  # fmt: skip
        wrk.wait()
    loaded = time.monotonic()
    behind = metrics(tracker.url)
    waited, reading = wait_drained(tracker.url)
    requests = _wrk_requests(report.read_text())
    delivered = reading.get(DELIVERED, 0) - before
    print(f"  acknowledged {requests * BODY_LINES / (loaded - started):,.0f} points/s; at the end of the load the "
          f"queue held {behind.get(QUEUE, 0):,.0f} entries (lag {behind.get(LAG, 0):.1f} s), empty {waited:.1f} s "
          f"later; delivered {delivered:,.0f} points, {delivered / (loaded - started + waited):,.0f} points/s "
          "from the load's start to the empty queue")


@contextlib.contextmanager
def _popen(command: list[str], env: dict[str, str], out: IO[str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        stop_process(process)


def _wrk_requests(report: str) -> int:
    """`N requests in ...` from wrk's report."""
    for line in report.splitlines():
        words = line.split()
        if len(words) > 1 and words[1] == "requests":
            return int(words[0])
    raise SystemExit(f"wrk printed no request count:\n{report}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepared", type=Path, required=True, help="data folder with user0..user99 (run.sh's)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (DUR)")
    parser.add_argument("--backlog", type=int, default=500_000, help="points written while the target is down")
    args = parser.parse_args()
    missing = [name for name, found in (("wrk", tool("wrk")), ("victoria-metrics", tool("victoria-metrics", VICTORIA_METRICS)))
               if not found]  # fmt: skip
    if missing:
        print(f"skipping the mirror measures: {' and '.join(missing)} not found (apt-get install -y {' '.join(missing)})")
        return 0
    exit_on_signals()
    with tempfile.TemporaryDirectory(prefix="mirror-bench-") as scratch, contextlib.ExitStack() as stack:
        measure_cost(stack, Path(scratch), args.prepared, args.duration)
        stack.close()  # A, B and their VictoriaMetrics stopped before the throughput measures
        measure_throughput(stack, Path(scratch), args.prepared, args.duration, args.backlog)
    return 0


if __name__ == "__main__":
    sys.exit(main())
