"""Live writes through HAProxy, one shard and two, against one Tracker (workload `shards` of `make bench`).

Every comparison is bench/compare.sh's live workload (100 users in turn, 100 connections, wrk), A
against B in the order A, B, A, B, with A always one fresh Tracker (`--workers 1`) reached directly and B:

- `proxy, 1 shard`: one fresh Tracker (`--workers 1`) behind HAProxy: what the proxy itself costs;
- `proxy, 2 shards`: two fresh Trackers (`--workers 1` each, a data folder each) behind HAProxy, the
  even users on shard a and the odd on shard b by the shard map;
- `--workers 2`: one fresh Tracker with two worker processes, reached directly, for comparison.

The proxy's configuration is `tracker shard haproxy-config`'s, from a shard map; its runtime socket and
files stay in the scratch folder. Every Tracker starts on a copy of the folder bench/run.sh prepared, so
each shard holds all 100 accounts but only its own users' samples. Printed: req/s and p50/p99 of each
side, best of the rounds, and B/A.

Usage: .venv/bin/python bench/shard_speed.py --prepared DATA_DIR [--duration 10]
Needs wrk and haproxy; without either it says so and exits 0 (bench/run.sh goes on).
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sides import (
    Run,
    best,
    compare,
    exit_on_signals,
    pid,
    show,
    start_tracker,
    stop_process,
    tool,
)

from tests.tracker_process import HOST, TrackerProcess, free_port

USERS = 100
HAPROXY = "/usr/sbin/haproxy"
PROXY_READY_SECONDS = 30.0


def start_proxy(stack: contextlib.ExitStack, folder: Path, shards: dict[str, TrackerProcess]) -> str:
    """HAProxy in front of `shards` (name → Tracker), configured by `tracker shard haproxy-config` from
    a map that puts user N on the (N mod shards)th shard; its URL once every shard passes its check."""
    folder.mkdir(parents=True, exist_ok=True)
    names = list(shards)
    lines = [f"shard {name} {HOST}:{tracker.port}" for name, tracker in shards.items()]
    lines.append(f"default {names[0]}")
    lines += [f"user{n} {names[n % len(names)]}" for n in range(USERS)]
    (folder / "shards.map").write_text("\n".join(lines) + "\n")
    port = free_port()
    subprocess.run(
        [sys.executable, "-m", "tracker", "shard", "haproxy-config", "--map", str(folder / "shards.map"),
         "--bind", f"{HOST}:{port}", "--out", str(folder / "proxy")],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    log = stack.enter_context((folder / "haproxy.log").open("wb"))
    proxy = subprocess.Popen([tool("haproxy", HAPROXY) or HAPROXY, "-db", "-f", str(folder / "proxy" / "haproxy.cfg")],
                             stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    stack.callback(stop_proxy, proxy)
    deadline = time.monotonic() + PROXY_READY_SECONDS
    # Up once a user of every shard gets through: the proxy's health checks have passed.
    probes = [f"user{n}" for n in range(len(names))]
    while not all(_reaches(port, user) for user in probes):
        if proxy.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"HAProxy did not route to every shard within {PROXY_READY_SECONDS:.0f} s:\n"
                             + (folder / "haproxy.log").read_text(errors="replace")[-3000:])  # fmt: skip
        time.sleep(0.1)
    return f"http://{HOST}:{port}"


def stop_proxy(proxy: subprocess.Popen[bytes]) -> None:
    stop_process(proxy)


def _reaches(port: int, user: str) -> bool:
    number = user.removeprefix("user")
    auth = "Basic " + base64.b64encode(f"{user}:password{number}".encode()).decode()
    connection = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        connection.request("GET", f"/query?db={user}&q=SHOW+DATABASES", headers={"Authorization": auth})
        response = connection.getresponse()
        response.read()
        return response.status == 200
    except OSError:
        return False
    finally:
        connection.close()


def one_comparison(scratch: Path, prepared: Path, label: str, duration: int) -> tuple[Run | None, Run | None]:
    """A (one Tracker, direct) against the setup `label` names, each on fresh copies; stopped after."""
    folder = scratch / label.replace(" ", "-").replace(",", "")
    with contextlib.ExitStack() as stack:
        direct = start_tracker(stack, prepared, folder / "direct", [])
        b_pid = ""
        if label == "--workers 2":
            b = start_tracker(stack, prepared, folder / "workers2", [], workers=2)
            b_url, b_pid = b.url, pid(b)
        else:
            count = 1 if label == "proxy, 1 shard" else 2
            shards = {name: start_tracker(stack, prepared, folder / f"shard-{name}", []) for name in "ab"[:count]}
            b_url = start_proxy(stack, folder, shards)
        print(f"\n--- A: one Tracker {direct.url}; B: {label} {b_url}", flush=True)
        env = {**os.environ, "DUR": str(duration), "A_PID": pid(direct),
               "B_PID": b_pid}  # fmt: skip
        runs = compare(direct.url, b_url, label, "live", env)
    return best(runs, "live", "A"), best(runs, "live", "B")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepared", type=Path, required=True, help="data folder with user0..user99 (run.sh's)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (DUR)")
    args = parser.parse_args()
    missing = [name for name, found in (("wrk", tool("wrk")), ("haproxy", tool("haproxy", HAPROXY))) if not found]
    if missing:
        print(f"skipping the shard measures: {' and '.join(missing)} not found (apt-get install -y {' '.join(missing)})")
        return 0
    exit_on_signals()
    results: list[tuple[str, Run | None, Run | None]] = []
    with tempfile.TemporaryDirectory(prefix="shard-bench-") as scratch:
        for label in ("proxy, 1 shard", "proxy, 2 shards", "--workers 2"):
            results.append((label, *one_comparison(Path(scratch), args.prepared, label, args.duration)))
    print("\nlive writes, best of the rounds: B against one Tracker (--workers 1) reached directly, A, in the same run")
    print(f"{'B':<16} {'A req/s':>9} {'B req/s':>9} {'B/A':>6} {'A p50/p99 ms':>14} {'B p50/p99 ms':>14}")
    for label, a, b in results:
        ratio = b.rps / a.rps if a and b and a.rps and b.rps else None
        flawed = any(r and (r.non2xx or r.errors) for r in (a, b))
        print(f"{label:<16} {show(a and a.rps, '.0f'):>9} {show(b and b.rps, '.0f'):>9} {show(ratio, '.2f'):>6} "
              f"{show(a and a.p50_ms, '.2f'):>6}/{show(a and a.p99_ms, '.1f'):<7} "
              f"{show(b and b.p50_ms, '.2f'):>6}/{show(b and b.p99_ms, '.1f'):<7}"
              + ("  (runs with errors: not comparable)" if flawed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
