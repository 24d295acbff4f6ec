"""What compressed bodies may cost a real `tracker serve`, measured as the process's peak resident
memory (VmHWM): a body is read only once its sender is known, and all inflating at once shares one
server-wide budget."""

from __future__ import annotations

import asyncio
import base64
import gzip
import zlib
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import AddUser, TokenMaker
from tests.tracker_process import PASSWORD, TrackerProcess
from tracker.app import create_app
from tracker.appkeys import INFLATE_BUDGET
from tracker.config import Settings

MB = 1_000_000


def gzip_bomb(inflated: int) -> bytes:
    """A gzip body that inflates to `inflated` zero bytes (about 1000 times its size)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MB)
    parts = [packer.compress(block) for _ in range(inflated // MB)]
    parts.append(packer.compress(bytes(inflated % MB)))
    parts.append(packer.flush())
    return b"".join(parts)


def peak_memory_mb(server: TrackerProcess) -> float:
    """The server process's peak resident memory so far (VmHWM), in MB."""
    assert server.process is not None
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / MB
    raise AssertionError("no VmHWM in /proc/PID/status")


@pytest.fixture
async def running(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[TrackerProcess]:
    serve_args, env = getattr(request, "param", ([], {}))
    server = TrackerProcess(tmp_path / "data", tmp_path / "server.log", serve_args=serve_args, env=env)
    await asyncio.to_thread(server.add_user, "alice")
    server.spawn()
    try:
        await server.ready(timeout=30)
        yield server
        await asyncio.to_thread(server.stop, 30)
    finally:
        server.close()
    assert "Traceback" not in server.log(), server.log_tail()


ALICE = {"Authorization": "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()}
GZIP_FORM = {"Content-Encoding": "gzip", "Content-Type": "application/x-www-form-urlencoded"}


async def warm_up(session: aiohttp.ClientSession, server: TrackerProcess) -> None:
    """One ordinary write and one app sample, so that the baseline includes what any request costs."""
    async with session.post(f"{server.url}/write?db=alice", data="samples hr_bpm=1 1", headers=ALICE) as response:
        assert response.status == 204
    async with session.get(f"{server.url}/osmand?lat=1&lon=2&timestamp=2", headers=ALICE) as response:
        assert response.status == 200


async def test_gzip_bombs_without_credentials_to_the_phone_apps_cost_no_memory(running: TrackerProcess) -> None:
    """Twelve bombs (240 MB each once inflated) without credentials took the server from 139 to 608 MB."""
    bomb = await asyncio.to_thread(gzip_bomb, 240 * MB)
    async with aiohttp.ClientSession() as session:
        await warm_up(session, running)
        before = peak_memory_mb(running)

        async def send(path: str) -> tuple[int, str]:
            async with session.post(f"{running.url}{path}", data=bomb, headers=GZIP_FORM) as response:
                return response.status, (await response.json())["error"]

        answers = await asyncio.gather(*(send(path) for path in ("/osmand", "/gpslogger") * 6))
    grown = peak_memory_mb(running) - before
    assert {status for status, _ in answers} == {401}, answers
    assert all("compressed body" in message for _, message in answers), answers
    assert grown < 30, f"the server grew by {grown:.0f} MB for bodies it never had to read"


# Room for one body at the limit at a time.
BUDGET_ARGS = ["--max-decompressed-size", str(100 * MB)]
BUDGET_ENV = {"TRACKER_MAX_INFLIGHT_DECOMPRESSED": str(100 * MB)}


@pytest.mark.parametrize("running", [(BUDGET_ARGS, BUDGET_ENV)], indirect=True)
async def test_authenticated_gzip_bombs_share_one_budget_of_inflated_bytes(running: TrackerProcess) -> None:
    """Six bombs to /write (240 MB each once inflated) took the server to 989 MB: here eight of 96 MB,
    with room for one at a time."""
    bomb = await asyncio.to_thread(gzip_bomb, 96 * MB)
    async with aiohttp.ClientSession() as session:
        await warm_up(session, running)
        before = peak_memory_mb(running)

        async def send() -> tuple[int, str, str | None]:
            async with session.post(
                f"{running.url}/write?db=alice", data=bomb, headers={**ALICE, "Content-Encoding": "gzip"}
            ) as response:
                error = (await response.json())["error"]
                assert response.headers["X-Influxdb-Error"] == error[:1024]
                return response.status, error, response.headers.get("Retry-After")

        answers = await asyncio.gather(*(send() for _ in range(8)))
        grown = peak_memory_mb(running) - before
        # Every bomb is one line of zeros: refused as too long once inflated, or 503 to retry later.
        assert any(status == 400 for status, _, _ in answers), answers
        for status, error, retry_after in answers:
            assert status in (400, 503), answers
            if status == 400:
                assert "line too long" in error
            else:
                assert retry_after is not None and int(retry_after) > 0 and "try again" in error
        # The budget is back: an ordinary compressed write goes through.
        line = zlib.compress(b"samples hr_bpm=150 1700000000000000000\n", wbits=16 + zlib.MAX_WBITS)
        async with session.post(
            f"{running.url}/write?db=alice", data=line, headers={**ALICE, "Content-Encoding": "gzip"}
        ) as response:
            assert response.status == 204, await response.text()
    # 100 MB of inflated bodies at once, and for a moment a second copy of one (joined, or parsed).
    # Without the budget: 414 MB.
    assert grown < 220, f"eight bombs grew the server by {grown:.0f} MB: {answers}"


# ----- the budget and who may send a body, in process -----


@pytest.fixture
async def alice_client(aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings, add_user: AddUser) -> TestClient:
    await add_user("alice", PASSWORD)
    return await aiohttp_client(create_app(settings.with_(max_inflight_decompressed=settings.max_decompressed_size)))


def gz(data: bytes) -> bytes:
    return gzip.compress(data)


async def test_the_budget_is_whole_again_after_every_request(alice_client: TestClient) -> None:
    budget = alice_client.server.app[INFLATE_BUDGET]
    headers = {**ALICE, "Content-Encoding": "gzip"}
    for body, status in (
        (gz(b"samples hr_bpm=1 1\n" * 1000), 204),
        (gz(b"samples hr_bpm=1 1\n")[:-9], 400),  # cut short
        (gzip_bomb(300 * MB), 413),  # past max_decompressed_size
        (gz(b"\n" * 200_000), 413),  # past max_lines_per_request, refused while inflating
    ):
        response = await alice_client.post("/write?db=alice", data=body, headers=headers)
        assert response.status == status, await response.text()
        assert budget.free == budget.total


async def test_a_request_waits_for_budget_briefly_then_gets_503(alice_client: TestClient) -> None:
    budget = alice_client.server.app[INFLATE_BUDGET]
    headers = {**ALICE, "Content-Encoding": "gzip"}
    hog = budget.lease()
    await hog.take(budget.total)  # another request holding all of it
    try:
        waiting = asyncio.create_task(alice_client.post("/write?db=alice", data=gz(b"samples hr_bpm=2 2"), headers=headers))
        await asyncio.sleep(0.3)
        hog.close()  # done in time: the waiting request goes through
        assert (await waiting).status == 204
        await hog.take(budget.total)
        response = await alice_client.post("/write?db=alice", data=gz(b"samples hr_bpm=3 3"), headers=headers)
        assert response.status == 503
        assert response.headers["Retry-After"] == "5"
        error = "too many compressed bodies are being inflated at once; try again in 5 seconds"
        assert await response.json() == {"error": error} and response.headers["X-Influxdb-Error"] == error
    finally:
        hog.close()
    assert budget.free == budget.total


async def test_a_body_is_read_only_once_its_sender_is_known(alice_client: TestClient, make_token: TokenMaker) -> None:
    token = await make_token("alice", "pixel")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    # The token in the URL: checked first, then the compressed body is read.
    response = await alice_client.post(
        f"/osmand?id={token}", data=gz(b"lat=1&lon=2&timestamp=1700000000"), headers={**form, "Content-Encoding": "gzip"}
    )
    assert response.status == 200, await response.text()
    # A wrong token in the URL: 401 before the body (a bomb) is looked at.
    response = await alice_client.post("/gpslogger?id=trk_nope", data=gzip_bomb(200 * MB), headers={**form, "Content-Encoding": "gzip"})
    assert response.status == 401
    # The token only in the body: a plain body is read, small; a compressed one is not read at all.
    body = f"id={token}&lat=1&lon=2&timestamp=1700000001".encode()
    assert (await alice_client.post("/osmand", data=body, headers=form)).status == 200
    response = await alice_client.post("/osmand", data=gz(body), headers={**form, "Content-Encoding": "gzip"})
    assert response.status == 401
    assert "a compressed body is read only once its sender is known" in (await response.json())["error"]
    response = await alice_client.post("/gpslogger", data=body + b"&x=" + b"0" * 70_000, headers=form)
    assert response.status == 413
    # /auth's JSON credentials: the same rule.
    response = await alice_client.post("/auth", data=gz(b'{"password": "x"}'), headers={"Content-Encoding": "gzip"})
    assert response.status == 401
    response = await alice_client.post("/auth", data=b'{"password": "' + b"x" * 70_000 + b'"}')
    assert response.status == 413
