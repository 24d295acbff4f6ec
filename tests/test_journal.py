"""The journal: writes of many users grouped into one fsynced transaction, recovery after losing the
user files' unsynced tail, the order of replay, deleted users, and the live view fed from it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import AddUser, basic
from tests.sse import open_stream
from tests.tracker_process import PASSWORD, TrackerProcess
from tracker.accounts import Accounts
from tracker.app import create_app
from tracker.appkeys import LIVE, SAMPLES
from tracker.config import Settings
from tracker.storage import SampleStore, StoredSample, recover, settle_writer
from tracker.storage.journal import append, decode_points, durable_watermark, encode_points, open_journal


class Pt:
    def __init__(self, t: int, fields: dict[str, float], tags: tuple[tuple[str, str], ...] = ()) -> None:
        self.time, self.fields, self.tags = t, fields, tags


async def read_all(store: SampleStore, user: str) -> list[StoredSample]:
    out: list[StoredSample] = []
    async for batch in store.read_range(user, 0, 2**62):
        out += batch
    return out


def journal_rows(data_dir: Path) -> list[tuple[int, str, str]]:
    with sqlite3.connect(data_dir / "journal.sqlite") as conn:
        rows = conn.execute("SELECT id, user, writer FROM entries ORDER BY id").fetchall()
    conn.close()
    return rows


async def test_many_users_writing_at_once_share_journal_commits(tmp_path: Path) -> None:
    """100 single-line writes from 50 users: a few journal transactions (fsyncs), not one per write."""
    store = SampleStore(tmp_path)
    try:
        await store.write("warmup", [Pt(0, {"hr_bpm": 0.0})])  # the thread and journal are open
        before = store.journal_commits
        users = [f"user{i}" for i in range(50)]
        results = await asyncio.gather(
            *(store.write(users[i % 50], [Pt(1 + i // 50, {"hr_bpm": float(i)})]) for i in range(100))
        )
        assert store.writes == 101
        assert store.journal_commits - before < 20
        sequences = [r.sequence for r in results]
        assert all(s is not None for s in sequences) and len(set(sequences)) == 100
        for i, user in enumerate(users):
            assert [(s.time, s.fields["hr_bpm"]) for s in await read_all(store, user)] == [(1, float(i)), (2, float(50 + i))]
    finally:
        await store.close()


async def test_recovery_replays_what_the_user_file_lost(tmp_path: Path) -> None:
    """In process: the file goes back to an older copy (as if its unsynced tail were lost) and its
    entries are not marked durable; recovery re-applies them from the journal."""
    path = tmp_path / "users" / "alice.sqlite"
    store = SampleStore(tmp_path)
    await store.write("alice", [Pt(1, {"hr_bpm": 1.0})])
    await store.close()  # the last checkpoint: entry 1 durable
    old = path.read_bytes()
    store = SampleStore(tmp_path, checkpoint_seconds=3600, writer_key="worker-1")
    await store.write("alice", [Pt(2, {"hr_bpm": 2.0})])
    await store.write("alice", [Pt(1, {"pwr_w": 9.0})])
    await store.close()
    conn = open_journal(tmp_path)
    try:
        conn.execute("UPDATE writers SET durable_id = 0 WHERE writer_key = 'worker-1'")  # as if killed before
    finally:
        conn.close()
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    path.write_bytes(old)
    assert recover(tmp_path) == 2
    reopened = SampleStore(tmp_path)
    try:
        assert await read_all(reopened, "alice") == [
            StoredSample(1, {}, {"hr_bpm": 1.0, "pwr_w": 9.0}),
            StoredSample(2, {}, {"hr_bpm": 2.0}),
        ]
    finally:
        await reopened.close()
    conn = open_journal(tmp_path)
    try:
        assert durable_watermark(conn) == 3
    finally:
        conn.close()
    assert recover(tmp_path) == 0  # everything is durable now


def _journal_entry(conn: sqlite3.Connection, user: str, writer: str, on_conflict: str, points: list[Any]) -> None:
    append(conn, writer, [(user, on_conflict, encode_points(points))])


async def test_recovery_applies_two_writers_entries_for_one_key_in_id_order(tmp_path: Path) -> None:
    store = SampleStore(tmp_path)
    await store.write("alice", [Pt(5, {"hr_bpm": 0.0})])  # the file exists
    await store.close()
    conn = open_journal(tmp_path)
    try:
        # Neither writer's entries are durable: interleaved, the later id must win.
        _journal_entry(conn, "alice", "worker-1", "merge", [Pt(5, {"hr_bpm": 1.0})])
        _journal_entry(conn, "alice", "worker-2", "merge", [Pt(5, {"hr_bpm": 2.0, "cad_rpm": 2.0})])
        _journal_entry(conn, "alice", "worker-1", "overwrite", [Pt(5, {"hr_bpm": 3.0})])
        _journal_entry(conn, "alice", "worker-2", "merge", [Pt(5, {"pwr_w": 4.0})])
    finally:
        conn.close()
    assert recover(tmp_path) == 4
    store = SampleStore(tmp_path)
    try:
        assert await read_all(store, "alice") == [StoredSample(5, {}, {"hr_bpm": 3.0, "pwr_w": 4.0})]
    finally:
        await store.close()


async def test_a_restarted_writer_does_not_reapply_its_old_entries(tmp_path: Path) -> None:
    store = SampleStore(tmp_path)
    await store.write("alice", [Pt(5, {"hr_bpm": 0.0})])
    await store.close()
    conn = open_journal(tmp_path)
    try:
        _journal_entry(conn, "alice", "worker-1", "merge", [Pt(5, {"hr_bpm": 1.0})])  # not in the file
    finally:
        conn.close()
    assert settle_writer(tmp_path, "worker-1") == 1
    assert recover(tmp_path) == 0  # marked durable: nothing to re-apply
    store = SampleStore(tmp_path)
    try:
        assert await read_all(store, "alice") == [StoredSample(5, {}, {"hr_bpm": 0.0})]
    finally:
        await store.close()


async def test_a_deleted_users_entries_are_not_resurrected(tmp_path: Path) -> None:
    store = SampleStore(tmp_path, checkpoint_seconds=3600)
    await store.write("alice", [Pt(1, {"hr_bpm": 1.0})])
    await store.write("bob", [Pt(1, {"hr_bpm": 1.0})])
    await store.delete_user("alice")
    assert [user for _, user, _ in journal_rows(tmp_path)] == ["bob"]
    await store.write("alice", [Pt(2, {"hr_bpm": 2.0})])  # the name again, a new file
    await store.close()
    conn = open_journal(tmp_path)
    try:
        conn.execute("UPDATE writers SET durable_id = 0")  # as if no checkpoint had run
    finally:
        conn.close()
    recover(tmp_path)
    store = SampleStore(tmp_path)
    try:
        assert await read_all(store, "alice") == [StoredSample(2, {}, {"hr_bpm": 2.0})]
    finally:
        await store.close()


async def test_a_skip_batch_journals_only_what_it_stored(tmp_path: Path) -> None:
    store = SampleStore(tmp_path)
    try:
        await store.write("alice", [Pt(1, {"hr_bpm": 1.0})])
        written = await store.write("alice", [Pt(1, {"hr_bpm": 9.0}), Pt(2, {"hr_bpm": 2.0})], on_conflict="skip")
        assert written.skipped == [0] and written.sequence == 2
        everything = await store.write("alice", [Pt(1, {"hr_bpm": 9.0})], on_conflict="skip")
        assert everything.skipped == [0] and everything.sequence is None  # nothing stored, nothing journaled
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "journal.sqlite") as conn:
        blob = conn.execute("SELECT points FROM entries WHERE id = 2").fetchone()[0]
    conn.close()
    assert [(p.time, p.fields) for p in decode_points(blob)] == [(2, {"hr_bpm": 2.0})]


# --------------------------------------------------------------------------------------------------
# The live view, fed from the journal


async def test_live_events_carry_journal_ids_and_resume_from_the_journal(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path, add_user: AddUser, accounts: Accounts
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    client = await aiohttp_client(create_app(settings))
    await add_user("rider", "pw-rider")
    await add_user("other", "pw-other")
    await accounts.set_public("rider", True)
    auth = basic("rider", "pw-rider")
    other = basic("other", "pw-other")
    for i, (db, who) in enumerate([("rider", auth), ("other", other), ("rider", auth), ("other", other), ("rider", auth)]):
        response = await client.post(f"/write?db={db}&precision=s", data=f"samples hr_bpm={i} 170000000{i}", headers=who)
        assert response.status == 204, await response.text()
    hub = client.app[LIVE]
    assert hub._channels.get("rider") is None or not hub._channels["rider"].subscribers  # nobody watched rider here
    # Ids are the journal's: rider's writes are entries 1, 3 and 5. Resuming after 1 reads the journal.
    stream = await open_stream(client, "/api/watch/rider/events", headers={"Last-Event-ID": f"{hub.boot}-1"})
    replayed = [await stream.event(), await stream.event()]
    assert [e.id for e in replayed] == [f"{hub.boot}-3", f"{hub.boot}-5"]
    assert [e.json["samples"][0]["f"]["hr_bpm"] for e in replayed] == [2.0, 4.0]
    response = await client.post("/write?db=rider&precision=s", data="samples hr_bpm=7 1700000007", headers=auth)
    assert response.status == 204
    following = await stream.event()
    assert following.id == f"{hub.boot}-6" and following.json["samples"][0]["f"]["hr_bpm"] == 7.0
    stream.response.close()


async def test_live_sees_writes_committed_by_another_store(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path, add_user: AddUser, accounts: Accounts
) -> None:
    """A write taken by another process (here: a second store on the data folder) reaches the viewers."""
    settings = Settings(data_dir=tmp_path / "data")
    client = await aiohttp_client(create_app(settings))
    await add_user("rider", "pw-rider")
    await accounts.set_public("rider", True)
    stream = await open_stream(client, "/api/watch/rider/events")
    elsewhere = SampleStore(settings.data_dir, writer_key="worker-1")
    try:
        written = await elsewhere.write("rider", [Pt(1_700_000_000_000_000_000, {"hr_bpm": 61.0})])
    finally:
        await elsewhere.close()
    assert client.app[SAMPLES].writes == 0  # the server's own store took no part
    event = await stream.event()  # the fallback poll finds it (no wake-up crosses processes here)
    assert event.id == f"{client.app[LIVE].boot}-{written.sequence}"
    assert event.json["samples"][0]["f"]["hr_bpm"] == 61.0
    stream.response.close()


@pytest.mark.slow
def test_acknowledged_writes_survive_losing_the_user_files_unsynced_tail(tmp_path: Path) -> None:
    """SIGKILL with a long checkpoint interval, then remove the user file's -wal (what a power loss
    could leave of it): the restarted server recovers every acknowledged sample from the journal."""
    server = TrackerProcess(tmp_path / "data", tmp_path / "server.log", serve_args=["--journal-checkpoint", "3600"])
    server.add_user("alice")
    try:
        server.start()

        async def post_all() -> None:
            async with aiohttp.ClientSession(headers=basic("alice", PASSWORD)) as session:
                for i in range(40):
                    body = f"samples hr_bpm={i} {1_700_000_000 + i}"
                    async with session.post(f"{server.url}/write?db=alice&precision=s", data=body) as response:
                        assert response.status == 204

        asyncio.run(post_all())
        server.kill()
        users = server.data_dir / "users"
        wal = users / "alice.sqlite-wal"
        assert wal.exists() and wal.stat().st_size > 0  # the writes are in the unsynced WAL only
        wal.unlink()
        (users / "alice.sqlite-shm").unlink(missing_ok=True)
        with sqlite3.connect(users / "alice.sqlite") as conn:
            has_table = conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'samples'").fetchone()[0]
            left = conn.execute("SELECT count(*) FROM samples").fetchone()[0] if has_table else 0
        conn.close()
        assert left < 40  # really lost from the file
        server.start()
        server.stop()
        with sqlite3.connect(users / "alice.sqlite") as conn:
            rows = conn.execute("SELECT time, hr_bpm FROM samples ORDER BY time").fetchall()
        conn.close()
        assert rows == [((1_700_000_000 + i) * 10**9, float(i)) for i in range(40)]
    finally:
        server.close()


async def test_durable_entries_past_the_keep_time_are_trimmed_and_ids_never_reused(tmp_path: Path) -> None:
    store = SampleStore(tmp_path, keep_seconds=0)
    first = await store.write("alice", [Pt(1, {"hr_bpm": 1.0})])
    await store.close()  # the last checkpoint: durable, and older than a keep time of 0
    assert journal_rows(tmp_path) == []
    store = SampleStore(tmp_path, keep_seconds=3600)
    try:
        second = await store.write("alice", [Pt(2, {"hr_bpm": 2.0})])
    finally:
        await store.close()
    assert (first.sequence, second.sequence) == (1, 2)
    assert journal_rows(tmp_path) == [(2, "alice", "worker-0")]  # kept: within the keep time


async def test_an_uploads_entries_leave_the_journal_once_durable(tmp_path: Path) -> None:
    """Entries too big to resume the live view from are deleted at the checkpoint that makes them
    durable, keep time or not: the journal holds about a checkpoint's worth of an upload (its pages
    are used again by the next entries), not a minute's."""
    store = SampleStore(tmp_path, keep_seconds=3600, checkpoint_seconds=3600)
    try:
        upload = [Pt(n, {"hr_bpm": float(n % 200), "pwr_w": float(n), "cad_rpm": 90.0}) for n in range(20_000)]
        for start in range(0, len(upload), 5000):
            await store.write("alice", upload[start : start + 5000])
        small = await store.write("alice", [Pt(10**9, {"hr_bpm": 1.0})])
        assert len(journal_rows(tmp_path)) == 5
    finally:
        await store.close()  # the last checkpoint
    assert journal_rows(tmp_path) == [(small.sequence, "alice", "worker-0")]  # kept: small, within the keep time
