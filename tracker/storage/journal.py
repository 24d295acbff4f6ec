"""The journal: <data_dir>/journal.sqlite, one write-ahead log for every user's samples.

Each user's samples live in their own file, so without it every write to a different user is its own
fsync. Instead the writer appends a whole group of batches (many users) to the journal in ONE
transaction (synchronous=FULL: one fsync for the group), and applies them to the user files, which
run at synchronous=NORMAL (no fsync per commit). Now and then (the checkpoint) the writer fsyncs the
user files it touched and records, per writing process, up to which entry they are durable; entries
that are durable and older than the keep time are deleted. After a power loss, `recover()` re-applies
every entry past the durable watermark. The entry ids are the global commit sequence of all worker
processes on the data folder, and double as the live view's event ids (entries kept for a while are
its resume buffer).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import marshal
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Sequence

from tracker.storage.connection import _connect, fsync_path
from tracker.storage.schema import JOURNAL_MIGRATIONS

JOURNAL_FILE = "journal.sqlite"


class JournalPoint:
    """A point as the journal gives it back: what storage and the live view read of a point."""

    __slots__ = ("time", "tags", "fields")

    def __init__(self, time_ns: int, tags: tuple[tuple[str, str], ...], fields: dict[str, Any]) -> None:
        self.time = time_ns
        self.tags = tags
        self.fields = fields

    def __repr__(self) -> str:
        return f"JournalPoint({self.time}, {self.tags!r}, {self.fields!r})"


def encode_points(points: Iterable[Any]) -> bytes:
    """The points as one compact blob. marshal: fast both ways, and the file is only ever ours."""
    # The points' own tuples and dicts, no copies: marshal writes a tags tuple that many points share once.
    return marshal.dumps([(p.time, p.tags, p.fields) for p in points])


def decode_points(blob: bytes) -> list[JournalPoint]:
    return [JournalPoint(t, tags, fields) for t, tags, fields in decode_point_tuples(blob)]


def decode_point_tuples(blob: bytes) -> list[tuple[int, tuple[tuple[str, str], ...], dict[str, Any]]]:
    """The points as (time ns, tags, fields), for readers that need no point objects (the mirror)."""
    points: list[tuple[int, tuple[tuple[str, str], ...], dict[str, Any]]] = marshal.loads(blob)
    return points


# The `on_conflict` of an entry that records a deletion (DELETE, DROP SERIES): its blob is
# encode_deletion's, not points. Journaled like a write, so that replaying the journal after a crash
# applies writes and deletions in the order they were committed and never brings deleted samples back.
DELETE_ENTRY = "delete"
_NO_POINTS = marshal.dumps([])


def encode_deletion(series_tags: Sequence[str], start_ns: int, end_ns: int, removed_series: Sequence[str]) -> bytes:
    """The samples of these series (canonical tags text) with start <= time < end are deleted, then
    the series `removed_series` (left without samples) too."""
    return marshal.dumps((list(series_tags), start_ns, end_ns, list(removed_series)))


def decode_deletion(blob: bytes) -> tuple[list[str], int, int, list[str]]:
    series_tags, start_ns, end_ns, removed_series = marshal.loads(blob)
    return series_tags, start_ns, end_ns, removed_series


def journal_path(data_dir: Path) -> Path:
    return Path(data_dir) / JOURNAL_FILE


# Beside the journal: the lock that lets one process at a time commit a group (see CommitLock).
COMMIT_LOCK_FILE = "journal.lock"


class CommitLock:
    """One group commit at a time across every process on the data folder (the workers of a group).

    A group holds write locks on several user files and then the journal's; two processes doing that
    at once would meet in SQLite's busy handler, which sleeps and polls (up to 100 ms a try) and
    measured at two workers a p99 of two seconds. An flock queues them in the kernel instead: the next
    group starts the moment the last one ends. Uncontended (one process) it costs two system calls.
    The kernel drops the lock of a process that dies."""

    def __init__(self, data_dir: Path) -> None:
        self._path = Path(data_dir) / COMMIT_LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> CommitLock:
        if self._fd is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def open_journal(data_dir: Path, synchronous: str = "FULL", **options: Any) -> sqlite3.Connection:
    """A plain connection (autocommit: callers say BEGIN/COMMIT), created and migrated if need be."""
    path = journal_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    existed = path.exists()
    conn = _connect(path, JOURNAL_MIGRATIONS, synchronous, isolation_level=None, **options)
    if not existed:  # the new file's folder entry (its -wal's too: created by the migration's write)
        fsync_path(path.parent)
    return conn


def register_writer(conn: sqlite3.Connection, writer_key: str) -> None:
    conn.execute("INSERT OR IGNORE INTO writers (writer_key, durable_id) VALUES (?, 0)", (writer_key,))


def append(conn: sqlite3.Connection, writer_key: str, rows: Sequence[tuple[str, str, bytes]]) -> list[int]:
    """Append (user, on_conflict, points blob) rows in ONE transaction; their ids, in order.

    Called while the writer holds the write locks of the user files concerned, so that for one user
    file the journal's order is the order in which the writes were applied, whichever process wrote.
    """
    now = time.time_ns()
    ids: list[int] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        # The writer's row first: the durable watermark only looks at writers it knows.
        conn.execute("INSERT OR IGNORE INTO writers (writer_key, durable_id) VALUES (?, 0)", (writer_key,))
        for user, on_conflict, blob in rows:
            cursor = conn.execute(
                "INSERT INTO entries (user, writer, on_conflict, points, at_ns) VALUES (?, ?, ?, ?, ?)",
                (user, writer_key, on_conflict, blob, now),
            )
            ids.append(int(cursor.lastrowid or 0))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return ids


def delete_entries(conn: sqlite3.Connection, ids: Sequence[int]) -> None:
    """Take back entries whose batches could not be applied after all (their writers got an error)."""
    conn.executemany("DELETE FROM entries WHERE id = ?", [(i,) for i in ids])


def durable_watermark(conn: sqlite3.Connection) -> int:
    """The id up to which every entry, of every writer, is in durable user files.

    A writer's entries past its durable_id are not durable yet; the watermark is just below the
    first of those over all writers, or the newest id if there are none.
    """
    row = conn.execute(
        "SELECT min((SELECT min(id) FROM entries WHERE writer = w.writer_key AND id > w.durable_id)) FROM writers w"
    ).fetchone()
    if row[0] is not None:
        return int(row[0]) - 1
    return last_id(conn)


# A durable entry bigger than this (a batch of about a thousand samples or more: an upload, a backfill)
# is deleted at once, not kept for the keep time: the journal then holds about one checkpoint's worth
# of uploads, not a minute's, and a viewer who missed an upload refetches (a reset) as it would anyway.
RESUME_MAX_BYTES = 64 * 1024


def checkpointed(conn: sqlite3.Connection, writer_key: str, durable_id: int, keep_ns: int) -> int:
    """Record that the writer's entries up to durable_id are durable, and delete the entries that are
    durable (all writers) and older than keep_ns, or too big to resume from (RESUME_MAX_BYTES); one
    transaction. Returns the entries deleted."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "INSERT INTO writers (writer_key, durable_id) VALUES (?1, ?2) "
            "ON CONFLICT (writer_key) DO UPDATE SET durable_id = max(durable_id, ?2)",
            (writer_key, durable_id),
        )
        watermark = durable_watermark(conn)
        now_ns = time.time_ns()
        # The mirrors' outbox: nothing a mirror has yet to deliver goes, unless it waited past its max lag.
        deletable = min(watermark, _drop_overdue_for_mirrors(conn, watermark, now_ns))
        deleted = conn.execute(
            "DELETE FROM entries WHERE id <= ? AND (at_ns < ? OR length(points) > ?)",
            (deletable, now_ns - keep_ns, RESUME_MAX_BYTES),
        ).rowcount
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return deleted


def _drop_overdue_for_mirrors(conn: sqlite3.Connection, watermark: int, now_ns: int) -> int:
    """For each mirror whose undelivered entries include some older than its max lag: count them as
    dropped and move its cursor past them (the disk stays bounded while a target is gone). Returns
    the id up to which every mirror is done with the entries (the watermark when there are none)."""
    floor = watermark
    for key, delivered_id, max_lag_ns in conn.execute(
        "SELECT mirror_key, delivered_id, max_lag_ns FROM mirrors"
    ).fetchall():
        newest_overdue = _newest_before(conn, delivered_id, watermark, now_ns - max_lag_ns)
        if newest_overdue is not None:
            # Every entry up to the newest overdue one goes: the cursor only ever moves forward.
            overdue = conn.execute(
                "SELECT count(*) FROM entries WHERE id > ? AND id <= ?", (delivered_id, newest_overdue)
            ).fetchone()[0]
            conn.execute(
                "UPDATE mirrors SET delivered_id = ?, dropped_entries = dropped_entries + ? WHERE mirror_key = ?",
                (newest_overdue, overdue, key),
            )
            delivered_id = newest_overdue
        floor = min(floor, int(delivered_id))
    return floor


def _at_ns_from(conn: sqlite3.Connection, from_id: int) -> tuple[int, int] | None:
    row = conn.execute("SELECT id, at_ns FROM entries WHERE id >= ? ORDER BY id LIMIT 1", (from_id,)).fetchone()
    return (int(row[0]), int(row[1])) if row else None


def _newest_before(conn: sqlite3.Connection, after_id: int, upto_id: int, cutoff_ns: int) -> int | None:
    """The newest entry after_id < id <= upto_id written before cutoff_ns, or None. Entries are
    appended under the commit lock, so at_ns grows with the id: a binary search over the ids, a few
    index look-ups however long the backlog (a scan would hold the journal's lock at every checkpoint)."""
    first = _at_ns_from(conn, after_id + 1)
    if first is None or first[0] > upto_id or first[1] >= cutoff_ns:
        return None  # the common case: the oldest undelivered entry is not overdue
    found, low, high = first[0], first[0] + 1, upto_id
    while low <= high:
        middle = (low + high) // 2
        entry = _at_ns_from(conn, middle)
        if entry is None or entry[0] > high:
            high = middle - 1
        elif entry[1] < cutoff_ns:
            found, low = entry[0], entry[0] + 1
        else:
            high = middle - 1
    return found


# --------------------------------------------------------------------------------------------------
# The mirrors' outbox (tracker/mirror.py): the entries themselves, a delivered-id cursor per mirror.


def register_mirrors(conn: sqlite3.Connection, max_lags_ns: dict[str, int]) -> None:
    """The mirrors configured now, by key: a new one starts after the newest entry (what is committed
    from now on), a known one keeps its cursor, one no longer configured is forgotten (so that it no
    longer holds entries back). One transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        newest = last_id(conn)
        for key, max_lag_ns in max_lags_ns.items():
            conn.execute(
                "INSERT INTO mirrors (mirror_key, delivered_id, max_lag_ns) VALUES (?1, ?2, ?3) "
                "ON CONFLICT (mirror_key) DO UPDATE SET max_lag_ns = ?3",
                (key, newest, max_lag_ns),
            )
        conn.execute(
            "DELETE FROM mirrors WHERE mirror_key NOT IN (SELECT value FROM json_each(?))", (_json_list(max_lags_ns),)
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def mirror_cursor(conn: sqlite3.Connection, key: str) -> tuple[int, int]:
    """(delivered_id, dropped_entries) of a registered mirror."""
    row = conn.execute("SELECT delivered_id, dropped_entries FROM mirrors WHERE mirror_key = ?", (key,)).fetchone()
    if row is None:
        raise LookupError(f"no mirror {key!r} in the journal")
    return int(row[0]), int(row[1])


def mirror_entries(
    conn: sqlite3.Connection, after_id: int, limit: int, max_bytes: int = 1 << 62
) -> list[tuple[int, str, str, bytes, int]]:
    """(id, user, on_conflict, points, at_ns) of at most `limit` entries after `after_id` that are
    durable (in the user files for good: never taken back), in commit order; their blobs at most
    `max_bytes` together (at least one entry), measured before any is read."""
    upto = durable_watermark(conn)
    sizes = conn.execute(
        "SELECT id, length(points) FROM entries WHERE id > ? AND id <= ? ORDER BY id LIMIT ?", (after_id, upto, limit)
    ).fetchall()
    if not sizes:
        return []
    last, total = sizes[0][0], 0
    for entry_id, size in sizes:
        total += size
        if total > max_bytes and entry_id != sizes[0][0]:
            break
        last = entry_id
    return conn.execute(
        "SELECT id, user, on_conflict, points, at_ns FROM entries WHERE id > ? AND id <= ? ORDER BY id",
        (after_id, last),
    ).fetchall()


def mirror_backlog(conn: sqlite3.Connection, after_id: int) -> tuple[int, int | None]:
    """(ids given after `after_id`: the entries behind, give or take ones taken back; the at_ns of
    the oldest entry after it or None). Two index look-ups: cheap however long the backlog."""
    row = conn.execute("SELECT at_ns FROM entries WHERE id > ? ORDER BY id LIMIT 1", (after_id,)).fetchone()
    return max(0, last_id(conn) - after_id), (int(row[0]) if row else None)


def mark_mirror_delivered(conn: sqlite3.Connection, key: str, delivered_id: int) -> None:
    conn.execute("UPDATE mirrors SET delivered_id = max(delivered_id, ?) WHERE mirror_key = ?", (delivered_id, key))


def mark_all_durable(conn: sqlite3.Connection) -> None:
    """After recovery applied and fsynced everything: every writer is durable up to the newest id."""
    conn.execute("UPDATE writers SET durable_id = max(durable_id, ?)", (last_id(conn),))


def last_id(conn: sqlite3.Connection) -> int:
    """The newest id ever given (deleted entries included), 0 for a new journal."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'entries'").fetchone()
    return int(row[0]) if row else 0


def oldest_id(conn: sqlite3.Connection) -> int:
    """The oldest entry kept; last_id + 1 when none is."""
    row = conn.execute("SELECT min(id) FROM entries").fetchone()
    return int(row[0]) if row[0] is not None else last_id(conn) + 1


def generation(conn: sqlite3.Connection) -> str:
    return str(conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])


def entries_after(
    conn: sqlite3.Connection, after_id: int, users: Iterable[str], limit: int
) -> list[tuple[int, str, str, bytes | None]]:
    """(id, user, on_conflict, points or None) of entries after `after_id`, in id order: the points
    only of the given users (the others' are not even read)."""
    return conn.execute(
        "SELECT id, user, on_conflict, CASE WHEN user IN (SELECT value FROM json_each(?)) "
        "THEN CASE WHEN on_conflict = ? THEN ? ELSE points END END "
        "FROM entries WHERE id > ? ORDER BY id LIMIT ?",
        (_json_list(users), DELETE_ENTRY, _NO_POINTS, after_id, limit),
    ).fetchall()


def entries_of_user(conn: sqlite3.Connection, user: str, after_id: int, upto_id: int) -> list[tuple[int, bytes]]:
    """(id, points) of the user's entries with after_id < id <= upto_id, in id order (a deletion: no points)."""
    return conn.execute(
        "SELECT id, CASE WHEN on_conflict = ? THEN ? ELSE points END FROM entries "
        "WHERE user = ? AND id > ? AND id <= ? ORDER BY id",
        (DELETE_ENTRY, _NO_POINTS, user, after_id, upto_id),
    ).fetchall()


def entries_to_replay(conn: sqlite3.Connection, after_id: int) -> list[tuple[int, str, str, bytes]]:
    return conn.execute(
        "SELECT id, user, on_conflict, points FROM entries WHERE id > ? ORDER BY id", (after_id,)
    ).fetchall()


def pending_users_of(conn: sqlite3.Connection, writer_key: str) -> tuple[list[str], int]:
    """(users named by the writer's entries that are not durable yet, the newest such id or 0)."""
    rows = conn.execute(
        "SELECT user, max(id) FROM entries WHERE writer = ?1 AND id > "
        "coalesce((SELECT durable_id FROM writers WHERE writer_key = ?1), 0) GROUP BY user",
        (writer_key,),
    ).fetchall()
    return [user for user, _ in rows], max((int(newest) for _, newest in rows), default=0)


def mark_writer_durable(conn: sqlite3.Connection, writer_key: str, durable_id: int) -> None:
    conn.execute(
        "INSERT INTO writers (writer_key, durable_id) VALUES (?1, ?2) "
        "ON CONFLICT (writer_key) DO UPDATE SET durable_id = max(durable_id, ?2)",
        (writer_key, durable_id),
    )


def delete_user_entries(conn: sqlite3.Connection, user: str) -> None:
    """A deleted user's entries go with their file: recovery must never bring their samples back."""
    conn.execute("DELETE FROM entries WHERE user = ?", (user,))


def _json_list(items: Iterable[str]) -> str:
    return json.dumps(list(items))


# --------------------------------------------------------------------------------------------------
# fsync


def fsync_sample_file(path: Path) -> None:
    """A user file made durable: its WAL (where NORMAL commits wait) and the database itself.

    Only where this process has no connection open to the file (recovery, before serving): closing
    the descriptor opened here drops every POSIX lock the process holds on the file."""
    fsync_path(path.with_name(path.name + "-wal"))
    fsync_path(path)


# --------------------------------------------------------------------------------------------------
# Reading the journal from the event loop (the live view)


class JournalReader:
    """A read-only journal connection for the event loop. Every call, closing included, runs on one
    thread of its own, so a call whose awaiting task was cancelled still finishes before the next
    one (or the close) begins."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = Path(data_dir)
        self._conn: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tracker journal reader")

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = open_journal(self._data_dir, "NORMAL")
            conn.execute("PRAGMA query_only = ON")
            self._conn = conn
        return self._conn

    async def _run(self, call: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, lambda: call(self._connection(), *args))

    async def generation(self) -> str:
        return str(await self._run(generation))

    async def last_id(self) -> int:
        return int(await self._run(last_id))

    async def entries_after(
        self, after_id: int, users: Iterable[str], limit: int = 1000
    ) -> list[tuple[int, str, str, bytes | None]]:
        return list(await self._run(entries_after, after_id, list(users), limit))

    async def user_entries(self, user: str, after_id: int, upto_id: int) -> tuple[list[tuple[int, bytes]], int, int]:
        """(the user's entries after_id < id <= upto_id, the oldest id the journal still keeps, the
        newest id it has given)."""

        def read(conn: sqlite3.Connection) -> tuple[list[tuple[int, bytes]], int, int]:
            conn.execute("BEGIN")  # one snapshot for all three
            try:
                return entries_of_user(conn, user, after_id, upto_id), oldest_id(conn), last_id(conn)
            finally:
                conn.execute("COMMIT")

        return await self._run(read)  # type: ignore[no-any-return]

    async def close(self) -> None:
        def close() -> None:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                conn.close()

        await asyncio.get_running_loop().run_in_executor(self._thread, close)
        self._thread.shutdown(wait=False)


# --------------------------------------------------------------------------------------------------
# The mirrors' outbox from the event loop (tracker/mirror.py)


class MirrorOutbox:
    """The journal as the mirrors' outbox: entries to deliver and the per-mirror cursors. Calls run
    on one thread of its own. Moving a cursor takes the commit lock, so that it never makes a group
    commit wait in SQLite's busy handler (see CommitLock)."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = Path(data_dir)
        self._conn: sqlite3.Connection | None = None
        self._commit_lock = CommitLock(self._data_dir)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tracker mirror outbox")

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = open_journal(self._data_dir, "FULL")
        return self._conn

    async def _run(self, call: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, lambda: call(self._connection(), *args))

    async def register(self, max_lags_ns: dict[str, int]) -> None:
        def register(conn: sqlite3.Connection) -> None:
            with self._commit_lock:
                register_mirrors(conn, max_lags_ns)

        await self._run(register)

    async def cursor(self, key: str) -> tuple[int, int]:
        return await self._run(mirror_cursor, key)  # type: ignore[no-any-return]

    async def entries(self, after_id: int, limit: int, max_bytes: int) -> list[tuple[int, str, str, bytes, int]]:
        return list(await self._run(mirror_entries, after_id, limit, max_bytes))

    async def backlog(self, after_id: int) -> tuple[int, int | None]:
        return await self._run(mirror_backlog, after_id)  # type: ignore[no-any-return]

    async def delivered(self, key: str, delivered_id: int) -> None:
        def mark(conn: sqlite3.Connection) -> None:
            with self._commit_lock:
                mark_mirror_delivered(conn, key, delivered_id)

        await self._run(mark)

    async def close(self) -> None:
        def close() -> None:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                conn.close()
            self._commit_lock.close()

        await asyncio.get_running_loop().run_in_executor(self._thread, close)
        self._thread.shutdown(wait=False)
