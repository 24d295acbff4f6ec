"""What the workers of one group count together: `<data_dir>/run/shared.sqlite`.

Failed sign-ins and bans per client address, the places of open live streams, and when data last
arrived per user and device (for the one worker that watches gone-quiet alerts). Only rare events
write here (a failed password check, a stream opening or closing) or a flush every second (arrivals);
a successful request never touches it.

The file lives only as long as the group: the supervisor empties the run folder before starting the
workers, so it has no schema history and no durability (synchronous=OFF). Times are
`time.monotonic()`: CLOCK_MONOTONIC is one clock for every process of the machine.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import aiosqlite

from tracker.storage.connection import BUSY_TIMEOUT_MS

SHARED_FILE = "shared.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS auth_failures (
    key TEXT NOT NULL, at REAL NOT NULL, user_digest TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS auth_failures_key ON auth_failures (key, at);
CREATE TABLE IF NOT EXISTS auth_bans (key TEXT PRIMARY KEY, until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS stream_places (
    id INTEGER PRIMARY KEY,
    worker INTEGER NOT NULL,
    user TEXT NOT NULL,
    signed_in INTEGER NOT NULL,
    address TEXT NOT NULL,
    link_id INTEGER
);
CREATE INDEX IF NOT EXISTS stream_places_user ON stream_places (user);
CREATE INDEX IF NOT EXISTS stream_places_address ON stream_places (address);
CREATE TABLE IF NOT EXISTS arrivals (
    user TEXT NOT NULL,
    device TEXT NOT NULL,  -- '' for samples without a device tag (a tag value is never empty)
    pid INTEGER NOT NULL,
    newest_ns INTEGER NOT NULL,
    arrived REAL NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (user, device, pid)
);
CREATE INDEX IF NOT EXISTS arrivals_seq ON arrivals (seq);
"""


@dataclass(frozen=True, slots=True)
class StreamCounts:
    """Open streams as the limits see them, across every worker."""

    total: int
    of_user: int
    anonymous: int
    anonymous_of_user: int
    of_address: int
    of_link: int


@dataclass(frozen=True, slots=True)
class Arrival:
    user: str
    device: str | None
    newest_ns: int
    arrived: float  # time.monotonic()
    seq: int


def create(run_dir: Path) -> None:
    """Make the file, empty, in WAL mode: once, by the supervisor, before any worker starts."""
    conn = sqlite3.connect(run_dir / SHARED_FILE, isolation_level=None)
    try:
        conn.executescript("PRAGMA journal_mode = WAL;" + _SCHEMA)
    finally:
        conn.close()


class SharedCounts:
    """The group's shared file; one connection per worker, one operation at a time."""

    def __init__(self, conn: aiosqlite.Connection, worker: int) -> None:
        self._conn = conn
        self._worker = worker
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, run_dir: Path, worker: int) -> SharedCounts:
        """Open the file `create` made; a restarted worker first gives back the places its predecessor held."""
        # mode=rw: never create it here (several workers switching a new file to WAL at once may fail).
        uri = f"{(run_dir / SHARED_FILE).resolve().as_uri()}?mode=rw"
        conn = await aiosqlite.connect(uri, uri=True, isolation_level=None)
        try:
            await conn.executescript(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}; PRAGMA synchronous = OFF;")
            shared = cls(conn, worker)
            await shared._write([("DELETE FROM stream_places WHERE worker = ?", (worker,))])
        except BaseException:
            await conn.close()  # its thread would keep the failing process from exiting
            raise
        return shared

    async def close(self) -> None:
        try:
            await self._write([("DELETE FROM stream_places WHERE worker = ?", (self._worker,))])
        finally:
            await self._conn.close()

    async def _write(self, statements: Sequence[tuple[str, Sequence[object]]]) -> None:
        async with self._lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    await self._conn.execute(sql, params)
                await self._conn.execute("COMMIT")
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise

    # ----- failed sign-ins (tracker.bans) -----

    async def record_failure(
        self, key: str, user_digest: str, now: float, window_seconds: float, max_failures: int, ban_seconds: float
    ) -> float | None:
        """Count one failure of `key`; returns the ban's end if the group's failures now ban it."""
        async with self._lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                await self._conn.execute("DELETE FROM auth_failures WHERE at <= ?", (now - window_seconds,))
                await self._conn.execute(
                    "INSERT INTO auth_failures (key, at, user_digest) VALUES (?, ?, ?)", (key, now, user_digest)
                )
                rows = await self._conn.execute_fetchall("SELECT count(*) FROM auth_failures WHERE key = ?", (key,))
                until: float | None = None
                if int(list(rows)[0][0]) >= max_failures:
                    until = now + ban_seconds
                    await self._conn.execute("DELETE FROM auth_failures WHERE key = ?", (key,))
                    await self._conn.execute(
                        "INSERT OR REPLACE INTO auth_bans (key, until) VALUES (?, ?)", (key, until)
                    )
                await self._conn.execute("COMMIT")
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
        return until

    async def clear_failures(self, key: str, user_digest: str) -> None:
        """A right password from `key` for that user: its earlier failures there no longer count."""
        await self._write([("DELETE FROM auth_failures WHERE key = ? AND user_digest = ?", (key, user_digest))])

    async def bans(self, now: float) -> tuple[dict[str, float], set[str]]:
        """(the bans in force: key -> end, the keys with failures counted)."""
        async with self._lock:
            banned = await self._conn.execute_fetchall("SELECT key, until FROM auth_bans WHERE until > ?", (now,))
            failing = await self._conn.execute_fetchall("SELECT DISTINCT key FROM auth_failures")
        return {row[0]: float(row[1]) for row in banned}, {row[0] for row in failing}

    # ----- live stream places (tracker.live) -----

    async def count_and_take(
        self, user: str, signed_in: bool, address: str, link_id: int | None, decide: Callable[[StreamCounts], None]
    ) -> int | None:
        """The group's stream counts for a new stream; `decide(counts)` says whether it may open
        (None: yes), all in one transaction. Returns the place's id, or raises what `decide` raises."""
        async with self._lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                rows = await self._conn.execute_fetchall(
                    "SELECT count(*), "
                    "  count(*) FILTER (WHERE user = ?1), "
                    "  count(*) FILTER (WHERE NOT signed_in), "
                    "  count(*) FILTER (WHERE NOT signed_in AND user = ?1), "
                    "  count(*) FILTER (WHERE NOT signed_in AND address = ?2), "
                    "  count(*) FILTER (WHERE NOT signed_in AND link_id = ?3) "
                    "FROM stream_places",
                    (user, address, link_id),
                )
                decide(StreamCounts(*(int(value) for value in list(rows)[0])))
                cursor = await self._conn.execute(
                    "INSERT INTO stream_places (worker, user, signed_in, address, link_id) VALUES (?, ?, ?, ?, ?)",
                    (self._worker, user, int(signed_in), address, link_id),
                )
                place = cursor.lastrowid
                await self._conn.execute("COMMIT")
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
        return place

    async def give_back(self, place: int) -> None:
        await self._write([("DELETE FROM stream_places WHERE id = ?", (place,))])

    # ----- arrivals (tracker.alerts) -----

    async def note_arrivals(self, arrivals: Sequence[tuple[str, str | None, int, float]]) -> None:
        """(user, device, newest sample ns, arrived) of data this worker committed."""
        pid = os.getpid()
        await self._write([
            (
                "INSERT INTO arrivals (user, device, pid, newest_ns, arrived, seq) "
                "VALUES (?1, ?2, ?3, ?4, ?5, (SELECT coalesce(max(seq), 0) + 1 FROM arrivals)) "
                "ON CONFLICT (user, device, pid) DO UPDATE SET newest_ns = max(newest_ns, excluded.newest_ns), "
                "arrived = max(arrived, excluded.arrived), seq = excluded.seq",
                (user, device or "", pid, newest_ns, arrived),
            )
            for user, device, newest_ns, arrived in arrivals
        ])  # fmt: skip

    async def newest_of(self, user: str) -> dict[str | None, int]:
        """The newest sample time (ns) of each of the user's devices that any worker noted."""
        async with self._lock:
            rows = await self._conn.execute_fetchall(
                "SELECT device, max(newest_ns) FROM arrivals WHERE user = ? GROUP BY device", (user,)
            )
        return {row[0] or None: int(row[1]) for row in rows}

    async def arrivals_since(self, seq: int) -> list[Arrival]:
        """Data other workers committed, noted after `seq`, oldest first."""
        async with self._lock:
            rows = await self._conn.execute_fetchall(
                "SELECT user, device, newest_ns, arrived, seq FROM arrivals WHERE seq > ? AND pid != ? ORDER BY seq",
                (seq, os.getpid()),
            )
        return [Arrival(row[0], row[1] or None, int(row[2]), float(row[3]), int(row[4])) for row in rows]
