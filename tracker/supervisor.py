"""`tracker serve --workers N` with N > 1: the supervisor process and its workers.

The supervisor serves nothing itself. It prepares the data folder once (`prepare_data_dir`), starts
N workers (the same command again, with a hidden `--worker-index`; a fresh interpreter each, never a
fork of a process with threads), each binding the same host:port with SO_REUSEPORT so the kernel
spreads connections over them, restarts a worker that dies (after a short backoff, logged), and on
SIGTERM or SIGINT stops the group: SIGTERM to every worker (each finishes its requests and closes
its files, as a single server does), then exits 0. A worker exits when its supervisor dies
(PR_SET_PDEATHSIG), so a SIGKILLed supervisor leaves no worker holding the port.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Sequence

from tracker.config import Settings
from tracker.group import GROUP_LOCK, group_lock, run_dir
from tracker.storage import recover, shared

log = logging.getLogger("tracker.supervisor")

RESTART_DELAY_SECONDS = 0.5  # the first restart of a worker that ran a while
MAX_RESTART_DELAY_SECONDS = 30.0  # a worker that keeps dying at once is retried no faster than this
STEADY_SECONDS = 30.0  # a worker that ran this long before dying starts its backoff afresh
STOP_TIMEOUT_SECONDS = 75.0  # past aiohttp's 60 s for running handlers: then SIGKILL
POLL_SECONDS = 0.1
PR_SET_PDEATHSIG = 1


def prepare_data_dir(settings: Settings) -> None:
    """What runs once before any worker serves. Each worker still opens (and, the first time,
    migrates) the files itself; migrations are safe against concurrent openers."""
    folder = run_dir(settings.data_dir)
    # Leases, counters and locks of a previous group mean nothing now (its processes are gone).
    for entry in folder.iterdir():
        if entry.name == GROUP_LOCK:
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    shared.create(folder)  # the counts the workers share, made before any of them opens it
    recover_journal(settings)


def recover_journal(settings: Settings) -> None:
    """The shared write journal's recovery (re-apply what a crash or power loss took from the users'
    files), once, before anything accepts a write: called by a group's supervisor before it starts the
    workers, and by `serve` with one worker before it serves; never by a worker, so a restarted worker
    finds the others serving (it settles its own entries instead, see app._stores)."""
    recover(settings.data_dir, settings.sqlite_synchronous)


@dataclass(slots=True)
class _Slot:
    index: int
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    delay: float = RESTART_DELAY_SECONDS
    restart_at: float | None = None  # when a dead worker is started again


def supervise(settings: Settings, argv: Sequence[str]) -> int:
    """Run the group until SIGTERM/SIGINT; `argv` is the `serve` command line the workers repeat."""
    count = settings.worker_count
    check_port(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with group_lock(settings.data_dir):
        prepare_data_dir(settings)
        return _Group(settings, list(argv), count).run()


class _Group:
    def __init__(self, settings: Settings, argv: list[str], count: int) -> None:
        self.settings = settings
        self.argv = argv
        self.slots = [_Slot(i) for i in range(count)]
        self.stopping = False

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop_signal)
        log.info(
            "Tracker listening on http://%s:%d with %d workers, data in %s",
            self.settings.host, self.settings.port, len(self.slots), self.settings.data_dir,
        )  # fmt: skip
        for slot in self.slots:
            self._start(slot)
        while not self.stopping:
            now = time.monotonic()
            for slot in self.slots:
                if slot.process is not None and slot.process.poll() is not None:
                    self._died(slot, now)
                elif slot.process is None and slot.restart_at is not None and now >= slot.restart_at:
                    self._start(slot)
            time.sleep(POLL_SECONDS)
        self._stop_all()
        return 0

    def _stop_signal(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _start(self, slot: _Slot) -> None:
        command = [
            sys.executable, "-m", "tracker", *self.argv,
            "--workers", str(len(self.slots)), "--worker-index", str(slot.index), "--supervisor-pid", str(os.getpid()),
        ]  # fmt: skip
        slot.process = subprocess.Popen(command)
        slot.started_at, slot.restart_at = time.monotonic(), None
        log.info("worker %d started (pid %d)", slot.index, slot.process.pid)

    def _died(self, slot: _Slot, now: float) -> None:
        assert slot.process is not None
        code = slot.process.returncode
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        if now - slot.started_at >= STEADY_SECONDS:
            slot.delay = RESTART_DELAY_SECONDS
        log.error(
            "worker %d (pid %d) ended with %s; restarting it in %.1f s", slot.index, slot.process.pid, how, slot.delay
        )
        slot.process, slot.restart_at = None, now + slot.delay
        slot.delay = min(MAX_RESTART_DELAY_SECONDS, slot.delay * 2)

    def _stop_all(self) -> None:
        running = [slot.process for slot in self.slots if slot.process is not None]
        log.info("stopping %d workers", len(running))
        for process in running:
            _signal(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for process in running:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker pid %d did not stop within %.0f s: killing it", process.pid, STOP_TIMEOUT_SECONDS)
                _signal(process, signal.SIGKILL)
                process.wait()
        log.info("stopped")


def _signal(process: subprocess.Popen[bytes], signum: int) -> None:
    try:
        process.send_signal(signum)
    except ProcessLookupError:
        pass


def check_port(settings: Settings) -> None:
    """Fail at once, with one clear line, if anything listens on the address already: before the data
    folder is made or touched (a group's workers would only die and be restarted forever, or, were it
    another group's workers, share its port). The probe asks for no SO_REUSEPORT: any listener there
    makes it fail."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((settings.host, settings.port))


def die_with_supervisor(supervisor_pid: int) -> None:
    """In a worker: be sent SIGTERM when the supervisor dies (and exit now if it already has)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: nothing ends the workers with their supervisor
        log.warning("workers cannot follow their supervisor's death on this system")
    if os.getppid() != supervisor_pid:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)
