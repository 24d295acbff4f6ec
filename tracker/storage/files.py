"""The SQL behind `tracker backup`, `tracker restore` and `tracker check`."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from tracker.storage.connection import _connect_existing, _user_version

SQLITE_HEADER = b"SQLite format 3\x00"


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

