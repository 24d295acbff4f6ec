"""A real VictoriaMetrics (Debian's `victoria-metrics`) in a temp folder, for the --mirror tests.

It can be stopped and started again on the same storage folder and port. Without the binary the tests
skip, naming it; under CI (the CI environment variable set) they fail instead.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

from tests.tools import find_tool
from tests.tracker_process import HOST, clean_env, free_port, stop_process

VICTORIA_METRICS = "/usr/bin/victoria-metrics"
STARTUP_SECONDS = 30.0


def victoria_metrics_binary() -> str:
    return find_tool("victoria-metrics", VICTORIA_METRICS, "apt-get install victoria-metrics to test --mirror against it")


class VictoriaMetricsProcess:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.binary = victoria_metrics_binary()
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log_path = root / "victoria-metrics.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def write_url(self) -> str:
        return f"{self.url}/write"

    def start(self, timeout: float = STARTUP_SECONDS) -> None:
        assert self.process is None
        self.root.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "-storageDataPath", str(self.root / "data"), "-httpListenAddr", f"{HOST}:{self.port}",
                 "-retentionPeriod", "100y", "-search.disableCache",
                 # One value per series and millisecond: a point delivered twice (at least once) is kept once.
                 "-dedup.minScrapeInterval", "1ms"],
                stdout=log, stderr=subprocess.STDOUT, env=clean_env(),
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"victoria-metrics did not start within {timeout}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def export(self, match: str = '{__name__=~"samples_.*"}') -> list[dict]:
        """Every series matching, as /api/v1/export gives them (metric labels, values, ms timestamps)."""
        with urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=10):
            pass
        query = urllib.parse.urlencode({"match[]": match})
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{query}", timeout=60) as response:
            return [json.loads(line) for line in response.read().decode().splitlines() if line.strip()]

    def rows_inserted(self) -> float:
        """Rows VictoriaMetrics took in over line protocol, redelivered ones included (its own counter)."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as response:
            text = response.read().decode()
        return sum(
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith('vm_rows_inserted_total{type="influx"}')
        )

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no victoria-metrics log)"
