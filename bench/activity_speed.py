"""Activities on one machine, in one run: importing a 12-hour ride, opening it, and a live write to it.

Starts a Tracker on a free local port with a fresh data folder and one ride of 43,200 points (12 hours
at 1 Hz: position, altitude, heart rate, cadence, power, speed), then measures

1. the import rate, in points/s: the ride as line protocol through POST /write in bodies of 5,000 lines
   (one client, one body at a time), and as GPX, FIT and TCX files through `tracker import` (a process
   of its own, its start included) and POST /api/import, each into a user of its own; an import
   includes bringing the user's activities up to date;
2. the activity page's first load on the server: GET /api/activities/ID, /samples?points=2000 and
   /laps?every_m=1000, one after the other over one kept-alive connection, cold (the summary not cached:
   a settings change before each round makes every summary stale) and warm; then the four requests the
   page makes on opening (/config too) at once, as the browser sends them (summary cached); the
   overview's size, and a zoom to 20 minutes at full resolution; median of the rounds;
3. a live write to the long activity: one sample one second after its end through POST /write, then
   GET /api/activities/ID (which re-splits around the write and folds the new sample into that
   activity's cached summary),
   median of the rounds; beside it the refresh alone, run in this process on the same file.

Usage: .venv/bin/python bench/activity_speed.py [--rounds 7] [--points 43200]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.tracker_process import PASSWORD, TrackerProcess, clean_env
from tracker import formats
from tracker.formats import Track
from tracker.lineprotocol import Point
from tracker.storage import SampleStore, activities

BODY_LINES = 5_000
FORMATS = ("gpx", "fit", "tcx")
TAGS = (("device", "edge"), ("sport", "cycling"))


class Client:
    """One kept-alive HTTP connection as one user: what a page's requests would share."""

    def __init__(self, url: str, user: str) -> None:
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=300)
        self.auth = "Basic " + base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        self.connection.request(method, path, body=body, headers={"Authorization": self.auth, **(headers or {})})
        answer = self.connection.getresponse()
        return answer.status, answer.read()

    def ok(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> bytes:
        status, data = self.request(method, path, body, headers)
        if status >= 300:
            raise SystemExit(f"{method} {path} answered {status}: {data[:300]!r}")
        return data

    def timed(self, method: str, path: str, body: bytes | None = None) -> float:
        began = time.perf_counter()
        self.ok(method, path, body)
        return time.perf_counter() - began


def ride(points: int, start_ns: int) -> Track:
    """A 12-hour ride northeast at about 1.35 m/s, rolling hills of 50 m."""
    return Track(name="Long ride", sport="cycling", device="edge", points=[
        (start_ns + i * 10**9, {"lat": 46 + i * 1e-5, "lng": 14 + i * 1e-5, "alt_m": 300.0 + (i // 60) % 50,
                                "hr_bpm": 120.0 + i % 40, "cad_rpm": 85.0, "pwr_w": 200.0 + i % 100, "spd_kph": 4.9})
        for i in range(points)
    ])  # fmt: skip


def line_protocol(track: Track) -> list[str]:
    tags = ",".join(f"{key}={value}" for key, value in TAGS)
    integers = {"hr_bpm", "cad_rpm", "pwr_w"}
    return [
        f"samples,{tags} " + ",".join(f"{k}={int(v)}i" if k in integers else f"{k}={v!r}" for k, v in fields.items())
        + f" {time_ns}"
        for time_ns, fields in track.points
    ]


def import_rates(server: TrackerProcess, track: Track) -> dict[str, float]:
    points = len(track.points)
    rates: dict[str, float] = {}
    client = Client(server.url, "viawrite")
    lines = line_protocol(track)
    began = time.perf_counter()
    for first in range(0, len(lines), BODY_LINES):
        client.ok("POST", "/write?db=viawrite", "\n".join(lines[first:first + BODY_LINES]).encode())
    rates["/write, 5,000 lines a body"] = points / (time.perf_counter() - began)
    with tempfile.TemporaryDirectory() as folder:
        for fmt in FORMATS:
            path = Path(folder) / f"ride.{fmt}"
            path.write_bytes(formats.write(fmt, track))
            began = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "tracker", "import", f"cli{fmt}", str(path), "--data-dir", str(server.data_dir)],
                check=True, capture_output=True, env=clean_env(),
            )  # fmt: skip
            rates[f"tracker import, {fmt.upper()} ({path.stat().st_size / 1e6:.1f} MB)"] = points / (time.perf_counter() - began)
            began = time.perf_counter()
            summary = json.loads(Client(server.url, f"http{fmt}").ok(
                "POST", "/api/import", path.read_bytes(), {"X-Filename": path.name, "Content-Type": "application/octet-stream"}
            ))  # fmt: skip
            rates[f"POST /api/import, {fmt.upper()}"] = points / (time.perf_counter() - began)
            if summary["stored"] != points or len(summary["activities"]) != 1:
                raise SystemExit(f"the {fmt} import stored {summary['stored']} of {points} points in {summary['activities']}")
    return rates


def page_times(server: TrackerProcess, rounds: int) -> tuple[int, int, dict[str, list[float]]]:
    """(activity id, its samples, {phase: seconds per round})."""
    client = Client(server.url, "viawrite")
    [activity] = json.loads(client.ok("GET", "/api/activities?limit=2"))["activities"]
    base = f"/api/activities/{activity['id']}"
    page = [("activity", base), ("samples", f"{base}/samples?points=2000"), ("laps", f"{base}/laps?every_m=1000")]
    times: dict[str, list[float]] = {}
    for round_index in range(rounds):
        # A new moving threshold makes every summary stale: the next read computes it again.
        client.ok("PUT", "/api/activity-settings", json.dumps({"moving_kph": 1.0 + round_index % 2}).encode(),
                  {"Content-Type": "application/json"})  # fmt: skip
        for state in ("cold", "warm"):
            total = 0.0
            for name, path in page:
                took = client.timed("GET", path)
                times.setdefault(f"{state}: {name}", []).append(took)
                total += took
            times.setdefault(f"{state}: the page's three", []).append(total)
    return activity["id"], activity["samples"], times


def parallel_first_load(server: TrackerProcess, activity_id: int, rounds: int) -> tuple[dict[str, list[float]], str]:
    """The four requests the page sends on opening, at once (one connection each, as a browser opens
    them), the summary cached: seconds until the last answer is in; a zoom; and a line on their sizes."""
    base = f"/api/activities/{activity_id}"
    paths = (f"{base}/config", base, f"{base}/samples?points=2000", f"{base}/laps?every_m=1000")
    clients = [Client(server.url, "viawrite") for _ in paths]
    times: dict[str, list[float]] = {}
    with ThreadPoolExecutor(len(paths)) as pool:
        for _ in range(rounds):
            began = time.perf_counter()
            bodies = list(pool.map(lambda client, path: client.ok("GET", path), clients, paths))
            times.setdefault("at once: the page's four (with /config)", []).append(time.perf_counter() - began)
    overview = json.loads(bodies[2])
    activity = json.loads(bodies[1])
    zoom_start = (activity["start_ns"] + activity["end_ns"]) // 2
    zoom_path = f"{base}/samples?points=4000&start={zoom_start}&end={zoom_start + 1200 * 10**9}"
    for _ in range(rounds):
        times.setdefault("zoom to 20 min, full resolution", []).append(clients[0].timed("GET", zoom_path))
    zoom = json.loads(clients[0].ok("GET", zoom_path))
    if zoom["downsampled"] or len(zoom["values"]) != 1200:
        raise SystemExit(f"a 20-minute zoom answered {len(zoom['values'])} rows, downsampled {zoom['downsampled']}")
    return times, f"overview {len(overview['values'])} rows, {len(bodies[2]) / 1024:.0f} KiB; zoom {len(zoom['values'])} rows"


def live_write_times(server: TrackerProcess, activity_id: int, rounds: int) -> dict[str, list[float]]:
    client = Client(server.url, "viawrite")
    activity = json.loads(client.ok("GET", f"/api/activities/{activity_id}"))
    end_ns = activity["end_ns"]
    tags = ",".join(f"{key}={value}" for key, value in TAGS)
    times: dict[str, list[float]] = {}
    for _ in range(rounds):
        end_ns += 10**9
        times.setdefault("POST /write, one line", []).append(
            client.timed("POST", "/write?db=viawrite", f"samples,{tags} hr_bpm=130i,spd_kph=25.0 {end_ns}".encode())
        )
        times.setdefault("then GET the activity (refresh, summary)", []).append(client.timed("GET", f"/api/activities/{activity_id}"))
    times["refresh alone, after one write"] = asyncio.run(refresh_alone(server.data_dir, end_ns, rounds))
    return times


async def refresh_alone(data_dir: Path, end_ns: int, rounds: int) -> list[float]:
    """A write and the refresh after it, in this process on the same file (the server idles meanwhile)."""
    store = SampleStore(data_dir, writer_key="bench-refresh")
    took: list[float] = []
    try:
        for _ in range(rounds):
            end_ns += 10**9
            await store.write("viawrite", [Point("samples", TAGS, {"hr_bpm": 130, "spd_kph": 25.0}, end_ns)])
            began = time.perf_counter()
            await activities.refresh(store, "viawrite")
            took.append(time.perf_counter() - began)
    finally:
        await store.close()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="rounds of the page and live-write measures (median)")
    parser.add_argument("--points", type=int, default=43_200, help="points of the ride (43,200: 12 hours at 1 Hz)")
    args = parser.parse_args()
    start_ns = (time.time_ns() // 10**9 - args.points - 3600) * 10**9
    track = ride(args.points, start_ns)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        server = TrackerProcess(root / "data", root / "server.log", log_level="warning")
        server.start()
        try:
            for user in ["viawrite", *(f"{how}{fmt}" for how in ("cli", "http") for fmt in FORMATS)]:
                server.add_user(user)
            rates = import_rates(server, track)
            activity_id, samples, page = page_times(server, args.rounds)
            at_once, sizes = parallel_first_load(server, activity_id, args.rounds)
            page.update(at_once)
            live = live_write_times(server, activity_id, args.rounds)
        finally:
            server.close()
    write_rate = rates["/write, 5,000 lines a body"]
    print(f"import of a {args.points:,}-point ride              points/s   x /write")
    for name, rate in rates.items():
        print(f"  {name:<42} {rate:>9,.0f}   {rate / write_rate:6.2f}")
    print(f"activity page, {samples:,} samples, median of {args.rounds} (ms); {sizes}")
    for name, values in page.items():
        print(f"  {name:<42} {statistics.median(values) * 1000:>9.1f}")
    print(f"a live write to that activity, median of {args.rounds} (ms)")
    for name, values in live.items():
        print(f"  {name:<42} {statistics.median(values) * 1000:>9.1f}")


if __name__ == "__main__":
    main()
