"""Samples: <data_dir>/users/<name>.sqlite. The writer threads (group commit), reads, and the
downsampled window read behind the watch page."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Mapping, Protocol, Sequence

import aiosqlite

from tracker.storage.connection import (
    SYNCHRONOUS_MODES, USERS_DIR, StorageUnavailable, _checked_name, _connect, _open, _ReadConnection,
    _refused_as_unavailable, _storage_fault,
)
from tracker.storage.column_cache import BlockCache
from tracker.storage.schema import SAMPLE_MIGRATIONS
from tracker.vocabulary import FIELD_KEYS

_log = logging.getLogger(__name__)

# The tag that names the device a sample came from (a device token's label unless the line sets it).
DEVICE_TAG = "device"

_COLUMNS = ", ".join(FIELD_KEYS)
_FIELD_SET = frozenset(FIELD_KEYS)


# Rows per INSERT statement. One statement with many VALUES rows costs ~30% less than executemany
# (which steps, and hands the GIL back and forth, once per row); 200 rows x 18 columns stays far
# below SQLite's bound-parameter limit.
ROWS_PER_STATEMENT = 200


# What a write does with a sample whose (time, series) is already stored: "merge" is InfluxDB's rule
# (per field, newest wins), "skip" keeps the stored sample, "overwrite" replaces it whole.
ON_CONFLICT = ("merge", "skip", "overwrite")


def _upsert_sql(keys: tuple[str, ...], rows: int = 1, on_conflict: str = "merge") -> str:
    """The write statement for `rows` points carrying exactly these fields, in this order.

    Binding only the fields present (instead of all 16 columns, mostly NULL) makes writes ~2.5x
    faster: with Python's sqlite3 the cost of a row is mostly its bound parameters. The keys are
    interpolated into SQL, hence the check against the vocabulary.
    Merge rule (InfluxDB's): per-field newest wins, a field the new point does not carry keeps its
    value; SQLite applies the VALUES rows in order, so within a batch later points win too.
    Overwrite sets every column, so a field the new point does not carry becomes NULL.
    """
    if not _FIELD_SET.issuperset(keys) or len(set(keys)) != len(keys):
        raise ValueError(f"fields must be distinct vocabulary keys, got {list(keys)}")
    if rows < 1:
        raise ValueError("rows must be at least 1")
    if on_conflict not in ON_CONFLICT:
        raise ValueError(f"on_conflict must be one of {', '.join(ON_CONFLICT)}, got {on_conflict!r}")
    columns = "".join(f", {key}" for key in keys)
    values = ", ".join([f"({', '.join('?' * (len(keys) + 2))})"] * rows)
    if on_conflict == "overwrite":
        updates = ", ".join(f"{key} = excluded.{key}" for key in FIELD_KEYS)
    else:
        updates = ", ".join(f"{key} = coalesce(excluded.{key}, {key})" for key in keys)
    if not updates or on_conflict == "skip":
        return f"INSERT INTO samples (time, series{columns}) VALUES {values} ON CONFLICT (time, series) DO NOTHING"
    return (
        f"INSERT INTO samples (time, series{columns}) VALUES {values} "
        f"ON CONFLICT (time, series) DO UPDATE SET {updates}"
    )


_DELETE_OLDEST = (
    "DELETE FROM samples WHERE time < coalesce("
    "(SELECT time FROM samples WHERE time < ?1 ORDER BY time LIMIT 1 OFFSET ?2) + 1, ?1)"
)

# CROSS JOIN keeps samples as the outer loop: the range scan on the primary key drives the query.
_FROM = "FROM samples CROSS JOIN series ON series.id = samples.series"
_SELECT = f"SELECT samples.time, series.tags, {_COLUMNS} {_FROM}"

Tags = tuple[tuple[str, str], ...]


class SamplePoint(Protocol):
    """What storage reads of a point; `tracker.lineprotocol.Point` has these attributes.

    The measurement is not read: the only one is "samples" and the caller has checked it.
    """

    @property
    def tags(self) -> Tags: ...

    @property
    def fields(self) -> Mapping[str, Any]: ...  # canonical vocabulary keys -> float

    @property
    def time(self) -> int: ...  # ns since the epoch


@dataclass(slots=True)
class StoredSample:
    time: int  # ns
    tags: dict[str, str]
    fields: dict[str, float]  # only the fields that are set


def _tags_text(tags: Tags) -> str:
    return json.dumps(sorted(tags), ensure_ascii=False, separators=(",", ":"))


class _Decoder:
    """Rows of (time, tags, *columns) -> StoredSample; decodes each distinct tag set once per read."""

    def __init__(self, keys: tuple[str, ...] = FIELD_KEYS) -> None:
        self._keys = keys
        self._tags: dict[str, dict[str, str]] = {}

    def __call__(self, row: tuple[Any, ...]) -> StoredSample:
        tags = self._tags.get(row[1])
        if tags is None:
            tags = self._tags[row[1]] = dict(json.loads(row[1]))
        fields = {key: value for key, value in zip(self._keys, row[2:]) if value is not None}
        return StoredSample(row[0], dict(tags), fields)


_STOP = object()  # put on a writer's queue after the last batch: commit what is queued, then exit
_Batch = tuple[Sequence[SamplePoint], "asyncio.Future[None]"]


@dataclass(frozen=True, slots=True)
class _Job:
    """Work other than a write (removing expired samples), run on the writer's own connection after
    the group commit it was queued beside, so it never races a write and never holds one up for long."""

    run: Callable[[sqlite3.Connection], Any]
    done: asyncio.Future[Any]


class _Writer:
    """The writer thread of one user's file, fed by a queue (datasette's model).

    The thread takes everything queued and writes it in ONE transaction with its own plain sqlite3
    connection (series rows, upserts, COMMIT: no round trip through the event loop in between), then
    acknowledges the whole group with one call into the loop. SQLite's C code runs without the GIL,
    so commits and fsyncs overlap with the loop parsing the next requests.
    """

    def __init__(self, store: SampleStore, path: Path, loop: asyncio.AbstractEventLoop) -> None:
        self._store = store
        self._path = path
        self._loop = loop
        self._queue: queue.SimpleQueue[_Batch | object] = queue.SimpleQueue()
        self.unacknowledged = 0  # batches queued and not yet answered; read and written on the loop only
        self.finished: asyncio.Future[None] = loop.create_future()  # set after the last acknowledgement
        self._thread = threading.Thread(target=self._run, name=f"tracker writer {path.stem}", daemon=True)
        self._thread.start()

    def put(self, points: Sequence[SamplePoint], done: asyncio.Future[None]) -> None:
        self.unacknowledged += 1
        self._queue.put((points, done))

    def put_job(self, job: _Job) -> None:
        self.unacknowledged += 1
        self._queue.put(job)

    def stop(self) -> None:
        """Commit and acknowledge everything queued so far, then close the connection and end."""
        self._queue.put(_STOP)

    # ---- on the loop

    def _acknowledge(
        self, futures: list[asyncio.Future[None]], errors: list[BaseException | None], commits: int
    ) -> None:
        self.unacknowledged -= len(futures)
        self._store.commits += commits
        for future, error in zip(futures, errors):
            if future.done():  # the waiter was cancelled; its points are written anyway
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

    def _settle_job(self, done: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
        self.unacknowledged -= 1
        if done.done():
            return
        if error is None:
            done.set_result(result)
        else:
            done.set_exception(error)

    def _finish(self) -> None:
        if not self.finished.done():
            self.finished.set_result(None)

    # ---- in the thread

    def _call_loop(self, callback: Any, *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed: nobody is left waiting
            pass

    def _run(self) -> None:
        """Group commit: take everything queued, commit it in one transaction, acknowledge, repeat."""
        conn: sqlite3.Connection | None = None
        series_ids: dict[Tags, int] = {}  # committed series only
        try:
            while True:
                items = [self._queue.get()]
                while True:
                    try:
                        items.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = any(item is _STOP for item in items)
                jobs = [item for item in items if isinstance(item, _Job)]
                batches: list[_Batch] = [
                    item for item in items if item is not _STOP and not isinstance(item, _Job)  # type: ignore[misc]
                ]
                if batches:
                    groups = [points for points, _ in batches]
                    errors: list[BaseException | None]
                    commits = 0
                    try:
                        if conn is None:
                            conn, series_ids = self._open()
                        errors, commits = self._commit_group(conn, series_ids, groups)
                    except Exception as error:  # opening failed (a newer schema, a full disk): fail this group only
                        errors = [self._fault(error) or error] * len(batches)
                    if conn is not None and (
                        conn.in_transaction or any(isinstance(e, StorageUnavailable) for e in errors)
                    ):
                        # After a fault the next group starts from a fresh connection: whatever state
                        # the failure left behind, a disk that has space again (or is writable
                        # again) is written at the very next request, no restart needed.
                        with contextlib.suppress(sqlite3.Error):
                            conn.close()
                        conn = None
                    self._call_loop(self._acknowledge, [future for _, future in batches], errors, commits)
                for job in jobs:
                    result: Any = None
                    job_error: BaseException | None = None
                    try:
                        if conn is None:
                            conn, series_ids = self._open()
                        result = job.run(conn)
                    except Exception as error:
                        job_error = self._fault(error) or error
                        if conn is not None:
                            # As after a failed write: start the next group from a fresh connection.
                            with contextlib.suppress(sqlite3.Error):
                                conn.close()
                            conn = None
                    self._call_loop(self._settle_job, job.done, result, job_error)
                if stop:
                    return
        finally:
            if conn is not None:
                conn.close()
            self._call_loop(self._finish)

    def _open(self) -> tuple[sqlite3.Connection, dict[Tags, int]]:
        """The thread's connection, and the ids of the series already in the file."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: this thread says BEGIN IMMEDIATE and COMMIT itself.
        conn = _connect(
            self._path, SAMPLE_MIGRATIONS, self._store.synchronous, isolation_level=None, cached_statements=64
        )
        try:
            rows = conn.execute("SELECT tags, id FROM series").fetchall()
        except BaseException:
            conn.close()
            raise
        return conn, {tuple(map(tuple, json.loads(t))): i for t, i in rows}

    def _fault(self, error: BaseException) -> StorageUnavailable | None:
        fault = _storage_fault(error, self._path, "write failed, nothing was stored")
        if fault is not None:
            _log.error("%s: %s (%s)", self._path, fault, error)
        return fault

    def _commit_group(
        self, conn: sqlite3.Connection, series_ids: dict[Tags, int], groups: list[Sequence[SamplePoint]]
    ) -> tuple[list[BaseException | None], int]:
        """(error or None per group, number of commits)."""
        try:
            self._transaction(conn, series_ids, groups)
        except Exception as error:
            fault = self._fault(error)
            if fault is not None:  # the disk's doing, not one batch's: each would fail alike
                return [fault] * len(groups), 0
            if len(groups) == 1:
                return [error], 0
            # One bad batch must not fail the writes it happened to be grouped with.
            errors: list[BaseException | None] = []
            commits = 0
            for points in groups:
                one_error, one_commit = self._commit_group(conn, series_ids, [points])
                errors += one_error
                commits += one_commit
            return errors, commits
        return [None] * len(groups), 1

    def _transaction(self, conn: sqlite3.Connection, known: dict[Tags, int], groups: list[Sequence[SamplePoint]]) -> None:
        """One transaction: [series insert + lookup if new tag sets], the upserts, COMMIT."""
        new: dict[Tags, str] = {}
        for points in groups:
            for point in points:
                if point.tags not in known and point.tags not in new:
                    new[point.tags] = _tags_text(point.tags)
        plain = not any(isinstance(points, _ConflictBatch) for points in groups)
        if not new and plain:
            statements = self._statements(groups, known)
            if len(statements) == 1:
                # A single statement is a transaction of its own (autocommit): one step and one GIL
                # hand-off instead of three (BEGIN, INSERT, COMMIT). The usual live write.
                conn.execute(*statements[0])
                return
        fresh: dict[Tags, int] = {}
        conn.execute("BEGIN IMMEDIATE")  # the write lock up front: no deadlock-prone lock upgrade
        try:
            if new:
                texts = sorted(set(new.values()))
                conn.executemany("INSERT OR IGNORE INTO series (tags) VALUES (?)", [(t,) for t in texts])
                found = conn.execute(
                    "SELECT tags, id FROM series WHERE tags IN (SELECT value FROM json_each(?))", (json.dumps(texts),)
                ).fetchall()
                by_text = dict(found)
                fresh = {tags: by_text[text] for tags, text in new.items()}
            if not plain:
                # Checked inside this transaction, under the write lock: nothing can land in between.
                statements = self._conflict_statements(conn, groups, {**known, **fresh})
            elif new:
                statements = self._statements(groups, {**known, **fresh})
            for sql, params in statements:
                conn.execute(sql, params)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                # A failing ROLLBACK (a dying disk) must not hide the first error; the caller then
                # sees the connection still in a transaction and replaces it.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
        known.update(fresh)  # only now: a rolled-back series id must never be reused

    def _conflict_statements(
        self, conn: sqlite3.Connection, groups: list[Sequence[SamplePoint]], ids: dict[Tags, int]
    ) -> list[tuple[str, list[Any]]]:
        """The statements of groups that include a `_ConflictBatch`, group by group in order.

        A "skip" batch leaves out every point whose (time, series) is stored already, written by an
        earlier group of this transaction, or repeated earlier in the batch, and notes their indices.
        """
        statements: list[tuple[str, list[Any]]] = []
        pending: set[tuple[int, int]] = set()  # keys the statements so far will have written
        for points in groups:
            on_conflict = points.on_conflict if isinstance(points, _ConflictBatch) else "merge"
            keys = [(point.time, ids[point.tags]) for point in points]
            if isinstance(points, _ConflictBatch) and on_conflict == "skip":
                stored = {
                    (time_ns, series)
                    for time_ns, series in conn.execute(
                        "SELECT time, series FROM samples WHERE (time, series) IN "
                        "(SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))",
                        (json.dumps(keys),),
                    )
                }
                kept: list[SamplePoint] = []
                points.skipped = []
                for index, (point, key) in enumerate(zip(points, keys)):
                    if key in stored or key in pending:
                        points.skipped.append(index)
                    else:
                        kept.append(point)
                        pending.add(key)
                statements += self._statements([kept], ids, on_conflict)
            else:
                pending.update(keys)
                statements += self._statements([points], ids, on_conflict)
        return statements

    def _statements(
        self, groups: list[Sequence[SamplePoint]], ids: dict[Tags, int], on_conflict: str = "merge"
    ) -> list[tuple[str, list[Any]]]:
        """(sql, flat parameters) per statement: consecutive points with the same fields share
        statements of up to ROWS_PER_STATEMENT rows; usually one field set per group."""
        runs: list[tuple[tuple[str, ...], list[Any]]] = []  # (field keys, flat row values)
        for points in groups:
            for point in points:
                keys = tuple(point.fields)
                if not runs or runs[-1][0] != keys:
                    runs.append((keys, []))
                params = runs[-1][1]
                params.append(point.time)
                params.append(ids[point.tags])
                params.extend(point.fields.values())
        statements: list[tuple[str, list[Any]]] = []
        for keys, params in runs:
            width = len(keys) + 2
            step = ROWS_PER_STATEMENT * width
            for start in range(0, len(params), step):
                chunk = params[start : start + step] if len(params) > step else params
                statements.append((self._store._upsert_for(keys, len(chunk) // width, on_conflict), chunk))
        return statements


class _ConflictBatch(list):  # type: ignore[type-arg]
    """The points of one write whose on_conflict is not "merge"; the writer notes the skipped ones."""

    __slots__ = ("on_conflict", "skipped")

    def __init__(self, points: Sequence[SamplePoint], on_conflict: str) -> None:
        super().__init__(points)
        self.on_conflict = on_conflict
        self.skipped: list[int] = []  # indices into the points, set by the transaction that commits them


@dataclass(eq=False)
class _UserFile:
    """One user's file: a writer thread with its own connection, and a read-only connection.

    Reads get their own connection so that they only ever see committed data and never sit inside
    the writer's transaction; in WAL mode the two never block each other.
    """

    name: str
    path: Path
    writer: _Writer | None = None
    reader: aiosqlite.Connection | None = None
    reader_opening: asyncio.Lock = field(default_factory=asyncio.Lock)
    active_reads: int = 0

    def idle(self) -> bool:
        return (self.writer is None or self.writer.unacknowledged == 0) and self.active_reads == 0

    async def close(self) -> None:
        """Commit and acknowledge everything queued, then close both connections."""
        if self.writer is not None:
            self.writer.stop()
            await asyncio.wait([self.writer.finished])
        async with self.reader_opening:
            if self.reader is not None:
                reader, self.reader = self.reader, None
                await reader.close()


class SampleStore:
    """All users' sample files. Opens files lazily and keeps at most `max_open_users` of them open
    (each with up to two connections, a writer and a reader), closing the least recently used idle
    ones, because a server may have thousands of users."""

    def __init__(
        self, data_dir: Path, *, synchronous: str = "FULL", max_open_users: int = 256, column_cache_bytes: int = 64 << 20
    ) -> None:
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}, got {synchronous!r}")
        self.data_dir = Path(data_dir)
        self.synchronous = synchronous.upper()
        self.max_open_users = max_open_users
        self._users_dir = (self.data_dir / USERS_DIR).resolve()
        self._files: OrderedDict[str, _UserFile] = OrderedDict()  # least recently used first
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False
        self.commits = 0  # committed write transactions, all users: shows that group commit groups
        self._writes: dict[str, int] = {}  # write requests per user since start: "written since?" for retention
        self._upserts: dict[tuple[tuple[str, ...], int, str], str] = {}
        # Sealed hours of samples as columns, for long reads (blocks.py): this process's, bounded in bytes.
        self.column_cache = BlockCache(column_cache_bytes)

    def path_for(self, user: str) -> Path:
        path = (self._users_dir / f"{_checked_name(user)}.sqlite").resolve()
        if path.parent != self._users_dir:  # e.g. the file is a symlink to elsewhere
            raise ValueError(f"the sample file of {user!r} is not inside {self._users_dir}")
        return path

    # ---- open files

    def _file(self, user: str) -> _UserFile:
        """The user's file handle, most recently used now. Synchronous on purpose: between taking a
        handle and queueing on it there is no await, so eviction can never close it in between."""
        if self._closed:
            raise RuntimeError("the sample store is closed")
        handle = self._files.get(user)
        if handle is not None:
            self._files.move_to_end(user)
            return handle
        handle = self._files[user] = _UserFile(user, self.path_for(user))
        self._evict_idle()
        return handle

    def _evict_idle(self) -> None:
        excess = len(self._files) - self.max_open_users
        for name, handle in list(self._files.items())[:-1]:  # never the one just opened (last)
            if excess <= 0:
                break
            if handle.idle():
                del self._files[name]
                excess -= 1
                task = asyncio.create_task(handle.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
        # If everything is busy we stay above the cap for a while rather than make anyone wait.

    def _existing_file(self, user: str) -> _UserFile | None:
        """For reads: a user who never wrote has no file, and reading must not create one.

        An empty file counts as none: a first write that failed on a full disk leaves one behind,
        and opening it for reading would try to write its schema, on that full disk.
        """
        handle = self._files.get(user)
        if handle is not None and handle.reader is not None:
            return self._file(user)
        try:
            empty = self.path_for(user).stat().st_size == 0
        except FileNotFoundError:
            empty = True
        return None if empty else self._file(user)

    async def _open_file(self, path: Path, factory: type[sqlite3.Connection] = sqlite3.Connection) -> aiosqlite.Connection:
        path.parent.mkdir(parents=True, exist_ok=True)
        return await _open(path, SAMPLE_MIGRATIONS, self.synchronous, factory)

    async def _reader(self, handle: _UserFile) -> aiosqlite.Connection:
        async with handle.reader_opening:
            if handle.reader is None:
                reader = await self._open_file(handle.path, _ReadConnection)
                await reader.execute("PRAGMA query_only = ON")
                handle.reader = reader
            return handle.reader

    @contextlib.asynccontextmanager
    async def _reading(self, handle: _UserFile) -> AsyncIterator[aiosqlite.Connection]:
        """The file's read connection for the duration of one read (counted, so eviction waits).

        One reader per file on purpose: a second or third one (measured) made queries slower, not
        faster, as Python's sqlite3 hands the GIL back and forth once per fetched row.
        """
        handle.active_reads += 1
        try:
            with _refused_as_unavailable(handle.path, "read failed", log=True):
                yield await self._reader(handle)
        finally:
            handle.active_reads -= 1

    # ---- writes

    async def write(self, user: str, points: Sequence[SamplePoint], *, on_conflict: str = "merge") -> list[int]:
        """Store the points; returns once the transaction holding them has committed.

        `on_conflict` says what happens to a point whose time and tags are stored already (see
        ON_CONFLICT). Returns the indices of the points that "skip" left out (always [] otherwise).
        """
        if on_conflict not in ON_CONFLICT:
            raise ValueError(f"on_conflict must be one of {', '.join(ON_CONFLICT)}, got {on_conflict!r}")
        handle = self._file(user)
        if not points:
            return []
        self._writes[user] = self._writes.get(user, 0) + 1
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        batch = points if on_conflict == "merge" else _ConflictBatch(points, on_conflict)
        self._writer(handle).put(batch, done)
        await done
        return list(batch.skipped) if isinstance(batch, _ConflictBatch) else []

    def _writer(self, handle: _UserFile) -> _Writer:
        if handle.writer is None:
            handle.writer = _Writer(self, handle.path, asyncio.get_running_loop())
        return handle.writer

    def writes_to(self, user: str) -> int:
        """How many writes this store has taken for the user: a changed number means new samples."""
        return self._writes.get(user, 0)

    async def delete_before(self, user: str, cutoff_ns: int, max_rows: int) -> tuple[int, int | None]:
        """Remove the oldest samples with time < cutoff_ns, about `max_rows` of them (a few more when
        several series share the last time), in one transaction through the user's writer: queued
        like a write, so it never races one and holds the file only briefly. Returns (samples removed,
        time of the oldest sample left or None). A user without a file has nothing to remove."""
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        handle = self._existing_file(user)
        if handle is None:
            return 0, None

        def delete(conn: sqlite3.Connection) -> tuple[int, int | None]:
            # One statement, so autocommit makes it one transaction; the bound is the time of the
            # max_rows-th oldest sample, so both scans are primary-key ranges from the oldest row.
            removed = conn.execute(_DELETE_OLDEST, (cutoff_ns, max_rows - 1)).rowcount
            oldest = conn.execute("SELECT min(time) FROM samples").fetchone()[0]
            return removed, oldest

        done: asyncio.Future[tuple[int, int | None]] = asyncio.get_running_loop().create_future()
        self._writer(handle).put_job(_Job(delete, done))
        return await done

    def _upsert_for(self, keys: tuple[str, ...], rows: int, on_conflict: str = "merge") -> str:
        """Called from writer threads: a plain dict is safe enough, a lost race only rebuilds a string."""
        sql = self._upserts.get((keys, rows, on_conflict))
        if sql is None:
            if len(self._upserts) >= 1024:  # field orders and row counts vary little; just bound the cache
                self._upserts.clear()
            sql = self._upserts[(keys, rows, on_conflict)] = _upsert_sql(keys, rows, on_conflict)
        return sql

    # ---- reads

    async def read_range(
        self,
        user: str,
        start_ns: int,
        end_ns: int,
        *,
        descending: bool = False,
        limit: int | None = None,
        batch: int = 1000,
        fields: Sequence[str] | None = None,
    ) -> AsyncIterator[list[StoredSample]]:
        """Samples with start_ns <= time < end_ns, in time order, as lists of up to `batch`.

        Streams through a cursor: memory stays at one batch whatever the range.
        `fields` (an extension): read only these vocabulary fields and skip samples that have none
        of them set, as InfluxDB's `SELECT hr_bpm ...` does; fewer columns read is faster.
        """
        if batch < 1:
            raise ValueError("batch must be at least 1")
        keys = FIELD_KEYS if fields is None else tuple(fields)
        if not keys or not _FIELD_SET.issuperset(keys):  # interpolated into SQL: vocabulary only
            raise ValueError(f"fields must be vocabulary keys, got {fields!r}")
        handle = self._existing_file(user)
        if handle is None or (limit is not None and limit <= 0):
            return
        order = "DESC" if descending else "ASC"
        select, where = _SELECT, ""
        if fields is not None:
            select = f"SELECT samples.time, series.tags, {', '.join(keys)} {_FROM}"
            where = " AND (" + " OR ".join(f"{key} IS NOT NULL" for key in keys) + ")"
        sql = (
            f"{select} WHERE samples.time >= ? AND samples.time < ?{where} "
            f"ORDER BY samples.time {order}, samples.series {order} LIMIT ?"
        )
        async with self._reading(handle) as conn:
            decode = _Decoder(keys)
            async with conn.execute(sql, (start_ns, end_ns, -1 if limit is None else limit)) as cursor:
                while rows := await cursor.fetchmany(batch):
                    yield [decode(row) for row in rows]

    async def _read_all(self, user: str, sql: str) -> list[tuple[Any, ...]]:
        handle = self._existing_file(user)
        if handle is None:
            return []
        async with self._reading(handle) as conn:
            return list(await conn.execute_fetchall(sql))

    async def latest(self, user: str) -> StoredSample | None:
        rows = await self._read_all(user, f"{_SELECT} ORDER BY samples.time DESC, samples.series DESC LIMIT 1")
        return _Decoder()(rows[0]) if rows else None

    async def tag_sets(self, user: str) -> list[dict[str, str]]:
        rows = await self._read_all(user, "SELECT tags FROM series ORDER BY tags")
        return [dict(json.loads(row[0])) for row in rows]

    # ---- lifecycle

    def files_of(self, user: str) -> list[Path]:
        """The user's database file and SQLite's companions of it, whether they exist or not."""
        path = self.path_for(user)
        return [path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal"))]

    async def delete_user(self, user: str) -> list[Path]:
        """Close the user's file and remove it with its WAL and shared-memory files."""
        files = self.files_of(user)
        handle = self._files.pop(user, None)
        if handle is not None:
            await handle.close()
        # A connection closing after eviction would remove the -wal/-shm files by name on its way out.
        await asyncio.gather(*self._closing, return_exceptions=True)
        removed: list[Path] = []
        for candidate in files:
            try:
                candidate.unlink()
            except FileNotFoundError:
                continue
            removed.append(candidate)
        return removed

    async def close(self) -> None:
        """Commit and acknowledge every queued write, then close every connection."""
        self._closed = True
        handles = list(self._files.values())
        self._files.clear()
        results = await asyncio.gather(*(h.close() for h in handles), *self._closing, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                _log.error("closing a sample file failed", exc_info=result)


# Fields describing one GPS fix: a bucket takes them from its last fix, since averaging positions
# (or bearings) draws points the rider never was at.
_FIX_FIELDS = ("lat", "lng", "acc_m", "bearing")
_MEAN_FIELDS = tuple(key for key in FIELD_KEYS if key not in _FIX_FIELDS)


async def window_samples(
    store: SampleStore, user: str, start_ns: int, end_ns: int, max_points: int
) -> tuple[bool, list[tuple[int, dict[str, float]]]]:
    """(downsampled?, [(time, fields)...] in time order) for start <= time < end.

    Up to `max_points` rows come back as stored. Beyond that the range is cut into `max_points`
    buckets of equal width; each non-empty bucket gives one sample at the time of its last row, with
    the mean of each field, except the fix fields (lat, lng, acc_m, bearing) taken from the bucket's
    last row that has a position.
    """
    if max_points < 1 or end_ns <= start_ns:
        return False, []
    handle = store._existing_file(user)
    if handle is None:
        return False, []
    async with store._reading(handle) as conn:
        rows = await conn.execute_fetchall(
            "SELECT count(*) FROM samples WHERE time >= ? AND time < ?", (start_ns, end_ns)
        )
        count = rows[0][0]
        if count <= max_points:
            sql = (
                f"SELECT time, {_COLUMNS} FROM samples WHERE time >= ? AND time < ? ORDER BY time, series"
            )
            out: list[tuple[int, dict[str, float]]] = []
            async with conn.execute(sql, (start_ns, end_ns)) as cursor:
                while batch := await cursor.fetchmany(5000):
                    for row in batch:
                        fields = {k: v for k, v in zip(FIELD_KEYS, row[1:]) if v is not None}
                        if fields:
                            out.append((row[0], fields))
            return False, out

        width = -(-(end_ns - start_ns) // max_points)  # ceiling: max_points buckets cover the range
        bucket = "(time - ?1) / ?3"
        means = ", ".join(f"avg({key})" for key in _MEAN_FIELDS)
        buckets: dict[int, tuple[int, dict[str, float]]] = {}
        sql = (
            f"SELECT {bucket} AS b, max(time), {means} FROM samples "
            "WHERE time >= ?1 AND time < ?2 GROUP BY b ORDER BY b"
        )
        async with conn.execute(sql, (start_ns, end_ns, width)) as cursor:
            while batch := await cursor.fetchmany(5000):
                for b, last_time, *values in batch:
                    fields = {k: v for k, v in zip(_MEAN_FIELDS, values) if v is not None}
                    buckets[b] = (last_time, fields)
        # SQLite's bare columns: beside max(time), the other columns come from that very row.
        fix = ", ".join(_FIX_FIELDS)
        sql = (
            f"SELECT {bucket} AS b, max(time), {fix} FROM samples "
            "WHERE time >= ?1 AND time < ?2 AND lat IS NOT NULL AND lng IS NOT NULL GROUP BY b"
        )
        async with conn.execute(sql, (start_ns, end_ns, width)) as cursor:
            while batch := await cursor.fetchmany(5000):
                for b, _time, *values in batch:
                    entry = buckets.get(b)
                    if entry is not None:
                        entry[1].update({k: v for k, v in zip(_FIX_FIELDS, values) if v is not None})
    return True, [entry for _, entry in sorted(buckets.items()) if entry[1]]


# Bound parameters per statement when listing series ids (SQLite's default limit is 32766).
_IDS_PER_STATEMENT = 500


async def device_last_seen(store: SampleStore, user: str) -> dict[str | None, int]:
    """The newest sample time (ns) of each `device` tag value of the user (None: samples without one).

    Rows are clustered by time, so each device's newest row is found by walking back from the end
    of the file until one of its series turns up: cheap for devices that sent lately.
    """
    handle = store._existing_file(user)
    if handle is None:
        return {}
    newest: dict[str | None, int] = {}
    async with store._reading(handle) as conn:
        by_device: dict[str | None, list[int]] = {}
        for series_id, tags in await conn.execute_fetchall("SELECT id, tags FROM series"):
            by_device.setdefault(dict(json.loads(tags)).get(DEVICE_TAG), []).append(series_id)
        for device, ids in by_device.items():
            for start in range(0, len(ids), _IDS_PER_STATEMENT):
                chunk = ids[start : start + _IDS_PER_STATEMENT]
                sql = (
                    f"SELECT time FROM samples WHERE series IN ({', '.join('?' * len(chunk))}) "
                    "ORDER BY time DESC LIMIT 1"
                )
                rows = list(await conn.execute_fetchall(sql, chunk))
                if rows and (device not in newest or rows[0][0] > newest[device]):
                    newest[device] = rows[0][0]
    return newest

