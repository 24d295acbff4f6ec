"""Samples: <data_dir>/users/<name>.sqlite. The writer thread (group commit through the journal),
reads, and the downsampled window read behind the watch page."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import queue
import sqlite3
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterable, Literal, Mapping, Protocol, Sequence, TypeVar, overload

import aiosqlite

from tracker.storage.connection import (
    BUSY_TIMEOUT_MS, SYNCHRONOUS_MODES, USERS_DIR, StorageUnavailable, _checked_name, _connect, _open, _ReadConnection, immediate,
    _refused_as_unavailable, _storage_fault, fsync_path,
)
from tracker.storage.column_cache import BlockCache
from tracker.storage.journal import (
    DELETE_ENTRY, CommitLock, append as journal_append, checkpointed, delete_entries as journal_delete,
    delete_user_entries, encode_deletion, encode_points, journal_path, open_journal, register_writer,
)
from tracker.storage.schema import BLOCK_NS, CHANGES_AFTER_NS, SAMPLE_MIGRATIONS
from tracker.vocabulary import FIELD_KEYS

_log = logging.getLogger(__name__)
T = TypeVar("T")

# The tag that names the device a sample came from (a device token's label unless the line sets it).
DEVICE_TAG = "device"

_COLUMNS = ", ".join(FIELD_KEYS)
_FIELD_SET = frozenset(FIELD_KEYS)


_BUMP_BLOCK = (
    "INSERT INTO sample_block_changes (block, version) VALUES (?, 1) "
    "ON CONFLICT (block) DO UPDATE SET version = version + 1"
)

# The time range a write or deletion changed, for the next refresh of the user's activities
# (tracker.storage.activities): one row per hour of the range's start, widened in place.
_MARK_ACTIVITIES_DIRTY = (
    "INSERT INTO activity_dirty (block, start_ns, end_ns) VALUES (?1 / ?3 - (?1 % ?3 < 0), ?1, ?2) "
    "ON CONFLICT (block) DO UPDATE SET start_ns = min(start_ns, excluded.start_ns), end_ns = max(end_ns, excluded.end_ns)"
)


def mark_activities_dirty(conn: sqlite3.Connection, start_ns: int, end_ns: int) -> None:
    """Inside the caller's transaction: samples with start_ns <= time <= end_ns changed."""
    conn.execute(_MARK_ACTIVITIES_DIRTY, (start_ns, end_ns, BLOCK_NS))


# Points in one write above which their journal encoding runs on a thread rather than on the loop.
ENCODE_IN_THREAD_POINTS = 2000

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


# Deletions (DELETE, DROP SERIES) go through the writer in steps of at most this many rows of the
# file's time range, each its own transaction and journal entry, so that the writes of everyone else
# commit in between: a DELETE of a year of samples never holds the writer for more than a step.
DELETE_STEP_ROWS = 50_000
# SQLite work (progress-handler calls, each ~1000 VM instructions) a deletion may spend, on the
# writer, proving that a series it emptied has no samples left outside the deleted range; a series not
# proven empty in time keeps its row (it is listed with no samples) rather than stall the writer.
EMPTY_SERIES_BUDGET = 20_000
# The time of the first row past one step: a step deletes the rows before it.
_STEP_END = "SELECT time FROM samples WHERE time >= ? AND time < ? ORDER BY time LIMIT 1 OFFSET ?"
_DELETE_RANGE = (
    "DELETE FROM samples WHERE time >= ? AND time < ? AND series IN (SELECT value FROM json_each(?))"
)
_BUMP_DELETIONS = "UPDATE sample_deletions SET generation = generation + 1"
_DELETIONS = "SELECT generation FROM sample_deletions"
# The whole time range a sample can have (InfluxDB's MinTime and MaxTime, end exclusive).
_EARLIEST_NS = -(2**63) + 2
_LATEST_NS = 2**63 - 1

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


_STOP = object()  # put on the writer's queue after the last batch: commit what is queued, then exit


@dataclass(frozen=True, slots=True)
class Written:
    """What a write did: the indices of the points "skip" left out ([] otherwise), and the journal id
    of the batch (the global commit sequence; None when nothing was stored, e.g. everything skipped)."""

    skipped: list[int]
    sequence: int | None


@dataclass(eq=False, slots=True)
class _Batch:
    user: str
    path: Path
    points: Sequence[SamplePoint]  # a _ConflictBatch unless on_conflict is "merge"
    on_conflict: str
    done: asyncio.Future[Written]
    file: _UserFile  # whose `pending` counts it
    # The points as the journal stores them, made by the caller (not in the busy writer thread);
    # None for "skip", whose journal entry holds only the points it stored.
    encoded: bytes | None = None


@dataclass(frozen=True, slots=True)
class Deletion:
    """What a DELETE or DROP SERIES removes: the samples of the series with these tag sets
    (canonical tags texts) with start <= time < end; then the series left without samples."""

    series_tags: tuple[str, ...]
    start_ns: int
    end_ns: int


@dataclass(slots=True)
class _WritesDuring:
    """What reached a user's file while a deletion of several steps ran: the tag sets this process's
    writer wrote, and whether any other connection (another process) committed, as seen by the file's
    `PRAGMA data_version` on the writer's connection (unchanged by its own commits)."""

    user: str
    conn: sqlite3.Connection
    data_version: int
    tags: set[Tags] = field(default_factory=set)
    others_wrote: bool = False


@dataclass(frozen=True, slots=True)
class _DeletionStep:
    """One step of a deletion: the rows from `from_ns` on, up to DELETE_STEP_ROWS rows of the file."""

    deletion: Deletion
    from_ns: int
    first: bool  # nothing of the deletion committed before: no write can have come in between


@dataclass(frozen=True, slots=True)
class _Job:
    """Work other than a write, run in the writer thread on the user's connection (removing expired
    samples), after the group commit it was queued beside, so it never races a write. With
    `forget`, the thread instead closes the user's connection and deletes their journal entries."""

    user: str
    path: Path
    run: Callable[[sqlite3.Connection], Any] | None
    done: asyncio.Future[Any]
    file: _UserFile | None = None  # whose `pending` counts it
    forget: bool = False
    deletion: _DeletionStep | None = None  # instead of `run`: one step of a deletion, journaled


class _ConflictBatch(list):  # type: ignore[type-arg]
    """The points of one write whose on_conflict is not "merge"; the writer notes the skipped ones."""

    __slots__ = ("on_conflict", "skipped")

    def __init__(self, points: Sequence[SamplePoint], on_conflict: str) -> None:
        super().__init__(points)
        self.on_conflict = on_conflict
        self.skipped: list[int] = []  # indices into the points, set by the transaction that commits them


class _Applier:
    """Turns points into upsert statements on a user file's connection (the writer and recovery)."""

    def __init__(self) -> None:
        self._upserts: dict[tuple[tuple[str, ...], int, str], str] = {}

    def upsert_for(self, keys: tuple[str, ...], rows: int, on_conflict: str = "merge") -> str:
        sql = self._upserts.get((keys, rows, on_conflict))
        if sql is None:
            if len(self._upserts) >= 1024:  # field orders and row counts vary little; just bound the cache
                self._upserts.clear()
            sql = self._upserts[(keys, rows, on_conflict)] = _upsert_sql(keys, rows, on_conflict)
        return sql

    def add_series(self, conn: sqlite3.Connection, known: dict[Tags, int], points: Iterable[SamplePoint]) -> dict[Tags, int]:
        """Inside the caller's transaction: ids of the tag sets not in `known` (inserted if new).
        Returned apart, to be added to `known` only after COMMIT: a rolled-back id must never be reused."""
        new: dict[Tags, str] = {}
        for point in points:
            if point.tags not in known and point.tags not in new:
                new[point.tags] = _tags_text(point.tags)
        if not new:
            return {}
        texts = sorted(set(new.values()))
        conn.executemany("INSERT OR IGNORE INTO series (tags) VALUES (?)", [(t,) for t in texts])
        found = conn.execute(
            "SELECT tags, id FROM series WHERE tags IN (SELECT value FROM json_each(?))", (json.dumps(texts),)
        ).fetchall()
        by_text = dict(found)
        return {tags: by_text[text] for tags, text in new.items()}

    def apply(self, conn: sqlite3.Connection, ids: Mapping[Tags, int], points: Sequence[SamplePoint], on_conflict: str) -> list[int]:
        """Write one batch inside the caller's transaction; the indices "skip" left out."""
        skipped: list[int] = []
        if on_conflict == "skip":
            keys = [(point.time, ids[point.tags]) for point in points]
            # Checked inside the transaction, under the write lock: nothing can land in between.
            stored = {
                (time_ns, series)
                for time_ns, series in conn.execute(
                    "SELECT time, series FROM samples WHERE (time, series) IN "
                    "(SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))",
                    (json.dumps(keys),),
                )
            }
            kept: list[SamplePoint] = []
            for index, (point, key) in enumerate(zip(points, keys)):
                if key in stored:
                    skipped.append(index)
                else:
                    kept.append(point)
                    stored.add(key)  # repeated later in the batch: skipped too
            points = kept
        for sql, params in self.statements(points, ids, on_conflict):
            conn.execute(sql, params)
        if not points:
            return skipped
        times = [point.time for point in points]
        mark_activities_dirty(conn, min(times), max(times))
        # Samples written long after their time change hours the read cache may hold: a new version.
        cutoff = time.time_ns() - CHANGES_AFTER_NS
        changed = {t // BLOCK_NS for t in times if t < cutoff}
        if changed:
            conn.executemany(_BUMP_BLOCK, [(block,) for block in sorted(changed)])
        return skipped

    def statements(
        self, points: Sequence[SamplePoint], ids: Mapping[Tags, int], on_conflict: str = "merge"
    ) -> list[tuple[str, list[Any]]]:
        """(sql, flat parameters) per statement: consecutive points with the same fields share
        statements of up to ROWS_PER_STATEMENT rows; usually one field set per batch."""
        runs: list[tuple[tuple[str, ...], list[Any]]] = []  # (field keys, flat row values)
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
                statements.append((self.upsert_for(keys, len(chunk) // width, on_conflict), chunk))
        return statements


def _load_series(conn: sqlite3.Connection) -> dict[Tags, int]:
    rows = conn.execute("SELECT tags, id FROM series").fetchall()
    return {tuple(map(tuple, json.loads(t))): i for t, i in rows}


def _series_ids(conn: sqlite3.Connection, series_tags: Sequence[str]) -> dict[str, int]:
    """The ids of the series with these canonical tags texts that exist in the file."""
    return dict(
        conn.execute("SELECT tags, id FROM series WHERE tags IN (SELECT value FROM json_each(?))", (json.dumps(list(series_tags)),))
    )


def _empty_series(conn: sqlite3.Connection, ids: Sequence[int], budget: int) -> list[int]:
    """Those of the series proven to have no sample before `budget` (progress-handler calls) ran
    out. Inside the caller's write transaction, so exact; a series not proven empty is kept."""
    empty: list[int] = []
    spent = 0

    def tick() -> bool:
        nonlocal spent
        spent += 1
        return spent > budget

    conn.set_progress_handler(tick, 1000)
    try:
        for series_id in ids:
            if not conn.execute("SELECT EXISTS (SELECT 1 FROM samples WHERE series = ?)", (series_id,)).fetchone()[0]:
                empty.append(series_id)
    except sqlite3.OperationalError:
        if spent <= budget:
            raise  # not our budget: a real error
    finally:
        conn.set_progress_handler(None, 0)
    return empty


def apply_deletion(
    conn: sqlite3.Connection, series_tags: Sequence[str], start_ns: int, end_ns: int, removed_series: Sequence[str]
) -> tuple[int, list[str]]:
    """Inside the caller's transaction: delete the samples of the series with start <= time < end,
    then those of `removed_series` that have no sample left. (Rows deleted, tags texts of the series
    removed.) Recovery replays a journaled deletion with it; the writer runs it in steps."""
    ids = _series_ids(conn, series_tags)
    removed = conn.execute(_DELETE_RANGE, (start_ns, end_ns, json.dumps(list(ids.values())))).rowcount if ids else 0
    gone: list[str] = []
    if removed_series:  # empty then; now, samples written after the deletion may be in the file already
        candidates = _series_ids(conn, removed_series)
        by_id = {series_id: tags for tags, series_id in candidates.items()}
        gone = [by_id[i] for i in _empty_series(conn, list(by_id), EMPTY_SERIES_BUDGET)]
        _remove_series(conn, [candidates[tags] for tags in gone])
    if removed or gone:
        conn.execute(_BUMP_DELETIONS)
    if removed:
        mark_activities_dirty(conn, max(start_ns, _EARLIEST_NS), min(end_ns - 1, _LATEST_NS))
    return removed, gone


def _canonical_tags(tag_sets: Iterable[Mapping[str, str]]) -> tuple[str, ...]:
    return tuple(sorted({_tags_text(tuple(tags.items())) for tags in tag_sets}))


def _remove_series(conn: sqlite3.Connection, ids: Sequence[int]) -> None:
    if ids:
        conn.execute("DELETE FROM series WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(list(ids)),))


def _deletions(conn: sqlite3.Connection) -> int:
    return int(conn.execute(_DELETIONS).fetchone()[0])


def _open_sample_file(path: Path) -> tuple[sqlite3.Connection, dict[Tags, int]]:
    """A writing connection to a user file (created if need be) and the ids of its series.

    synchronous=NORMAL: a commit is not fsynced; the journal (fsynced per group) carries durability
    until the checkpoint fsyncs the file. A newly created file's folder entry is fsynced at once:
    recovery re-applies entries only to files that exist.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    existed = path.exists()
    # Autocommit mode: the writer says BEGIN IMMEDIATE and COMMIT itself.
    conn = _connect(path, SAMPLE_MIGRATIONS, "NORMAL", isolation_level=None, cached_statements=64)
    try:
        series = _load_series(conn)
        if not existed:
            fsync_path(path.parent)
    except BaseException:
        conn.close()
        raise
    return conn, series


@dataclass(eq=False, slots=True)
class _Open:
    """A user file's connection in the writer thread, with the ids of its committed series, valid
    while the file's deletion count is `deletions` (a deletion removes series, in any process)."""

    conn: sqlite3.Connection
    series: dict[Tags, int]
    deletions: int = 0


# User files a checkpoint syncs between two groups of writes: each costs a few fsyncs.
_CHECKPOINT_FILES_PER_STEP = 4


@dataclass(slots=True)
class _CheckpointRound:
    """The files to make durable, and the newest journal id of ours applied to them when it began."""

    files: frozenset[Path]
    applied: int
    left: list[Path] = field(init=False)  # the files not yet synced
    complete: bool = True  # every file synced: the entries up to `applied` are durable

    def __post_init__(self) -> None:
        self.left = list(self.files)


class _Writer:
    """The one writer thread of a SampleStore, for every user's file, fed by a queue.

    It takes everything queued (many users' batches) and commits it as one group: each user's
    batches in one transaction on that user's file (synchronous=NORMAL, no fsync), all of them
    appended to the journal in ONE transaction (one fsync for the whole group) while those
    transactions still hold their files' write locks, then the user files' COMMITs; then it
    acknowledges the whole group with one call into the loop. One thread for all users instead of one
    per user file: under live load a hundred threads mostly fought over the GIL.
    """

    def __init__(self, store: SampleStore, loop: asyncio.AbstractEventLoop) -> None:
        self._store = store
        self._loop = loop
        self._queue: queue.SimpleQueue[_Batch | _Job | object] = queue.SimpleQueue()
        self.finished: asyncio.Future[None] = loop.create_future()  # set after the last acknowledgement
        self._applier = _Applier()
        # In the thread only:
        self._open: OrderedDict[str, _Open] = OrderedDict()  # least recently used first
        self._journal: sqlite3.Connection | None = None
        self._commit_lock = CommitLock(store.data_dir)  # held for each group, job and file checkpoint
        self.journal_synchronous: int | None = None  # as the journal connection reports it (tests)
        self._touched: set[Path] = set()  # user files committed to since the last checkpoint
        self._applied_through = 0  # the newest journal id of ours whose batch is in its user file
        self._durable_through = 0
        self._since_checkpoint = 0  # entries appended since the last checkpoint
        self._last_checkpoint = time.monotonic()
        self._trim_until = 0.0  # keep checkpointing (trimming) until entries are past the keep time
        self._round: _CheckpointRound | None = None  # the checkpoint under way, a few files at a time
        self._deleting: dict[int, _WritesDuring] = {}  # id(Deletion) -> writes since its first step
        self._thread = threading.Thread(target=self._run, name="tracker writer", daemon=True)
        self._thread.start()

    def put(self, item: _Batch | _Job) -> None:
        self._queue.put(item)

    def stop(self) -> None:
        """Commit and acknowledge everything queued so far, checkpoint, close every connection, end."""
        self._queue.put(_STOP)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def join(self) -> None:
        self._thread.join()

    # ---- on the loop

    def _acknowledge(
        self, batches: list[_Batch], results: list[Written | BaseException], journal_commits: int, user_commits: int,
        commit_seconds: float | None,
    ) -> None:
        store = self._store
        if commit_seconds is not None:
            for timer in store.commit_timers:
                timer(commit_seconds)
        store.journal_commits += journal_commits
        store.user_commits += user_commits
        store.writes += len(batches)
        for batch, result in zip(batches, results):
            batch.file.pending -= 1
            if batch.done.done():  # the waiter was cancelled; its points are written anyway
                continue
            if isinstance(result, BaseException):
                batch.done.set_exception(result)
            else:
                batch.done.set_result(result)
        if journal_commits:
            newest = max((r.sequence or 0 for r in results if isinstance(r, Written)), default=0)
            for listener in list(store.commit_listeners):
                try:
                    listener(newest)
                except Exception:
                    _log.exception("a commit listener failed")

    def _settle_job(self, job: _Job, result: Any, error: BaseException | None) -> None:
        if job.file is not None:
            job.file.pending -= 1
        if job.done.done():
            return
        if error is None:
            job.done.set_result(result)
        else:
            job.done.set_exception(error)

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
        try:
            while True:
                items = self._take()
                if items is None:  # nothing arrived before the checkpoint was due
                    self._checkpoint(_CHECKPOINT_FILES_PER_STEP)
                    continue
                stop = any(item is _STOP for item in items)
                batches = [item for item in items if isinstance(item, _Batch)]
                if batches:
                    try:
                        with self._commit_lock:
                            started = time.perf_counter()  # the commit itself, not the wait for the lock
                            results, journal_commits, user_commits = self._commit_group(batches)
                            commit_seconds: float | None = time.perf_counter() - started
                    except Exception as error:  # a bug, not the disk: fail this group, keep the thread
                        _log.exception("committing a group of writes failed")
                        for user, handle in list(self._open.items()):
                            if handle.conn.in_transaction:
                                self._drop(user)  # closing rolls back
                        results, journal_commits, user_commits = [error] * len(batches), 0, 0
                        commit_seconds = None
                    self._call_loop(self._acknowledge, batches, results, journal_commits, user_commits, commit_seconds)
                for job in (item for item in items if isinstance(item, _Job)):
                    with self._commit_lock:
                        self._run_job(job)
                if stop:
                    return
                if self._checkpoint_due():
                    self._checkpoint(_CHECKPOINT_FILES_PER_STEP)
        finally:
            with contextlib.suppress(Exception):
                self._checkpoint()  # the round under way, whole
                self._checkpoint()  # and what was touched since
            for handle in self._open.values():
                with contextlib.suppress(sqlite3.Error):
                    handle.conn.close()
            self._open.clear()
            if self._journal is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._journal.close()
            self._commit_lock.close()
            self._call_loop(self._finish)

    def _take(self) -> list[Any] | None:
        """Everything queued (waiting for the first item), or None when a checkpoint falls due first."""
        store = self._store
        if self._round is not None:  # a round under way: its next step if nothing is queued
            try:
                first = self._queue.get_nowait()
            except queue.Empty:
                return None
        elif self._checkpoint_work():
            wait = self._last_checkpoint + store.checkpoint_seconds - time.monotonic()
            try:
                first = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                return None
        else:
            first = self._queue.get()
        items = [first]
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def _connection(self, user: str, path: Path) -> _Open:
        handle = self._open.get(user)
        if handle is not None:
            self._open.move_to_end(user)
            return handle
        conn, series = _open_sample_file(path)
        try:
            deletions = _deletions(conn)
        except BaseException:
            conn.close()
            raise
        handle = self._open[user] = _Open(conn, series, deletions)
        self._trim_open()
        return handle

    def _trim_open(self) -> None:
        """Close the least recently used connections beyond max_open_users; never one inside a
        transaction of the group being committed (the bound is then exceeded until its end)."""
        excess = len(self._open) - self._store.max_open_users
        for user, handle in list(self._open.items())[:-1]:  # never the one just opened (last)
            if excess <= 0:
                return
            if not handle.conn.in_transaction:
                del self._open[user]
                excess -= 1
                with contextlib.suppress(sqlite3.Error):
                    handle.conn.close()

    def _drop(self, user: str) -> None:
        """After a fault the user's next batch starts from a fresh connection: whatever state the failure
        left behind, a disk that has space again (or is writable again) is written at the next request."""
        handle = self._open.pop(user, None)
        if handle is not None:
            with contextlib.suppress(sqlite3.Error):
                handle.conn.close()

    def _journal_conn(self) -> sqlite3.Connection:
        if self._journal is None:
            conn = open_journal(self._store.data_dir, self._store.synchronous)
            try:
                register_writer(conn, self._store.writer_key)
                self.journal_synchronous = int(conn.execute("PRAGMA synchronous").fetchone()[0])
            except BaseException:
                conn.close()
                raise
            self._journal = conn
        return self._journal

    def _drop_journal(self) -> None:
        if self._journal is not None:
            with contextlib.suppress(sqlite3.Error):
                self._journal.close()
            self._journal = None

    def _fault(self, error: BaseException, path: Path) -> StorageUnavailable | None:
        fault = _storage_fault(error, path, "write failed, nothing was stored")
        if fault is not None:
            _log.error("%s: %s (%s)", path, fault, error)
        return fault

    def _commit_group(self, batches: list[_Batch]) -> tuple[list[Written | BaseException], int, int]:
        """(Written or the error, per batch; journal commits; user file commits)."""
        results: list[Written | BaseException | None] = [None] * len(batches)
        skipped: list[list[int]] = [[] for _ in batches]
        by_user: dict[str, list[int]] = {}
        for index, batch in enumerate(batches):
            by_user.setdefault(batch.user, []).append(index)
        # Open transactions: (user, handle, the indices of its batches that went in, new series).
        # Users in name order: two processes taking several files' write locks never deadlock.
        pending: list[tuple[str, _Open, list[int], dict[Tags, int]]] = []
        for user in sorted(by_user):
            indices = by_user[user]
            path = batches[indices[0]].path
            went_in = self._apply_user(user, path, batches, indices, results, skipped)
            if went_in is not None:
                pending.append((user, *went_in))
        # The journal: every batch that went in, in ONE transaction (one fsync).
        rows: list[tuple[str, str, bytes]] = []
        journaled: list[int] = []
        for user, _, indices, _ in pending:
            for index in indices:
                batch = batches[index]
                left_out = skipped[index]
                points = batch.points
                if left_out:
                    gone = set(left_out)
                    points = [p for i, p in enumerate(points) if i not in gone]
                if points:
                    encoded = batch.encoded if batch.encoded is not None and not left_out else encode_points(points)
                    rows.append((user, batch.on_conflict, encoded))
                    journaled.append(index)
        ids: list[int] = []
        journal_commits = 0
        if rows:
            journal_file = journal_path(self._store.data_dir)
            try:
                ids = journal_append(self._journal_conn(), self._store.writer_key, rows)
                journal_commits = 1
            except Exception as error:
                fault = self._fault(error, journal_file) or StorageUnavailable(
                    f"write failed, nothing was stored: {error}"
                )
                self._drop_journal()
                for user, handle, indices, _ in pending:
                    with contextlib.suppress(sqlite3.Error):
                        handle.conn.execute("ROLLBACK")
                    for index in indices:
                        results[index] = fault
                return [r if r is not None else fault for r in results], 0, 0
        sequence = dict(zip(journaled, ids))
        user_commits = 0
        taken_back: list[int] = []
        for user, handle, indices, fresh in pending:
            path = batches[indices[0]].path
            try:
                handle.conn.execute("COMMIT")
            except Exception as error:
                fault = self._fault(error, path) or error
                with contextlib.suppress(sqlite3.Error):
                    handle.conn.execute("ROLLBACK")
                self._drop(user)
                for index in indices:
                    results[index] = fault
                    if index in sequence:
                        taken_back.append(sequence.pop(index))
                continue
            handle.series.update(fresh)  # only now: a rolled-back series id must never be reused
            for during in self._deleting.values():  # empty but while a deletion runs
                if during.user == user:
                    during.tags.update(p.tags for index in indices for p in batches[index].points)
            user_commits += 1
            self._touched.add(path)
            for index in indices:
                results[index] = Written(skipped[index], sequence.get(index))
        self._trim_open()
        if taken_back:  # their writers get an error: recovery must not apply them later
            try:
                journal_delete(self._journal_conn(), taken_back)
            except Exception:
                _log.exception("taking back journal entries %s failed", taken_back)
        if ids:
            self._applied_through = max(self._applied_through, *ids)
            self._since_checkpoint += len(ids)
            self._trim_until = time.monotonic() + self._store.keep_seconds + self._store.checkpoint_seconds
        return [r if r is not None else RuntimeError("batch not written") for r in results], journal_commits, user_commits

    def _apply_user(
        self,
        user: str,
        path: Path,
        batches: list[_Batch],
        indices: list[int],
        results: list[Written | BaseException | None],
        skipped: list[list[int]],
    ) -> tuple[_Open, list[int], dict[Tags, int]] | None:
        """The user's batches in one open transaction; None if none went in (their errors are set)."""
        try:
            handle = self._connection(user, path)
        except Exception as error:  # opening failed (a newer schema, a full disk): fail these only
            failure = self._fault(error, path) or error
            for index in indices:
                results[index] = failure
            return None
        conn = handle.conn
        try:
            conn.execute("BEGIN IMMEDIATE")  # the write lock up front: no deadlock-prone lock upgrade
            deletions = _deletions(conn)
            if deletions != handle.deletions:  # series were removed (maybe by another process): ids anew
                handle.series, handle.deletions = _load_series(conn), deletions
            fresh = self._applier.add_series(conn, handle.series, (p for i in indices for p in batches[i].points))
        except Exception as error:
            self._abandon(user, handle, path, error, indices, results)
            return None
        ids = {**handle.series, **fresh} if fresh else handle.series
        went_in: list[int] = []
        single = len(indices) == 1  # no savepoint needed: the transaction is the batch's
        for index in indices:
            batch = batches[index]
            try:
                if not single:
                    conn.execute("SAVEPOINT batch")
                skipped[index] = self._applier.apply(conn, ids, batch.points, batch.on_conflict)
                if not single:
                    conn.execute("RELEASE batch")
            except Exception as error:
                fault = self._fault(error, path)
                if fault is not None or single:  # the disk's doing, not one batch's: each would fail alike
                    self._abandon(user, handle, path, error, indices, results)
                    return None
                # One bad batch must not fail the writes it happened to be grouped with.
                try:
                    conn.execute("ROLLBACK TO batch")
                    conn.execute("RELEASE batch")
                except sqlite3.Error:
                    self._abandon(user, handle, path, error, indices, results)
                    return None
                results[index] = error
                continue
            if isinstance(batch.points, _ConflictBatch):
                batch.points.skipped = skipped[index]
            went_in.append(index)
        if not went_in:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            return None
        return handle, went_in, fresh

    def _abandon(
        self, user: str, handle: _Open, path: Path, error: BaseException, indices: list[int],
        results: list[Written | BaseException | None],
    ) -> None:
        fault = self._fault(error, path)
        if handle.conn.in_transaction:
            # A failing ROLLBACK (a dying disk) must not hide the first error.
            with contextlib.suppress(sqlite3.Error):
                handle.conn.execute("ROLLBACK")
        if fault is not None or handle.conn.in_transaction:
            self._drop(user)
        for index in indices:
            if results[index] is None:
                results[index] = fault or error

    def _run_job(self, job: _Job) -> None:
        result: Any = None
        job_error: BaseException | None = None
        try:
            if job.forget:
                self._drop(job.user)
                self._touched.discard(job.path)
                delete_user_entries(self._journal_conn(), job.user)
            elif job.deletion is not None:
                result = self._delete_step(job.user, job.path, job.deletion)
            else:
                assert job.run is not None
                result = job.run(self._connection(job.user, job.path).conn)
                self._touched.add(job.path)
        except Exception as error:
            job_error = self._fault(error, job.path) or error
            self._drop(job.user)  # as after a failed write: the next one starts from a fresh connection
        self._call_loop(self._settle_job, job, result, job_error)

    def _delete_step(self, user: str, path: Path, step: _DeletionStep) -> tuple[int, int | None]:
        """One step of a deletion, journaled like a write and committed the same way (the journal's
        transaction first, the user file's after), so that neither recovery nor a later checkpoint
        can bring the deleted samples back: replay applies the deletion after every write journaled
        before it. (Rows deleted, where the next step starts or None when this was the last.)"""
        handle = self._connection(user, path)
        conn = handle.conn
        deletion = step.deletion
        during = self._deleting.pop(id(deletion), None)
        entry: list[int] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            data_version = int(conn.execute("PRAGMA data_version").fetchone()[0])
            if step.first:
                during = _WritesDuring(user, conn, data_version)
            elif during is not None and (during.conn is not conn or during.data_version != data_version):
                during.others_wrote = True  # another process wrote, or the connection is another one
            bound = conn.execute(_STEP_END, (step.from_ns, deletion.end_ns, DELETE_STEP_ROWS)).fetchone()
            step_end = deletion.end_ns if bound is None else max(bound[0], step.from_ns + 1)
            last = step_end >= deletion.end_ns
            removed, _ = apply_deletion(conn, deletion.series_tags, step.from_ns, step_end, ())
            gone: list[str] = []
            if last:
                ids = _series_ids(conn, deletion.series_tags)
                whole_range = deletion.start_ns <= _EARLIEST_NS and deletion.end_ns >= _LATEST_NS
                if whole_range and during is not None and not during.others_wrote:
                    # Every sample of theirs went, but what this writer wrote to them between the steps.
                    written = {_tags_text(tags) for tags in during.tags}
                    gone = [tags for tags in ids if tags not in written]
                else:  # samples outside the range, or written by another process: look, briefly
                    by_id = {series_id: tags for tags, series_id in ids.items()}
                    gone = [by_id[i] for i in _empty_series(conn, list(by_id), EMPTY_SERIES_BUDGET)]
                _remove_series(conn, [ids[tags] for tags in gone])
                if gone and not removed:
                    conn.execute(_BUMP_DELETIONS)
            if removed or gone:
                blob = encode_deletion(deletion.series_tags, step.from_ns, step_end, gone)
                entry = journal_append(self._journal_conn(), self._store.writer_key, [(user, DELETE_ENTRY, blob)])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if entry:  # journaled but not applied: recovery must not apply it
                with contextlib.suppress(Exception):
                    journal_delete(self._journal_conn(), entry)
            raise
        if during is not None and not last:
            during.data_version = data_version  # our own commit leaves it as it was
            self._deleting[id(deletion)] = during
        if gone:
            gone_tags = set(gone)
            handle.series = {tags: i for tags, i in handle.series.items() if _tags_text(tags) not in gone_tags}
        handle.deletions = _deletions(conn)
        if entry:
            self._touched.add(path)  # the checkpoint makes the file durable before the entry is
            self._applied_through = max(self._applied_through, *entry)
            self._since_checkpoint += 1
            self._trim_until = time.monotonic() + self._store.keep_seconds + self._store.checkpoint_seconds
        return removed, None if last else step_end

    def _checkpoint(self, files_per_step: int | None = None) -> None:
        """Make the touched user files durable, then tell the journal so, and trim it.

        A round takes the files touched so far and the newest journal id applied to them; with
        `files_per_step` it syncs that many per call and the writer commits the next groups in
        between, so no write waits behind a whole round (a hundred files cost ~100 ms). Once every
        file of the round is durable, so are the entries up to that id.

        A file is made durable by SQLite's own FULL checkpoint on the writer's connection (at
        synchronous=NORMAL it fsyncs the WAL, copies it into the database, and fsyncs that), not by
        opening the file to fsync it: closing any other descriptor of a database file would drop
        this process's POSIX locks on it, and another process could then delete a WAL still in use.
        """
        store = self._store
        if self._round is None:
            self._round = _CheckpointRound(frozenset(self._touched), self._applied_through)
            self._touched = set()
            self._last_checkpoint = time.monotonic()
            self._since_checkpoint = 0
        round_ = self._round
        try:
            steps = len(round_.left) if files_per_step is None else files_per_step
            while round_.left and steps > 0:
                path = round_.left.pop()
                steps -= 1
                with self._commit_lock:  # one file at a time: groups go on in between
                    synced = self._sync_file(path.stem, path)
                if not synced:
                    self._touched.add(path)  # readers of an older snapshot in the way: next round
                    round_.complete = False
            if round_.left:
                return
            self._round = None
            if round_.files:  # new -wal files' folder entries
                fsync_path(store.data_dir / USERS_DIR)
            if not round_.complete:
                return  # not all durable yet: the journal keeps saying so
            if round_.applied > self._durable_through or time.monotonic() < self._trim_until:
                checkpointed(self._journal_conn(), store.writer_key, round_.applied, int(store.keep_seconds * 1e9))
                self._durable_through = round_.applied
        except Exception:
            _log.exception("journal checkpoint failed; retrying")
            self._touched |= round_.files  # the whole round again, its folder entries too
            self._round = None
            self._drop_journal()

    def _checkpoint_work(self) -> bool:
        """Anything for a checkpoint to do: files to sync, entries to mark durable, or to trim."""
        return bool(self._touched or self._applied_through > self._durable_through or time.monotonic() < self._trim_until)

    def _checkpoint_due(self) -> bool:
        return self._round is not None or (
            self._checkpoint_work()
            and (
                self._since_checkpoint >= self._store.checkpoint_entries
                or time.monotonic() - self._last_checkpoint >= self._store.checkpoint_seconds
            )
        )

    def _sync_file(self, user: str, path: Path) -> bool:
        """Checkpoint the user's file fully (which fsyncs it); False if that could not finish now."""
        if not path.exists():  # deleted meanwhile
            return True
        try:
            conn = self._connection(user, path).conn
            # Waiting briefly only: every write of the process waits behind this thread.
            conn.execute(f"PRAGMA busy_timeout = {_CHECKPOINT_WAIT_MS}")
            try:
                busy, wal_frames, copied = conn.execute("PRAGMA wal_checkpoint(FULL)").fetchone()
            finally:
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        except (sqlite3.Error, OSError) as error:  # a full disk, say: the next checkpoint tries again
            _log.error("checkpointing %s failed: %s", path, error)
            self._drop(user)
            return False
        except Exception:
            _log.exception("checkpointing %s failed", path)
            self._drop(user)
            return False
        return not busy and wal_frames == copied


# How long a checkpoint waits for another connection's lock before trying again at the next one.
_CHECKPOINT_WAIT_MS = 50


_OPENINGS = itertools.count(1)  # numbers _UserFile.cache_id


@dataclass(eq=False)
class _UserFile:
    """One user's file as the loop sees it: a read-only connection, and the writes queued for it.

    Reads get their own connection so that they only ever see committed data and never sit inside
    the writer's transaction; in WAL mode the two never block each other.
    """

    name: str
    path: Path
    reader: aiosqlite.Connection | None = None
    reader_opening: asyncio.Lock = field(default_factory=asyncio.Lock)
    active_reads: int = 0
    pending: int = 0  # writes and jobs queued and not yet answered
    # Names this opening of the file in the column cache: a file deleted and made again starts afresh.
    cache_id: int = field(default_factory=lambda: next(_OPENINGS))

    def idle(self) -> bool:
        return self.pending == 0 and self.active_reads == 0

    async def close(self) -> None:
        async with self.reader_opening:
            if self.reader is not None:
                reader, self.reader = self.reader, None
                await reader.close()


class SampleStore:
    """All users' sample files. Opens files lazily and keeps at most `max_open_users` of them open
    (a read connection each on the loop, a write connection each in the writer thread), closing the
    least recently used idle ones, because a server may have thousands of users.

    Writes go through one writer thread and the journal (see tracker.storage.journal): `synchronous`
    is the journal's (FULL: an acknowledged write survives power loss); user files run at NORMAL and
    are fsynced every `checkpoint_seconds`. `writer_key` names this process's writer in the journal
    (each worker process on a data folder needs its own). `keep_seconds`: how long entries stay in the
    journal after they are durable, as the live view's resume buffer.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        synchronous: str = "FULL",
        max_open_users: int = 256,
        writer_key: str = "worker-0",
        checkpoint_seconds: float = 1.0,
        keep_seconds: float = 60.0,
        checkpoint_entries: int = 20_000,
        column_cache_bytes: int = 64 << 20,
    ) -> None:
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}, got {synchronous!r}")
        self.data_dir = Path(data_dir)
        self.synchronous = synchronous.upper()
        self.max_open_users = max_open_users
        self.writer_key = writer_key
        self.checkpoint_seconds = checkpoint_seconds
        self.keep_seconds = keep_seconds
        self.checkpoint_entries = checkpoint_entries
        self._users_dir = (self.data_dir / USERS_DIR).resolve()
        self._files: OrderedDict[str, _UserFile] = OrderedDict()  # least recently used first
        self._closing: set[asyncio.Task[None]] = set()
        self._deletions: set[asyncio.Future[int]] = set()  # deletions under way
        self._closed = False
        self._writer_thread: _Writer | None = None
        # Counters (all users, since start): write requests, journal transactions (fsyncs), user file
        # transactions. Group commit shows as journal_commits much smaller than writes.
        self.writes = 0
        self.journal_commits = 0
        self.user_commits = 0
        # Called on the loop with the group's newest journal id after each group that reached the
        # journal, before any of its writers resumes (the live feed's wake-up).
        self.commit_listeners: list[Callable[[int], None]] = []
        # Called on the loop with the seconds each group commit took (the metrics' histogram).
        self.commit_timers: list[Callable[[float], None]] = []
        self._writes: dict[str, int] = {}  # write requests per user since start: "written since?" for retention
        # Sealed hours of samples as columns, for long reads (blocks.py): this process's, bounded in bytes.
        self.column_cache = BlockCache(column_cache_bytes)

    @property
    def commits(self) -> int:
        """Committed user file transactions, all users: shows that group commit groups."""
        return self.user_commits

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
        # Only reads go through it: the file's durability is the writer's and the journal's business.
        return await _open(path, SAMPLE_MIGRATIONS, "NORMAL", factory)

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

    async def write(self, user: str, points: Sequence[SamplePoint], *, on_conflict: str = "merge") -> Written:
        """Store the points; returns once they are committed to the journal (durable) and the user's file.

        `on_conflict` says what happens to a point whose time and tags are stored already (see
        ON_CONFLICT). Returns the indices of the points that "skip" left out (always [] otherwise)
        and the batch's journal id.
        """
        if on_conflict not in ON_CONFLICT:
            raise ValueError(f"on_conflict must be one of {', '.join(ON_CONFLICT)}, got {on_conflict!r}")
        handle = self._file(user)
        if not points:
            return Written([], None)
        self._writes[user] = self._writes.get(user, 0) + 1
        done: asyncio.Future[Written] = asyncio.get_running_loop().create_future()
        batch = points if on_conflict == "merge" else _ConflictBatch(points, on_conflict)
        encoded: bytes | None = None
        if on_conflict != "skip":
            # Off the writer thread, which every process's writes wait for; a big batch off the loop too.
            if len(points) > ENCODE_IN_THREAD_POINTS:
                encoded = await asyncio.to_thread(encode_points, points)
                handle = self._file(user)  # again: while we waited, eviction may have closed it
            else:
                encoded = encode_points(points)
        handle.pending += 1
        self._writer().put(_Batch(user, handle.path, batch, on_conflict, done, handle, encoded))
        return await done

    def _writer(self) -> _Writer:
        loop = asyncio.get_running_loop()
        writer = self._writer_thread
        if writer is not None and writer.loop is not loop:
            # The store is used from another event loop than before (tests, CLI helpers that call
            # asyncio.run more than once): the old thread could only answer the old loop.
            writer.stop()
            writer = None
        if writer is None:
            writer = self._writer_thread = _Writer(self, loop)
        return writer

    def writes_to(self, user: str) -> int:
        """How many writes this store has taken for the user: a changed number means new samples."""
        return self._writes.get(user, 0)

    async def delete_before(self, user: str, cutoff_ns: int, max_rows: int) -> tuple[int, int | None]:
        """Remove the oldest samples with time < cutoff_ns, about `max_rows` of them (a few more when
        several series share the last time), in one transaction through the writer: queued like a
        write, so it never races one and holds the file only briefly. Returns (samples removed,
        time of the oldest sample left or None). A user without a file has nothing to remove.

        Removals are not journaled: after a power loss, recovery may bring back samples removed since
        the last checkpoint; the next retention sweep removes them again."""
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        handle = self._existing_file(user)
        if handle is None:
            return 0, None

        def delete(conn: sqlite3.Connection) -> tuple[int, int | None]:
            # One statement, so autocommit makes it one transaction; the bound is the time of the
            # max_rows-th oldest sample, so both scans are primary-key ranges from the oldest row.
            with immediate(conn):
                first = conn.execute("SELECT min(time) FROM samples").fetchone()[0]
                removed = conn.execute(_DELETE_OLDEST, (cutoff_ns, max_rows - 1)).rowcount
                oldest = conn.execute("SELECT min(time) FROM samples").fetchone()[0]
                if removed:
                    mark_activities_dirty(conn, first, cutoff_ns if oldest is None else oldest)
            return removed, oldest

        done: asyncio.Future[tuple[int, int | None]] = asyncio.get_running_loop().create_future()
        handle.pending += 1
        self._writer().put(_Job(user, handle.path, delete, done, handle))
        return await done

    async def delete_samples(
        self, user: str, series_tags: Iterable[Mapping[str, str]], start_ns: int, end_ns: int
    ) -> int:
        """Delete the samples of these series (tag sets) with start_ns <= time < end_ns, then the
        series left without samples (DELETE, DROP SERIES). Runs through the writer in steps of at
        most DELETE_STEP_ROWS rows, each committed and journaled like a write; returns once all are
        (the samples removed). Ordered after every write acknowledged before it was called."""
        handle = self._existing_file(user)
        tag_sets = list(series_tags)
        if handle is None or not tag_sets or start_ns >= end_ns:
            return 0
        if len(tag_sets) > ENCODE_IN_THREAD_POINTS:  # a user's series are theirs to multiply: off the loop
            texts = await asyncio.to_thread(_canonical_tags, tag_sets)
        else:
            texts = _canonical_tags(tag_sets)
        # Begun, a deletion runs to its end even if its caller goes away (the writer follows it
        # between its steps), and close() waits for it as it does for queued writes.
        task = asyncio.ensure_future(self._delete_in_steps(user, Deletion(texts, start_ns, end_ns)))
        self._deletions.add(task)
        task.add_done_callback(self._deletions.discard)
        return await asyncio.shield(task)

    async def _delete_in_steps(self, user: str, deletion: Deletion) -> int:
        total = 0
        step: int | None = deletion.start_ns
        while step is not None:
            done: asyncio.Future[tuple[int, int | None]] = asyncio.get_running_loop().create_future()
            handle = self._file(user)
            handle.pending += 1
            first = step == deletion.start_ns
            self._writer().put(_Job(user, handle.path, None, done, handle, deletion=_DeletionStep(deletion, step, first)))
            removed, step = await done
            total += removed
        return total

    @overload
    async def run_on_writer(self, user: str, run: Callable[[sqlite3.Connection], T], *, create: Literal[True]) -> T: ...
    @overload
    async def run_on_writer(self, user: str, run: Callable[[sqlite3.Connection], T], *, create: bool = False) -> T | None: ...
    async def run_on_writer(self, user: str, run: Callable[[sqlite3.Connection], T], *, create: bool = False) -> T | None:
        """Run `run(conn)` on the writer thread with the user's writing connection, queued like a write
        so it never races one: for the tables beside the samples (activities, courses). The connection
        is in autocommit mode: `run` begins and commits its own transaction. Without a file: None, or
        with `create` the file is made first."""
        handle = self._file(user) if create else self._existing_file(user)
        if handle is None:
            return None
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        handle.pending += 1
        self._writer().put(_Job(user, handle.path, run, done, handle))
        return await done

    async def read_all(self, user: str, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """The rows of one read on the user's read connection ([] without a file): for the storage modules."""
        return await self._read_all(user, sql, args)

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

    async def _read_all(self, user: str, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        handle = self._existing_file(user)
        if handle is None:
            return []
        async with self._reading(handle) as conn:
            return list(await conn.execute_fetchall(sql, args))

    async def latest(self, user: str, upto_ns: int | None = None) -> StoredSample | None:
        """The newest sample, or the newest at or before `upto_ns`."""
        where, args = ("", ()) if upto_ns is None else (" WHERE samples.time <= ?", (upto_ns,))
        sql = f"{_SELECT}{where} ORDER BY samples.time DESC, samples.series DESC LIMIT 1"
        rows = await self._read_all(user, sql, args)
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
        """Close the user's file and remove it with its WAL and shared-memory files, and the user's
        journal entries (so that recovery never brings the samples back)."""
        files = self.files_of(user)
        path = files[0]
        handle = self._files.pop(user, None)
        if handle is not None:
            await handle.close()
        # A connection closing after eviction would remove the -wal/-shm files by name on its way out.
        await asyncio.gather(*self._closing, return_exceptions=True)
        if not self._closed:
            done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._writer().put(_Job(user, path, None, done, forget=True))
            await done
        else:
            await asyncio.to_thread(self._forget_in_journal, user)
        removed: list[Path] = []
        for candidate in files:
            try:
                candidate.unlink()
            except FileNotFoundError:
                continue
            removed.append(candidate)
        return removed

    def _forget_in_journal(self, user: str) -> None:
        if not journal_path(self.data_dir).exists():
            return
        conn = open_journal(self.data_dir, self.synchronous)
        try:
            delete_user_entries(conn, user)
        finally:
            conn.close()

    async def close(self) -> None:
        """Commit and acknowledge every queued write, checkpoint, then close every connection."""
        await asyncio.gather(*self._deletions, return_exceptions=True)
        self._closed = True
        handles = list(self._files.values())
        self._files.clear()
        closing: list[Any] = [h.close() for h in handles]
        writer = self._writer_thread
        if writer is not None:
            writer.stop()
            if writer.loop is asyncio.get_running_loop():
                closing.append(asyncio.wait([writer.finished]))
            else:  # it cannot tell this loop when it is done: wait for the thread itself
                closing.append(asyncio.to_thread(writer.join))
        results = await asyncio.gather(*closing, *self._closing, return_exceptions=True)
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


async def device_last_seen(store: SampleStore, user: str, upto_ns: int | None = None) -> dict[str | None, int]:
    """The newest sample time (ns) of each `device` tag value of the user (None: samples without one),
    only of samples at or before `upto_ns` if given.

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
                    + ("" if upto_ns is None else "AND time <= ? ")
                    + "ORDER BY time DESC LIMIT 1"
                )
                rows = list(await conn.execute_fetchall(sql, chunk if upto_ns is None else [*chunk, upto_ns]))
                if rows and (device not in newest or rows[0][0] > newest[device]):
                    newest[device] = rows[0][0]
    return newest

