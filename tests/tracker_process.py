"""A real `python -m tracker serve` in a subprocess: every test that needs one starts it here.

`prefix` runs the server and the CLI through another command first (e.g. `nsenter` into a mount
namespace), so a test can put the data folder on a file system of its own; `serve_args` and `env`
add flags and TRACKER_* variables (the developer's own TRACKER_* variables never reach it);
`workers` > 1 starts a supervisor and that many workers (`worker_pids()` lists them).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping, Sequence

import aiohttp

HOST = "127.0.0.1"
PASSWORD = "durable-pw"


def clean_env() -> dict[str, str]:
    # A TRACKER_* variable of the developer's shell must not change what the tests run against.
    return {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}


def stop_process(process: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout`; reaped either way."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class TrackerProcess:
    """One data folder and port; the server can be started, killed and started again on them."""

    def __init__(
        self,
        data_dir: Path,
        log_path: Path,
        *,
        prefix: Sequence[str] = (),
        serve_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        log_level: str = "warning",
        workers: int = 1,
    ) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.prefix = list(prefix)
        self.serve_args = ["--log-level", log_level, *(["--workers", str(workers)] if workers > 1 else []), *serve_args]
        self.env = {**clean_env(), **(env or {})}
        self.host = HOST
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.spawned_at = 0.0

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.prefix, sys.executable, "-m", "tracker", *args, "--data-dir", str(self.data_dir)],
            input=stdin, capture_output=True, text=True, timeout=60, env=self.env,
        )  # fmt: skip
        assert result.returncode == 0, f"tracker {' '.join(args)} failed: {result.stderr}"
        return result

    def add_user(self, name: str, password: str = PASSWORD) -> None:
        self.cli("user", "add", name, "--password-stdin", stdin=password + "\n")

    def spawn(self) -> None:
        assert self.process is None, "the server is already running"
        with self.log_path.open("ab") as log:
            self.spawned_at = time.monotonic()
            self.process = subprocess.Popen(
                [*self.prefix, sys.executable, "-m", "tracker", "serve", "--host", HOST, "--port", str(self.port),
                 "--data-dir", str(self.data_dir), *self.serve_args],
                stdout=log, stderr=subprocess.STDOUT, env=self.env,
            )  # fmt: skip

    def start(self, timeout: float = 20.0) -> None:
        """Spawn, then block until /ping answers 204; fails the test past `timeout` seconds."""
        self.spawn()
        assert self.process is not None
        while self.ping() != 204:
            if self.process.poll() is not None or time.monotonic() - self.spawned_at > timeout:
                code = self.process.poll()
                self.close()
                raise AssertionError(
                    f"the server did not answer /ping within {timeout}s (exit code {code}):\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def ping(self) -> int | None:
        """GET /ping's status, or None while nothing answers."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=1)
        try:
            conn.request("GET", "/ping")
            return conn.getresponse().status
        except OSError:
            return None
        finally:
            conn.close()

    async def ready(self, timeout: float) -> float:
        """Seconds from spawn until /ping answered 204; fails the test past `timeout` seconds."""
        assert self.process is not None
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.get(f"{self.url}/ping", timeout=aiohttp.ClientTimeout(total=0.5)) as response:
                        if response.status == 204:
                            return time.monotonic() - self.spawned_at
                except (TimeoutError, aiohttp.ClientError):
                    pass
                waited = time.monotonic() - self.spawned_at
                if self.process.poll() is not None or waited > timeout:
                    raise AssertionError(
                        f"the server did not answer /ping within {timeout}s of spawning "
                        f"(exit code {self.process.poll()}):\n{self.log_tail()}"
                    )
                await asyncio.sleep(0.01)

    def worker_pids(self) -> list[int]:
        """The pids of the supervisor's live workers (its child processes), lowest first."""
        assert self.process is not None
        return children_of(self.process.pid)

    def kill(self, *, workers_too: bool = True) -> None:
        """SIGKILL: no shutdown code runs, exactly like a crash or a power cut for the process. With
        workers, the whole group at once (every worker, then the supervisor, without a pause), or
        the supervisor alone (`workers_too=False`)."""
        assert self.process is not None
        workers = children_of(self.process.pid) if workers_too else []
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.process = None
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.01)  # gone (reaped by init) before anything starts on the folder again

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM and a clean exit (every file closed)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the server did not stop within {timeout}s of SIGTERM:\n{self.log_tail()}")
        finally:
            self.process = None
        assert code == 0, f"the server exited with {code} on SIGTERM:\n{self.log_tail()}"

    def close(self) -> None:
        """For a finally: make sure no server outlives its test."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def log(self) -> str:
        """The server's whole log so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no server log)"


def children_of(pid: int) -> list[int]:
    """Live (not zombie) child processes of `pid`, from /proc."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'
        state, ppid = stat.rpartition(")")[2].split()[:2]
        if int(ppid) == pid and state != "Z":
            children.append(int(entry.name))
    return sorted(children)


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
