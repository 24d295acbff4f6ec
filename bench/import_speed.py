"""`tracker import` beside /write on the same machine: the same samples, as lines per second.

Starts a Tracker on a free local port with a fresh data folder, posts N lines to /write in bodies of
5,000 (one client, one body at a time: what a migration script would do), then imports the same
lines, as an influx_inspect export file, into a second user with `tracker import` while the server
runs. Then imports a 12-hour ride at 1 Hz (43,200 points) as FIT, GPX and TCX files, each into a user
of its own, with `tracker import`.  Usage: .venv/bin/python bench/import_speed.py [LINES]  (default 500,000)
"""

from __future__ import annotations

import base64
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.tracker_process import PASSWORD, TrackerProcess, clean_env
from tracker import formats
from tracker.formats import Track

BODY_LINES = 5_000
RIDE_POINTS = 43_200  # 12 hours at 1 Hz


def lines(count: int, start_ns: int) -> list[str]:
    return [
        f"samples,device=bike lat={52 + i % 1000 / 1e4},lng={13 + i % 1000 / 1e4},hr_bpm={120 + i % 50}i,"
        f"pwr_w={200 + i % 300}i,cad_rpm={80 + i % 20}i,spd_kph={25 + i % 10} {start_ns + i * 10**9}"
        for i in range(count)
    ]


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
    start_ns = (time.time_ns() // 10**9 - count - 60) * 10**9
    data = lines(count, start_ns)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        server = TrackerProcess(root / "data", root / "server.log")
        server.start()
        try:
            server.add_user("viawrite")
            server.add_user("viaimport")
            auth = "Basic " + base64.b64encode(f"viawrite:{PASSWORD}".encode()).decode()
            began = time.monotonic()
            for first in range(0, count, BODY_LINES):
                body = "\n".join(data[first:first + BODY_LINES]).encode()
                request = urllib.request.Request(f"{server.url}/write?db=viawrite", data=body, method="POST")
                request.add_header("Authorization", auth)
                with urllib.request.urlopen(request, timeout=120) as answer:
                    assert answer.status == 204
            write_rate = count / (time.monotonic() - began)

            export = root / "export.lp"
            header = "# DDL\nCREATE DATABASE viaimport WITH NAME autogen\n# DML\n# CONTEXT-DATABASE:viaimport\n"
            export.write_text(header + "# CONTEXT-RETENTION-POLICY:autogen\n# writing tsm data\n" + "\n".join(data) + "\n")
            began = time.monotonic()
            subprocess.run(
                [sys.executable, "-m", "tracker", "import", "viaimport", str(export), "--data-dir", str(server.data_dir)],
                check=True, capture_output=True, env=clean_env(),
            )  # fmt: skip
            import_rate = count / (time.monotonic() - began)
            ride_rates = import_rides(server, root)
        finally:
            server.close()
    print(f"{count:,} lines: /write {write_rate:,.0f} lines/s, tracker import {import_rate:,.0f} lines/s "
          f"({import_rate / write_rate:.2f}x), the import's process start included")
    for fmt, rate in ride_rates.items():
        print(f"{RIDE_POINTS:,}-point {fmt.upper()} file: tracker import {rate:,.0f} points/s ({rate / write_rate:.2f}x /write)")


def import_rides(server: TrackerProcess, root: Path) -> dict[str, float]:
    start_ns = (time.time_ns() // 10**9 - RIDE_POINTS - 60) * 10**9
    ride = Track(name="Long ride", sport="cycling", device="edge", points=[
        (start_ns + i * 10**9, {"lat": 46 + i * 1e-5, "lng": 14 + i * 1e-5, "alt_m": 300.0 + i % 50, "hr_bpm": 120.0 + i % 40,
                                "cad_rpm": 85.0, "pwr_w": 200.0 + i % 100, "spd_kph": 30.0})
        for i in range(RIDE_POINTS)
    ])  # fmt: skip
    rates: dict[str, float] = {}
    for fmt in ("fit", "gpx", "tcx"):
        path = root / f"ride.{fmt}"
        path.write_bytes(formats.write(fmt, ride))
        server.add_user(f"ride{fmt}")
        began = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "tracker", "import", f"ride{fmt}", str(path), "--data-dir", str(server.data_dir)],
            check=True, capture_output=True, env=clean_env(),
        )  # fmt: skip
        rates[fmt] = RIDE_POINTS / (time.monotonic() - began)
    return rates


if __name__ == "__main__":
    main()
