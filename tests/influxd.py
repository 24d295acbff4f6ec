"""A real InfluxDB 1.x (`influxd`, Debian's `influxdb` package) in a temp folder on a free local port:
what tests compare Tracker's /query answers with. Tests that need it skip where it is not installed."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterator

INFLUXD = shutil.which("influxd") or "/usr/bin/influxd"
USER, PASSWORD = "admin", "influx-pw"


def installed() -> bool:
    return Path(INFLUXD).is_file()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class InfluxDB:
    """One running influxd, with auth on (an admin user made at start)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _request(self, path: str, params: dict[str, str], body: bytes | None = None) -> tuple[int, bytes]:
        params = {"u": USER, "p": PASSWORD, **params}
        request = urllib.request.Request(f"{self.url}{path}?{urllib.parse.urlencode(params)}", data=body)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def create_database(self, db: str) -> None:
        """CREATE DATABASE, until SHOW DATABASES lists it (a fresh influxd may not take it at once)."""
        deadline = time.monotonic() + 30
        while True:
            self.query(f'CREATE DATABASE "{db}"')
            shown = self.query("SHOW DATABASES")["results"][0].get("series", [{}])[0].get("values", [])
            if [db] in shown:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"influxd did not create {db}: {shown}")
            time.sleep(0.1)

    def write(self, db: str, lines: str, precision: str = "ns") -> None:
        status, body = self._request("/write", {"db": db, "precision": precision}, lines.encode())
        assert status == 204, body

    def query(self, q: str, **params: str) -> Any:
        status, body = self._request("/query", {"q": q, **params})
        return json.loads(body)

    def raw_query(self, q: str, **params: str) -> tuple[int, bytes]:
        return self._request("/query", {"q": q, **params})


@contextlib.contextmanager
def running(folder: Path) -> Iterator[InfluxDB]:
    """influxd with its meta, data and WAL in `folder`, stopped (by its own process id) on exit."""
    bind, http = _free_port(), _free_port()
    config = folder / "influxdb.conf"
    config.write_text(
        f'reporting-disabled = true\nbind-address = "127.0.0.1:{bind}"\n'
        f'[meta]\n  dir = "{folder}/meta"\n'
        f'[data]\n  dir = "{folder}/data"\n  wal-dir = "{folder}/wal"\n  query-log-enabled = false\n'
        f'[http]\n  bind-address = "127.0.0.1:{http}"\n  auth-enabled = true\n  log-enabled = false\n'
        "[monitor]\n  store-enabled = false\n"
    )
    log = (folder / "influxd.log").open("wb")
    process = subprocess.Popen([INFLUXD, "-config", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{http}"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/ping", timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"influxd did not start: {(folder / 'influxd.log').read_text()[-2000:]}") from None
                time.sleep(0.1)
        # With auth on and no user yet, InfluxDB takes this one statement without credentials.
        urllib.request.urlopen(
            urllib.request.Request(
                f"{url}/query", data=urllib.parse.urlencode(
                    {"q": f"CREATE USER {USER} WITH PASSWORD '{PASSWORD}' WITH ALL PRIVILEGES"}
                ).encode()
            ), timeout=30,
        ).close()  # fmt: skip
        yield InfluxDB(url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
