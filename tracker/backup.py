"""Backups, restores and checks of a data folder: which files there are, in what order they are
copied, and the manifest that describes a backup. The SQL itself (SQLite's online backup API, the
integrity checks) lives in tracker.storage.

A backup folder mirrors a data folder: `accounts.sqlite`, `users/<name>.sqlite`, plus
`manifest.json` (written last: a folder without it is not a finished backup).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracker import __version__, storage
from tracker.accounts import BEARER_SECRET_FILE, InvalidSecretFile, read_bearer_secret
from tracker.config import SERVER_URL_FILE
from tracker.group import RUN_DIR
from tracker.rules import iso_time
from tracker.storage import ACCOUNT_MIGRATIONS, ACCOUNTS_FILE, JOURNAL_FILE, SAMPLE_MIGRATIONS, USERS_DIR
from tracker.storage.connection import fsync_path
from tracker.storage.journal import COMMIT_LOCK_FILE

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
COMPANIONS = ("-wal", "-shm", "-journal")  # SQLite's files beside a database
_USER_FILE = re.compile(r"\A[A-Za-z0-9_-]{1,64}\.sqlite\Z")  # a valid username + .sqlite
_PARTIAL = ".partial"  # a file being written; renamed into place once complete


class BackupError(Exception):
    """A backup, restore or check that cannot go ahead; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Layout:
    databases: list[str]  # paths relative to the folder, accounts first, then users by name
    unexpected: list[str]  # anything else found there
    # The server's bearer-token signing key is no database and is never backed up: a server without
    # it makes a new one, which only asks holders of short-lived bearer tokens to ask /auth again.
    has_bearer_secret: bool = False


def scan(folder: Path) -> Layout:
    """What a data folder (or backup folder) holds."""
    databases: list[str] = []
    unexpected: list[str] = []
    users: list[str] = []
    has_bearer_secret = False
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        if entry.name == ACCOUNTS_FILE and entry.is_file():
            databases.append(ACCOUNTS_FILE)
        elif entry.name == BEARER_SECRET_FILE and entry.is_file():
            has_bearer_secret = True
        elif entry.name in (JOURNAL_FILE, COMMIT_LOCK_FILE) and entry.is_file():
            # The write journal (and its commit lock): its entries are in the user files once the server stopped cleanly
            # (or ran recovery), so it is neither backed up nor restored.
            continue
        elif entry.name == USERS_DIR and entry.is_dir():
            for user_file in sorted(entry.iterdir()):
                if _USER_FILE.match(user_file.name) and user_file.is_file():
                    users.append(f"{USERS_DIR}/{user_file.name}")
                elif not _is_companion(user_file, entry):
                    unexpected.append(f"{USERS_DIR}/{user_file.name}")
        elif entry.name == RUN_DIR and entry.is_dir():
            continue  # a running group's locks and counts: nothing to back up or check
        elif entry.name == SERVER_URL_FILE and entry.is_file():
            continue  # how this machine's server was last reached: the next start writes it again
        elif not _is_companion(entry, folder) and entry.name != MANIFEST:
            unexpected.append(entry.name)
    return Layout(databases + users, unexpected, has_bearer_secret)


def _is_companion(path: Path, folder: Path) -> bool:
    """An SQLite -wal/-shm/-journal file beside its database."""
    for suffix in COMPANIONS:
        if path.name.endswith(suffix) and (folder / path.name.removesuffix(suffix)).is_file():
            return True
    return False


def migrations_for(relative: str) -> tuple[str, ...]:
    return ACCOUNT_MIGRATIONS if relative == ACCOUNTS_FILE else SAMPLE_MIGRATIONS


def backup(data_dir: Path, dest: Path, *, force: bool = False) -> dict[str, Any]:
    """Copy every database of `data_dir` into `dest`, each as one consistent snapshot taken while
    the server may go on writing; returns the manifest (also written to dest/manifest.json)."""
    if not (data_dir / ACCOUNTS_FILE).is_file():
        raise BackupError(f"no {ACCOUNTS_FILE} in {data_dir}: wrong --data-dir?")
    if dest.exists() and not dest.is_dir():
        raise BackupError(f"{dest} is not a folder")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise BackupError(f"{dest} is not empty: back up into a new or empty folder, or pass --force to write into it")
    if dest.resolve() == data_dir.resolve() or data_dir.resolve() in dest.resolve().parents:
        raise BackupError(f"{dest} is inside the data folder: choose a folder outside it")
    started_ns = time.time_ns()
    dest.mkdir(parents=True, exist_ok=True)
    files: list[dict[str, Any]] = []
    for relative in scan(data_dir).databases:
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + _PARTIAL)
        partial.unlink(missing_ok=True)
        try:
            version = storage.backup_file(data_dir / relative, partial)
        except sqlite3.OperationalError:
            if not (data_dir / relative).exists():  # the user was deleted meanwhile: nothing to keep
                partial.unlink(missing_ok=True)
                continue
            raise
        os.replace(partial, target)
        files.append(
            {"path": relative, "schema_version": version, "bytes": target.stat().st_size, "sha256": _sha256(target)}
        )
    fsync_path(dest / USERS_DIR)
    manifest = {
        "format": MANIFEST_FORMAT,
        "tracker_version": __version__,
        "started": iso_time(started_ns),
        "finished": iso_time(time.time_ns()),
        "files": files,
    }
    _write_atomically(dest / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest


def read_backup(source: Path) -> dict[str, Any]:
    """The manifest of a finished, intact backup; BackupError naming the first thing wrong."""
    try:
        manifest = json.loads((source / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"no {MANIFEST} in {source}: not a Tracker backup, or an unfinished one") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"cannot read {source / MANIFEST}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise BackupError(f"{source / MANIFEST}: unknown backup format")
    files = manifest.get("files")
    if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
        raise BackupError(f"{source / MANIFEST}: no list of files")
    paths = [f.get("path") for f in files]
    if ACCOUNTS_FILE not in paths:
        raise BackupError(f"{source / MANIFEST}: the backup has no {ACCOUNTS_FILE}")
    if len(set(paths)) != len(paths):
        raise BackupError(f"{source / MANIFEST}: a file is listed twice")
    for entry in files:
        relative = entry.get("path")
        name = relative.removeprefix(f"{USERS_DIR}/") if isinstance(relative, str) else ""
        if relative != ACCOUNTS_FILE and not (relative == f"{USERS_DIR}/{name}" and _USER_FILE.match(name)):
            raise BackupError(f"{source / MANIFEST}: unexpected file {relative!r}")
        path = source / relative
        if not path.is_file():
            raise BackupError(f"{path} is missing")
        if _sha256(path) != entry.get("sha256"):
            raise BackupError(f"{path} changed since the backup was made (its SHA-256 differs)")
        result = storage.check_file(path, migrations_for(relative))
        if result.problem is not None:
            raise BackupError(f"{path}: {result.problem}")
    return manifest


def restore(source: Path, data_dir: Path, *, force: bool = False) -> tuple[list[str], list[str]]:
    """Put the backup in `source` into `data_dir`; returns (files restored, databases left in place
    because the backup does not have them). Each file is copied beside its place and renamed over it."""
    manifest = read_backup(source)
    present = scan(data_dir)
    busy = [relative for relative in present.databases if storage.in_use(data_dir / relative)]
    if busy:
        raise BackupError(f"{data_dir / busy[0]} is in use (is the server running?): stop it, then restore")
    if present.databases and not force:
        raise BackupError(
            f"{data_dir} already holds {len(present.databases)} database(s): restore into an empty data "
            "folder, or pass --force to replace them"
        )
    # The journal describes the files being replaced: replayed onto the restored ones, it would mix them.
    for suffix in ("", *COMPANIONS):
        (data_dir / (JOURNAL_FILE + suffix)).unlink(missing_ok=True)
    restored: list[str] = []
    for entry in manifest["files"]:
        relative = entry["path"]
        target = data_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + _PARTIAL)
        shutil.copyfile(source / relative, partial)
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
        # The old file's WAL must go before the new file arrives: SQLite would replay it into the new one.
        for suffix in COMPANIONS:
            target.with_name(target.name + suffix).unlink(missing_ok=True)
        os.replace(partial, target)
        fsync_path(target.parent)
        restored.append(relative)
    left = [relative for relative in present.databases if relative not in restored]
    return restored, left


@dataclass(frozen=True, slots=True)
class CheckLine:
    path: str  # relative to the data folder
    problem: str | None
    detail: str = ""  # for a sound file: its schema version and size


def check(data_dir: Path, *, quick: bool = False) -> list[CheckLine]:
    """One line per file of the data folder: is it a sound database of a known schema, or unexpected?"""
    if not data_dir.is_dir():
        raise BackupError(f"no data folder {data_dir}")
    layout = scan(data_dir)
    lines: list[CheckLine] = []
    if ACCOUNTS_FILE not in layout.databases:
        lines.append(CheckLine(ACCOUNTS_FILE, "missing: no accounts file in this data folder"))
    for relative in layout.databases:
        result = storage.check_file(data_dir / relative, migrations_for(relative), quick=quick)
        size = _size((data_dir / relative).stat().st_size)
        lines.append(CheckLine(relative, result.problem, f"schema {result.schema_version}, {size}"))
    if layout.has_bearer_secret:
        try:
            read_bearer_secret(data_dir / BEARER_SECRET_FILE)
            lines.append(CheckLine(BEARER_SECRET_FILE, None, "the key that signs bearer tokens"))
        except (InvalidSecretFile, OSError) as exc:
            lines.append(CheckLine(BEARER_SECRET_FILE, str(exc)))
    lines.extend(CheckLine(relative, "unexpected file") for relative in layout.unexpected)
    return lines


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + _PARTIAL)
    with open(partial, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    fsync_path(path.parent)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    size = n / 1024
    for unit in ("KB", "MB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
