"""Durability beyond crashes: many connections writing one user's samples at once, a full disk and a
read-only data folder, each against a real `tracker serve` process.

The disk tests put the data folder on a small tmpfs of its own inside a private mount namespace
(`unshare`), so the disk can really be filled and the folder really be remounted read-only, as root
or not, without touching the machine's own mounts. Where that is impossible the tests are skipped
with the reason, except in CI (CI set), where they fail.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Iterator, Mapping

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import AddUser, basic
from tests.tracker_process import PASSWORD, TrackerProcess
from tracker import storage
from tracker.config import Settings
from tracker.influx.errors import STORAGE_RETRY_AFTER_SECONDS

BASE_NS = 1_700_000_000 * 10**9
SECOND = 10**9


async def query_rows(session: aiohttp.ClientSession, url: str, user: str) -> dict[tuple[int, str], dict[str, float]]:
    """(time ns, device tag or "") -> the fields set, read back through /query."""
    q = f"SELECT * FROM samples WHERE time >= {BASE_NS} AND time < {BASE_NS + 10**15}"
    params = {"db": user, "q": q, "epoch": "ns"}
    async with session.get(f"{url}/query", params=params, headers=basic(user, PASSWORD)) as response:
        assert response.status == 200, f"query answered {response.status}: {await response.text()}"
        answer = await response.json()
    result = answer["results"][0]
    assert "error" not in result, result
    rows: dict[tuple[int, str], dict[str, float]] = {}
    for series in result.get("series", []):
        for row in series["values"]:
            record = dict(zip(series["columns"], row))
            key = (record.pop("time"), record.pop("device", None) or "")
            assert key not in rows, f"row {key} twice"
            rows[key] = {k: float(v) for k, v in record.items() if v is not None}
    return rows


def file_rows(path: Path) -> dict[tuple[int, str], dict[str, float]]:
    """The same, read straight from the user's SQLite file (after the server stopped)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        conn.row_factory = sqlite3.Row
        rows: dict[tuple[int, str], dict[str, float]] = {}
        for row in conn.execute("SELECT samples.*, series.tags FROM samples JOIN series ON series.id = samples.series"):
            record = dict(row)
            tags = dict(json.loads(record.pop("tags")))
            key = (record.pop("time"), tags.get("device", ""))
            del record["series"]
            rows[key] = {k: v for k, v in record.items() if v is not None}
        return rows
    finally:
        conn.close()


# ----- many connections, one user --------------------------------------------------------------------

WRITER_FIELDS = ("hr_bpm", "pwr_w", "cad_rpm", "spd_kph")  # writer w owns WRITER_FIELDS[w]
TIMES = 150
DEVICES = ("", "bike")  # two series: untagged and device=bike


def owned_value(writer: int, i: int, device: str, round_: int) -> float:
    return writer * 100_000 + i * 10 + DEVICES.index(device) + round_ * 0.25


def line(i: int, device: str, fields: dict[str, float]) -> str:
    tags = f",device={device}" if device else ""
    return f"samples{tags} {','.join(f'{k}={v!r}' for k, v in fields.items())} {BASE_NS + i * SECOND}"


async def test_concurrent_writers_to_one_user_lose_nothing(tmp_path: Path) -> None:
    """Four connections write the same times and series, each its own field (and one field all of them),
    while two readers query: every write is 204, every read 200, no update is lost, and per field the
    newest write wins (InfluxDB's merge rule)."""
    rng = random.Random(5)
    user = "shared"
    server = TrackerProcess(tmp_path / "data", tmp_path / "server.log")
    server.add_user(user)
    keys = [(i, device) for i in range(TIMES) for device in DEVICES]
    rewritten = [set(rng.sample(keys, len(keys) // 3)) for _ in WRITER_FIELDS]
    writers_done = asyncio.Event()
    answers: list[int] = []

    async def post(session: aiohttp.ClientSession, body: str) -> None:
        async with session.post(f"{server.url}/write", params={"db": user}, data=body) as response:
            text = await response.text()
            answers.append(response.status)
            assert response.status == 204, f"write answered {response.status}: {text}"

    async def write(writer: int) -> None:
        own = WRITER_FIELDS[writer]
        wrng = random.Random(writer)
        # One connection per writer; its requests follow one another, so its second round is newer.
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector, headers=basic(user, PASSWORD)) as session:
            for round_, chosen in ((1, keys), (2, [k for k in keys if k in rewritten[writer]])):
                order = list(chosen)
                wrng.shuffle(order)
                while order:
                    size = wrng.randint(1, 20)
                    batch, order = order[:size], order[size:]
                    fields = {own: 0.0, "battery": float(writer)} if round_ == 1 else {own: 0.0}
                    lines = []
                    for i, device in batch:
                        fields[own] = owned_value(writer, i, device, round_)
                        lines.append(line(i, device, fields))
                    await post(session, "\n".join(lines))

    seen_reads = 0

    async def read() -> None:
        """While the writers run: every value seen is one that was written, and nothing seen goes away
        or goes back to an older value (a read sees committed transactions only, in order)."""
        nonlocal seen_reads
        last: dict[tuple[tuple[int, str], str], float] = {}
        async with aiohttp.ClientSession() as session:
            while not writers_done.is_set():
                rows = await query_rows(session, server.url, user)
                seen_reads += 1
                for key, fields in rows.items():
                    i, device = (key[0] - BASE_NS) // SECOND, key[1]
                    for w, own in enumerate(WRITER_FIELDS):
                        value = fields.get(own)
                        before = last.get((key, own))
                        assert before is None or value is not None, f"{own} of {key} vanished"
                        if value is not None:
                            assert value in (owned_value(w, i, device, 1), owned_value(w, i, device, 2)), (key, own, value)
                            assert before is None or value >= before, f"{own} of {key} went back from {before} to {value}"
                            last[(key, own)] = value
                    assert fields.get("battery") in (None, 0.0, 1.0, 2.0, 3.0), (key, fields)
                for (key, own), value in last.items():
                    assert key in rows, f"{key} vanished"

    server.spawn()
    try:
        await server.ready(timeout=10)
        readers = [asyncio.create_task(read()) for _ in range(2)]
        try:
            await asyncio.gather(*(write(w) for w in range(len(WRITER_FIELDS))))
        finally:
            writers_done.set()
            await asyncio.gather(*readers)
        # Then one more writer sets the shared field of the even times: that write is the newest.
        async with aiohttp.ClientSession(headers=basic(user, PASSWORD)) as session:
            await post(session, "\n".join(line(i, device, {"battery": 50.0}) for i, device in keys if i % 2 == 0))
            final = await query_rows(session, server.url, user)
    finally:
        if server.process is not None:
            server.stop()
    assert seen_reads >= 2 and set(answers) == {204}
    expected = {
        (BASE_NS + i * SECOND, device): {
            own: owned_value(w, i, device, 2 if (i, device) in rewritten[w] else 1) for w, own in enumerate(WRITER_FIELDS)
        }
        for i, device in keys
    }
    assert {k: {f: v for f, v in fields.items() if f != "battery"} for k, fields in final.items()} == expected
    for (time_ns, device), fields in final.items():
        i = (time_ns - BASE_NS) // SECOND
        if i % 2 == 0:
            assert fields["battery"] == 50.0, (time_ns, device)
        else:  # written by all four at once: any one of them may have been last
            assert fields["battery"] in (0.0, 1.0, 2.0, 3.0), (time_ns, device)
    assert file_rows(server.data_dir / "users" / f"{user}.sqlite") == final
    assert "Traceback" not in server.log_tail(10_000)


# ----- a full disk, a read-only folder -----------------------------------------------------------------

IN_CI = bool(os.environ.get("CI"))
TMPFS_KIB = 8192


class MountSandbox:
    """A private mount namespace, kept alive by a process waiting on its stdin, in which `root` is a
    small tmpfs and `root/users` a bind mount of itself (so the users' folder alone can be made
    read-only while the accounts file stays open). Commands run inside it through `nsenter`; the
    test reaches its files through /proc/PID/root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.users = root / "users"
        root.mkdir(parents=True)
        setup = (
            f'mount -t tmpfs -o size={TMPFS_KIB}k,mode=0755 tracker-test "$1" && mkdir "$1/users" '
            '&& mount --bind "$1/users" "$1/users" && echo ready && exec cat'
        )
        # As root a mount namespace is enough; otherwise a user namespace makes us root inside it.
        as_user = ["--user", "--map-root-user", "--mount"]
        ways = [["--mount"], as_user] if os.geteuid() == 0 else [as_user]
        failures: list[str] = []
        for way in ways:
            try:
                process = subprocess.Popen(
                    ["unshare", *way, "--propagation", "private", "sh", "-c", setup, "sh", str(root)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                )  # fmt: skip
            except FileNotFoundError:
                raise OSError("cannot make a private tmpfs for the data folder: no `unshare` (util-linux)") from None
            assert process.stdout is not None and process.stderr is not None
            if process.stdout.readline() == b"ready\n":
                self.process = process
                user = ["--user"] if "--user" in way else []
                self.enter = ["nsenter", "--target", str(process.pid), *user, "--mount", "--"]
                return
            process.kill()
            failures.append(f"unshare {' '.join(way)}: {process.stderr.read().decode(errors='replace').strip()}")
            process.wait()
        raise OSError("cannot make a private tmpfs for the data folder: " + "; ".join(failures))

    def outside(self, path: Path) -> Path:
        """`path` inside the namespace, as this process can reach it."""
        return Path(f"/proc/{self.process.pid}/root") / path.relative_to("/")

    def run(self, *command: str) -> None:
        done = subprocess.run([*self.enter, *command], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"{' '.join(command)} failed: {done.stderr}"

    def fill(self) -> None:
        """Fill the tmpfs to the last byte with a file of its own."""
        with open(self.outside(self.root / "filler"), "wb", buffering=0) as filler:
            for chunk in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
                try:
                    while True:
                        filler.write(b"\xff" * chunk)
                except OSError as error:
                    assert error.errno == errno.ENOSPC, error
        assert os.statvfs(self.outside(self.root)).f_bavail == 0

    def copy_out(self, path: Path, folder: Path) -> Path:
        """A copy of SQLite file `path` (and its -wal) in `folder`: SQLite resolves the /proc/PID/root
        link to "/", so it cannot open the file where it is."""
        folder.mkdir(exist_ok=True)
        for suffix in ("", "-wal"):
            source = self.outside(path.with_name(path.name + suffix))
            if source.exists():
                shutil.copyfile(source, folder / source.name)
        return folder / path.name

    def free(self) -> None:
        self.outside(self.root / "filler").unlink()

    def remount_users(self, mode: str) -> None:
        self.run("mount", "-o", f"remount,bind,{mode}", str(self.users))

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()  # `cat` ends, and with it the namespace and its tmpfs
        self.process.wait(timeout=10)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[MountSandbox]:
    try:
        box = MountSandbox(tmp_path / "data")
    except (OSError, subprocess.SubprocessError) as error:
        if IN_CI:
            pytest.fail(f"CI must run the full-disk and read-only tests, but {error}")
        pytest.skip(str(error))
    try:
        yield box
    finally:
        box.close()


@pytest.fixture
async def confined(sandbox: MountSandbox, tmp_path: Path) -> AsyncIterator[TrackerProcess]:
    """A server (not started yet) whose data folder is the sandbox's tmpfs, with users alice and bob."""
    server = TrackerProcess(sandbox.root, tmp_path / "server.log", prefix=sandbox.enter)
    server.add_user("alice")
    server.add_user("bob")
    try:
        yield server
    finally:
        server.close()


def batch(first: int, count: int, device: str = "phone") -> tuple[str, dict[tuple[int, str], dict[str, float]]]:
    """`count` lines of several fields from time `first` on, and the rows they should become."""
    rows = {
        (BASE_NS + n * SECOND, device): {"hr_bpm": float(100 + n % 80), "dist_km": n / 4, "lat": 45 + n / 1e6, "lng": 7.5}
        for n in range(first, first + count)
    }
    return "\n".join(line((t - BASE_NS) // SECOND, d, f) for (t, d), f in rows.items()), rows


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    text: str


async def post(session: aiohttp.ClientSession, url: str, user: str, body: str) -> Answer:
    async with session.post(f"{url}/write", params={"db": user}, data=body, headers=basic(user, PASSWORD)) as response:
        return Answer(response.status, response.headers, await response.text())


def assert_unavailable(answer: Answer, message: str) -> None:
    """503 in InfluxDB's error form, saying what happened, with Retry-After."""
    assert answer.status == 503, f"expected 503, got {answer.status}: {answer.text}"
    assert json.loads(answer.text) == {"error": message}
    assert answer.headers["X-Influxdb-Error"] == message
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.headers["Retry-After"] == str(STORAGE_RETRY_AFTER_SECONDS)


DISK_FULL = "write failed, nothing was stored: the disk is full"
READ_ONLY = "write failed, nothing was stored: the data folder is read-only"


async def test_full_disk_refuses_writes_whole_and_recovers(
    sandbox: MountSandbox, confined: TrackerProcess, tmp_path: Path
) -> None:
    """On a really full disk: writes are refused whole with a clear 503, reads and share links keep
    working, and once space is freed the same server (no restart) stores the retried batch."""
    server = confined
    link = server.cli("link", "create", "alice").stdout.strip()
    token = re.search(r"\?token=([A-Za-z0-9_-]+)\Z", link)
    assert token, link
    server.spawn()
    await server.ready(timeout=10)
    assert server.process is not None
    pid = server.process.pid
    async with aiohttp.ClientSession() as session:
        body, acknowledged = batch(0, 50)
        assert (await post(session, server.url, "alice", body)).status == 204

        sandbox.fill()
        # The -wal file may still have room for a little more; a batch too big for it must fail whole.
        refusals = 0
        for first in range(50, 50 + 40 * 400, 400):
            body, rows = batch(first, 400)
            answer = await post(session, server.url, "alice", body)
            if answer.status == 204:
                acknowledged |= rows
                continue
            assert_unavailable(answer, DISK_FULL)
            refused_body, refused_rows = body, rows
            refusals += 1
            if refusals == 3:
                break
        assert refusals == 3, "the full disk never refused a write"
        # A first write creates the user's file: refused just as clearly.
        bob_body, bob_rows = batch(0, 3, "watch")
        assert_unavailable(await post(session, server.url, "bob", bob_body), DISK_FULL)

        # Reads and sign-in keep working on the full disk; nothing of a refused batch is there.
        assert await query_rows(session, server.url, "alice") == acknowledged
        assert await query_rows(session, server.url, "bob") == {}
        # So does a friend's share link (whose first use would be noted in the accounts file).
        window = {"token": token.group(1), "from": str(BASE_NS), "to": str(BASE_NS + 10**15), "max_points": "10000"}
        async with session.get(f"{server.url}/api/watch/alice/samples", params=window) as response:
            assert response.status == 200, await response.text()
            assert len((await response.json())["samples"]) == len(acknowledged)

        sandbox.free()
        # The same server (no restart) takes the clients' retries at once.
        assert (await post(session, server.url, "alice", refused_body)).status == 204
        acknowledged |= refused_rows
        assert (await post(session, server.url, "bob", bob_body)).status == 204
        assert await query_rows(session, server.url, "alice") == acknowledged
        assert await query_rows(session, server.url, "bob") == bob_rows
    assert server.process is not None and server.process.pid == pid, "the server was restarted"
    server.stop()
    assert file_rows(sandbox.copy_out(sandbox.users / "alice.sqlite", tmp_path / "copy")) == acknowledged
    assert "Traceback" not in server.log_tail(10_000)

    # Started on a full disk, SQLite cannot make the journal's -shm (the first file a start opens, to
    # recover): the server says so in one line.
    sandbox.fill()
    server.spawn()
    assert server.process is not None
    assert server.process.wait(timeout=30) == 1
    server.process = None
    assert server.log_tail(1).endswith("/journal.sqlite: the disk is full"), server.log_tail()


async def test_read_only_data_folder_refuses_writes_and_recovers(
    sandbox: MountSandbox, confined: TrackerProcess, tmp_path: Path
) -> None:
    """The users' folder remounted read-only: writes (and reads of files not open yet) get a clear 503;
    remounted read-write, the running server writes again."""
    server = confined
    server.spawn()
    await server.ready(timeout=10)
    async with aiohttp.ClientSession() as session:
        body, acknowledged = batch(0, 20)
        assert (await post(session, server.url, "alice", body)).status == 204
        server.stop()  # a file system with files open for writing cannot be remounted read-only

        sandbox.remount_users("ro")
        server.spawn()
        await server.ready(timeout=10)
        body, _ = batch(20, 20)
        assert_unavailable(await post(session, server.url, "alice", body), READ_ONLY)
        assert_unavailable(await post(session, server.url, "alice", body), READ_ONLY)
        bob_body, bob_rows = batch(0, 3, "watch")
        assert_unavailable(await post(session, server.url, "bob", bob_body), READ_ONLY)
        # SQLite cannot read a WAL file on a read-only folder without its -shm file: a clear 503 too.
        q = {"db": "alice", "q": "SELECT * FROM samples"}
        async with session.get(f"{server.url}/query", params=q, headers=basic("alice", PASSWORD)) as response:
            answer = Answer(response.status, response.headers, await response.text())
        assert_unavailable(answer, "read failed: the data folder is read-only")

        sandbox.remount_users("rw")
        body, rows = batch(40, 20)
        assert (await post(session, server.url, "alice", body)).status == 204
        acknowledged |= rows
        assert (await post(session, server.url, "bob", bob_body)).status == 204
        assert await query_rows(session, server.url, "alice") == acknowledged
        assert await query_rows(session, server.url, "bob") == bob_rows
    server.stop()
    assert file_rows(sandbox.copy_out(sandbox.users / "alice.sqlite", tmp_path / "copy")) == acknowledged
    assert "Traceback" not in server.log_tail(10_000)


async def test_a_file_locked_by_another_program_is_a_503_not_database_is_locked(
    monkeypatch: pytest.MonkeyPatch, add_user: AddUser, client: TestClient, settings: Settings
) -> None:
    """Another program (a backup, sqlite3 in a shell) holding the write lock past the busy timeout:
    the write is refused as unavailable, and goes through once the lock is gone."""
    monkeypatch.setattr(storage.connection, "BUSY_TIMEOUT_MS", 200)
    await add_user("alice", PASSWORD)
    auth = basic("alice", PASSWORD)
    body, rows = batch(0, 5)
    response = await client.post("/write?db=alice", data=body, headers=auth)
    assert response.status == 204
    other = sqlite3.connect(settings.data_dir / "users" / "alice.sqlite", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        late, _ = batch(5, 5)
        response = await client.post("/write?db=alice", data=late, headers=auth)
        assert_unavailable(
            Answer(response.status, response.headers, await response.text()),
            "write failed, nothing was stored: the database file is locked by another program",
        )
    finally:
        other.close()
    body, more = batch(10, 5)
    response = await client.post("/write?db=alice", data=body, headers=auth)
    assert response.status == 204, await response.text()
    response = await client.get("/query", params={"db": "alice", "q": "SELECT count(hr_bpm) FROM samples"}, headers=auth)
    assert (await response.json())["results"][0]["series"][0]["values"][0][1] == len(rows) + len(more)
