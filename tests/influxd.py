"""A real InfluxDB 1.x (`influxd`, Debian's `influxdb` package) in a temp folder, for tests that compare answers.

It runs with auth on, on free loopback ports, with a generated config that enables nothing but the HTTP
API (no reporting, no monitor store, no continuous queries, no UDP/Graphite/...). The first user is an
admin (InfluxDB lets the first CREATE USER through without credentials); `add_user` makes a database
and a user with all privileges on it, the way a Tracker user owns the database named after them.

Every test that compares with InfluxDB uses this one module (most through conftest's session `influxd`
fixture). Without `influxd` the tests skip, naming the missing tool; under CI (the CI environment variable set)
they fail instead, so a broken install is never a silent pass.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.tools import find_tool
from tests.tracker_process import HOST, clean_env, free_port, stop_process

INFLUXD = "/usr/bin/influxd"
ADMIN_USER = "influx_admin"
ADMIN_PASSWORD = "influx-admin-pw"
STARTUP_SECONDS = 30.0


def influxd_binary() -> str:
    """The influxd to run: Debian's, or the first on PATH; skips (fails under CI) when there is none."""
    return find_tool("influxd", INFLUXD, "apt-get install influxdb to compare answers with a real InfluxDB 1.x")


def influx_cli_binary() -> str:
    """The `influx` CLI (Debian's `influxdb-client`); skips (fails under CI) when missing."""
    return find_tool("influx", None, "apt-get install influxdb-client to test the InfluxDB 1.x CLI")


def config_text(root: Path, http_port: int, rpc_port: int) -> str:
    return f"""reporting-disabled = true
bind-address = "{HOST}:{rpc_port}"
[meta]
  dir = "{root / 'meta'}"
[data]
  dir = "{root / 'data'}"
  wal-dir = "{root / 'wal'}"
  query-log-enabled = false
[http]
  enabled = true
  bind-address = "{HOST}:{http_port}"
  auth-enabled = true
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[subscriber]
  enabled = false
"""


class InfluxdProcess:
    """One influxd with its own folder and ports; `start` blocks until /ping answers 204."""

    def __init__(self, root: Path, binary: str) -> None:
        self.root = root
        self.binary = binary
        self.host = HOST
        self.port = free_port()
        self.rpc_port = free_port()
        while self.rpc_port == self.port:
            self.rpc_port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.config_path = root / "influxdb.conf"
        self.log_path = root / "influxd.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = STARTUP_SECONDS) -> None:
        """Start influxd; again after `close`, on the same data and port (a restart)."""
        restarting = self.config_path.exists()
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(config_text(self.root, self.port, self.rpc_port))
        env = {k: v for k, v in clean_env().items() if not k.startswith("INFLUXDB_")}  # env overrides the config
        # How InfluxDB groups series for its parallel merge, and so the order it adds their sums in (a mean's
        # last bit), follows the core count: fixed, its answers are the same on every machine.
        env["GOMAXPROCS"] = "2"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "-config", str(self.config_path)], stdout=log, stderr=subprocess.STDOUT, env=env
            )
        deadline = time.monotonic() + timeout
        while self.ping() != 204:
            if self.process.poll() is not None or time.monotonic() > deadline:
                code = self.process.poll()
                self.close()
                raise AssertionError(f"influxd did not answer /ping within {timeout}s (exit code {code}):\n{self.log_tail()}")
            time.sleep(0.05)
        if restarting:
            return
        # With auth on, InfluxDB lets the first user be created without credentials; it must be an admin.
        self.query(f"CREATE USER {ADMIN_USER} WITH PASSWORD '{ADMIN_PASSWORD}' WITH ALL PRIVILEGES", auth=None)

    def ping(self) -> int | None:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as response:
                return int(response.status)
        except OSError:
            return None

    def request(
        self, q: str, *, db: str = "", auth: tuple[str, str] | None = (ADMIN_USER, ADMIN_PASSWORD), **params: str
    ) -> tuple[int, Any]:
        """POST /query as the admin (or `auth`) with any other parameters (epoch, chunked, ...): the status
        and the JSON answer, errors included."""
        form = {"q": q, **({"db": db} if db else {}), **params}
        request = urllib.request.Request(f"{self.url}/query", data=urllib.parse.urlencode(form).encode())
        if auth is not None:
            request.add_header("Authorization", basic_header(*auth))
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, text = int(response.status), response.read()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read()
        return status, json.loads(text)

    def query(self, q: str, *, auth: tuple[str, str] | None = (ADMIN_USER, ADMIN_PASSWORD), db: str = "") -> Any:
        """POST /query as the admin (or `auth`); fails on an HTTP error or an error in any result."""
        status, body = self.request(q, db=db, auth=auth)
        errors = [result["error"] for result in body.get("results", []) if "error" in result]
        assert status == 200 and not errors and "error" not in body, f"influxd refused {q!r}: {body}"
        return body

    def create_database(self, db: str) -> None:
        """CREATE DATABASE, until SHOW DATABASES lists it (a fresh influxd may not take it at once)."""
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            self.query(f'CREATE DATABASE "{db}"')
            shown = self.query("SHOW DATABASES")["results"][0].get("series", [{}])[0].get("values", [])
            if [db] in shown:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"influxd did not create {db}: {shown}")
            time.sleep(0.1)

    def add_user(self, name: str, password: str) -> None:
        """A database named after the user and the user with all privileges on it (as Tracker's own)."""
        self.create_database(name)
        self.query(f"CREATE USER \"{name}\" WITH PASSWORD '{password}'")
        self.query(f'GRANT ALL ON "{name}" TO "{name}"')

    def write(
        self, db: str, body: bytes | str, *, auth: tuple[str, str] = (ADMIN_USER, ADMIN_PASSWORD), precision: str = "ns"
    ) -> None:
        url = f"{self.url}/write?" + urllib.parse.urlencode({"db": db, "precision": precision})
        data = body.encode() if isinstance(body, str) else body
        request = urllib.request.Request(url, data=data, method="POST")
        request.add_header("Authorization", basic_header(*auth))
        with urllib.request.urlopen(request, timeout=120) as response:
            assert response.status == 204, response.read()

    def close(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no influxd log)"


def basic_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def run_influxd(root: Path) -> Iterator[InfluxdProcess]:
    """The body of the `influxd` fixture: a started influxd, stopped afterwards."""
    server = InfluxdProcess(root, influxd_binary())
    try:
        server.start()
        yield server
    finally:
        server.close()
