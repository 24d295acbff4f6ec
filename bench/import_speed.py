"""`tracker import` beside /write on the same machine: the same samples, as lines per second.

Starts a Tracker on a free local port with a fresh data folder, posts N lines to /write in bodies of
5,000 (one client, one body at a time: what a migration script would do), then imports the same
lines, as an influx_inspect export file, into a second user with `tracker import` while the server
runs. (GPX, TCX and FIT files: bench/activity_speed.py.)
Usage: .venv/bin/python bench/import_speed.py [LINES]  (default 500,000)
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

BODY_LINES = 5_000


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
        finally:
            server.close()
    print(f"{count:,} lines: /write {write_rate:,.0f} lines/s, tracker import {import_rate:,.0f} lines/s "
          f"({import_rate / write_rate:.2f}x), the import's process start included")


if __name__ == "__main__":
    main()
