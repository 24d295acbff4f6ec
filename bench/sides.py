"""What bench/mirror_speed.py and bench/shard_speed.py share: Trackers started on copies of the folder
bench/run.sh prepared (users user0..user99), bench/compare.sh run with B_URL to compare two of them,
its per-run lines read back, and GET /metrics read as numbers.

Every process started here is stopped by the caller's ExitStack however the run ends: SIGTERM, SIGINT
and SIGHUP become SystemExit (see `exit_on_signals`), so the `finally` blocks and the stack run.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.tracker_process import TrackerProcess, children_of, stop_process

HERE = Path(__file__).resolve().parent
COMPARE = HERE / "compare.sh"
_RUN_LINE = re.compile(r"^(\S+)\s+([AB])\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\d+)\s+(\d+)\s*$")
_METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)\s*$")


def exit_on_signals() -> None:
    """A stop asked for from outside (Ctrl-C, kill, a closed terminal) unwinds like an error."""

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)


def tool(name: str, *fallbacks: str) -> str | None:
    found = shutil.which(name)
    return found or next((path for path in fallbacks if Path(path).is_file()), None)


def start_tracker(stack: contextlib.ExitStack, prepared: Path, folder: Path, serve_args: list[str],
                  workers: int = 1) -> TrackerProcess:  # fmt: skip
    """A Tracker on a fresh copy of the prepared data folder, on a free port, stopped by `stack`."""
    shutil.copytree(prepared, folder / "data", symlinks=True)
    tracker = TrackerProcess(folder / "data", folder / "server.log", serve_args=serve_args, workers=workers)
    stack.callback(stop_tracker, tracker)
    tracker.start(timeout=60)
    return tracker


def pid(tracker: TrackerProcess) -> str:
    """The server's process id, for compare.sh's memory line ("" when it is not running)."""
    return str(tracker.process.pid) if tracker.process else ""


def stop_tracker(tracker: TrackerProcess) -> None:
    if tracker.process is None:
        return
    try:
        tracker.stop(timeout=30)
    except AssertionError as exc:  # it did not stop cleanly: said, and nothing is left running
        print(f"warning: {exc}", file=sys.stderr)
        if tracker.process is not None:
            tracker.kill()


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) the process and its live children have used so far."""
    total = 0.0
    for each in [pid, *children_of(pid)]:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return total


class Run(NamedTuple):
    """One wrk run of bench/compare.sh, from its per-run line."""

    workload: str
    side: str
    round: int
    rps: float | None
    p50_ms: float | None
    p99_ms: float | None
    non2xx: int
    errors: int


def _number(text: str) -> float | None:
    return None if text == "-" else float(text)


def compare(a_url: str, b_url: str, b_label: str, workloads: str, env: dict[str, str]) -> list[Run]:
    """bench/compare.sh A against B (B_URL: no InfluxDB), its output passed through as it comes;
    the per-run lines it printed, parsed."""
    command = [str(COMPARE), a_url]
    full_env = {**env, "B_URL": b_url, "B_LABEL": b_label, "WORKLOADS": workloads}
    runs: list[Run] = []
    # A session of its own, so that stopping it reaches wrk at once (bash waits for its foreground wrk
    # before running its trap, which stops what compare.sh started and removes its scratch folder).
    process = subprocess.Popen(command, env=full_env, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            if m := _RUN_LINE.match(line):
                workload, side, round_, rps, p50, p99, non2xx, errors = m.groups()
                runs.append(Run(workload, side, int(round_), _number(rps), _number(p50), _number(p99), int(non2xx),
                                int(errors)))  # fmt: skip
        if process.wait() != 0:
            raise SystemExit(f"bench/compare.sh failed (exit status {process.returncode})")
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        stop_process(process)
    return runs


def best(runs: list[Run], workload: str, side: str) -> Run | None:
    """The run with the most requests/s, preferring runs without error answers (errors come back fast),
    as compare.sh's own summary picks."""
    candidates = [r for r in runs if r.workload == workload and r.side == side and r.rps]
    return max(candidates, key=lambda r: (r.non2xx == 0 and r.errors == 0, r.rps)) if candidates else None


def metrics(url: str) -> dict[str, float]:
    """GET /metrics as {name: value summed over its labels}."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if (m := _METRIC_LINE.match(line)) and not line.startswith("#"):
            values[m.group(1)] = values.get(m.group(1), 0.0) + float(m.group(3))
    return values


def show(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)
