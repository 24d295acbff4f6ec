"""Opening a database file: pragmas, migrations (the scripts are in tracker.storage.schema), the
read connection whose statements may have a deadline, and the file system's refusals as
StorageUnavailable."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import aiosqlite

from tracker.rules import USERNAME_RULE, is_username

_log = logging.getLogger(__name__)

# Long enough that a CLI command committing beside the server is waited for, not reported as an error.
BUSY_TIMEOUT_MS = 5000
ACCOUNTS_FILE = "accounts.sqlite"
USERS_DIR = "users"
SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


def _checked_name(name: str) -> str:
    """The name, if it may name a user (and so a file in the users folder); ValueError otherwise."""
    if not is_username(name):
        raise ValueError(f"invalid username {name!r}: use {USERNAME_RULE}")
    return name


class SchemaTooNew(RuntimeError):
    """The file was written by a newer Tracker; opening it with this one could damage it."""


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
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT on an autocommit connection (the writer's), ROLLBACK on error: the
    write lock up front, so a transaction that reads first never has to upgrade its lock."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


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


def fsync_path(path: Path) -> bool:
    """fsync a file (or folder) if it exists; False if it does not."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


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


def _connect_existing(path: Path) -> sqlite3.Connection:
    """A plain connection to a file that must already exist (mode=rw never creates one), not migrated:
    backup and check look at files as they are."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.execute("PRAGMA query_only = ON")
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
    # serves both these aiosqlite connections and the writer thread's own connections.
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

