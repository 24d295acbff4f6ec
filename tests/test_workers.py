"""`tracker serve --workers 2`: a supervisor and two worker processes on one port and one data folder.

Every request goes on a fresh connection, so the kernel (SO_REUSEPORT) spreads them over both
workers; the servers' own logs (one line per request, naming the worker) show that both answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import orjson
import pytest
from aiohttp import web

from tests.conftest import basic
from tests.tracker_process import PASSWORD, TrackerProcess, alive, clean_env, free_port
from tracker.config import Settings
from tracker.group import PeerChannel, Worker

slow = pytest.mark.slow
T0 = 1_700_000_000_000_000_000
AUTH = basic("alice", PASSWORD)
# Alerts in seconds, not minutes; the CLI reads these too (the shortest quiet time, private webhooks).
ALERT_ENV = {
    "TRACKER_ALERT_MIN_QUIET_SECONDS": "0.5",
    "TRACKER_ALERT_CHECK_SECONDS": "0.3",
    "TRACKER_WEBHOOK_ALLOW_PRIVATE": "1",
}


def fresh_session() -> aiohttp.ClientSession:
    # One connection per request: each is a new 4-tuple, hashed afresh over the workers.
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))


async def write(session: aiohttp.ClientSession, url: str, body: str, auth: dict[str, str] = AUTH) -> int:
    async with session.post(f"{url}/write?db=alice", data=body, headers=auth) as response:
        return response.status


async def stored_times(url: str, user: str = "alice") -> dict[int, float]:
    async with fresh_session() as session:
        async with session.get(
            f"{url}/query",
            params={"db": user, "q": "SELECT hr_bpm FROM samples", "epoch": "ns"},
            headers=basic(user, PASSWORD),
        ) as response:
            assert response.status == 200, await response.text()
            result = orjson.loads(await response.read())["results"][0]
    values = result.get("series", [{"values": []}])[0]["values"]
    return {int(t): float(v) for t, v in values}


def workers_seen(server: TrackerProcess, what: str) -> set[str]:
    """Which workers logged a request line containing `what` (the access log names the worker)."""
    return {
        match.group(1)
        for line in server.log().splitlines()
        if what in line and (match := re.search(r" (worker \d+) tracker\.access: ", line))
    }


async def logged_by_both(server: TrackerProcess, what: str) -> None:
    """Both workers logged a request line containing `what` (access lines are written in bulk, at
    least twice a second: wait for them)."""
    await wait_for(lambda: workers_seen(server, what) == {"worker 0", "worker 1"}, f"both workers logged {what!r}")


async def both_serving(server: TrackerProcess) -> None:
    """Wait until each worker answered a /ping (a worker's process runs before its socket listens)."""
    await wait_for(lambda: len(server.worker_pids()) == 2, "two workers running")

    async def pinged_both() -> bool:
        async with fresh_session() as session:
            for _ in range(4):
                try:
                    async with session.get(f"{server.url}/ping"):
                        pass
                except aiohttp.ClientError:
                    pass
        return len(workers_seen(server, "GET /ping 204")) == 2

    await wait_for(pinged_both, "both workers answering")


async def wait_for(condition: Any, what: str, timeout: float = 20.0) -> None:
    """Poll `condition()` (sync or async) until true; fail naming `what` past `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def running_group(
    tmp_path: Path, *serve_args: str, env: dict[str, str] | None = None
) -> AsyncIterator[TrackerProcess]:
    """Two workers with user alice (log level info: one line per request, naming the worker)."""
    server = TrackerProcess(
        tmp_path / "data", tmp_path / "server.log", workers=2, log_level="info", serve_args=serve_args, env=env
    )
    server.add_user("alice")
    server.start()
    try:
        await both_serving(server)
        yield server
    finally:
        server.close()


@pytest.fixture
async def group(tmp_path: Path) -> AsyncIterator[TrackerProcess]:
    async with running_group(tmp_path) as server:
        yield server


@slow
async def test_both_workers_answer_and_every_write_lands(group: TrackerProcess) -> None:
    async with fresh_session() as session:
        statuses = await asyncio.gather(
            *(write(session, group.url, f"samples hr_bpm={100 + i} {T0 + i}") for i in range(60))
        )
    assert statuses == [204] * 60
    await logged_by_both(group, "POST /write 204")
    assert await stored_times(group.url) == {T0 + i: 100.0 + i for i in range(60)}


@slow
async def test_a_second_server_on_the_folder_or_the_port_is_refused(group: TrackerProcess, tmp_path: Path) -> None:
    def serve(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tracker", "serve", "--workers", "2", "--host", "127.0.0.1", *args],
            capture_output=True, text=True, timeout=60, env=clean_env(),
        )  # fmt: skip

    same_folder = serve("--port", str(free_port()), "--data-dir", str(group.data_dir))
    assert same_folder.returncode == 1 and "another server runs on the data folder" in same_folder.stderr
    same_port = serve("--port", str(group.port), "--data-dir", str(tmp_path / "other"))
    assert same_port.returncode == 1 and "in use" in same_port.stderr
    assert await stored_times(group.url) == {}  # the group serves on


def test_workers_setting() -> None:
    assert Settings.from_env({}).worker_count == 1
    assert Settings.from_env({"TRACKER_WORKERS": "auto"}).worker_count == len(os.sched_getaffinity(0))
    assert Settings.from_env({}, workers="3").worker_count == 3
    for bad in ("0", "-1", "two", "1.5", "65"):
        with pytest.raises(ValueError, match="workers must be auto or 1..64"):
            Settings.from_env({}, workers=bad)


async def post_until_stopped(url: str, acked: dict[int, float], stop: asyncio.Event, first: int) -> None:
    """Writes one sample per request until `stop`; remembers only what was acknowledged (204)."""
    i = first
    async with fresh_session() as session:
        while not stop.is_set():
            i += 1
            try:
                if await write(session, url, f"samples hr_bpm={i % 200} {T0 + i}") == 204:
                    acked[T0 + i] = float(i % 200)
            except (aiohttp.ClientError, asyncio.TimeoutError):
                await asyncio.sleep(0.01)  # a worker went away mid-request: not acknowledged


@slow
async def test_sigkill_of_a_worker_loses_nothing_acknowledged_and_it_comes_back(group: TrackerProcess) -> None:
    acked: dict[int, float] = {}
    stop = asyncio.Event()
    writers = [asyncio.create_task(post_until_stopped(group.url, acked, stop, n * 1_000_000)) for n in range(4)]
    await wait_for(lambda: len(acked) >= 100, "100 writes acknowledged")
    victim = group.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    await wait_for(lambda: victim not in group.worker_pids() and len(group.worker_pids()) == 2, "the worker restarted")
    after_restart = len(acked)
    await wait_for(lambda: len(acked) >= after_restart + 100, "writes acknowledged after the restart")
    stop.set()
    await asyncio.gather(*writers)
    assert "ended with signal SIGKILL; restarting it" in group.log()
    stored = await stored_times(group.url)
    missing = [t for t in acked if t not in stored]
    assert not missing, f"{len(missing)} acknowledged samples lost, e.g. {missing[:5]}"
    assert all(stored[t] == v for t, v in acked.items())


@slow
async def test_workers_end_with_a_killed_supervisor(group: TrackerProcess) -> None:
    workers = group.worker_pids()
    group.kill(workers_too=False)  # SIGKILL: the supervisor runs no code at all
    await wait_for(lambda: not any(alive(pid) for pid in workers), "the workers exited")
    assert group.ping() is None  # nobody holds the port


@slow
@pytest.mark.parametrize("after", [0.3, 0.5, 0.7, 0.9])
async def test_workers_end_with_a_supervisor_killed_while_they_start(tmp_path: Path, after: float) -> None:
    """Killed while its workers still start up, halfway through opening their files: the signal
    interrupts a worker's start, and what it had opened must not keep it alive."""
    group = TrackerProcess(tmp_path / "data", tmp_path / "server.log", workers=2)
    group.add_user("alice")
    group.spawn()
    try:
        await asyncio.sleep(after)
        assert group.process is not None
        workers = group.worker_pids()
        group.kill(workers_too=False)
        await wait_for(lambda: not any(alive(pid) for pid in workers), f"the workers {workers} exited", timeout=30)
    finally:
        group.close()


@slow
async def test_sigterm_stops_the_group_with_status_0_and_nothing_acknowledged_lost(group: TrackerProcess) -> None:
    acked: dict[int, float] = {}
    stop = asyncio.Event()
    writers = [asyncio.create_task(post_until_stopped(group.url, acked, stop, n * 1_000_000)) for n in range(4)]
    await wait_for(lambda: len(acked) >= 100, "100 writes acknowledged")
    workers = group.worker_pids()
    await asyncio.to_thread(group.stop)  # asserts exit status 0
    stop.set()
    await asyncio.gather(*writers)
    assert not any(alive(pid) for pid in workers)
    group.start()  # the same folder, served again
    stored = await stored_times(group.url)
    assert not [t for t in acked if t not in stored]


@slow
async def test_failed_sign_ins_are_counted_across_workers(tmp_path: Path) -> None:
    wrong = basic("alice", "not-the-password")
    async with running_group(tmp_path, "--max-auth-failures", "4") as group, fresh_session() as session:
        for i in range(4):  # spread over the workers: neither sees all four
            assert await write(session, group.url, f"samples hr_bpm=1 {T0 + i}", wrong) == 401

        async def banned_everywhere() -> bool:
            statuses = [await write(session, group.url, f"samples hr_bpm=1 {T0}") for _ in range(10)]
            return statuses == [429] * 10

        await wait_for(banned_everywhere, "the right password refused (429) by both workers")
        await logged_by_both(group, "POST /write 429")


async def open_stream(session: aiohttp.ClientSession, url: str) -> aiohttp.ClientResponse:
    return await session.get(f"{url}/api/watch/alice/events")


@slow
async def test_live_streams_per_address_are_counted_across_workers(tmp_path: Path) -> None:
    # A stream's place comes back once its handler sees the viewer gone: at the next heartbeat.
    heartbeat = {"TRACKER_LIVE_HEARTBEAT_SECONDS": "0.5"}
    async with running_group(tmp_path, "--max-streams-per-address", "2", env=heartbeat) as group, fresh_session() as session:
        group.cli("user", "public", "alice", "on")
        held = [await open_stream(session, group.url) for _ in range(2)]
        assert [r.status for r in held] == [200, 200]
        refused = [await open_stream(session, group.url) for _ in range(8)]
        assert [r.status for r in refused] == [429] * 8, "a third stream from one address opened"
        for response in refused:
            response.release()
        await logged_by_both(group, "/events 429")
        for response in held:
            response.close()  # the viewer goes away: its places come back

        async def one_opens() -> bool:
            response = await open_stream(session, group.url)
            response.close()
            return response.status == 200

        await wait_for(one_opens, "a stream opening once the others closed")


@slow
async def test_a_killed_workers_streams_give_their_places_back(tmp_path: Path) -> None:
    heartbeat = {"TRACKER_LIVE_HEARTBEAT_SECONDS": "0.5"}
    async with running_group(tmp_path, "--max-streams-per-address", "1", env=heartbeat) as server, fresh_session() as session:
        server.cli("user", "public", "alice", "on")
        held = await open_stream(session, server.url)
        assert held.status == 200
        assert (await open_stream(session, server.url)).status == 429
        # Whichever worker holds the stream: kill both, one after the other; each comes back without it.
        for pid in server.worker_pids():
            os.kill(pid, signal.SIGKILL)
            await wait_for(lambda: pid not in server.worker_pids() and len(server.worker_pids()) == 2, "restart")
        held.close()

        async def opens() -> bool:
            try:
                response = await open_stream(session, server.url)
            except aiohttp.ClientError:
                return False
            response.close()
            return response.status == 200

        await wait_for(opens, "the place of the killed worker's stream free again")


@slow
async def test_a_gone_quiet_alert_fires_once_and_not_while_another_worker_gets_data(tmp_path: Path) -> None:
    notices: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        notices.append(await request.json())
        return web.Response(status=204)

    hook = web.Application()
    hook.router.add_post("/hook", receive)
    runner = web.AppRunner(hook)
    await runner.setup()
    hook_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", hook_port).start()
    try:
        group = running_group(tmp_path, "--alert-attempts", "1", env=ALERT_ENV)
        async with group as server, fresh_session() as session:
            server.cli("alert", "set", "alice", "--after", "1s", "--webhook", f"http://127.0.0.1:{hook_port}/hook")
            # Data every 0.2 s for 5 s, spread over both workers: never quiet for 1 s.
            for i in range(25):
                assert await write(session, server.url, f"samples hr_bpm=1 {time.time_ns()}") == 204
                await asyncio.sleep(0.2)
            await logged_by_both(server, "POST /write 204")
            assert notices == [], "an alert fired while data kept arriving at another worker"
            await wait_for(lambda: len(notices) >= 1, "the quiet notice")
            await asyncio.sleep(4)  # time enough for a second worker's duplicate
            assert [n["kind"] for n in notices] == ["quiet"]
            assert await write(session, server.url, f"samples hr_bpm=1 {time.time_ns()}") == 204
            await wait_for(lambda: len(notices) >= 2, "the back notice")
            await asyncio.sleep(1)  # (silent again from now on: a second "quiet" may follow, never a second "back")
            assert [n["kind"] for n in notices][:3] in (["quiet", "back"], ["quiet", "back", "quiet"])
    finally:
        await runner.cleanup()


def leaders(server: TrackerProcess) -> list[str]:
    return re.findall(r" (worker \d+) tracker\.group: leading", server.log())


def pid_of(server: TrackerProcess, worker: str) -> int:
    """The pid the supervisor last started `worker` with (its log says)."""
    return int(re.findall(rf"{worker} started \(pid (\d+)\)", server.log())[-1])


@slow
async def test_one_leader_sweeps_retention_and_another_takes_over_when_it_dies(tmp_path: Path) -> None:
    env = {"TRACKER_RETENTION_CHECK_SECONDS": "0.3"}
    async with running_group(tmp_path, env=env) as group, fresh_session() as session:
        await wait_for(lambda: len(leaders(group)) == 1, "a leader")
        first = leaders(group)[0]
        for round_ in range(2):
            group.cli("user", "retention", "alice", "inf")
            statuses = [await write(session, group.url, f"samples hr_bpm=1 {T0 + i}") for i in range(10)]
            assert statuses == [204] * 10  # long past, kept while the retention is inf
            group.cli("user", "retention", "alice", "1h")
            await wait_for(lambda: group.log().count("retention: removed 10 samples of alice") == round_ + 1, "a sweep")
            sweepers = re.findall(r" (worker \d+) tracker\.retention: retention: removed", group.log())
            assert sweepers[-1] == leaders(group)[-1]
            assert await stored_times(group.url) == {}
            if round_ == 0:
                os.kill(pid_of(group, first), signal.SIGKILL)
                await wait_for(lambda: len(leaders(group)) == 2, "a new leader")
        assert len(sweepers) == 2, "a sweep ran in more than one worker"


@slow
async def test_cli_beside_a_running_group_reaches_both_workers(tmp_path: Path) -> None:
    async with running_group(tmp_path, "--max-auth-failures", "100") as group, fresh_session() as session:
        group.add_user("bob")
        bob = basic("bob", PASSWORD)

        async def statuses(auth: dict[str, str]) -> list[int]:
            results = []
            for i in range(10):
                line = f"samples hr_bpm=1 {T0 + i}"
                async with session.post(f"{group.url}/write?db=bob", data=line, headers=auth) as response:
                    results.append(response.status)
            return results

        assert await statuses(bob) == [204] * 10  # warms both workers' password caches too
        group.cli("user", "passwd", "bob", "--password-stdin", stdin="another-pw-1234\n")
        # The accounts file's data_version moves with another process's commit: no message needed.
        assert await statuses(bob) == [401] * 10
        assert await statuses(basic("bob", "another-pw-1234")) == [204] * 10
        await logged_by_both(group, "POST /write 401")


@slow
async def test_two_workers_writing_one_series_merge_by_one_rule(group: TrackerProcess) -> None:
    # 40 requests, each writing the same 20 times with its own value: every request is acknowledged,
    # and each time holds exactly one value, one of those written.
    async with fresh_session() as session:
        bodies = ["\n".join(f"samples hr_bpm={r} {T0 + t}" for t in range(20)) for r in range(1, 41)]
        statuses = await asyncio.gather(*(write(session, group.url, body) for body in bodies))
    assert statuses == [204] * 40
    await logged_by_both(group, "POST /write 204")
    stored = await stored_times(group.url)
    assert sorted(stored) == [T0 + t for t in range(20)]
    assert all(1 <= value <= 40 for value in stored.values())


@slow
async def test_devices_last_seen_follow_writes_to_either_worker(group: TrackerProcess) -> None:
    group.cli("user", "public", "alice", "on")
    async with fresh_session() as session:

        async def devices_everywhere() -> list[Any]:
            answers = []
            for _ in range(8):
                async with session.get(f"{group.url}/api/watch/alice/devices") as response:
                    answers.append((await response.json())["devices"])
            return answers

        assert await devices_everywhere() == [[]] * 8  # both workers looked (and found nothing yet)
        for i in range(20):
            assert await write(session, group.url, f"samples,device=phone hr_bpm=1 {T0 + i}") == 204
        await logged_by_both(group, "POST /write 204")
        newest = [{"device": "phone", "last_sample_ns": T0 + 19, "live": False}]

        async def both_know() -> bool:
            # 24 answers: all of them from one worker by chance (one in 8 million) is no "both".
            return [*await devices_everywhere(), *await devices_everywhere(), *await devices_everywhere()] == [newest] * 24

        await wait_for(both_know, "both workers showing the newest sample of the device")
        # Once shown, shown by both for good (not one lucky round on the worker that took the writes).
        assert await devices_everywhere() + await devices_everywhere() == [newest] * 16


@slow
async def test_the_owners_page_shows_an_alerts_state_from_either_worker(tmp_path: Path) -> None:
    async with running_group(tmp_path, "--alert-attempts", "1", env=ALERT_ENV) as group, aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True), cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as session:
        # Nobody listens there: the notice fails, the alert's state is the leader's all the same.
        group.cli("alert", "set", "alice", "--after", "2s", "--webhook", f"http://127.0.0.1:{free_port()}/hook")
        async with session.get(f"{group.url}/api/me"):
            pass
        csrf = next(m.value for m in session.cookie_jar if m.key == "tracker_csrf")
        form = {"username": "alice", "password": PASSWORD, "csrf": csrf}
        async with session.post(f"{group.url}/login", data=form, allow_redirects=False) as response:
            assert response.status == 303

        async def states() -> list[str]:
            answers = []
            for _ in range(8):
                async with session.get(f"{group.url}/api/alerts") as response:
                    answers.append((await response.json())["alerts"][0]["state"])
            return answers

        assert await write(session, group.url, f"samples hr_bpm=1 {time.time_ns()}") == 204
        await wait_for(lambda: "quiet alert of alice" in group.log(), "the alert firing")

        async def quiet_everywhere() -> bool:
            # 24 answers: all of them from one worker by chance (one in 8 million) is no "both".
            return [*await states(), *await states(), *await states()] == ["quiet"] * 24

        await wait_for(quiet_everywhere, "both workers showing the alert quiet")
        assert await states() + await states() == ["quiet"] * 16
        await logged_by_both(group, "GET /api/alerts 200")


async def test_peer_channel_carries_datagrams_between_workers(tmp_path: Path) -> None:
    first, second = PeerChannel(Worker(tmp_path, 0, 2)), PeerChannel(Worker(tmp_path, 1, 2))
    first.notify(b"nobody listens yet")  # dropped, never raised
    assert first.dropped == 0 and first.sent == 0  # not open: sends nothing
    first.open()
    first.notify(b"nobody listens yet")
    assert first.dropped == 1
    got: list[bytes] = []
    arrived = asyncio.Event()
    second.on_message(lambda payload: (got.append(payload), arrived.set()))
    second.open()
    try:
        first.notify(b"journal:42")
        await asyncio.wait_for(arrived.wait(), 5)
        assert got == [b"journal:42"]
        for i in range(100_000):  # far past the socket's queue: drops, never blocks or raises
            first.notify(b"x" * 100)
        assert first.dropped > 1
    finally:
        first.close()
        second.close()


async def test_a_sole_worker_has_no_peers(tmp_path: Path) -> None:
    channel = PeerChannel(Worker.sole(tmp_path))
    channel.open()
    channel.notify(b"journal:1")
    assert channel.sent == channel.dropped == 0
    channel.close()
