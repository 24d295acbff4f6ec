"""The activity page's first load, as the server answers it: a 12-hour ride at 1 Hz (43,200 samples).

Starts a Tracker on a free local port with a fresh data folder, writes the ride to /write, then asks
what the page asks on opening (config, the activity, its overview samples and its laps per km, at
once, as the page does) and times the slowest answer: first right after the write (the activities
split and the summary computed: the cold case), then again (the summary cached). Also the size of
the overview answer, and a zoom to 20 minutes at full resolution.
Usage: .venv/bin/python bench/activity_page.py [SAMPLES] [ROUNDS]   (default 43,200 and 5)
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.tracker_process import PASSWORD, TrackerProcess

BODY_LINES = 5_000


def ride(count: int, start_ns: int) -> list[str]:
    lines = []
    for i in range(count):
        lat, lng = 46.5 + 0.02 * math.sin(i / 2000), 7.0 + 0.03 * math.cos(i / 2000)
        lines.append(
            f"samples,device=edge,sport=cycling lat={lat:.6f},lng={lng:.6f},hr_bpm={120 + i % 40},pwr_w={180 + i % 90},"
            f"cad_rpm={85 + i % 10},spd_kph={25 + i % 8},alt_m={500 + 80 * math.sin(i / 900):.1f},temp_c=18 {start_ns + i * 10**9}"
        )
    return lines


async def first_load(session: aiohttp.ClientSession, base: str) -> tuple[float, int]:
    """Seconds until the last of the page's four first answers is in, and the overview's bytes."""
    paths = ("/config", "", "/samples?points=2000", "/laps?every_m=1000")
    began = time.perf_counter()

    async def get(path: str) -> bytes:
        async with session.get(base + path) as response:
            assert response.status == 200, (path, response.status, await response.text())
            return await response.read()

    bodies = await asyncio.gather(*(get(path) for path in paths))
    return time.perf_counter() - began, len(bodies[2])


async def measure(url: str, count: int, rounds: int) -> None:
    auth = {"Authorization": "Basic " + base64.b64encode(f"rider:{PASSWORD}".encode()).decode()}
    start_ns = (time.time_ns() // 10**9 - count - 3600) * 10**9
    lines = ride(count, start_ns)
    async with aiohttp.ClientSession(headers=auth) as session:
        for first in range(0, count, BODY_LINES):
            async with session.post(f"{url}/write?db=rider", data="\n".join(lines[first : first + BODY_LINES])) as answer:
                assert answer.status == 204
        # The first read after the write splits the samples into activities and computes the summary.
        cold_began = time.perf_counter()
        async with session.get(f"{url}/api/activities?limit=1") as answer:
            [activity] = (await answer.json())["activities"]
        list_s = time.perf_counter() - cold_began
        assert activity["samples"] == count, activity["samples"]
        base = f"{url}/api/activities/{activity['id']}"
        warm = []
        for _ in range(rounds):
            seconds, overview_bytes = await first_load(session, base)
            warm.append(seconds)
        async with session.get(base + "/samples?points=2000") as answer:
            rows = len((await answer.json())["values"])
        each = {}
        for path in ("/config", "", "/samples?points=2000", "/laps?every_m=1000"):
            began = time.perf_counter()
            async with session.get(base + path) as answer:
                await answer.read()
            each[path or "/"] = time.perf_counter() - began
        zoom_start = start_ns + count // 2 * 10**9
        began = time.perf_counter()
        async with session.get(f"{base}/samples?points=4000&start={zoom_start}&end={zoom_start + 1200 * 10**9}") as answer:
            zoom = await answer.json()
        zoom_s = time.perf_counter() - began
    print(f"activity page, {count:,} samples (1 Hz, 8 fields):")
    print(f"  first read after the write (split into activities, summary computed): {list_s * 1000:.0f} ms")
    print(f"  first load (config + activity + overview + laps, in parallel): best {min(warm) * 1000:.0f} ms, "
          f"median {sorted(warm)[len(warm) // 2] * 1000:.0f} ms, worst {max(warm) * 1000:.0f} ms over {rounds}")
    print("  each alone: " + ", ".join(f"{path} {seconds * 1000:.0f} ms" for path, seconds in each.items()))
    print(f"  overview: {rows} rows, {overview_bytes / 1024:.0f} KiB")
    print(f"  zoom to 20 min at full resolution: {len(zoom['values'])} rows, downsampled {zoom['downsampled']}, {zoom_s * 1000:.0f} ms")


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 43_200
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        server = TrackerProcess(root / "data", root / "server.log")
        server.start()
        try:
            server.add_user("rider")
            asyncio.run(measure(server.url, count, rounds))
        finally:
            server.stop()
            server.close()


if __name__ == "__main__":
    main()
