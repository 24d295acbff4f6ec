"""Sharding by user behind a real HAProxy: two Tracker processes, each with its own data folder, and
Debian's haproxy in front, configured by `tracker shard haproxy-config` from a shard map."""

from __future__ import annotations

import base64
import http.client
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.tracker_process import HOST, PASSWORD, TrackerProcess, clean_env, free_port

pytestmark = pytest.mark.slow

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
SHARD_A_USERS = ["bob", "dave", "zed"]  # bob and dave named in the map; zed by the default rule
SHARD_B_USERS = ["alice", "carol"]


def _require_haproxy() -> None:
    if not os.path.exists(HAPROXY):
        if os.environ.get("CI"):
            pytest.fail("haproxy is missing: .ci/run installs Debian's haproxy")
        pytest.skip("haproxy is not installed (apt-get install haproxy)")


def _request(port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
             read: bool = True) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read() if read else response.read(1)
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


def _basic(user: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[TrackerProcess, TrackerProcess, int]]:
    _require_haproxy()
    shard_a = TrackerProcess(tmp_path / "a", tmp_path / "a.log")
    shard_b = TrackerProcess(tmp_path / "b", tmp_path / "b.log")
    for process, users in ((shard_a, SHARD_A_USERS), (shard_b, SHARD_B_USERS)):
        for user in users:
            process.add_user(user)
    process_b_public = "alice"
    shard_b.cli("user", "public", process_b_public, "on")
    map_file = tmp_path / "shards.map"
    map_file.write_text(
        f"shard a {HOST}:{shard_a.port}\nshard b {HOST}:{shard_b.port}\ndefault a\n"
        "alice b\ncarol b\nbob a\ndave a\n"
    )
    proxy_port = free_port()
    made = subprocess.run(
        [sys.executable, "-m", "tracker", "shard", "haproxy-config", "--map", str(map_file),
         "--bind", f"{HOST}:{proxy_port}", "--out", str(tmp_path / "proxy")],
        capture_output=True, text=True, env=clean_env(), timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    shard_a.start()
    shard_b.start()
    proxy_log = (tmp_path / "haproxy.log").open("wb")
    proxy = subprocess.Popen([HAPROXY, "-db", "-f", str(tmp_path / "proxy" / "haproxy.cfg")], stdout=proxy_log,
                             stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:  # up once both shards pass the proxy's health check
            try:
                if all(_request(proxy_port, "GET", f"/query?db={user}&q=SHOW+DATABASES", headers=_basic(user))[0] == 200
                       for user in ("alice", "bob")):  # fmt: skip
                    break
            except OSError:
                pass
            assert proxy.poll() is None and time.monotonic() < deadline, (tmp_path / "haproxy.log").read_text()
            time.sleep(0.1)
        yield shard_a, shard_b, proxy_port
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
        proxy_log.close()
        shard_a.close()
        shard_b.close()


def _count(port: int, user: str) -> int:
    status, _, body = _request(
        port, "GET", f"/query?db={user}&q=SELECT+count(hr_bpm)+FROM+samples", headers=_basic(user)
    )
    assert status == 200, body
    import json

    series = json.loads(body)["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


def test_each_user_is_routed_to_its_own_shard(cluster: tuple[TrackerProcess, TrackerProcess, int]) -> None:
    shard_a, shard_b, proxy = cluster
    users = SHARD_A_USERS + SHARD_B_USERS
    # Each user written to in a different way the proxy must recognise: v1 db + Basic, u/p, v2 bucket + Token.
    for n, user in enumerate(users):
        for i in range(n + 1):
            line = f"samples hr_bpm={100 + i} {1_700_000_000 + i}000000000".encode()
            forms = [
                (f"/write?db={user}", _basic(user)),
                (f"/write?db={user}&u={user}&p={PASSWORD}", {}),
                (f"/api/v2/write?bucket={user}", {"Authorization": f"Token {user}:{PASSWORD}"}),
                ("/write", _basic(user)),  # no db: the proxy routes on the Basic user, the server on its default
            ]
            path, headers = forms[i % len(forms)]
            if path == "/write":
                path = f"/write?u={user}&p={PASSWORD}&db={user}"
            status, _, body = _request(proxy, "POST", path, body=line, headers=headers)
            assert status == 204, (user, path, body)
    # Every user's samples are on exactly one shard, the one the map names, and read back through the proxy.
    for n, user in enumerate(users):
        home, other = (shard_a, shard_b) if user in SHARD_A_USERS else (shard_b, shard_a)
        assert _count(home.port, user) == n + 1
        assert _request(other.port, "GET", f"/query?db={user}&q=SHOW+DATABASES", headers=_basic(user))[0] == 401
        assert not (other.data_dir / "users" / f"{user}.sqlite").exists()
        assert _count(proxy, user) == n + 1
    which = subprocess.run(
        [sys.executable, "-m", "tracker", "shard", "which", "carol", "--map", str(shard_a.data_dir.parent / "shards.map")],
        capture_output=True, text=True, env=clean_env(), timeout=60,
    )  # fmt: skip
    assert which.stdout.split() == ["b", f"{HOST}:{shard_b.port}"]
    # The watch page and its event stream for alice (public, on shard b) come through the proxy.
    assert _request(proxy, "GET", "/watch/alice")[0] == 200
    status, headers, _ = _request(proxy, "GET", "/api/watch/alice/events", read=False)
    assert status == 200 and headers["content-type"].startswith("text/event-stream")


def test_a_shard_that_is_down_answers_503_with_retry_after(cluster: tuple[TrackerProcess, TrackerProcess, int]) -> None:
    shard_a, shard_b, proxy = cluster
    shard_b.stop()
    time.sleep(2.5)  # past the proxy's health check (every second, down after one failure)
    status, headers, body = _request(proxy, "POST", "/write?db=alice", body=b"samples hr_bpm=1", headers=_basic("alice"))
    assert status == 503 and headers["retry-after"] == "5", (status, headers, body)
    assert b"shard b is unavailable" in body
    status, _, _ = _request(proxy, "POST", "/write?db=bob", body=b"samples hr_bpm=1", headers=_basic("bob"))
    assert status == 204
    assert _count(proxy, "bob") == 1
