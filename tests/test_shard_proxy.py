"""Sharding by user behind a real HAProxy: three Tracker processes, each with its own data folder, and
Debian's haproxy in front, configured by `tracker shard haproxy-config` from a shard map."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import pytest

from tests.tools import haproxy_binary
from tests.tracker_process import HOST, PASSWORD, TrackerProcess, clean_env, free_port

pytestmark = pytest.mark.slow

SHARD_A_USERS = ["bob", "dave", "zed"]  # bob and dave named in the map; zed by the default rule
SHARD_B_USERS = ["alice", "carol"]
SHARD_C_USERS = ["erin", "frank"]
Cluster = tuple[TrackerProcess, TrackerProcess, TrackerProcess, int]  # shards a, b, c and the proxy's port


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
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    haproxy = haproxy_binary()
    shard_a = TrackerProcess(tmp_path / "a", tmp_path / "a.log")
    shard_b = TrackerProcess(tmp_path / "b", tmp_path / "b.log")
    shard_c = TrackerProcess(tmp_path / "c", tmp_path / "c.log")

    def add_users(process: TrackerProcess, users: list[str]) -> None:
        for user in users:
            process.add_user(user)

    # One thread per shard (a CLI run each, the strong password hash): the three folders fill side by side.
    with ThreadPoolExecutor(3) as pool:
        added = [pool.submit(add_users, process, users)
                 for process, users in ((shard_a, SHARD_A_USERS), (shard_b, SHARD_B_USERS), (shard_c, SHARD_C_USERS))]
        for future in added:
            future.result()
    shard_b.cli("user", "public", "alice", "on")  # her live view, watched through the proxy below
    map_file = tmp_path / "shards.map"
    map_file.write_text(
        "".join(f"shard {name} {HOST}:{process.port} {process.data_dir}\n"  # `shard move` finds the folders here
                for name, process in (("a", shard_a), ("b", shard_b), ("c", shard_c)))
        + "default a\nalice b\ncarol b\nbob a\ndave a\nerin c\nfrank c\n"
    )  # fmt: skip
    proxy_port = free_port()
    made = subprocess.run(
        [sys.executable, "-m", "tracker", "shard", "haproxy-config", "--map", str(map_file),
         "--bind", f"{HOST}:{proxy_port}", "--out", str(tmp_path / "proxy")],
        capture_output=True, text=True, env=clean_env(), timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    shard_a.start()
    # Every shard signs with the same key (bearer tokens, the sign-in form's CSRF token): the deployment shares it.
    for other in (shard_b, shard_c):
        other.data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(shard_a.data_dir / "bearer-secret", other.data_dir / "bearer-secret")
        other.start()
    proxy_log = (tmp_path / "haproxy.log").open("wb")
    proxy = subprocess.Popen([haproxy, "-db", "-f", str(tmp_path / "proxy" / "haproxy.cfg")], stdout=proxy_log,
                             stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:  # up once every shard passes the proxy's health check
            try:
                if all(_request(proxy_port, "GET", f"/query?db={user}&q=SHOW+DATABASES", headers=_basic(user))[0] == 200
                       for user in ("alice", "bob", "erin")):  # fmt: skip
                    break
            except OSError:
                pass
            assert proxy.poll() is None and time.monotonic() < deadline, (tmp_path / "haproxy.log").read_text()
            time.sleep(0.1)
        yield shard_a, shard_b, shard_c, proxy_port
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
        proxy_log.close()
        shard_a.close()
        shard_b.close()
        shard_c.close()


def _times(port: int, user: str) -> set[int]:
    status, _, body = _request(port, "GET", f"/query?db={user}&epoch=ns&q=SELECT+hr_bpm+FROM+samples", headers=_basic(user))
    assert status == 200, body
    series = json.loads(body)["results"][0].get("series")
    return {int(row[0]) for row in series[0]["values"]} if series else set()


def _count(port: int, user: str, field: str = "hr_bpm") -> int:
    status, _, body = _request(
        port, "GET", f"/query?db={user}&q=SELECT+count({field})+FROM+samples", headers=_basic(user)
    )
    assert status == 200, body
    series = json.loads(body)["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


def test_each_user_is_routed_to_its_own_shard(cluster: Cluster) -> None:
    shard_a, shard_b, shard_c, proxy = cluster
    users = SHARD_A_USERS + SHARD_B_USERS + SHARD_C_USERS
    home_of = {**dict.fromkeys(SHARD_A_USERS, shard_a), **dict.fromkeys(SHARD_B_USERS, shard_b),
               **dict.fromkeys(SHARD_C_USERS, shard_c)}  # fmt: skip
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
        assert _count(home_of[user].port, user) == n + 1
        for other in {shard_a, shard_b, shard_c} - {home_of[user]}:
            assert _request(other.port, "GET", f"/query?db={user}&q=SHOW+DATABASES", headers=_basic(user))[0] == 401
            assert not (other.data_dir / "users" / f"{user}.sqlite").exists()
        assert _count(proxy, user) == n + 1
    which = subprocess.run(
        [sys.executable, "-m", "tracker", "shard", "which", "carol", "--map", str(shard_a.data_dir.parent / "shards.map")],
        capture_output=True, text=True, env=clean_env(), timeout=60,
    )  # fmt: skip
    assert which.stdout.split() == ["b", f"{HOST}:{shard_b.port}"]
    # A device token names its owner: the proxy routes an OsmAnd request that carries nothing else.
    token = shard_b.cli("token", "create", "carol", "--label", "phone").stdout.strip()
    assert token.startswith("trk_carol.")
    status, _, body = _request(proxy, "POST", f"/osmand?id={token}&lat=46.5&lon=6.6&timestamp=1700000100")
    assert status == 200, body
    status, _, body = _request(proxy, "POST", "/write?db=carol", body=b"samples hr_bpm=77 1700000200000000000",
                               headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert status == 204, body
    status, _, body = _request(proxy, "POST", "/write?db=carol", body=b"samples hr_bpm=78 1700000300000000000",
                               headers={"Authorization": "Basic " + base64.b64encode(f":{token}".encode()).decode()})
    assert status == 204, body
    assert _count(shard_b.port, "carol") == users.index("carol") + 1 + 2
    # A bearer token from POST /auth names its owner too: erin's (shard c) routes OsmAnd requests that
    # name nobody; without it they would go round the shards and two in three would be refused (401).
    status, _, body = _request(proxy, "POST", "/auth", headers=_basic("erin"))
    assert status == 200, body
    bearer = json.loads(body)["token"]
    assert bearer.startswith("trkb_erin.")
    for i in range(3):
        status, _, body = _request(proxy, "POST", f"/osmand?lat=46.{i}&lon=6.6&timestamp={1700000400 + i}",
                                   headers={"Authorization": f"Bearer {bearer}"})  # fmt: skip
        assert status == 200, body
    status, _, body = _request(proxy, "POST", f"/osmand?id={bearer}&lat=46.5&lon=6.6&timestamp=1700000500")
    assert status == 200, body
    assert _count(shard_c.port, "erin", "lat") == 4
    # The watch page and its event stream for alice (public, on shard b) come through the proxy.
    assert _request(proxy, "GET", "/watch/alice")[0] == 200
    status, headers, _ = _request(proxy, "GET", "/api/watch/alice/events", read=False)
    assert status == 200 and headers["content-type"].startswith("text/event-stream")


def test_a_shard_that_is_down_answers_503_with_retry_after(cluster: Cluster) -> None:
    _, shard_b, _, proxy = cluster
    shard_b.stop()
    time.sleep(2.5)  # past the proxy's health check (every second, down after one failure)
    status, headers, body = _request(proxy, "POST", "/write?db=alice", body=b"samples hr_bpm=1", headers=_basic("alice"))
    assert status == 503 and headers["retry-after"] == "5", (status, headers, body)
    assert b"shard b is unavailable" in body
    for user in ("bob", "erin"):  # shards a and c carry on
        status, _, _ = _request(proxy, "POST", f"/write?db={user}", body=b"samples hr_bpm=1", headers=_basic(user))
        assert status == 204
        assert _count(proxy, user) == 1


class _Writer(threading.Thread):
    """Writes one sample at a time for `user` through the proxy, retrying on 503 as a client should;
    remembers the time of every sample answered 204 and every status seen."""

    def __init__(self, port: int, user: str, first_s: int) -> None:
        super().__init__(daemon=True)
        self.port, self.user, self.next_s = port, user, first_s
        self.acknowledged: set[int] = set()
        self.statuses: dict[int, int] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            time_ns = self.next_s * 1_000_000_000
            line = f"samples hr_bpm={self.next_s % 200} {time_ns}".encode()
            try:
                status, _, _ = _request(self.port, "POST", f"/write?db={self.user}", body=line, headers=_basic(self.user))
            except OSError:
                status = 0
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status == 204:
                self.acknowledged.add(time_ns)
                self.next_s += 1
            else:
                time.sleep(0.1)  # the proxy says Retry-After; a short wait keeps the test quick


def test_a_user_moves_between_shards_under_write_load(cluster: Cluster) -> None:
    shard_a, shard_b, shard_c, proxy = cluster
    root = shard_a.data_dir.parent
    moving = _Writer(proxy, "alice", 1_700_000_000)  # alice: shard b → shard c
    staying = _Writer(proxy, "carol", 1_700_000_000)  # carol stays on shard b throughout
    moving.start()
    staying.start()
    time.sleep(1.5)
    moved = subprocess.run(
        [sys.executable, "-m", "tracker", "shard", "move", "alice", "--map", str(root / "shards.map"), "--to", "c",
         "--proxy-dir", str(root / "proxy"),
         "--drain-seconds", "0.5"],
        capture_output=True, text=True, env=clean_env(), timeout=120,
    )  # fmt: skip
    time.sleep(1.5)  # writes go on, now to shard c
    moving.halt.set()
    staying.halt.set()
    moving.join(10)
    staying.join(10)
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert moving.statuses.get(503, 0) >= 1, moving.statuses  # held during the final copy...
    assert set(moving.statuses) <= {204, 503}, moving.statuses  # ...and never refused otherwise
    assert set(staying.statuses) == {204}, staying.statuses  # another user of the source shard: untouched
    assert len(moving.acknowledged) > 20
    # Every acknowledged sample is on shard c, nothing more; none of alice is left on shard b, none went to a.
    assert _times(shard_c.port, "alice") == moving.acknowledged
    assert _times(proxy, "alice") == moving.acknowledged
    assert not (shard_b.data_dir / "users" / "alice.sqlite").exists()
    assert _request(shard_b.port, "GET", "/query?db=alice&q=SHOW+DATABASES", headers=_basic("alice"))[0] == 401
    assert not (shard_a.data_dir / "users" / "alice.sqlite").exists()
    assert _times(shard_b.port, "carol") == staying.acknowledged
    assert "alice c" in (root / "shards.map").read_text().splitlines()
    assert "alice shard_c" in (root / "proxy" / "users.map").read_text().splitlines()


def test_a_browser_signed_in_through_the_proxy_stays_on_its_shard(cluster: Cluster) -> None:
    *_, proxy = cluster

    async def browse() -> list[tuple[int, str | None]]:
        async with aiohttp.ClientSession(f"http://{HOST}:{proxy}", cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            async with browser.get("/api/me") as response:  # any shard: hands out the CSRF cookie
                await response.read()
            csrf = next(m.value for m in browser.cookie_jar if m.key == "tracker_csrf")
            form = {"username": "carol", "password": PASSWORD, "csrf": csrf}
            async with browser.post("/login", data=form, allow_redirects=False) as response:
                assert response.status == 303, await response.text()
            seen = []
            for _ in range(6):  # carol's shard each time, not the next one in turn
                async with browser.get("/api/me") as response:
                    seen.append((response.status, (await response.json()).get("user")))
            return seen

    assert asyncio.run(browse()) == [(200, "carol")] * 6
