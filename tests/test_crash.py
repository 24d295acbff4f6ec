"""Crash safety: a real server is killed with SIGKILL again and again while writers post samples.

Writers post numbered samples (several fields whose values encode the number, single lines and
multi-line batches) and record which requests were acknowledged with 204. After every kill the server
is started again and must answer /ping within 2 seconds of being spawned; then every acknowledged
sample must be there with exactly the values sent, anything else present must also be exactly what
was sent, and every batch must be there whole or not at all. The end state is also read straight
from the SQLite file.

The kill moments are random; the seed is printed (and taken from CRASH_TEST_SEED when set), so a
failing run can be repeated.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import basic
from tests.tracker_process import PASSWORD, TrackerProcess

pytestmark = pytest.mark.slow  # a real server for many seconds: left out of `make test-fast`

USER = "crash"
KILLS = 24
WRITERS = 4
RECOVERY_SECONDS = 2.0  # the bound: from spawn to answering /ping
BASE_NS = 1_700_000_000 * 10**9
STEP_NS = 1_000  # sample n is at BASE_NS + n * STEP_NS: unique times, one series per writer
FIELDS = ("dur_s", "dist_km", "hr_bpm", "cad_rpm", "pwr_w", "lat", "lng")


def values_of(n: int) -> dict[str, float]:
    """The field values of sample n: each encodes n, exactly representable or sent as Python's repr."""
    return {
        "dur_s": float(n),
        "dist_km": n / 8,
        "hr_bpm": float(60 + n % 120),
        "cad_rpm": float(n % 150),  # sent as an integer (`i`)
        "pwr_w": (n * 7) % 2000 + 0.5,
        "lat": -90 + (n % 180_000) / 1000,
        "lng": 180 - (n % 360_000) / 1000,
    }


def line_of(n: int, writer: int) -> str:
    v = values_of(n)
    return (
        f"samples,writer=w{writer} dur_s={v['dur_s']!r},dist_km={v['dist_km']!r},hr_bpm={v['hr_bpm']!r},"
        f"cad_rpm={n % 150}i,pwr_w={v['pwr_w']!r},lat={v['lat']!r},lng={v['lng']!r} {BASE_NS + n * STEP_NS}"
    )


@dataclass
class Ledger:
    """What the writers sent and what the server acknowledged."""

    next_n: int = 0
    writer_of: dict[int, int] = field(default_factory=dict)  # n -> writer
    batch_of: dict[int, int] = field(default_factory=dict)  # n -> batch id
    batches: list[list[int]] = field(default_factory=list)
    acknowledged: set[int] = field(default_factory=set)
    requests: int = 0
    refused: int = 0  # connection refused / reset / cut: the server was down or died mid-request

    def new_batch(self, writer: int, size: int) -> list[int]:
        numbers = list(range(self.next_n, self.next_n + size))
        self.next_n += size
        for n in numbers:
            self.writer_of[n] = writer
            self.batch_of[n] = len(self.batches)
        self.batches.append(numbers)
        return numbers


class Gate:
    """Lets the writers run, or holds them and waits until no request is in flight."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()

    async def enter(self) -> None:
        await self.open.wait()
        self.in_flight += 1
        self.idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self.idle.set()

    async def hold(self) -> None:
        self.open.clear()
        await self.idle.wait()


async def writer(index: int, url: str, ledger: Ledger, gate: Gate, rng: random.Random, done: asyncio.Event) -> None:
    async with aiohttp.ClientSession(headers=basic(USER, PASSWORD)) as session:  # its own connection(s)
        while not done.is_set():
            await gate.enter()
            try:
                size = 1 if rng.random() < 0.6 else rng.randint(2, 25)
                numbers = ledger.new_batch(index, size)
                body = "\n".join(line_of(n, index) for n in numbers)
                ledger.requests += 1
                try:
                    async with session.post(
                        f"{url}/write", params={"db": USER}, data=body, timeout=aiohttp.ClientTimeout(total=10)
                    ) as response:
                        text = await response.text()
                        assert response.status == 204, f"write answered {response.status}: {text}"
                        ledger.acknowledged.update(numbers)
                except (TimeoutError, aiohttp.ClientError):  # killed before or while answering
                    ledger.refused += 1
                    await asyncio.sleep(0.005)
            finally:
                gate.leave()


def check(rows: dict[int, tuple[int, dict[str, float]]], ledger: Ledger, when: str) -> None:
    """rows: n -> (writer, values) as stored. Raises with a precise account of the first problems."""
    missing = sorted(ledger.acknowledged - rows.keys())
    assert not missing, f"{when}: {len(missing)} acknowledged samples are missing, e.g. n={missing[:10]}"
    wrong = [
        (n, stored, (ledger.writer_of.get(n), values_of(n)))
        for n, stored in rows.items()
        if n not in ledger.writer_of or stored != (ledger.writer_of[n], values_of(n))
    ]
    assert not wrong, f"{when}: {len(wrong)} stored samples differ from what was sent, e.g. {wrong[:3]}"
    torn = [b for b in {ledger.batch_of[n] for n in rows} if not all(n in rows for n in ledger.batches[b])]
    assert not torn, f"{when}: batches stored only in part: {[ledger.batches[b] for b in torn[:3]]}"


async def rows_by_query(url: str) -> dict[int, tuple[int, dict[str, float]]]:
    q = f"SELECT * FROM samples WHERE time >= {BASE_NS} AND time < {BASE_NS + 10**15}"
    async with aiohttp.ClientSession(headers=basic(USER, PASSWORD)) as session:
        async with session.get(f"{url}/query", params={"db": USER, "q": q, "epoch": "ns"}) as response:
            assert response.status == 200, await response.text()
            answer = await response.json()
    result = answer["results"][0]
    assert "error" not in result, result
    rows: dict[int, tuple[int, dict[str, float]]] = {}
    for series in result.get("series", []):
        columns = series["columns"]
        for row in series["values"]:
            record = dict(zip(columns, row))
            n, rest = divmod(record["time"] - BASE_NS, STEP_NS)
            assert rest == 0 and n not in rows, f"unexpected time {record['time']}"
            values = {key: float(record[key]) for key in FIELDS if record.get(key) is not None}
            rows[n] = (int(record["writer"][1:]), values)
    return rows


def rows_by_sqlite(path: Path) -> dict[int, tuple[int, dict[str, float]]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        columns = ", ".join(f"samples.{key}" for key in FIELDS)
        found = conn.execute(
            f"SELECT samples.time, series.tags, {columns} FROM samples JOIN series ON series.id = samples.series"
        )
        rows: dict[int, tuple[int, dict[str, float]]] = {}
        for time_ns, tags, *values in found:
            n, rest = divmod(time_ns - BASE_NS, STEP_NS)
            assert rest == 0 and n not in rows, f"unexpected time {time_ns}"
            writer_tag = dict(json.loads(tags))["writer"]
            rows[n] = (int(writer_tag[1:]), {k: v for k, v in zip(FIELDS, values) if v is not None})
        return rows
    finally:
        conn.close()


@pytest.mark.parametrize("workers", [1, 2], ids=["one process", "two workers"])
async def test_acknowledged_samples_survive_sigkill(tmp_path: Path, workers: int) -> None:
    """With two workers the whole group is killed at once (a power cut for the server): the writers'
    connections are spread over both workers, so both have acknowledged writes in flight."""
    seed = int(os.environ.get("CRASH_TEST_SEED") or random.SystemRandom().randrange(2**32))
    print(f"crash test seed: {seed} (repeat with CRASH_TEST_SEED={seed})")
    rng = random.Random(seed)
    server = TrackerProcess(tmp_path / "data", tmp_path / "server.log", workers=workers)
    server.add_user(USER)
    ledger, gate, done = Ledger(), Gate(), asyncio.Event()
    writers = [
        asyncio.create_task(writer(i, server.url, ledger, gate, random.Random(rng.random()), done))
        for i in range(WRITERS)
    ]
    recoveries: list[float] = []
    checking = 0.0
    started = time.monotonic()
    try:
        for kill in range(KILLS + 1):
            server.spawn()
            recoveries.append(await server.ready(timeout=10))
            assert recoveries[-1] < RECOVERY_SECONDS * workers, (
                f"restart {kill}: /ping answered {recoveries[-1]:.2f}s after spawning (seed {seed})"
            )
            t0 = time.monotonic()
            check(await rows_by_query(server.url), ledger, f"after restart {kill} (seed {seed})")
            checking += time.monotonic() - t0
            if kill == KILLS:
                break
            gate.open.set()
            # Sometimes at once, mostly while writes are streaming in.
            await asyncio.sleep(0 if rng.random() < 0.1 else rng.uniform(0.02, 0.4))
            server.kill()
            await gate.hold()  # requests in flight fail now; no new ones until the server is back
        done.set()
        gate.open.set()
        await asyncio.gather(*writers)
        check(await rows_by_query(server.url), ledger, f"at the end (seed {seed})")
        server.stop()
        in_file = rows_by_sqlite(server.data_dir / "users" / f"{USER}.sqlite")
        check(in_file, ledger, f"in the file (seed {seed})")
    finally:
        done.set()
        gate.open.set()
        for task in writers:
            task.cancel()
        await asyncio.gather(*writers, return_exceptions=True)
        server.close()
    print(
        f"{KILLS} kills in {time.monotonic() - started:.1f}s: {ledger.requests} write requests, "
        f"{len(ledger.acknowledged)} of {ledger.next_n} samples acknowledged, {ledger.refused} requests cut off "
        f"({len(in_file.keys() - ledger.acknowledged)} of their samples committed all the same); "
        f"recovery (spawn to /ping) max {max(recoveries):.2f}s, mean {sum(recoveries) / len(recoveries):.2f}s; "
        f"checks {checking:.1f}s"
    )
    # The run means something only if writes were acknowledged between most kills and some were cut off.
    assert len(ledger.acknowledged) > KILLS * 10 and ledger.refused > 0
