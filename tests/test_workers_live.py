"""The live view across workers: a viewer connected to either worker sees every sample, whichever
worker committed it, in commit order, and after reconnecting to the other worker resumes from its
last event id without a gap or a repeat.

Which worker holds a connection is read from /proc (tests/worker_sockets.py), so the test does not
hope that the kernel spread the connections: it opens connections until each worker has its share.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest

from tests.conftest import basic
from tests.sse import EventStream
from tests.tracker_process import PASSWORD, TrackerProcess
from tests.worker_sockets import worker_of

pytestmark = pytest.mark.slow  # a group of worker processes

RIDER = "rider"
T0 = 1_700_000_000 * 10**9
SECOND = 10**9


@pytest.fixture
async def group(tmp_path: Path) -> AsyncIterator[TrackerProcess]:
    server = TrackerProcess(tmp_path / "data", tmp_path / "server.log", workers=2)
    server.add_user(RIDER)
    server.cli("user", "public", RIDER, "on")
    server.start()
    try:
        deadline = asyncio.get_running_loop().time() + 20
        while len(server.worker_pids()) < 2:
            assert asyncio.get_running_loop().time() < deadline, "two workers never ran"
            await asyncio.sleep(0.05)
        yield server
    finally:
        server.close()


def worker_holding(server: TrackerProcess, response: aiohttp.ClientResponse) -> int | None:
    assert response.connection is not None and response.connection.transport is not None
    client_port = response.connection.transport.get_extra_info("sockname")[1]
    return worker_of(server.worker_pids(), server.port, client_port)


class Viewer:
    """One open event stream on its own connection, and which worker serves it."""

    def __init__(self, session: aiohttp.ClientSession, response: aiohttp.ClientResponse, worker: int | None) -> None:
        self.session, self.response, self.worker = session, response, worker
        self.stream = EventStream(response)
        self.times: list[int] = []
        self.ids: list[int] = []
        self.last_event_id: str | None = None

    async def read(self, count: int, timeout: float = 15.0) -> None:
        """Read `samples` events until `count` more samples arrived."""
        goal = len(self.times) + count
        async with asyncio.timeout(timeout):
            while len(self.times) < goal:
                block = await self.stream.event(timeout)
                assert block.event == "samples", (block.event, block.data)
                assert block.id is not None
                self.last_event_id = block.id
                self.ids.append(int(block.id.rsplit("-", 1)[1]))
                self.times += [sample["t"] for sample in block.json["samples"]]

    async def close(self) -> None:
        self.response.close()
        await self.session.close()


async def open_viewer(server: TrackerProcess, last_event_id: str | None = None) -> Viewer:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    response = await session.get(f"{server.url}/api/watch/{RIDER}/events", headers=headers)
    assert response.status == 200, await response.text()
    return Viewer(session, response, worker_holding(server, response))


async def viewers_on_each_worker(server: TrackerProcess, per_worker: int) -> list[Viewer]:
    kept: list[Viewer] = []
    for _ in range(60):
        viewer = await open_viewer(server)
        if sum(v.worker == viewer.worker for v in kept) < per_worker and viewer.worker is not None:
            kept.append(viewer)
        else:
            await viewer.close()
        if len(kept) == 2 * per_worker:
            return kept
    raise AssertionError(f"could not place {per_worker} viewers on each worker: {[v.worker for v in kept]}")


class KeptConnection:
    """One keep-alive HTTP/1.1 connection for writes, so that every write goes to the same worker."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, server: TrackerProcess) -> KeptConnection:
        return cls(*await asyncio.open_connection(server.host, server.port))

    @property
    def local_port(self) -> int:
        return int(self.writer.get_extra_info("sockname")[1])

    async def write(self, body: str) -> int:
        """POST /write; the answer's status (the 204 has no body; an error's body is read and dropped)."""
        data = body.encode()
        auth = basic(RIDER, PASSWORD)["Authorization"]
        self.writer.write(
            f"POST /write?db={RIDER} HTTP/1.1\r\nHost: tracker\r\nAuthorization: {auth}\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode() + data
        )
        async with asyncio.timeout(15):
            status = int((await self.reader.readline()).split()[1])
            length = 0
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def writer_on_each_worker(server: TrackerProcess) -> list[KeptConnection]:
    writers: dict[int, KeptConnection] = {}
    for _ in range(60):
        connection = await KeptConnection.open(server)
        assert await connection.write(f"samples hr_bpm=1 {T0 - SECOND}") == 204  # the server end exists now
        worker = worker_of(server.worker_pids(), server.port, connection.local_port)
        if worker is not None and worker not in writers:
            writers[worker] = connection
        else:
            await connection.close()
        if len(writers) == 2:
            return list(writers.values())
    raise AssertionError("could not reach both workers with a writer")


async def write_samples(writers: list[KeptConnection], numbers: range) -> None:
    """One sample per request, in turn through each worker; each waits for the previous 204."""
    for n in numbers:
        assert await writers[n % len(writers)].write(f"samples hr_bpm={100 + n % 80} {T0 + n * SECOND}") == 204


async def test_viewers_on_either_worker_see_every_write_in_order_and_resume_on_the_other(group: TrackerProcess) -> None:
    writers = await writer_on_each_worker(group)  # first: their probing writes come before any viewer
    viewers = await viewers_on_each_worker(group, per_worker=2)
    try:
        await write_samples(writers, range(20))
        await asyncio.gather(*(viewer.read(20) for viewer in viewers))
        for viewer in viewers:
            assert viewer.times == [T0 + n * SECOND for n in range(20)], f"viewer on worker {viewer.worker}"
            assert viewer.ids == sorted(set(viewer.ids)), "event ids go up, one per write"

        # One viewer goes away; writes go on through both workers; it comes back on the other worker.
        leaving = viewers.pop(0)
        await leaving.close()
        await write_samples(writers, range(20, 40))
        back = await open_viewer(group, leaving.last_event_id)
        tries = 0
        while back.worker == leaving.worker:
            await back.close()
            tries += 1
            assert tries < 60, "could not reconnect on the other worker"
            back = await open_viewer(group, leaving.last_event_id)
        viewers.append(back)
        await asyncio.gather(*(viewer.read(20) for viewer in viewers))
        assert back.times == [T0 + n * SECOND for n in range(20, 40)], "resumed on the other worker: no gap, no repeat"
        assert min(back.ids) > int(leaving.last_event_id.rsplit("-", 1)[1])
        for viewer in viewers[:-1]:
            assert viewer.times == [T0 + n * SECOND for n in range(40)], f"viewer on worker {viewer.worker}"
    finally:
        for viewer in viewers:
            await viewer.close()
        for connection in writers:
            await connection.close()
