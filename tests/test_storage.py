"""Storage: real SQLite files in a temp folder, no mocks."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Pt
from tracker import storage
from tracker.storage import (
    AccountStore,
    SampleStore,
    SchemaTooNew,
    StoredSample,
    UnknownUser,
    UserExists,
    UserRecord,
)
from tracker.vocabulary import FIELD_KEYS

# --------------------------------------------------------------------------------------------------
# AccountStore


@pytest.fixture
async def accounts(tmp_path: Path):
    store = await AccountStore.open(tmp_path)
    yield store
    await store.close()


async def test_account_file_is_wal_with_schema_version(tmp_path: Path, accounts: AccountStore) -> None:
    path = tmp_path / "accounts.sqlite"
    assert path.exists()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(storage.ACCOUNT_MIGRATIONS)


async def test_sessions_survive_the_migration_that_adds_their_metadata(tmp_path: Path) -> None:
    # A file as the Tracker before session metadata wrote it, with a signed-in session.
    path = tmp_path / "accounts.sqlite"
    before = storage.ACCOUNT_MIGRATIONS.index(next(m for m in storage.ACCOUNT_MIGRATIONS if "last_used_ns INTEGER;" in m and "sessions" in m))
    with sqlite3.connect(path) as conn:
        for version, script in enumerate(storage.ACCOUNT_MIGRATIONS[:before]):
            conn.executescript(script)
            conn.execute(f"PRAGMA user_version = {version + 1}")
        conn.execute("INSERT INTO users (name, password_hash, created_ns) VALUES ('alice', 'h', 1)")
        conn.execute("INSERT INTO sessions VALUES ('digest', 'alice', 'csrf', 5, 9000000000000000000)")
    conn.close()
    store = await AccountStore.open(tmp_path)
    try:
        record = await store.get_session("digest")
        assert record is not None and (record.user, record.created_ns, record.last_used_ns, record.user_agent) == ("alice", 5, None, None)
    finally:
        await store.close()


async def test_add_get_list_users(accounts: AccountStore) -> None:
    await accounts.add_user("bob", "hash-b")
    await accounts.add_user("alice", "hash-a")
    alice = await accounts.get_user("alice")
    assert isinstance(alice, UserRecord)
    assert (alice.name, alice.password_hash) == ("alice", "hash-a")
    assert alice.created_ns > 1_600_000_000 * 10**9
    assert await accounts.get_user("carol") is None
    assert [u.name for u in await accounts.list_users()] == ["alice", "bob"]


async def test_add_existing_user_raises(accounts: AccountStore) -> None:
    await accounts.add_user("alice", "h1")
    with pytest.raises(UserExists):
        await accounts.add_user("alice", "h2")
    assert (await accounts.get_user("alice")).password_hash == "h1"  # type: ignore[union-attr]
    await accounts.add_user("bob", "h3")  # the store is still usable after the failed insert


async def test_add_user_rejects_invalid_name(accounts: AccountStore) -> None:
    with pytest.raises(ValueError):
        await accounts.add_user("../x", "h")
    assert await accounts.list_users() == []


async def test_set_password_hash(accounts: AccountStore) -> None:
    await accounts.add_user("alice", "old")
    await accounts.set_password_hash("alice", "new")
    assert (await accounts.get_user("alice")).password_hash == "new"  # type: ignore[union-attr]
    with pytest.raises(UnknownUser):
        await accounts.set_password_hash("nobody", "x")


async def test_delete_user_and_unknown(accounts: AccountStore) -> None:
    await accounts.add_user("alice", "h")
    await accounts.delete_user("alice")
    assert await accounts.get_user("alice") is None
    with pytest.raises(UnknownUser):
        await accounts.delete_user("alice")


async def test_shares_add_idempotent_list_remove(accounts: AccountStore) -> None:
    for name in ("alice", "bob", "carol"):
        await accounts.add_user(name, "h")
    await accounts.add_share("alice", "bob")
    await accounts.add_share("alice", "bob")  # idempotent
    await accounts.add_share("carol", "bob")
    await accounts.add_share("alice", "carol")
    assert await accounts.list_shares() == [("alice", "bob"), ("alice", "carol"), ("carol", "bob")]
    assert await accounts.list_shares("alice") == [("alice", "bob"), ("alice", "carol")]
    assert await accounts.list_shares("bob") == []
    assert await accounts.readable_by("bob") == ["bob", "alice", "carol"]
    assert await accounts.readable_by("alice") == ["alice"]
    assert await accounts.readable_by("nobody") == []
    assert await accounts.remove_share("alice", "bob") is True
    assert await accounts.remove_share("alice", "bob") is False
    assert await accounts.readable_by("bob") == ["bob", "carol"]


async def test_share_with_unknown_user_raises(accounts: AccountStore) -> None:
    await accounts.add_user("alice", "h")
    with pytest.raises(UnknownUser, match="ghost"):
        await accounts.add_share("alice", "ghost")
    with pytest.raises(UnknownUser, match="ghost"):
        await accounts.add_share("ghost", "alice")
    assert await accounts.list_shares() == []


async def test_deleting_a_user_removes_shares_both_ways(accounts: AccountStore) -> None:
    for name in ("alice", "bob", "carol"):
        await accounts.add_user(name, "h")
    await accounts.add_share("alice", "bob")
    await accounts.add_share("bob", "carol")
    await accounts.add_share("alice", "carol")
    await accounts.delete_user("bob")
    assert await accounts.list_shares() == [("alice", "carol")]


async def test_data_version_changes_when_another_instance_commits(tmp_path: Path) -> None:
    server = await AccountStore.open(tmp_path)
    cli = await AccountStore.open(tmp_path)
    try:
        before = await server.data_version()
        assert await server.data_version() == before  # stable while nothing happens
        await cli.add_user("alice", "h")
        after_add = await server.data_version()
        assert after_add != before
        assert (await server.get_user("alice")) is not None  # and the change is visible
        await cli.set_password_hash("alice", "h2")
        assert await server.data_version() != after_add
        # Its own commits change the number too.
        mine = await server.data_version()
        await server.add_user("bob", "h")
        assert await server.data_version() != mine
    finally:
        await cli.close()
        await server.close()


async def test_data_version_answers_from_a_stat_while_quiet_and_still_sees_another_commit(tmp_path: Path) -> None:
    """Per request, data_version() skips SQLite while the -wal file is long untouched; a commit by
    another process (which writes the -wal) is still seen by the very next call."""

    class CountingStore(AccountStore):
        queries = 0

        async def _fetchall(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
            self.queries += 1
            return await super()._fetchall(sql, params)

    path = tmp_path / "accounts.sqlite"
    server = CountingStore(await storage.connection._open(path, storage.ACCOUNT_MIGRATIONS, "FULL"), path)
    cli = await AccountStore.open(tmp_path)
    wal = tmp_path / "accounts.sqlite-wal"
    try:
        await cli.add_user("alice", "h")
        old = time.time_ns() - 60 * 10**9
        os.utime(wal, ns=(old, old))  # as if the last change were a minute ago
        first = await server.data_version()
        queries = server.queries
        for _ in range(5):
            assert await server.data_version() == first
        assert server.queries == queries  # answered without SQLite
        await cli.set_password_hash("alice", "h2")
        assert await server.data_version() != first
        assert server.queries == queries + 1
    finally:
        await cli.close()
        await server.close()


async def test_concurrent_account_changes_from_two_instances(tmp_path: Path) -> None:
    """Two stores (server + CLI) writing at once: busy_timeout makes them wait, never fail."""
    one = await AccountStore.open(tmp_path)
    two = await AccountStore.open(tmp_path)
    try:
        await asyncio.gather(
            *(one.add_user(f"a{i}", "h") for i in range(30)), *(two.add_user(f"b{i}", "h") for i in range(30))
        )
        assert len(await one.list_users()) == 60
    finally:
        await one.close()
        await two.close()


# --------------------------------------------------------------------------------------------------
# SampleStore


@pytest.fixture
async def samples(tmp_path: Path):
    store = SampleStore(tmp_path)
    yield store
    await store.close()


async def read_all(store: SampleStore, user: str, start: int = 0, end: int = 2**62, **kw) -> list[StoredSample]:
    out: list[StoredSample] = []
    async for batch in store.read_range(user, start, end, **kw):
        out.extend(batch)
    return out


def sample_file(tmp_path: Path, user: str) -> Path:
    return tmp_path / "users" / f"{user}.sqlite"


async def test_round_trip(tmp_path: Path, samples: SampleStore) -> None:
    await samples.write(
        "alice",
        [
            Pt(1000, {"lat": 52.5, "lng": 13.4, "hr_bpm": 150.0}, (("device", "watch"),)),
            Pt(2000, {"pwr_w": 250.0}),
        ],
    )
    assert await read_all(samples, "alice") == [
        StoredSample(1000, {"device": "watch"}, {"lat": 52.5, "lng": 13.4, "hr_bpm": 150.0}),
        StoredSample(2000, {}, {"pwr_w": 250.0}),
    ]
    assert sample_file(tmp_path, "alice").exists()
    with sqlite3.connect(sample_file(tmp_path, "alice")) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(storage.SAMPLE_MIGRATIONS)


async def test_every_vocabulary_field_has_a_column(samples: SampleStore) -> None:
    every = {key: float(i) for i, key in enumerate(FIELD_KEYS)}
    await samples.write("alice", [Pt(1, every)])
    assert (await read_all(samples, "alice"))[0].fields == every


async def test_tags_with_unicode_and_quotes_round_trip(samples: SampleStore) -> None:
    tags = (("bike", 'Rennrad "blau"'), ("city", "Zürich"), ("x", ""))
    await samples.write("alice", [Pt(5, {"hr_bpm": 1.0}, tags)])
    assert (await read_all(samples, "alice"))[0].tags == dict(tags)
    assert await samples.tag_sets("alice") == [dict(tags)]


async def test_merge_same_time_and_tags_newest_field_wins(samples: SampleStore) -> None:
    tags = (("device", "watch"),)
    await samples.write("alice", [Pt(1000, {"hr_bpm": 150.0, "lat": 1.0}, tags)])
    await samples.write("alice", [Pt(1000, {"hr_bpm": 151.0, "pwr_w": 300.0}, tags)])
    assert await read_all(samples, "alice") == [
        StoredSample(1000, {"device": "watch"}, {"hr_bpm": 151.0, "lat": 1.0, "pwr_w": 300.0})
    ]


async def test_merge_within_one_batch_later_point_wins(samples: SampleStore) -> None:
    await samples.write(
        "alice",
        [Pt(7, {"hr_bpm": 1.0, "lat": 1.0}), Pt(7, {"hr_bpm": 2.0}), Pt(7, {"hr_bpm": 3.0, "cad_rpm": 90.0})],
    )
    assert await read_all(samples, "alice") == [StoredSample(7, {}, {"hr_bpm": 3.0, "lat": 1.0, "cad_rpm": 90.0})]


async def test_different_tags_are_separate_series(samples: SampleStore) -> None:
    await samples.write(
        "alice",
        [
            Pt(1000, {"hr_bpm": 1.0}, (("device", "watch"),)),
            Pt(1000, {"hr_bpm": 2.0}, (("device", "phone"),)),
            Pt(1000, {"hr_bpm": 3.0}),
        ],
    )
    rows = await read_all(samples, "alice")
    assert sorted((r.tags.get("device", ""), r.fields["hr_bpm"]) for r in rows) == [
        ("", 3.0),
        ("phone", 2.0),
        ("watch", 1.0),
    ]
    assert sorted(await samples.tag_sets("alice"), key=str) == sorted(
        [{}, {"device": "watch"}, {"device": "phone"}], key=str
    )


async def test_tag_order_does_not_make_a_new_series(samples: SampleStore) -> None:
    await samples.write("alice", [Pt(1, {"hr_bpm": 1.0}, (("a", "1"), ("b", "2")))])
    await samples.write("alice", [Pt(1, {"lat": 5.0}, (("b", "2"), ("a", "1")))])
    assert await read_all(samples, "alice") == [StoredSample(1, {"a": "1", "b": "2"}, {"hr_bpm": 1.0, "lat": 5.0})]


async def test_time_range_start_inclusive_end_exclusive(samples: SampleStore) -> None:
    await samples.write("alice", [Pt(t, {"hr_bpm": float(t)}) for t in (10, 20, 30, 40)])
    assert [r.time for r in await read_all(samples, "alice", 20, 40)] == [20, 30]
    assert [r.time for r in await read_all(samples, "alice", 21, 41)] == [30, 40]
    assert await read_all(samples, "alice", 41, 100) == []


async def test_negative_and_large_times(samples: SampleStore) -> None:
    times = [-(2**62), -1, 0, 2**62]
    await samples.write("alice", [Pt(t, {"hr_bpm": 1.0}) for t in times])
    assert [r.time for r in await read_all(samples, "alice", -(2**63), 2**63 - 1)] == times


async def test_descending_and_limit(samples: SampleStore) -> None:
    await samples.write("alice", [Pt(t, {"hr_bpm": float(t)}) for t in range(1, 11)])
    assert [r.time for r in await read_all(samples, "alice", descending=True, limit=3)] == [10, 9, 8]
    assert [r.time for r in await read_all(samples, "alice", limit=2)] == [1, 2]
    assert await read_all(samples, "alice", limit=0) == []


async def test_read_streams_in_batches(samples: SampleStore) -> None:
    await samples.write("alice", [Pt(t, {"hr_bpm": 1.0}) for t in range(2500)])
    sizes = [len(batch) async for batch in samples.read_range("alice", 0, 10**9, batch=1000)]
    assert sizes == [1000, 1000, 500]
    # Stopping early is fine and leaves the store usable.
    async for _ in samples.read_range("alice", 0, 10**9, batch=10):
        break
    await samples.write("alice", [Pt(5000, {"hr_bpm": 2.0})])
    assert (await samples.latest("alice")) == StoredSample(5000, {}, {"hr_bpm": 2.0})


async def test_read_sees_a_consistent_snapshot_while_writes_commit(samples: SampleStore) -> None:
    await samples.write("alice", [Pt(t, {"hr_bpm": 1.0}) for t in range(100)])
    stream = samples.read_range("alice", 0, 10**9, batch=10)
    first = await anext(stream)
    await samples.write("alice", [Pt(t, {"hr_bpm": 1.0}) for t in range(100, 200)])  # not blocked by the reader
    rest = [row async for batch in stream for row in batch]
    assert len(first) + len(rest) == 100


async def test_latest_and_unknown_user_reads_create_nothing(tmp_path: Path, samples: SampleStore) -> None:
    assert await samples.latest("nobody") is None
    assert await read_all(samples, "nobody") == []
    assert await samples.tag_sets("nobody") == []
    assert not sample_file(tmp_path, "nobody").exists()
    await samples.write("alice", [Pt(3, {"lat": 1.0}), Pt(9, {"lat": 2.0}), Pt(5, {"lat": 3.0})])
    assert await samples.latest("alice") == StoredSample(9, {}, {"lat": 2.0})


async def test_group_commit_groups_concurrent_writes(samples: SampleStore) -> None:
    await samples.write("alice", [Pt(0, {"hr_bpm": 0.0})])
    before = samples.commits
    await asyncio.gather(*(samples.write("alice", [Pt(t, {"hr_bpm": float(t)})]) for t in range(1, 51)))
    transactions = samples.commits - before
    assert 1 <= transactions < 50
    assert len(await read_all(samples, "alice")) == 51


async def test_a_failing_batch_does_not_fail_the_batches_grouped_with_it(samples: SampleStore) -> None:
    await samples.write("alice", [Pt(0, {"hr_bpm": 0.0})])
    good = [samples.write("alice", [Pt(t, {"hr_bpm": 1.0})]) for t in range(1, 6)]
    bad = samples.write("alice", [Pt(100, {"hr_bpm": 1.0}), Pt(2**64, {"hr_bpm": 1.0})])  # time overflows
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    assert [r.skipped for r in results[:5]] == [[]] * 5  # stored, nothing skipped
    assert isinstance(results[5], Exception)
    # Nothing of the failed batch is stored, not even its valid first point.
    assert [r.time for r in await read_all(samples, "alice")] == [0, 1, 2, 3, 4, 5]


async def test_a_write_is_acknowledged_only_after_its_commit_and_the_loop_runs_meanwhile(
    tmp_path: Path, samples: SampleStore
) -> None:
    await samples.write("alice", [Pt(0, {"hr_bpm": 0.0})])
    blocker = sqlite3.connect(sample_file(tmp_path, "alice"), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock: the commit must wait
    try:
        pending = asyncio.ensure_future(samples.write("alice", [Pt(1, {"hr_bpm": 1.0}), Pt(2, {"hr_bpm": 2.0})]))
        ticks = 0
        for _ in range(20):  # the event loop keeps running while the writer thread waits for the lock
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 20 and not pending.done()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    await pending
    with sqlite3.connect(sample_file(tmp_path, "alice")) as conn:  # committed, seen from outside
        assert conn.execute("SELECT time, hr_bpm FROM samples ORDER BY time").fetchall() == [(0, 0.0), (1, 1.0), (2, 2.0)]


async def test_batches_longer_than_one_statement_merge_in_order(samples: SampleStore) -> None:
    n = storage.ROWS_PER_STATEMENT
    edge = n - 1  # the last row of the first statement, repeated as the first row of the second
    points = [Pt(t, {"hr_bpm": float(t), "pwr_w": 1.0}) for t in range(n)]
    points.append(Pt(edge, {"hr_bpm": -1.0, "pwr_w": 2.0}))
    points += [Pt(t, {"hr_bpm": float(t), "pwr_w": 1.0}) for t in range(n, 2 * n + 7)]
    points += [Pt(3, {"cad_rpm": 90.0})]  # another field set: its own statement, merged into time 3
    await samples.write("alice", points)
    rows = await read_all(samples, "alice")
    assert [r.time for r in rows] == list(range(2 * n + 7))
    assert rows[edge].fields == {"hr_bpm": -1.0, "pwr_w": 2.0}  # the later point won
    assert rows[3].fields == {"hr_bpm": 3.0, "pwr_w": 1.0, "cad_rpm": 90.0}
    assert rows[-1].fields == {"hr_bpm": float(2 * n + 6), "pwr_w": 1.0}


async def test_unknown_field_key_is_refused_not_interpolated(samples: SampleStore) -> None:
    with pytest.raises(ValueError):
        await samples.write("alice", [Pt(1, {"hr_bpm) VALUES (1,1); DROP TABLE samples; --": 1.0})])
    await samples.write("alice", [Pt(2, {"hr_bpm": 1.0})])
    assert len(await read_all(samples, "alice")) == 1


async def test_acknowledged_writes_survive_close_and_reopen(tmp_path: Path) -> None:
    store = SampleStore(tmp_path)
    pending = [asyncio.ensure_future(store.write("alice", [Pt(t, {"hr_bpm": float(t)})])) for t in range(20)]
    await asyncio.sleep(0)  # queued, most not yet committed
    await store.close()  # drains the writer: every queued write is committed and acknowledged
    assert all(p.done() and p.exception() is None for p in pending)
    with pytest.raises(RuntimeError):
        await store.write("alice", [Pt(99, {"hr_bpm": 1.0})])
    reopened = SampleStore(tmp_path)
    try:
        assert [r.time for r in await read_all(reopened, "alice")] == list(range(20))
    finally:
        await reopened.close()


async def test_a_second_store_sees_committed_writes(tmp_path: Path, samples: SampleStore) -> None:
    """Another process (or the test helper) reading beside the server sees every acknowledged write."""
    other = SampleStore(tmp_path)
    try:
        await samples.write("alice", [Pt(1, {"hr_bpm": 1.0})])
        assert len(await read_all(other, "alice")) == 1
        await samples.write("alice", [Pt(2, {"hr_bpm": 1.0})])
        assert len(await read_all(other, "alice")) == 2
    finally:
        await other.close()


async def test_hundred_users_write_concurrently(tmp_path: Path) -> None:
    store = SampleStore(tmp_path, max_open_users=32)  # also exercises closing idle files
    users = [f"user{i}" for i in range(120)]
    try:
        for round_ in range(3):
            await asyncio.gather(*(store.write(u, [Pt(round_, {"hr_bpm": float(i)})]) for i, u in enumerate(users)))
        for i, user in enumerate(users):
            assert [(r.time, r.fields["hr_bpm"]) for r in await read_all(store, user)] == [
                (0, float(i)),
                (1, float(i)),
                (2, float(i)),
            ]
    finally:
        await store.close()
    assert len(list((tmp_path / "users").glob("*.sqlite"))) == 120


async def test_idle_files_are_closed_beyond_the_cap(tmp_path: Path) -> None:
    store = SampleStore(tmp_path, max_open_users=4)
    try:
        for i in range(10):
            await store.write(f"u{i}", [Pt(1, {"hr_bpm": 1.0})])
        await asyncio.sleep(0.05)
        assert len(store._files) <= 4
        # A closed file reopens transparently.
        await store.write("u0", [Pt(2, {"hr_bpm": 2.0})])
        assert len(await read_all(store, "u0")) == 2
    finally:
        await store.close()


async def test_delete_user_removes_files(tmp_path: Path, samples: SampleStore) -> None:
    await samples.write("alice", [Pt(1, {"hr_bpm": 1.0})])
    await samples.write("bob", [Pt(1, {"hr_bpm": 1.0})])
    assert len(await read_all(samples, "alice")) == 1
    removed = await samples.delete_user("alice")
    assert sample_file(tmp_path, "alice") in removed
    assert not any(p.name.startswith("alice.sqlite") for p in (tmp_path / "users").iterdir())
    assert await read_all(samples, "alice") == []
    assert len(await read_all(samples, "bob")) == 1
    assert await samples.delete_user("alice") == []
    # The name is usable again, starting from an empty file.
    await samples.write("alice", [Pt(2, {"lat": 1.0})])
    assert await read_all(samples, "alice") == [StoredSample(2, {}, {"lat": 1.0})]


@pytest.mark.parametrize(
    "name",
    ["..", ".", "/x", "a/b", "a\\b", "a\x00b", "", "x" * 65, "a.b", "alice\n", " alice", "аlice", "ａlice", "alice\u200b"],
)
async def test_path_traversal_and_odd_names_are_rejected(tmp_path: Path, samples: SampleStore, name: str) -> None:
    with pytest.raises(ValueError):
        samples.path_for(name)
    with pytest.raises(ValueError):
        await samples.write(name, [Pt(1, {"hr_bpm": 1.0})])
    with pytest.raises(ValueError):
        await read_all(samples, name)
    with pytest.raises(ValueError):
        await samples.delete_user(name)
    assert not (tmp_path / "users").exists() or list((tmp_path / "users").iterdir()) == []


def test_valid_names_map_into_the_users_folder(tmp_path: Path) -> None:
    store = SampleStore(tmp_path)
    for name in ("a", "x" * 64, "Alice_B-2", "_-", "_"):
        path = store.path_for(name)
        assert path.parent == (tmp_path / "users").resolve()
        assert path.name == f"{name}.sqlite"


def test_bad_synchronous_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SampleStore(tmp_path, synchronous="FULL; DROP TABLE x")
    assert SampleStore(tmp_path, synchronous="normal").synchronous == "NORMAL"


async def test_synchronous_setting_is_applied_to_the_journal(tmp_path: Path) -> None:
    for mode, number in (("NORMAL", 1), ("FULL", 2)):
        store = SampleStore(tmp_path / mode, synchronous=mode)
        try:
            await store.write("alice", [Pt(1, {"hr_bpm": 1.0})])
            assert store._writer_thread is not None and store._writer_thread.journal_synchronous == number
        finally:
            await store.close()


# --------------------------------------------------------------------------------------------------
# Schema versions and migrations


def test_sample_schema_has_one_column_per_vocabulary_field(tmp_path: Path) -> None:
    """Adding a vocabulary field needs a migration adding its column: this test says so."""
    with sqlite3.connect(tmp_path / "x.sqlite") as conn:
        for script in storage.SAMPLE_MIGRATIONS:
            conn.executescript(script)
        columns = [row[1] for row in conn.execute("PRAGMA table_info(samples)")]
    assert columns == ["time", "series", *FIELD_KEYS]


async def test_a_v0_file_is_migrated(tmp_path: Path) -> None:
    path = sample_file(tmp_path, "alice")
    path.parent.mkdir(parents=True)
    sqlite3.connect(path).close()  # an empty file: user_version 0
    store = SampleStore(tmp_path)
    try:
        await store.write("alice", [Pt(1, {"hr_bpm": 1.0})])
        assert len(await read_all(store, "alice")) == 1
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(storage.SAMPLE_MIGRATIONS)


async def test_migrations_run_in_order_each_in_a_transaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A later step that fails leaves the file at the last good version, not half-migrated."""
    monkeypatch.setattr(
        storage.schema,
        "ACCOUNT_MIGRATIONS",
        (*storage.ACCOUNT_MIGRATIONS, "CREATE TABLE extra (x INTEGER);", "CREATE TABLE extra2 (y); SELECT nonsense()"),
    )
    with pytest.raises(sqlite3.OperationalError, match="nonsense"):
        await AccountStore.open(tmp_path)
    with sqlite3.connect(tmp_path / "accounts.sqlite") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(storage.schema.ACCOUNT_MIGRATIONS) - 1
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"users", "shares", "extra"} <= tables and "extra2" not in tables


async def test_concurrent_opens_of_a_new_file_migrate_once(tmp_path: Path) -> None:
    stores = await asyncio.gather(*(AccountStore.open(tmp_path) for _ in range(5)))
    try:
        await stores[0].add_user("alice", "h")
        for store in stores:
            assert [u.name for u in await store.list_users()] == ["alice"]
    finally:
        for s in stores:
            await s.close()


async def test_a_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = sample_file(tmp_path, "alice")
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {len(storage.SAMPLE_MIGRATIONS) + 1}")
    store = SampleStore(tmp_path)
    try:
        with pytest.raises(SchemaTooNew, match="newer Tracker"):
            await store.write("alice", [Pt(1, {"hr_bpm": 1.0})])
        with pytest.raises(SchemaTooNew):
            await store.latest("alice")
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:  # untouched
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0

    accounts = tmp_path / "accounts.sqlite"
    with sqlite3.connect(accounts) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(SchemaTooNew):
        await AccountStore.open(tmp_path)


async def test_points_from_the_line_protocol_parser_are_stored(samples: SampleStore) -> None:
    from tracker.lineprotocol import parse
    from tracker.vocabulary import normalize_fields

    result = parse(b"samples,device=watch hr_bpm=150i,lat=52.5,lon=13.4 1000\nsamples pwr_w=250 2000\n")
    assert result.errors == []
    for point in result.points:
        fields, reason = normalize_fields(point.measurement, point.fields)
        assert reason is None and fields is not None
        point.fields = fields  # type: ignore[assignment]
    await samples.write("alice", result.points)
    assert await read_all(samples, "alice") == [
        StoredSample(1000, {"device": "watch"}, {"hr_bpm": 150.0, "lat": 52.5, "lng": 13.4}),
        StoredSample(2000, {}, {"pwr_w": 250.0}),
    ]


async def test_read_only_some_fields(samples: SampleStore) -> None:
    await samples.write(
        "alice", [Pt(1, {"hr_bpm": 1.0, "lat": 2.0}), Pt(2, {"lat": 3.0}), Pt(3, {"pwr_w": 4.0, "hr_bpm": 5.0})]
    )
    rows = await read_all(samples, "alice", fields=["hr_bpm"])
    assert [(r.time, r.fields) for r in rows] == [(1, {"hr_bpm": 1.0}), (3, {"hr_bpm": 5.0})]
    rows = await read_all(samples, "alice", fields=["hr_bpm", "lat"], descending=True, limit=2)
    assert [(r.time, r.fields) for r in rows] == [(3, {"hr_bpm": 5.0}), (2, {"lat": 3.0})]
    with pytest.raises(ValueError):
        await read_all(samples, "alice", fields=["hr_bpm FROM samples; --"])
    with pytest.raises(ValueError):
        await read_all(samples, "alice", fields=[])


# --------------------------------------------------------------------------------------------------
# Query aggregates: GROUP BY time read bucket by bucket vs. grouped in one sorted scan


def _expected_buckets(
    points: list[Pt], start: int, end: int, interval: int, offset: int, keep, read: tuple[str, ...]
) -> dict[int, list[Any]]:
    """mean(hr_bpm), max(pwr_w) per bucket, in plain Python, over rows with one of the `read` fields set."""
    groups: dict[int, list[Pt]] = {}
    for p in points:
        if start <= p.time < end and keep(p) and any(name in p.fields for name in read):
            groups.setdefault((p.time - offset) // interval, []).append(p)
    out: dict[int, list[Any]] = {}
    for b, rows in groups.items():
        hr = [p.fields["hr_bpm"] for p in rows if "hr_bpm" in p.fields]
        pwr = [p.fields["pwr_w"] for p in rows if "pwr_w" in p.fields]
        out[b] = [sum(hr) / len(hr) if hr else None, max(pwr) if pwr else None]
    return out


async def test_group_by_time_bucket_walk_matches_the_grouped_scan(samples: SampleStore) -> None:
    points: list[Pt] = []
    for t in range(-50, 130):  # negative times, and gaps: nothing in [20, 45), rows only every 3rd in [90, 130)
        if 20 <= t < 45 or (t >= 90 and t % 3):
            continue
        device = "a" if t % 2 else "b"
        fields = {"hr_bpm": 100 + (t % 7) * 0.25} if t % 5 else {"pwr_w": 200 + (t % 11) * 0.5}
        if t % 13 == 0:
            fields["pwr_w"] = 300.0
        points.append(Pt(t, fields, (("device", device),)))
    points.append(Pt(60, {"cad_rpm": 90.0}, (("device", "a"),)))  # a row without the read fields
    await samples.write("alice", points)
    series = await storage.query_series(samples, "alice")
    device_a = storage.series_in([sid for sid, tags in series.items() if tags.get("device") == "a"])
    hr_filter = storage.compare_sql(">", storage.field_sql("hr_bpm"), storage.number_sql(100.5))
    everything = storage.QueryFilter()
    cases = [
        (-45, 125, 10, 0, everything, lambda p: True),
        (-45, 125, 10, 3, device_a, lambda p: p.tags == (("device", "a"),)),
        (-50, 130, 7, -2, storage.combine_filters("OR", hr_filter, device_a),
         lambda p: p.fields.get("hr_bpm", 0) > 100.5 or p.tags == (("device", "a"),)),
        (-45, 125, 1000, 999, everything, lambda p: True),
        (-45, 125, 10, 4, everything, lambda p: True),
    ]  # fmt: skip
    for start, end, interval, offset, where, keep in cases:
        filtered = where != everything
        # Unfiltered reads walk two aggregates, filtered ones one; two more force the one sorted scan.
        walked_calls = [("mean", "hr_bpm")] if filtered else [("mean", "hr_bpm"), ("max", "pwr_w")]
        grouped_calls = [*walked_calls, ("sum", "hr_bpm"), ("count", "hr_bpm")]
        read = tuple(sorted({col for _, col in walked_calls}))
        assert storage.query._bucket_walk(start, end, interval, offset, len(walked_calls), filtered) is not None
        assert storage.query._bucket_walk(start, end, interval, offset, len(grouped_calls), filtered) is None
        common: dict[str, Any] = {"start_ns": start, "end_ns": end, "where": where, "interval_ns": interval, "offset_ns": offset}
        walked = await storage.query_aggregates(samples, "alice", calls=walked_calls, **common)
        grouped = await storage.query_aggregates(samples, "alice", calls=grouped_calls, **common)
        expected = {b: values[: len(walked_calls)] for b, values in
                    _expected_buckets(points, start, end, interval, offset, keep, read).items()}  # fmt: skip
        assert walked == expected
        assert {b: values[: len(walked_calls)] for b, values in grouped.items()} == expected
    assert storage.query._bucket_walk(0, 10**6, 1, 0, 1, False) is None  # more buckets than the walk takes
    assert storage.query._bucket_walk(2**63 - 10, 2**63 - 1, 2**62, 0, 1, False) is None  # bounds beyond 64 bits
    assert storage.query._bucket_walk(0, 100, 10, 0, 2, True) is None  # filtered: one aggregate only


# --------------------------------------------------------------------------------------------------
# on_conflict: what a write does with a sample whose time and tags are stored already


async def test_on_conflict_skip_keeps_stored_samples_and_names_the_skipped(samples: SampleStore) -> None:
    watch = (("device", "watch"),)
    await samples.write("alice", [Pt(1, {"hr_bpm": 100.0, "lat": 1.0}, watch), Pt(2, {"hr_bpm": 101.0})])
    skipped = await samples.write(
        "alice",
        [
            Pt(1, {"hr_bpm": 200.0}, watch),  # stored already: skipped
            Pt(1, {"hr_bpm": 300.0}),  # same time, other series: stored
            Pt(3, {"hr_bpm": 103.0}, watch),  # new
            Pt(3, {"hr_bpm": 999.0}, watch),  # repeats the point before it in this batch: skipped
            Pt(2, {"pwr_w": 5.0}),  # stored already (no tags): skipped
        ],
        on_conflict="skip",
    )
    assert skipped.skipped == [0, 3, 4]
    rows = await read_all(samples, "alice")
    assert [(r.time, r.tags, r.fields) for r in rows] == [  # same time: in order of the series' creation
        (1, {"device": "watch"}, {"hr_bpm": 100.0, "lat": 1.0}),
        (1, {}, {"hr_bpm": 300.0}),
        (2, {}, {"hr_bpm": 101.0}),
        (3, {"device": "watch"}, {"hr_bpm": 103.0}),
    ]
    # Sending the same batch again is harmless: everything is skipped, nothing changes.
    again = [Pt(1, {"hr_bpm": 300.0}), Pt(3, {"hr_bpm": 103.0}, watch)]
    assert (await samples.write("alice", again, on_conflict="skip")).skipped == [0, 1]
    assert await read_all(samples, "alice") == rows


async def test_on_conflict_overwrite_replaces_the_whole_sample(samples: SampleStore) -> None:
    await samples.write("alice", [Pt(1, {"hr_bpm": 100.0, "lat": 1.0, "lng": 2.0}), Pt(2, {"hr_bpm": 5.0})])
    skipped = await samples.write(
        "alice", [Pt(1, {"pwr_w": 250.0}), Pt(2, {"cad_rpm": 1.0}), Pt(2, {"cad_rpm": 90.0})], on_conflict="overwrite"
    )
    assert skipped.skipped == []
    assert [(r.time, r.fields) for r in await read_all(samples, "alice")] == [
        (1, {"pwr_w": 250.0}),  # hr_bpm, lat, lng are gone
        (2, {"cad_rpm": 90.0}),  # within a batch the later point wins whole
    ]


async def test_on_conflict_modes_grouped_in_one_transaction_apply_in_order(samples: SampleStore) -> None:
    """A skip batch committed together with other writes sees what the earlier ones wrote."""
    await samples.write("alice", [Pt(0, {"hr_bpm": 0.0})])
    results = await asyncio.gather(
        samples.write("alice", [Pt(5, {"hr_bpm": 1.0})]),
        samples.write("alice", [Pt(5, {"hr_bpm": 2.0}), Pt(6, {"hr_bpm": 2.0})], on_conflict="skip"),
        samples.write("alice", [Pt(6, {"pwr_w": 3.0})], on_conflict="overwrite"),
        samples.write("alice", [Pt(0, {"cad_rpm": 4.0})]),
    )
    assert [r.skipped for r in results] == [[], [0], [], []]
    assert [(r.time, r.fields) for r in await read_all(samples, "alice")] == [
        (0, {"hr_bpm": 0.0, "cad_rpm": 4.0}),
        (5, {"hr_bpm": 1.0}),
        (6, {"pwr_w": 3.0}),
    ]


async def test_on_conflict_skip_over_many_points_and_a_bad_mode(samples: SampleStore) -> None:
    n = 3 * storage.ROWS_PER_STATEMENT + 5
    await samples.write("alice", [Pt(t, {"hr_bpm": 1.0}) for t in range(0, n, 2)])
    skipped = await samples.write("alice", [Pt(t, {"hr_bpm": 2.0}) for t in range(n)], on_conflict="skip")
    assert skipped.skipped == list(range(0, n, 2))
    rows = await read_all(samples, "alice")
    assert [r.fields["hr_bpm"] for r in rows] == [1.0 if t % 2 == 0 else 2.0 for t in range(n)]
    with pytest.raises(ValueError, match="on_conflict"):
        await samples.write("alice", [Pt(1, {"hr_bpm": 1.0})], on_conflict="replace")

