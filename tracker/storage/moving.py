"""The SQL behind `tracker shard move`: a user's account rows copied from one accounts file to
another, and a digest of a user's samples that says whether two copies hold the same data."""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracker.storage.connection import _connect_existing

# What an account is made of, besides its shares (a share names two users, who may now live on
# different shards: it is not moved) and its sessions (signed-in browsers sign in again).
# Each table: (name, the column naming the user). Ids are left out: the target gives its own.
_ACCOUNT_TABLES = (("users", "name"), ("device_tokens", "owner"), ("links", "owner"), ("alerts", "owner"))


@dataclass(frozen=True, slots=True)
class AccountRows:
    user: str
    tables: dict[str, tuple[list[str], list[tuple[Any, ...]]]]  # table → (columns, rows)
    shares: list[tuple[str, str]]  # (owner, viewer) naming the user: reported, not moved


def read_account(accounts_file: Path, user: str) -> AccountRows | None:
    """The user's account rows, or None when the file has no such user."""
    conn = _connect_existing(accounts_file)
    try:
        conn.execute("BEGIN")  # one snapshot of every table
        tables: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
        for table, column in _ACCOUNT_TABLES:
            cursor = conn.execute(f"SELECT * FROM {table} WHERE {column} = ?", (user,))
            columns = [d[0] for d in cursor.description]
            keep = [i for i, name in enumerate(columns) if name != "id"]
            tables[table] = ([columns[i] for i in keep], [tuple(row[i] for i in keep) for row in cursor])
        shares = conn.execute("SELECT owner, viewer FROM shares WHERE owner = ? OR viewer = ?", (user, user)).fetchall()
        conn.execute("COMMIT")
    finally:
        conn.close()
    if not tables["users"][1]:
        return None
    return AccountRows(user, tables, [tuple(s) for s in shares])


class AccountExists(Exception):
    pass


def insert_account(accounts_file: Path, account: AccountRows) -> None:
    """Add the rows to another accounts file in one transaction; AccountExists if it has the user."""
    conn = sqlite3.connect(accounts_file, timeout=10, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("SELECT 1 FROM users WHERE name = ? COLLATE NOCASE", (account.user,)).fetchone():
                raise AccountExists(account.user)
            for table, _ in _ACCOUNT_TABLES:
                columns, rows = account.tables[table]
                if rows:
                    marks = ", ".join("?" * len(columns))
                    conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()


@dataclass(frozen=True, slots=True)
class SamplesDigest:
    samples: int
    sha256: str  # over every series and sample row in key order: equal digests, equal data


def samples_digest(user_file: Path) -> SamplesDigest:
    conn = _connect_existing(user_file)
    try:
        conn.execute("BEGIN")
        digest = hashlib.sha256()
        for row in conn.execute("SELECT id, tags FROM series ORDER BY id"):
            digest.update(repr(row).encode())
        count = 0
        for row in conn.execute("SELECT * FROM samples ORDER BY time, series"):
            digest.update(repr(row).encode())
            count += 1
        conn.execute("COMMIT")
    finally:
        conn.close()
    return SamplesDigest(count, digest.hexdigest())
