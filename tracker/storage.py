"""Storage: every SQL statement of Tracker lives in this module.

Layout of the data folder: `<data_dir>/accounts.sqlite` (users, password hashes, shares) and
`<data_dir>/users/<name>.sqlite` (one file per user holding that user's samples).

Every file runs in WAL mode (readers never block the writer), with a busy timeout (a CLI process
working on the same files waits instead of failing with "database is locked"), foreign keys on, and
`PRAGMA user_version` holding its schema version. Migrations are an ordered tuple of SQL scripts per
file kind, applied forward only at open, each in its own transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import queue
import re
import sqlite3
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator, Mapping, Protocol, Sequence

import aiosqlite

from tracker.vocabulary import FIELD_KEYS

_log = logging.getLogger(__name__)

# Long enough that a CLI command committing beside the server is waited for, not reported as an error.
BUSY_TIMEOUT_MS = 5000
ACCOUNTS_FILE = "accounts.sqlite"
# How long the accounts -wal file must have been untouched before its stat alone may stand in for
# PRAGMA data_version: far above any file system's timestamp granularity.
_QUIET_NS = 5 * 10**9
USERS_DIR = "users"
# The tag that names the device a sample came from (a device token's label unless the line sets it).
DEVICE_TAG = "device"
SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")

# The same rule as the public `tracker.accounts.validate_username` (kept here to avoid an import cycle);
# it is also what keeps a user name from ever naming a path outside the users folder.
_USERNAME = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_-]{0,63}\Z")


def _checked_name(name: str) -> str:
    if not isinstance(name, str) or not _USERNAME.match(name):
        raise ValueError(f"invalid username {name!r}: use 1-64 characters from A-Z a-z 0-9 _ -, not starting with -")
    return name


class SchemaTooNew(RuntimeError):
    """The file was written by a newer Tracker; opening it with this one could damage it."""


class UserExists(Exception):
    pass


class UnknownUser(Exception):
    pass


class StorageUnavailable(Exception):
    """The file system refused: a full disk, a read-only or failing data folder, a file another
    program keeps locked. Not the data's fault, so the same request may succeed later; a write that
    fails this way stored nothing. The message says what failed and why; those that reach HTTP
    clients (writes, reads, account changes) name no path."""


# SQLite primary result codes (sqlite_errorcode & 0xFF) and errno values that mean the file system
# refused, not that the data was wrong.
_FAULT_CODES = frozenset({
    sqlite3.SQLITE_PERM, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_READONLY,
    sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_NOLFS,
})  # fmt: skip
_FAULT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO})
_DISK_FULL = "the disk is full"
_READ_ONLY = "the data folder is read-only"


def _storage_fault(error: BaseException, path: Path, doing: str) -> StorageUnavailable | None:
    """`error` as a StorageUnavailable saying "<doing>: <cause>" if the file system caused it, else None.

    SQLite reports a read-only or full file system in several ways (e.g. CANTOPEN when it cannot
    create the -shm file), so the folder itself is asked first; the error code decides otherwise.
    """
    if isinstance(error, sqlite3.Error):
        code = (getattr(error, "sqlite_errorcode", None) or 0) & 0xFF
        if code not in _FAULT_CODES:
            return None
    elif isinstance(error, OSError):
        if error.errno not in _FAULT_ERRNOS:
            return None
        code = {errno.ENOSPC: sqlite3.SQLITE_FULL, errno.EDQUOT: sqlite3.SQLITE_FULL,
                errno.EROFS: sqlite3.SQLITE_READONLY, errno.EIO: sqlite3.SQLITE_IOERR}.get(
                    error.errno, sqlite3.SQLITE_PERM)  # fmt: skip
    else:
        return None
    cause = _folder_state(path) or {
        sqlite3.SQLITE_FULL: _DISK_FULL,
        sqlite3.SQLITE_READONLY: _READ_ONLY,
        sqlite3.SQLITE_BUSY: "the database file is locked by another program",
        sqlite3.SQLITE_LOCKED: "the database file is locked by another program",
        sqlite3.SQLITE_IOERR: "disk I/O error",
    }.get(code, "cannot open or write the database file (check the data folder's permissions)")
    return StorageUnavailable(f"{doing}: {cause}")


@contextlib.contextmanager
def _refused_as_unavailable(path: Path, doing: str, *, log: bool = False) -> Iterator[None]:
    """Re-raise the file system's refusals inside the block as StorageUnavailable("<doing>: <cause>")."""
    try:
        yield
    except (sqlite3.Error, OSError) as error:
        fault = _storage_fault(error, path, doing)
        if fault is None:
            raise
        if log:  # with the file and SQLite's own words, for the operator
            _log.error("%s: %s (%s)", path, fault, error)
        raise fault from error


def _folder_state(path: Path) -> str | None:
    """"read-only" or "full" if the file system holding `path` (or its nearest existing folder) is."""
    for folder in (path, *path.parents):
        try:
            fs = os.statvfs(folder)
        except FileNotFoundError:
            continue
        except OSError:
            return None
        if fs.f_flag & os.ST_RDONLY:
            return _READ_ONLY
        # Some file systems report no inode counts at all (f_files == 0): only a real count of 0 is "full".
        if (fs.f_blocks and not fs.f_bavail) or (fs.f_files and not fs.f_favail):
            return _DISK_FULL
        return None
    return None


# --------------------------------------------------------------------------------------------------
# Opening files and migrating them


def _migrate(conn: sqlite3.Connection, path: Path, migrations: tuple[str, ...]) -> None:
    """Bring the file to len(migrations), one transaction per step.

    Another process may be migrating the same file at the same moment: each step first checks, inside
    its write transaction, that the version is still the one it read (a CHECK on a temp table fails
    otherwise); on failure we re-read the version and carry on if someone else moved it forward.
    """
    while True:
        version = _user_version(conn)
        if version > len(migrations):
            raise SchemaTooNew(
                f"{path} has schema version {version} but this Tracker knows only up to "
                f"{len(migrations)}: it was written by a newer Tracker; upgrade Tracker to open it"
            )
        if version == len(migrations):
            return
        script = (
            "BEGIN IMMEDIATE;\n"
            f"CREATE TEMP TABLE migration_guard (version INTEGER CHECK (version = {version}));\n"
            "INSERT INTO migration_guard SELECT user_version FROM pragma_user_version;\n"
            "DROP TABLE migration_guard;\n"
            f"{migrations[version]}\n;\n"
            f"PRAGMA user_version = {version + 1};\n"
            "COMMIT;"
        )
        try:
            conn.executescript(script)
        except sqlite3.Error:
            if conn.in_transaction:
                conn.rollback()
            conn.execute("DROP TABLE IF EXISTS temp.migration_guard")
            if _user_version(conn) == version:
                raise  # nobody else migrated it: the step itself failed


def _user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _connection_pragmas(synchronous: str) -> str:
    # busy_timeout first, so that switching to WAL also waits for another process's lock.
    return (
        f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};"
        "PRAGMA journal_mode = WAL;"
        f"PRAGMA synchronous = {synchronous};"
        "PRAGMA foreign_keys = ON;"
    )


def _connect(path: Path, migrations: tuple[str, ...], synchronous: str, **options: Any) -> sqlite3.Connection:
    """A plain (blocking) connection, set up and migrated: for threads of our own, never the loop."""
    conn = sqlite3.connect(path, **options)
    try:
        conn.executescript(_connection_pragmas(synchronous))
        _migrate(conn, path, migrations)
    except BaseException:
        conn.close()
        raise
    return conn


async def _open(
    path: Path, migrations: tuple[str, ...], synchronous: str, factory: type[sqlite3.Connection] = sqlite3.Connection
) -> aiosqlite.Connection:
    """Connect and migrate. A brand-new file opened by several connections at once (the server and
    the CLI, say) can answer "database is locked" while one of them switches it to WAL: SQLite skips
    the busy handler there to avoid a deadlock, so we retry the whole opening a few times."""
    for attempt in range(_OPEN_ATTEMPTS):
        try:
            return await _open_once(path, migrations, synchronous, factory)
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == _OPEN_ATTEMPTS - 1:
                raise
            await asyncio.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


_OPEN_ATTEMPTS = 5


async def _open_once(
    path: Path, migrations: tuple[str, ...], synchronous: str, factory: type[sqlite3.Connection]
) -> aiosqlite.Connection:
    # Migrations run once, in a short-lived plain connection in a worker thread: one implementation
    # serves both these aiosqlite connections and the writer threads' own connections.
    await asyncio.to_thread(lambda: _connect(path, migrations, synchronous).close())
    # isolation_level IMMEDIATE: the first write statement implicitly opens BEGIN IMMEDIATE, so a
    # transaction takes the write lock up front (no deadlock-prone lock upgrade) and costs no extra
    # round trip to the connection's thread.
    conn = await aiosqlite.connect(path, isolation_level="IMMEDIATE", cached_statements=32, factory=factory)
    try:
        await conn.executescript(_connection_pragmas(synchronous))
    except BaseException:
        await conn.close()
        raise
    return conn


# --------------------------------------------------------------------------------------------------
# Accounts: <data_dir>/accounts.sqlite

ACCOUNT_MIGRATIONS: tuple[str, ...] = (
    # v1
    """
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        created_ns INTEGER NOT NULL
    );
    CREATE TABLE shares (
        owner TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        viewer TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        PRIMARY KEY (owner, viewer)
    ) WITHOUT ROWID;
    -- readable_by() looks shares up by viewer, and so does the cascade when a viewer is deleted.
    CREATE INDEX shares_by_viewer ON shares(viewer, owner);
    """,
)


@dataclass(frozen=True, slots=True)
class UserRecord:
    name: str
    password_hash: str
    created_ns: int


class AccountStore:
    """Users, password hashes and shares. Low traffic: one connection, one operation at a time."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        # One lock: a second coroutine must never slip a statement into another one's transaction.
        self._lock = asyncio.Lock()
        self._own_commits = 0
        self._wal_path = path.with_name(path.name + "-wal")
        # (-wal signature, time.time_ns() when that check began, PRAGMA data_version) of the last real check
        self._last_check: tuple[tuple[int, int, int] | None, int, int] | None = None

    @classmethod
    async def open(cls, data_dir: Path) -> AccountStore:
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / ACCOUNTS_FILE
        # e.g. the server started on a full disk, where SQLite cannot create the -shm file
        with _refused_as_unavailable(path, f"cannot open {path}"):
            return cls(await _open(path, ACCOUNT_MIGRATIONS, "FULL"), path)

    async def _change(self, sql: str, params: Sequence[Any]) -> int:
        """Run one write statement in its own transaction; returns the number of rows changed."""
        return (await self._change_all([(sql, params)]))[0]

    async def _change_all(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        """Run write statements in one transaction (all or none); the number of rows each changed."""
        async with self._lock:
            with _refused_as_unavailable(self.path, "the change was not saved"):
                try:
                    changed = []
                    for sql, params in statements:
                        cursor = await self._conn.execute(sql, params)
                        changed.append(cursor.rowcount)
                        await cursor.close()
                    await self._conn.commit()
                except BaseException:
                    if self._conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):  # a failing rollback must not hide the error
                            await self._conn.rollback()
                    raise
            self._own_commits += 1
            return changed

    async def _note(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Bookkeeping (one statement over many rows, one transaction) that is not a change of access:
        it does not move `data_version`, so it neither reloads snapshots nor makes streams re-check."""
        async with self._lock:
            try:
                await self._conn.executemany(sql, rows)
                await self._conn.commit()
            except BaseException:
                if self._conn.in_transaction:
                    await self._conn.rollback()
                raise

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        async with self._lock:
            return list(await self._conn.execute_fetchall(sql, params))

    async def add_user(self, name: str, password_hash: str) -> None:
        _checked_name(name)
        try:
            await self._change(
                "INSERT INTO users (name, password_hash, created_ns) VALUES (?, ?, ?)",
                (name, password_hash, time.time_ns()),
            )
        except sqlite3.IntegrityError:
            raise UserExists(name) from None

    async def set_password_hash(self, name: str, password_hash: str, *, keep_session_hash: str | None = None) -> int:
        """Set the hash and, in the same transaction, end the user's web sessions except the one whose
        token hash is `keep_session_hash`: a changed password must not leave an old sign-in working.
        Returns how many live sessions ended."""
        now_ns = time.time_ns()
        changed, _, ended = await self._change_all([
            ("UPDATE users SET password_hash = ? WHERE name = ?", (password_hash, name)),
            *_end_sessions_sql(name, keep_session_hash, now_ns),
        ])  # fmt: skip
        if not changed:
            raise UnknownUser(name)
        return ended

    async def delete_user(self, name: str) -> None:
        # Shares to and from the user go with it (ON DELETE CASCADE).
        if not await self._change("DELETE FROM users WHERE name = ?", (name,)):
            raise UnknownUser(name)

    async def get_user(self, name: str) -> UserRecord | None:
        rows = await self._fetchall("SELECT name, password_hash, created_ns FROM users WHERE name = ?", (name,))
        return UserRecord(*rows[0]) if rows else None

    async def list_users(self) -> list[UserRecord]:
        rows = await self._fetchall("SELECT name, password_hash, created_ns FROM users ORDER BY name")
        return [UserRecord(*row) for row in rows]

    async def add_share(self, owner: str, viewer: str) -> None:
        try:
            await self._change("INSERT OR IGNORE INTO shares (owner, viewer) VALUES (?, ?)", (owner, viewer))
        except sqlite3.IntegrityError:  # a foreign key: one of the two is not a user
            for name in (owner, viewer):
                if await self.get_user(name) is None:
                    raise UnknownUser(name) from None
            raise

    async def remove_share(self, owner: str, viewer: str) -> bool:
        return bool(await self._change("DELETE FROM shares WHERE owner = ? AND viewer = ?", (owner, viewer)))

    async def list_shares(self, owner: str | None = None) -> list[tuple[str, str]]:
        if owner is None:
            rows = await self._fetchall("SELECT owner, viewer FROM shares ORDER BY owner, viewer")
        else:
            rows = await self._fetchall(
                "SELECT owner, viewer FROM shares WHERE owner = ? ORDER BY viewer", (owner,)
            )
        return [(row[0], row[1]) for row in rows]

    async def readable_by(self, viewer: str) -> list[str]:
        """The user's own database first, then those shared with them by name; [] for an unknown user."""
        rows = await self._fetchall(
            "SELECT name, 0 AS shared FROM users WHERE name = ?1 "
            "UNION ALL SELECT owner, 1 AS shared FROM shares WHERE viewer = ?1 ORDER BY shared, name",
            (viewer,),
        )
        return [row[0] for row in rows]

    async def data_version(self) -> int:
        """A number that changes whenever anything committed to the accounts file.

        PRAGMA data_version changes only when *another* connection (e.g. the CLI) commits; our own
        commits are counted in the high bits so that they change the number too.

        Asked on every request, so it usually answers without touching SQLite: in WAL mode every
        commit writes the -wal file, so if that file's (inode, size, mtime) is what it was when the
        last real check began, and its mtime was already well before that moment, no commit can
        have happened since (a later commit's mtime would be later; the margin covers coarse file
        system clocks). Otherwise, e.g. for a few seconds after any change, we ask SQLite.
        """
        checked_at = time.time_ns()
        wal = self._wal_signature()
        last = self._last_check
        if wal is not None and last is not None and wal == last[0] and wal[2] < last[1] - _QUIET_NS:
            return (self._own_commits << 32) + last[2]
        rows = await self._fetchall("PRAGMA data_version")
        self._last_check = (wal, checked_at, int(rows[0][0]))
        return (self._own_commits << 32) + int(rows[0][0])

    def _wal_signature(self) -> tuple[int, int, int] | None:
        # One stat of a local file: far cheaper than a round trip to the connection's thread.
        try:
            info = os.stat(self._wal_path)
        except OSError:
            return None
        return (info.st_ino, info.st_size, info.st_mtime_ns)

    async def close(self) -> None:
        async with self._lock:
            await self._conn.close()


# --------------------------------------------------------------------------------------------------
# Samples: <data_dir>/users/<name>.sqlite

SAMPLE_MIGRATIONS: tuple[str, ...] = (
    # v1. A series is one distinct tag set; samples refer to it by a small integer instead of
    # repeating the tags in every row. `tags` is the canonical JSON of the sorted [key, value] pairs
    # ('[]' = no tags), so equal tag sets always map to one series.
    # samples is WITHOUT ROWID with PRIMARY KEY (time, series): rows are clustered by time, so a time
    # range read is one direct B-tree range scan, and the key is exactly InfluxDB's merge key (a point
    # with the same time and tag set as a stored one updates it). One REAL column per vocabulary
    # field (NULL = not set): fixed vocabulary, so no key/value table, and a row is one B-tree entry.
    # These columns are the vocabulary as of v1: a new vocabulary field needs a new migration.
    """
    CREATE TABLE series (
        id INTEGER PRIMARY KEY,
        tags TEXT NOT NULL UNIQUE
    );
    CREATE TABLE samples (
        time INTEGER NOT NULL,
        series INTEGER NOT NULL REFERENCES series(id),
        dur_s REAL, dist_km REAL, lat REAL, lng REAL, acc_m REAL, bearing REAL, battery REAL,
        gsm_signal REAL, temp_c REAL, spd_kph REAL, alt_m REAL, hr_bpm REAL, cad_rpm REAL,
        pwr_w REAL, pwr_w_l REAL, pwr_w_r REAL,
        PRIMARY KEY (time, series)
    ) WITHOUT ROWID;
    """,
)

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

    def __init__(self, data_dir: Path, *, synchronous: str = "FULL", max_open_users: int = 256) -> None:
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


# --------------------------------------------------------------------------------------------------
# Query reads: the SQL behind /query (InfluxQL SELECT and SHOW). Planning lives in
# tracker.influx.select; this section only turns a small plan into SQL and streams rows back.
# Rows come back as plain tuples with times already in the answer's unit and whole-number floats
# already integers (both done in SQL), so the caller can hand batches to orjson untouched.

class QueryTimeout(Exception):
    """A query read ran past its deadline: SQLite interrupted the statement, which is abandoned."""


# How often (in SQLite virtual-machine steps) a statement with a deadline looks at the clock:
# a few microseconds of work between looks, so the check costs nothing measurable.
_PROGRESS_STEPS = 10_000


class _BoundedParams(tuple):  # type: ignore[type-arg]
    """Statement parameters carrying the statement's deadline (time.monotonic()) to the reader's thread."""

    deadline: float


def _bounded(params: Sequence[Any], deadline: float | None) -> Sequence[Any]:
    if deadline is None:
        return params
    bound = _BoundedParams(params)
    bound.deadline = deadline
    return bound


class _ReadCursor(sqlite3.Cursor):
    """A reader cursor whose statement may have a deadline: while one of its steps runs past it,
    SQLite's progress handler interrupts the statement and QueryTimeout is raised. The handler is set
    in the connection's own thread around each step, so it can only ever stop this statement."""

    deadline: float | None = None

    def execute(self, sql: str, parameters: Any = (), /) -> _ReadCursor:
        self.deadline = getattr(parameters, "deadline", None)
        return self._step(super().execute, sql, parameters)  # type: ignore[no-any-return]

    def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._step(super().fetchmany, self.arraysize if size is None else size)  # type: ignore[no-any-return]

    def fetchall(self) -> list[Any]:
        return self._step(super().fetchall)  # type: ignore[no-any-return]

    def _step(self, step: Any, *args: Any) -> Any:
        deadline = self.deadline
        if deadline is None:
            return step(*args)
        conn = self.connection
        conn.set_progress_handler(lambda: time.monotonic() > deadline, _PROGRESS_STEPS)
        try:
            return step(*args)
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise QueryTimeout() from None
            raise
        finally:
            conn.set_progress_handler(None, 0)


class _ReadConnection(sqlite3.Connection):
    """The read connection of a sample file: its statements go through _ReadCursor (deadlines)."""

    def cursor(self, factory: Any = _ReadCursor) -> Any:
        return super().cursor(factory)

    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        # sqlite3's own execute() would bypass the cursor's Python execute(): go through it.
        return self.cursor().execute(sql, parameters)


EPOCH_NS: dict[str, int] = {"ns": 1, "u": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                            "m": 60_000_000_000, "h": 3_600_000_000_000}  # fmt: skip
SeriesTags = dict[int, dict[str, str]]  # series id -> its tags


@dataclass(frozen=True, slots=True)
class QueryColumn:
    """One output column of a raw read: a vocabulary field, a tag, or SQL-safe arithmetic on them.

    `sql` is built only by `field_sql`, `tag_sql` and `arithmetic_sql` below; `fields` are the
    vocabulary columns it reads (a row whose every read field is NULL is not returned).
    """

    sql: str
    params: tuple[Any, ...] = ()
    fields: tuple[str, ...] = ()


def field_sql(name: str) -> QueryColumn:
    if name not in _FIELD_SET:  # an unknown field has no value anywhere
        return QueryColumn("NULL")
    return QueryColumn(f"samples.{name}", (), (name,))


def tag_sql(key: str, series: SeriesTags) -> QueryColumn:
    """A tag's value per row, looked up from the series id (no join with `series` per row)."""
    pairs = [(sid, tags[key]) for sid, tags in series.items() if key in tags]
    if not pairs:
        return QueryColumn("NULL")
    whens = " ".join("WHEN ? THEN ?" for _ in pairs)
    return QueryColumn(f"CASE samples.series {whens} END", tuple(v for pair in pairs for v in pair))


def number_sql(value: float) -> QueryColumn:
    return QueryColumn("?", (value,))


def arithmetic_sql(op: str, lhs: QueryColumn, rhs: QueryColumn) -> QueryColumn:
    if op not in ("+", "-", "*", "/", "%"):
        raise ValueError(f"not an arithmetic operator: {op}")
    # Force float arithmetic: SQLite would divide two whole numbers as integers.
    sql = f"(1.0 * {lhs.sql} {op} {rhs.sql})"
    return QueryColumn(sql, lhs.params + rhs.params, lhs.fields + rhs.fields)


@dataclass(frozen=True, slots=True)
class QueryFilter:
    """A WHERE remainder compiled to SQL over `samples` (tags already resolved to series ids)."""

    sql: str = "1"
    params: tuple[Any, ...] = ()


def series_in(ids: Sequence[int]) -> QueryFilter:
    if not ids:
        return QueryFilter("0")
    return QueryFilter(f"samples.series IN ({', '.join(str(int(i)) for i in ids)})")


def compare_sql(op: str, lhs: QueryColumn, rhs: QueryColumn) -> QueryFilter:
    if op not in ("=", "!=", "<", "<=", ">", ">="):
        raise ValueError(f"not a comparison operator: {op}")
    return QueryFilter(f"({lhs.sql} {op} {rhs.sql})", lhs.params + rhs.params)


def combine_filters(op: str, lhs: QueryFilter, rhs: QueryFilter) -> QueryFilter:
    if op not in ("AND", "OR"):
        raise ValueError(f"not a boolean operator: {op}")
    return QueryFilter(f"({lhs.sql} {op} {rhs.sql})", lhs.params + rhs.params)


def _time_sql(epoch: str | None) -> str:
    """`samples.time` as the answer wants it: floor-divided to the epoch unit, or RFC 3339 text like
    Go's RFC3339Nano (fraction without trailing zeros, none at all when whole)."""
    if epoch is not None:
        div = EPOCH_NS[epoch]
        return "samples.time" if div == 1 else f"(samples.time / {div} - (samples.time % {div} < 0))"
    sec = "(samples.time / 1000000000 - (samples.time % 1000000000 < 0))"
    frac = f"(samples.time - {sec} * 1000000000)"
    return (
        f"strftime('%Y-%m-%dT%H:%M:%S', {sec}, 'unixepoch') || "
        f"CASE WHEN {frac} = 0 THEN 'Z' ELSE '.' || rtrim(substr({frac} + 1000000000, 2), '0') || 'Z' END"
    )


def _whole_as_integer(sql: str) -> str:
    # InfluxDB writes a whole-number float as `145`; doing it here keeps Python off the rows.
    return f"CASE WHEN {sql} = CAST({sql} AS INTEGER) THEN CAST({sql} AS INTEGER) ELSE {sql} END"


async def query_series(store: SampleStore, user: str) -> SeriesTags:
    handle = store._existing_file(user)
    if handle is None:
        return {}
    rows = await _query_fetchall(store, handle, "SELECT id, tags FROM series ORDER BY id", ())
    return {sid: dict(json.loads(tags)) for sid, tags in rows}


async def query_has_samples(store: SampleStore, user: str) -> bool:
    handle = store._existing_file(user)
    if handle is None:
        return False
    rows = await _query_fetchall(store, handle, "SELECT EXISTS (SELECT 1 FROM samples)", ())
    return bool(rows[0][0])


async def query_field_keys(
    store: SampleStore, user: str, start_ns: int | None = None, end_ns: int | None = None, deadline: float | None = None
) -> list[str]:
    """Vocabulary fields with a value in the file (SHOW FIELD KEYS), or at least in [start, end) (SELECT *).

    Fields are only ever added to a file, so the found set is kept per open file and only the fields
    not yet seen are looked for again, and only once the file changed (PRAGMA data_version): a
    repeated SELECT * over a day costs no extra scan.
    """
    handle = store._existing_file(user)
    if handle is None:
        return []
    known: tuple[int, set[str], set[tuple[int | None, int | None]]] | None = getattr(handle, "query_fields", None)
    version = (await _query_fetchall(store, handle, "PRAGMA data_version", ()))[0][0]
    if known is None or known[0] != version:
        known = (version, set() if known is None else known[1], set())
    present, probed = known[1], known[2]
    if len(probed) > 64:  # now()-relative ranges differ every time; keep the memo small
        probed.clear()
    missing = [key for key in FIELD_KEYS if key not in present]
    if missing and (start_ns, end_ns) not in probed and (None, None) not in probed:
        # One probe per missing field: a present one stops at its first row.
        where, params = "", ()
        if start_ns is not None and end_ns is not None:
            where, params = " AND time >= ?1 AND time < ?2", (start_ns, end_ns)
        probes = ", ".join(f"EXISTS (SELECT 1 FROM samples WHERE {key} IS NOT NULL{where})" for key in missing)
        found = (await _query_fetchall(store, handle, f"SELECT {probes}", params, deadline))[0]
        present.update(key for key, hit in zip(missing, found) if hit)
        probed.add((start_ns, end_ns))
    handle.query_fields = known  # type: ignore[attr-defined]  # lives and dies with the open file
    return [key for key in FIELD_KEYS if key in present]


async def query_raw(
    store: SampleStore,
    user: str,
    *,
    start_ns: int,
    end_ns: int,
    columns: Sequence[QueryColumn],
    where: QueryFilter = QueryFilter(),
    epoch: str | None = None,
    descending: bool = False,
    limit: int | None = None,
    offset: int = 0,
    batch: int = 5000,
    deadline: float | None = None,
) -> AsyncIterator[list[tuple[Any, ...]]]:
    """Rows of (time, *columns) in time order, in batches, streamed through one cursor.

    Rows whose read fields are all NULL are skipped (InfluxDB's raw SELECT does not return them).
    Whole-number values come back as integers (SQLite does that without holding the GIL).
    Past `deadline` (time.monotonic()) the statement is interrupted: QueryTimeout.
    """
    handle = store._existing_file(user)
    read_fields = sorted({name for column in columns for name in column.fields})
    if handle is None or not read_fields:
        return
    any_value = " OR ".join(f"samples.{name} IS NOT NULL" for name in read_fields)
    select = ", ".join(_whole_as_integer(c.sql) if c.fields else c.sql for c in columns)
    order = "DESC" if descending else "ASC"
    sql = (
        f"SELECT {_time_sql(epoch)}, {select} FROM samples "
        f"WHERE samples.time >= ? AND samples.time < ? AND ({any_value}) AND {where.sql} "
        f"ORDER BY samples.time {order}, samples.series {order} LIMIT ? OFFSET ?"
    )
    # _whole_as_integer writes each expression four times, so its parameters are bound as often.
    params: list[Any] = []
    for c in columns:
        params.extend(c.params * (4 if c.fields else 1))
    params += [start_ns, end_ns, *where.params, -1 if limit is None else limit, offset]
    async with store._reading(handle) as conn:
        async with conn.execute(sql, _bounded(params, deadline)) as cursor:
            while rows := await cursor.fetchmany(batch):
                yield rows  # type: ignore[misc]


# Aggregates done with one SQL aggregate each (stddev from its sums); the others take a query of their own.
_SQL_AGGREGATES = {
    "mean": "avg({0})",
    "min": "min({0})",
    "max": "max({0})",
    "sum": "sum({0})",
    "count": "count({0})",
    "spread": "max({0}) - min({0})",
    "stddev": "CASE WHEN count({0}) > 1 THEN (sum({0} * {0}) - sum({0}) * sum({0}) / count({0})) / (count({0}) - 1) END",
}
# Selectors: (value, time) of one point per bucket, via SQLite's bare columns beside min()/max().
_SELECTORS = {
    "first": "{0}, min(samples.time)",
    "last": "{0}, max(samples.time)",
    "min": "min({0}), samples.time",
    "max": "max({0}), samples.time",
}


# GROUP BY time over a few buckets: GROUP BY on a computed bucket number makes SQLite sort every row
# in a temp B-tree (most of a day query's time). Walking the buckets instead and reading each one
# with a primary-key range scans the rows already in time order, no sort, but once per aggregate
# and with a few lookups per bucket, so it is only used where that clearly costs less: few buckets,
# and one scan, or two over every row in range (a tag or field filter shrinks what the sort costs
# but not what each scan costs, so filtered reads walk with one aggregate only).
_WALK_MAX_BUCKETS = 4096
_WALK_MAX_SCANS = 2
_WALK_MAX_SCANS_FILTERED = 1
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True, slots=True)
class _BucketWalk:
    first: int  # bucket indexes first..last
    last: int
    first_lo: int  # the first bucket's [lo, hi), already clamped to [start, end)
    first_hi: int
    interval_ns: int
    end_ns: int


def _bucket_walk(
    start_ns: int, end_ns: int, interval_ns: int | None, offset_ns: int, scans: int, filtered: bool
) -> _BucketWalk | None:
    max_scans = _WALK_MAX_SCANS_FILTERED if filtered else _WALK_MAX_SCANS
    if interval_ns is None or interval_ns <= 0 or scans > max_scans or start_ns >= end_ns:
        return None
    first = (start_ns - offset_ns) // interval_ns
    last = (end_ns - 1 - offset_ns) // interval_ns
    if last - first + 1 > _WALK_MAX_BUCKETS:
        return None
    lowest, highest = first * interval_ns + offset_ns, (last + 1) * interval_ns + offset_ns
    if lowest < _INT64[0] or highest > _INT64[1]:  # SQLite would turn an overflowing bound into a float
        return None
    lo = max(lowest, start_ns)
    return _BucketWalk(first, last, lo, min(lowest + interval_ns, end_ns), interval_ns, end_ns)


def _per_bucket_sql(
    simple: Sequence[tuple[int, str, str]], walk: _BucketWalk, where: QueryFilter, any_value: str
) -> tuple[str, tuple[Any, ...]]:
    """The GROUP BY time aggregate as one correlated subquery per aggregate over each bucket's time
    range; the same rows per bucket as the GROUP BY form, and only buckets that hold any."""
    rows = f"FROM samples WHERE samples.time >= buckets.lo AND samples.time < buckets.hi AND {where.sql} AND ({any_value})"
    exprs: list[str] = []
    params: list[Any] = [walk.first, walk.first_lo, walk.first_hi, walk.interval_ns, walk.end_ns, walk.last]
    for _, fn, col in simple:
        if col in _FIELD_SET:
            exprs.append(f"(SELECT {_SQL_AGGREGATES[fn].format(f'samples.{col}')} {rows})")
            params.extend(where.params)
        else:
            exprs.append("NULL")
    params.extend(where.params)
    sql = (
        "WITH RECURSIVE buckets(b, lo, hi) AS (SELECT ?, ?, ? "
        "UNION ALL SELECT b + 1, hi, min(hi + ?, ?) FROM buckets WHERE b < ?) "
        f"SELECT b, {', '.join(exprs)} FROM buckets WHERE EXISTS (SELECT 1 {rows})"
    )
    return sql, tuple(params)


async def query_aggregates(
    store: SampleStore,
    user: str,
    *,
    start_ns: int,
    end_ns: int,
    calls: Sequence[tuple[str, str]],
    where: QueryFilter = QueryFilter(),
    interval_ns: int | None = None,
    offset_ns: int = 0,
    point_times: bool = False,
    deadline: float | None = None,
) -> dict[int, list[Any]]:
    """{bucket index: [value per call]} for the buckets holding data; `calls` are (function, field).

    Bucket index = floor((time - offset) / interval), floored correctly for negative times; with no
    interval everything is bucket 0. Values: numbers, stddev as the variance (the caller takes the
    root). With `point_times`, selectors (first/last/min/max) give (value, time of that point).
    Memory: one entry per non-empty bucket, i.e. no more than the answer holds.
    Past `deadline` (time.monotonic()) the running statement is interrupted: QueryTimeout.
    """
    handle = store._existing_file(user)
    if handle is None or not calls:
        return {}
    bucket = "0"
    bucket_params: tuple[Any, ...] = ()
    if interval_ns is not None:
        bucket = "((samples.time - ?) / ? - ((samples.time - ?) % ? < 0))"
        bucket_params = (offset_ns, interval_ns, offset_ns, interval_ns)
    base_where = f"samples.time >= ? AND samples.time < ? AND {where.sql}"
    base_params = (start_ns, end_ns, *where.params)
    out: dict[int, list[Any]] = {}

    def slot(index: int) -> list[Any]:
        row = out.get(index)
        if row is None:
            row = out[index] = [None] * len(calls)
        return row

    async with store._reading(handle) as conn:
        simple = [(i, fn, col) for i, (fn, col) in enumerate(calls) if fn in _SQL_AGGREGATES
                  and not (point_times and fn in _SELECTORS)]  # fmt: skip
        used = [col for _, _, col in simple if col in _FIELD_SET]
        if simple and used:
            exprs = ", ".join(
                _SQL_AGGREGATES[fn].format(f"samples.{col}") if col in _FIELD_SET else "NULL" for _, fn, col in simple
            )
            any_value = " OR ".join(f"samples.{c} IS NOT NULL" for c in sorted(set(used)))
            walk = _bucket_walk(start_ns, end_ns, interval_ns, offset_ns, len(used), filtered=where.sql != "1")
            if walk is not None:
                sql, params = _per_bucket_sql(simple, walk, where, any_value)
            else:
                sql = f"SELECT {bucket} AS b, {exprs} FROM samples WHERE {base_where} AND ({any_value}) GROUP BY b"
                params = (*bucket_params, *base_params)
            async with conn.execute(sql, _bounded(params, deadline)) as cursor:
                while rows := await cursor.fetchmany(5000):
                    for b, *values in rows:
                        row = slot(b)
                        for (i, _, _), value in zip(simple, values):
                            row[i] = value
        for i, (fn, col) in enumerate(calls):
            if col not in _FIELD_SET or (fn in _SQL_AGGREGATES and not (point_times and fn in _SELECTORS)):
                continue
            column = f"samples.{col}"
            if fn in _SELECTORS:
                sql = (
                    f"SELECT {bucket} AS b, {_SELECTORS[fn].format(column)} FROM samples "
                    f"WHERE {base_where} AND {column} IS NOT NULL GROUP BY b"
                )
            elif fn == "median":  # the middle value, or the mean of the two middle ones
                sql = (
                    "SELECT b, avg(v) FROM (SELECT b, v, row_number() OVER (PARTITION BY b ORDER BY v) AS n, "
                    "count(*) OVER (PARTITION BY b) AS total FROM "
                    f"(SELECT {bucket} AS b, {column} AS v FROM samples WHERE {base_where} AND {column} IS NOT NULL)) "
                    "WHERE n IN ((total + 1) / 2, (total + 2) / 2) GROUP BY b"
                )
            else:
                raise ValueError(f"unknown aggregate {fn}")
            async with conn.execute(sql, _bounded((*bucket_params, *base_params), deadline)) as cursor:
                while rows := await cursor.fetchmany(5000):
                    for row in rows:
                        slot(row[0])[i] = (row[1], row[2]) if fn in _SELECTORS else row[1]
    return out


async def _query_fetchall(
    store: SampleStore, handle: _UserFile, sql: str, params: Sequence[Any], deadline: float | None = None
) -> list[tuple[Any, ...]]:
    async with store._reading(handle) as conn:
        return list(await conn.execute_fetchall(sql, _bounded(params, deadline)))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Live view: the accounts schema v2 (public profiles, share links, web sessions) and the
# downsampled window read behind the watch page. Module-level functions over the stores, like the
# query section: the classes above stay as they are.

ACCOUNT_MIGRATIONS += (
    # v2. Tokens (links, sessions) are stored only as their SHA-256: a copy of this file lets nobody
    # watch or sign in. A link's label is unique among the owner's links that are not revoked, so
    # `link revoke NAME LABEL` names exactly one; revoked links stay listed (with their last use).
    """
    ALTER TABLE users ADD COLUMN public INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE links (
        id INTEGER PRIMARY KEY,
        owner TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        label TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        created_ns INTEGER NOT NULL,
        expires_ns INTEGER,
        last_used_ns INTEGER,
        revoked_ns INTEGER
    );
    CREATE UNIQUE INDEX links_active_label ON links(owner, label) WHERE revoked_ns IS NULL;
    CREATE INDEX links_by_owner ON links(owner);
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        created_ns INTEGER NOT NULL,
        expires_ns INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX sessions_by_user ON sessions(user);
    """,
)


class LinkLabelTaken(Exception):
    pass


@dataclass(frozen=True, slots=True)
class LinkRecord:
    id: int
    owner: str
    label: str
    created_ns: int
    expires_ns: int | None
    last_used_ns: int | None
    revoked_ns: int | None


@dataclass(frozen=True, slots=True)
class SessionRecord:
    token_hash: str
    user: str
    csrf: str
    created_ns: int
    expires_ns: int
    last_used_ns: int | None  # to the minute; None for sessions older than the column
    user_agent: str | None  # as the browser named itself at sign-in, cleaned; only ever shown as text


_LINK_COLUMNS = "id, owner, label, created_ns, expires_ns, last_used_ns, revoked_ns"


async def set_public(store: AccountStore, name: str, public: bool) -> None:
    if not await store._change("UPDATE users SET public = ? WHERE name = ?", (int(public), name)):
        raise UnknownUser(name)


async def is_public(store: AccountStore, name: str) -> bool:
    rows = await store._fetchall("SELECT public FROM users WHERE name = ?", (name,))
    return bool(rows and rows[0][0])


async def add_link(
    store: AccountStore, owner: str, label: str, token_hash: str, created_ns: int, expires_ns: int | None
) -> LinkRecord:
    values = {"owner": owner, "label": label, "token_hash": token_hash, "created_ns": created_ns, "expires_ns": expires_ns}
    return LinkRecord(*await _add_labelled_secret(store, "links", _LINK_COLUMNS, values, LinkLabelTaken(label)))


async def _add_labelled_secret(
    store: AccountStore, table: str, columns: str, values: dict[str, Any], label_taken: Exception
) -> sqlite3.Row:
    """Insert a row of `links` or `device_tokens` (owner, label, token_hash, ...); the new row's `columns`.

    A unique-constraint failure is the label in use, unless the owner does not exist.
    """
    try:
        await store._change(
            f"INSERT INTO {table} ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})", tuple(values.values())
        )
    except sqlite3.IntegrityError:
        if await store.get_user(values["owner"]) is None:
            raise UnknownUser(values["owner"]) from None
        raise label_taken from None
    rows = await store._fetchall(f"SELECT {columns} FROM {table} WHERE token_hash = ?", (values["token_hash"],))
    return rows[0]


async def list_links(store: AccountStore, owner: str) -> list[LinkRecord]:
    rows = await store._fetchall(f"SELECT {_LINK_COLUMNS} FROM links WHERE owner = ? ORDER BY id", (owner,))
    return [LinkRecord(*row) for row in rows]


async def link_by_token_hash(store: AccountStore, token_hash: str) -> LinkRecord | None:
    rows = await store._fetchall(f"SELECT {_LINK_COLUMNS} FROM links WHERE token_hash = ?", (token_hash,))
    return LinkRecord(*rows[0]) if rows else None


async def revoke_link(
    store: AccountStore, owner: str, now_ns: int, *, link_id: int | None = None,
    token_hash: str | None = None, label: str | None = None,
) -> bool:
    """Revoke one not-yet-revoked link of `owner`, named by id, token hash or label."""
    return await _revoke_one(store, "links", owner, now_ns, link_id, token_hash, label)


async def _revoke_one(
    store: AccountStore, table: str, owner: str, now_ns: int, row_id: int | None, token_hash: str | None, label: str | None
) -> bool:
    """Revoke one not-yet-revoked row of a table of tokens (links, device tokens) by id, token hash or label."""
    key: int | str
    if row_id is not None:
        where, key = "id = ?", row_id
    elif token_hash is not None:
        where, key = "token_hash = ?", token_hash
    elif label is not None:
        where, key = "label = ?", label
    else:
        raise ValueError("name it by id, token hash or label")
    changed = await store._change(
        f"UPDATE {table} SET revoked_ns = ? WHERE owner = ? AND {where} AND revoked_ns IS NULL", (now_ns, owner, key)
    )
    return bool(changed)


async def touch_link(store: AccountStore, link_id: int, now_ns: int) -> None:
    await store._change("UPDATE links SET last_used_ns = ? WHERE id = ?", (now_ns, link_id))


async def add_session(
    store: AccountStore, token_hash: str, user: str, csrf: str, now_ns: int, expires_ns: int, user_agent: str | None
) -> None:
    # Expired sessions are cleared here: sign-ins are rare, so this keeps the table small for free.
    await store._change("DELETE FROM sessions WHERE expires_ns <= ?", (now_ns,))
    try:
        await store._change(
            "INSERT INTO sessions (token_hash, user, csrf, created_ns, expires_ns, last_used_ns, user_agent) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (token_hash, user, csrf, now_ns, expires_ns, now_ns, user_agent),
        )
    except sqlite3.IntegrityError:
        raise UnknownUser(user) from None


_SESSION_COLUMNS = "token_hash, user, csrf, created_ns, expires_ns, last_used_ns, user_agent"


async def get_session(store: AccountStore, token_hash: str) -> SessionRecord | None:
    rows = await store._fetchall(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE token_hash = ?", (token_hash,))
    return SessionRecord(*rows[0]) if rows else None


async def list_sessions(store: AccountStore, user: str, now_ns: int) -> list[SessionRecord]:
    """The user's sessions that have not expired, oldest first."""
    rows = await store._fetchall(
        f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE user = ? AND expires_ns > ? ORDER BY created_ns, token_hash",
        (user, now_ns),
    )
    return [SessionRecord(*row) for row in rows]


async def delete_session(store: AccountStore, token_hash: str) -> None:
    await store._change("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))


def _end_sessions_sql(user: str, keep_token_hash: str | None, now_ns: int) -> list[tuple[str, Sequence[Any]]]:
    """Clear expired sessions, then end the user's others; the second statement's count is the live ones ended."""
    return [
        ("DELETE FROM sessions WHERE expires_ns <= ?", (now_ns,)),
        ("DELETE FROM sessions WHERE user = ? AND token_hash IS NOT ?", (user, keep_token_hash)),
    ]


async def end_sessions(store: AccountStore, user: str, keep_token_hash: str | None, now_ns: int) -> int:
    """End every session of `user` but the one with `keep_token_hash` (None: all); how many live ones ended."""
    return (await store._change_all(_end_sessions_sql(user, keep_token_hash, now_ns)))[1]


async def touch_session(store: AccountStore, token_hash: str, now_ns: int) -> None:
    """Note a session's use: bookkeeping, so it neither reloads snapshots nor makes streams re-check."""
    with _refused_as_unavailable(store.path, "the session's last use was not saved"):
        await store._note("UPDATE sessions SET last_used_ns = ? WHERE token_hash = ?", [(now_ns, token_hash)])


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


# --------------------------------------------------------------------------------------------------
# Retention and backups: the accounts schema v3 (a retention per user), and the SQL behind
# `tracker backup`, `tracker restore` and `tracker check`.

ACCOUNT_MIGRATIONS += (
    # v3. retention_ns: how long the user's samples are kept; NULL = the server's default, 0 = forever.
    """
    ALTER TABLE users ADD COLUMN retention_ns INTEGER CHECK (retention_ns IS NULL OR retention_ns >= 0);
    """,
)


# --------------------------------------------------------------------------------------------------
# Device tokens (accounts schema v4): a sender identity of its own, stored (like links) only as the
# token's SHA-256.

ACCOUNT_MIGRATIONS += (
    # v4. A token's label is unique among its owner's tokens that are not revoked (`token revoke NAME
    # LABEL` names exactly one); it is also the `device` tag of what the token writes. Revoked tokens
    # stay listed with their last use. last_used_ns / last_sample_ns are bookkeeping, flushed in batches.
    """
    CREATE TABLE device_tokens (
        id INTEGER PRIMARY KEY,
        owner TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        label TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        speed_unit TEXT NOT NULL,
        created_ns INTEGER NOT NULL,
        last_used_ns INTEGER,
        last_sample_ns INTEGER,
        revoked_ns INTEGER
    );
    CREATE UNIQUE INDEX device_tokens_active_label ON device_tokens(owner, label) WHERE revoked_ns IS NULL;
    CREATE INDEX device_tokens_by_owner ON device_tokens(owner);
    """,
)


async def set_retention(store: AccountStore, name: str, retention_ns: int | None) -> None:
    """The user's own retention in ns (0 = keep everything), or None to follow the server's default."""
    if retention_ns is not None and retention_ns < 0:
        raise ValueError("a retention cannot be negative")
    if not await store._change("UPDATE users SET retention_ns = ? WHERE name = ?", (retention_ns, name)):
        raise UnknownUser(name)


async def retention_overrides(store: AccountStore) -> dict[str, int]:
    """{user: retention ns} for the users who have a retention of their own."""
    rows = await store._fetchall("SELECT name, retention_ns FROM users WHERE retention_ns IS NOT NULL")
    return {name: retention_ns for name, retention_ns in rows}


SQLITE_HEADER = b"SQLite format 3\x00"


def _connect_existing(path: Path) -> sqlite3.Connection:
    """A plain connection to a file that must already exist (mode=rw never creates one), not migrated:
    backup and check look at files as they are."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.execute("PRAGMA query_only = ON")
    return conn


def backup_file(source: Path, target: Path) -> int:
    """A consistent copy of the database `source` into `target` (which must not exist yet) with
    SQLite's online backup API, while other processes go on writing; returns the copy's schema
    version. The copy is one self-contained file (rollback journal, not WAL), synced to disk."""
    src = _connect_existing(source)
    try:
        dst = sqlite3.connect(target)
        try:
            # pages=-1: the whole file in one step, inside one read transaction, so the copy is one
            # snapshot; in WAL mode the writers carry on meanwhile.
            src.backup(dst, pages=-1)
            dst.execute("PRAGMA journal_mode = DELETE")
            version = _user_version(dst)
        finally:
            dst.close()
    finally:
        src.close()
    with open(target, "rb") as handle:
        os.fsync(handle.fileno())
    return version


@dataclass(frozen=True, slots=True)
class FileCheck:
    schema_version: int | None  # None: not readable as a database
    problem: str | None  # None: the file is sound


def check_file(path: Path, migrations: tuple[str, ...], *, quick: bool = False) -> FileCheck:
    """Is this a sound Tracker database? SQLite's integrity_check (or the faster quick_check, which
    skips index-content checks), and a schema version this Tracker knows. Reads only."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        return FileCheck(None, f"cannot read: {exc.strerror or exc}")
    if header != SQLITE_HEADER:
        return FileCheck(None, "not an SQLite database")
    try:
        conn = _connect_existing(path)
    except sqlite3.Error as exc:
        return FileCheck(None, f"cannot open: {exc}")
    try:
        version = _user_version(conn)
        pragma = "quick_check" if quick else "integrity_check"
        # At most a few messages: a badly damaged file can produce thousands.
        messages = [row[0] for row in conn.execute(f"PRAGMA {pragma}(5)")]
    except sqlite3.Error as exc:  # e.g. "database disk image is malformed" before any row
        return FileCheck(None, f"{'quick' if quick else 'integrity'} check failed: {exc}")
    finally:
        conn.close()
    if messages != ["ok"]:
        return FileCheck(version, f"{'quick' if quick else 'integrity'} check: " + "; ".join(messages))
    if version > len(migrations):
        return FileCheck(
            version,
            f"schema version {version} is newer than this Tracker knows ({len(migrations)}): "
            "written by a newer Tracker",
        )
    return FileCheck(version, None)


def in_use(path: Path) -> bool:
    """Does another connection (e.g. a running server) have this database open? Asked by trying
    to take it for ourselves alone, without waiting; only meaningful for a WAL file."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=0)
    except sqlite3.Error:
        return False  # missing or unreadable: nobody is using it as a database
    try:
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
        conn.rollback()
        return False
    except sqlite3.OperationalError as exc:
        return "locked" in str(exc) or "busy" in str(exc)
    except sqlite3.DatabaseError:
        return False  # not a database (check reports that); nobody has it open as one
    finally:
        conn.close()


class TokenLabelTaken(Exception):
    pass


@dataclass(frozen=True, slots=True)
class DeviceTokenRecord:
    id: int
    owner: str
    label: str
    token_hash: str
    speed_unit: str
    created_ns: int
    last_used_ns: int | None
    last_sample_ns: int | None
    revoked_ns: int | None


_TOKEN_COLUMNS = "id, owner, label, token_hash, speed_unit, created_ns, last_used_ns, last_sample_ns, revoked_ns"


async def add_device_token(
    store: AccountStore, owner: str, label: str, token_hash: str, speed_unit: str, created_ns: int
) -> DeviceTokenRecord:
    values = {"owner": owner, "label": label, "token_hash": token_hash, "speed_unit": speed_unit, "created_ns": created_ns}
    row = await _add_labelled_secret(store, "device_tokens", _TOKEN_COLUMNS, values, TokenLabelTaken(label))
    return DeviceTokenRecord(*row)


async def list_device_tokens(store: AccountStore, owner: str) -> list[DeviceTokenRecord]:
    rows = await store._fetchall(f"SELECT {_TOKEN_COLUMNS} FROM device_tokens WHERE owner = ? ORDER BY id", (owner,))
    return [DeviceTokenRecord(*row) for row in rows]


async def active_device_tokens(store: AccountStore) -> list[DeviceTokenRecord]:
    rows = await store._fetchall(f"SELECT {_TOKEN_COLUMNS} FROM device_tokens WHERE revoked_ns IS NULL")
    return [DeviceTokenRecord(*row) for row in rows]


async def revoke_device_token(
    store: AccountStore, owner: str, now_ns: int, *, token_id: int | None = None,
    token_hash: str | None = None, label: str | None = None,
) -> bool:  # fmt: skip
    """Revoke one not-yet-revoked token of `owner`, named by id, token hash or label."""
    return await _revoke_one(store, "device_tokens", owner, now_ns, token_id, token_hash, label)


async def record_token_use(store: AccountStore, uses: Sequence[tuple[int, int | None, int | None]]) -> None:
    """(token id, last used ns, last sample ns) for many tokens in one transaction; times only move forward.

    Bookkeeping, not access: it does not change `data_version`, so it neither reloads the accounts
    snapshot nor makes open live streams re-check their access.
    """
    if not uses:
        return
    # max(a, b) is NULL if either is: COALESCE picks whichever of the two exists.
    sql = (
        "UPDATE device_tokens SET "
        "last_used_ns = COALESCE(max(last_used_ns, ?2), last_used_ns, ?2), "
        "last_sample_ns = COALESCE(max(last_sample_ns, ?3), last_sample_ns, ?3) WHERE id = ?1"
    )
    await store._note(sql, uses)


# --------------------------------------------------------------------------------------------------
# Gone-quiet alerts: the accounts schema v4 (per user, optionally per device: after how long without
# data, which webhook, whether it has fired, how its last delivery went), and when each device of a
# user last sent a sample.

ACCOUNT_MIGRATIONS += (
    # v5. device '' = any device of the owner. fired_ns is set when the "quiet" notice went out and
    # cleared when data arrives again, so a restart neither repeats the notice nor forgets the "back".
    # The delivery_* columns describe the latest notice: kind (quiet/back), state (retrying, ok,
    # failed), the last HTTP status or error and how many attempts it took.
    """
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        owner TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        device TEXT NOT NULL DEFAULT '',
        quiet_seconds REAL NOT NULL,
        webhook_url TEXT NOT NULL,
        created_ns INTEGER NOT NULL,
        fired_ns INTEGER,
        delivery_kind TEXT,
        delivery_ns INTEGER,
        delivery_state TEXT,
        delivery_status INTEGER,
        delivery_error TEXT,
        delivery_attempts INTEGER,
        UNIQUE (owner, device)
    );
    """,
)


@dataclass(frozen=True, slots=True)
class AlertRecord:
    id: int
    owner: str
    device: str  # '' = any device
    quiet_seconds: float
    webhook_url: str
    created_ns: int
    fired_ns: int | None
    delivery_kind: str | None
    delivery_ns: int | None
    delivery_state: str | None
    delivery_status: int | None
    delivery_error: str | None
    delivery_attempts: int | None


_ALERT_COLUMNS = (
    "id, owner, device, quiet_seconds, webhook_url, created_ns, fired_ns, delivery_kind, delivery_ns, "
    "delivery_state, delivery_status, delivery_error, delivery_attempts"
)


async def set_alert(
    store: AccountStore, owner: str, device: str, quiet_seconds: float, webhook_url: str, now_ns: int
) -> AlertRecord:
    """Create the owner's alert for `device`, or change its quiet time and webhook (its state stays;
    the last delivery's outcome goes, it was about the old settings)."""
    try:
        await store._change(
            "INSERT INTO alerts (owner, device, quiet_seconds, webhook_url, created_ns) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (owner, device) DO UPDATE SET quiet_seconds = excluded.quiet_seconds, "
            "webhook_url = excluded.webhook_url, delivery_kind = NULL, delivery_ns = NULL, "
            "delivery_state = NULL, delivery_status = NULL, delivery_error = NULL, delivery_attempts = NULL",
            (owner, device, quiet_seconds, webhook_url, now_ns),
        )
    except sqlite3.IntegrityError:  # the foreign key: no such user
        raise UnknownUser(owner) from None
    rows = await store._fetchall(
        f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE owner = ? AND device = ?", (owner, device)
    )
    return AlertRecord(*rows[0])


async def list_alerts(store: AccountStore, owner: str | None = None) -> list[AlertRecord]:
    if owner is None:
        rows = await store._fetchall(f"SELECT {_ALERT_COLUMNS} FROM alerts ORDER BY owner, device")
    else:
        rows = await store._fetchall(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE owner = ? ORDER BY device", (owner,)
        )
    return [AlertRecord(*row) for row in rows]


async def remove_alert(store: AccountStore, owner: str, device: str) -> bool:
    return bool(await store._change("DELETE FROM alerts WHERE owner = ? AND device = ?", (owner, device)))


# An alert's state and delivery outcomes are bookkeeping (`_note`): they change nobody's access.


async def set_alert_fired(store: AccountStore, alert_id: int, fired_ns: int | None) -> None:
    await store._note("UPDATE alerts SET fired_ns = ? WHERE id = ?", [(fired_ns, alert_id)])


async def record_alert_delivery(
    store: AccountStore, alert_id: int, kind: str, at_ns: int, state: str,
    status: int | None, error_text: str | None, attempts: int,
) -> None:  # fmt: skip
    await store._note(
        "UPDATE alerts SET delivery_kind = ?, delivery_ns = ?, delivery_state = ?, delivery_status = ?, "
        "delivery_error = ?, delivery_attempts = ? WHERE id = ?",
        [(kind, at_ns, state, status, error_text, attempts, alert_id)],
    )


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


# --------------------------------------------------------------------------------------------------
# Web sessions' metadata (accounts schema v6): what the owner's page lists so that a sign-in one does
# not recognise can be ended.

ACCOUNT_MIGRATIONS += (
    # v6. last_used_ns is bookkeeping, written at most once a minute per session; user_agent is what
    # the browser called itself at sign-in. Sessions from before stay valid, with both NULL.
    """
    ALTER TABLE sessions ADD COLUMN last_used_ns INTEGER;
    ALTER TABLE sessions ADD COLUMN user_agent TEXT;
    """,
)
