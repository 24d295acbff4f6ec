"""Accounts: <data_dir>/accounts.sqlite. Users, password hashes, shares, public profiles, share
links, web sessions, retentions, device tokens and gone-quiet alerts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import aiosqlite

from tracker.storage import schema
from tracker.storage.connection import ACCOUNTS_FILE, _checked_name, _open, _refused_as_unavailable

# How long the accounts -wal file must have been untouched before its stat alone may stand in for
# PRAGMA data_version: far above any file system's timestamp granularity.
_QUIET_NS = 5 * 10**9


class UserExists(Exception):
    pass


class UnknownUser(Exception):
    pass


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
    # The one activity the link opens (None: the live view); activity ids are never used again.
    activity_id: int | None = None


@dataclass(frozen=True, slots=True)
class SessionRecord:
    token_hash: str
    user: str
    csrf: str
    created_ns: int
    expires_ns: int
    last_used_ns: int | None  # to the minute; None for sessions older than the column
    user_agent: str | None  # as the browser named itself at sign-in, cleaned; only ever shown as text


_LINK_COLUMNS = (
    "id, owner, label, created_ns, expires_ns, last_used_ns, revoked_ns, activity_id"
)


_SESSION_COLUMNS = "token_hash, user, csrf, created_ns, expires_ns, last_used_ns, user_agent"


def _end_sessions_sql(user: str, keep_token_hash: str | None, now_ns: int) -> list[tuple[str, Sequence[Any]]]:
    """Clear expired sessions, then end the user's others; the second statement's count is the live ones ended."""
    return [
        ("DELETE FROM sessions WHERE expires_ns <= ?", (now_ns,)),
        ("DELETE FROM sessions WHERE user = ? AND token_hash IS NOT ?", (user, keep_token_hash)),
    ]


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


@dataclass(frozen=True, slots=True)
class UserRecord:
    name: str
    password_hash: str
    created_ns: int


@dataclass(frozen=True, slots=True)
class InviteRecord:
    id: int
    uses: int
    uses_left: int
    created_ns: int


_INVITE_COLUMNS = "id, uses, uses_left, created_ns"


class AccountStore:
    """Users, password hashes, shares, and everything else of the accounts file (links, sessions,
    retentions, device tokens, alerts). Low traffic: one connection, one operation at a time."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        # One lock: a second coroutine must never slip a statement into another one's transaction.
        self._lock = asyncio.Lock()
        self._own_commits = 0
        self._wal_path = path.with_name(path.name + "-wal")
        # (-wal signature, time.time_ns() when that check began, PRAGMA data_version) of the last real check
        self._last_check: tuple[tuple[int, int, int] | None, int, int] | None = None

    @property
    def own_commits(self) -> int:
        """Commits made through this store: a changed number means something changed here."""
        return self._own_commits

    @classmethod
    async def open(cls, data_dir: Path) -> AccountStore:
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / ACCOUNTS_FILE
        # e.g. the server started on a full disk, where SQLite cannot create the -shm file
        with _refused_as_unavailable(path, f"cannot open {path}"):
            return cls(await _open(path, schema.ACCOUNT_MIGRATIONS, "FULL"), path)

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

    async def add_user_with_invite(self, name: str, password_hash: str, code_hash: str) -> bool:
        """Add the user and use up one use of the invite, in one transaction; False (nothing done) if
        the invite is unknown or used up."""
        _checked_name(name)
        spendable = "SELECT 1 FROM invites WHERE code_hash = ? AND uses_left > 0"
        try:
            inserted, _ = await self._change_all([
                (
                    f"INSERT INTO users (name, password_hash, created_ns) SELECT ?, ?, ? WHERE EXISTS ({spendable})",
                    (name, password_hash, time.time_ns(), code_hash),
                ),
                # matches exactly when the insert did: the same condition, in the same transaction
                ("UPDATE invites SET uses_left = uses_left - 1 WHERE code_hash = ? AND uses_left > 0", (code_hash,)),
            ])  # fmt: skip
        except sqlite3.IntegrityError:
            raise UserExists(name) from None
        return inserted == 1

    async def add_invite(self, code_hash: str, uses: int) -> InviteRecord:
        now_ns = time.time_ns()
        await self._change(
            "INSERT INTO invites (code_hash, uses, uses_left, created_ns) VALUES (?, ?, ?, ?)",
            (code_hash, uses, uses, now_ns),
        )
        rows = await self._fetchall(f"SELECT {_INVITE_COLUMNS} FROM invites WHERE code_hash = ?", (code_hash,))
        return InviteRecord(*rows[0])

    async def list_invites(self) -> list[InviteRecord]:
        rows = await self._fetchall(f"SELECT {_INVITE_COLUMNS} FROM invites ORDER BY id")
        return [InviteRecord(*row) for row in rows]

    async def revoke_invite(self, invite_id: int) -> bool:
        return bool(await self._change("UPDATE invites SET uses_left = 0 WHERE id = ? AND uses_left > 0", (invite_id,)))

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

    async def user_id(self, name: str) -> int | None:
        rows = await self._fetchall("SELECT rowid FROM users WHERE name = ?", (name,))
        return int(rows[0][0]) if rows else None

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

    async def set_public(self, name: str, public: bool) -> None:
        if not await self._change("UPDATE users SET public = ? WHERE name = ?", (int(public), name)):
            raise UnknownUser(name)

    async def is_public(self, name: str) -> bool:
        rows = await self._fetchall("SELECT public FROM users WHERE name = ?", (name,))
        return bool(rows and rows[0][0])

    async def add_link(
        self, owner: str, label: str, token_hash: str, created_ns: int, expires_ns: int | None,
        activity_id: int | None = None,
    ) -> LinkRecord:
        values = {
            "owner": owner, "label": label, "token_hash": token_hash, "created_ns": created_ns, "expires_ns": expires_ns,
            "activity_id": activity_id,
        }  # fmt: skip
        return LinkRecord(*await self._add_labelled_secret("links", _LINK_COLUMNS, values, LinkLabelTaken(label)))

    async def _add_labelled_secret(
        self, table: str, columns: str, values: dict[str, Any], label_taken: Exception
    ) -> sqlite3.Row:
        """Insert a row of `links` or `device_tokens` (owner, label, token_hash, ...); the new row's `columns`.

        A unique-constraint failure is the label in use, unless the owner does not exist.
        """
        try:
            await self._change(
                f"INSERT INTO {table} ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})", tuple(values.values())
            )
        except sqlite3.IntegrityError:
            if await self.get_user(values["owner"]) is None:
                raise UnknownUser(values["owner"]) from None
            raise label_taken from None
        rows = await self._fetchall(f"SELECT {columns} FROM {table} WHERE token_hash = ?", (values["token_hash"],))
        return rows[0]

    async def list_links(self, owner: str) -> list[LinkRecord]:
        rows = await self._fetchall(f"SELECT {_LINK_COLUMNS} FROM links WHERE owner = ? ORDER BY id", (owner,))
        return [LinkRecord(*row) for row in rows]

    async def link_by_token_hash(self, token_hash: str) -> LinkRecord | None:
        rows = await self._fetchall(f"SELECT {_LINK_COLUMNS} FROM links WHERE token_hash = ?", (token_hash,))
        return LinkRecord(*rows[0]) if rows else None

    async def revoke_link(
        self, owner: str, now_ns: int, *, link_id: int | None = None,
        token_hash: str | None = None, label: str | None = None,
    ) -> bool:
        """Revoke one not-yet-revoked link of `owner`, named by id, token hash or label."""
        return await self._revoke_one("links", owner, now_ns, link_id, token_hash, label)

    async def _revoke_one(
        self, table: str, owner: str, now_ns: int, row_id: int | None, token_hash: str | None, label: str | None
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
        changed = await self._change(
            f"UPDATE {table} SET revoked_ns = ? WHERE owner = ? AND {where} AND revoked_ns IS NULL", (now_ns, owner, key)
        )
        return bool(changed)

    async def revoke_activity_links(self, owner: str, activity_ids: Sequence[int], now_ns: int) -> int:
        """Revoke every active link of `owner` scoped to one of these activities; how many."""
        marks = ", ".join("?" * len(activity_ids))
        return await self._change(
            f"UPDATE links SET revoked_ns = ? WHERE owner = ? AND revoked_ns IS NULL AND activity_id IN ({marks})",
            (now_ns, owner, *activity_ids),
        )

    async def touch_link(self, link_id: int, now_ns: int) -> None:
        await self._change("UPDATE links SET last_used_ns = ? WHERE id = ?", (now_ns, link_id))

    async def add_session(
        self, token_hash: str, user: str, csrf: str, now_ns: int, expires_ns: int, user_agent: str | None
    ) -> None:
        # Expired sessions are cleared here: sign-ins are rare, so this keeps the table small for free.
        await self._change("DELETE FROM sessions WHERE expires_ns <= ?", (now_ns,))
        try:
            await self._change(
                "INSERT INTO sessions (token_hash, user, csrf, created_ns, expires_ns, last_used_ns, user_agent) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (token_hash, user, csrf, now_ns, expires_ns, now_ns, user_agent),
            )
        except sqlite3.IntegrityError:
            raise UnknownUser(user) from None

    async def get_session(self, token_hash: str) -> SessionRecord | None:
        rows = await self._fetchall(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE token_hash = ?", (token_hash,))
        return SessionRecord(*rows[0]) if rows else None

    async def list_sessions(self, user: str, now_ns: int) -> list[SessionRecord]:
        """The user's sessions that have not expired, oldest first."""
        rows = await self._fetchall(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE user = ? AND expires_ns > ? ORDER BY created_ns, token_hash",
            (user, now_ns),
        )
        return [SessionRecord(*row) for row in rows]

    async def delete_session(self, token_hash: str) -> None:
        await self._change("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))

    async def end_sessions(self, user: str, keep_token_hash: str | None, now_ns: int) -> int:
        """End every session of `user` but the one with `keep_token_hash` (None: all); how many live ones ended."""
        return (await self._change_all(_end_sessions_sql(user, keep_token_hash, now_ns)))[1]

    async def touch_session(self, token_hash: str, now_ns: int) -> None:
        """Note a session's use: bookkeeping, so it neither reloads snapshots nor makes streams re-check."""
        with _refused_as_unavailable(self.path, "the session's last use was not saved"):
            await self._note("UPDATE sessions SET last_used_ns = ? WHERE token_hash = ?", [(now_ns, token_hash)])

    async def set_retention(self, name: str, retention_ns: int | None) -> None:
        """The user's own retention in ns (0 = keep everything), or None to follow the server's default."""
        if retention_ns is not None and retention_ns < 0:
            raise ValueError("a retention cannot be negative")
        if not await self._change("UPDATE users SET retention_ns = ? WHERE name = ?", (retention_ns, name)):
            raise UnknownUser(name)

    async def retention_overrides(self) -> dict[str, int]:
        """{user: retention ns} for the users who have a retention of their own."""
        rows = await self._fetchall("SELECT name, retention_ns FROM users WHERE retention_ns IS NOT NULL")
        return {name: retention_ns for name, retention_ns in rows}

    async def add_device_token(
        self, owner: str, label: str, token_hash: str, speed_unit: str, created_ns: int
    ) -> DeviceTokenRecord:
        values = {"owner": owner, "label": label, "token_hash": token_hash, "speed_unit": speed_unit, "created_ns": created_ns}
        row = await self._add_labelled_secret("device_tokens", _TOKEN_COLUMNS, values, TokenLabelTaken(label))
        return DeviceTokenRecord(*row)

    async def list_device_tokens(self, owner: str) -> list[DeviceTokenRecord]:
        rows = await self._fetchall(f"SELECT {_TOKEN_COLUMNS} FROM device_tokens WHERE owner = ? ORDER BY id", (owner,))
        return [DeviceTokenRecord(*row) for row in rows]

    async def active_device_tokens(self) -> list[DeviceTokenRecord]:
        rows = await self._fetchall(f"SELECT {_TOKEN_COLUMNS} FROM device_tokens WHERE revoked_ns IS NULL")
        return [DeviceTokenRecord(*row) for row in rows]

    async def revoke_device_token(
        self, owner: str, now_ns: int, *, token_id: int | None = None,
        token_hash: str | None = None, label: str | None = None,
    ) -> bool:  # fmt: skip
        """Revoke one not-yet-revoked token of `owner`, named by id, token hash or label."""
        return await self._revoke_one("device_tokens", owner, now_ns, token_id, token_hash, label)

    async def record_token_use(self, uses: Sequence[tuple[int, int | None, int | None]]) -> None:
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
        await self._note(sql, uses)

    async def set_alert(
        self, owner: str, device: str, quiet_seconds: float, webhook_url: str, now_ns: int
    ) -> AlertRecord:
        """Create the owner's alert for `device`, or change its quiet time and webhook (its state stays;
        the last delivery's outcome goes, it was about the old settings)."""
        try:
            await self._change(
                "INSERT INTO alerts (owner, device, quiet_seconds, webhook_url, created_ns) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (owner, device) DO UPDATE SET quiet_seconds = excluded.quiet_seconds, "
                "webhook_url = excluded.webhook_url, delivery_kind = NULL, delivery_ns = NULL, "
                "delivery_state = NULL, delivery_status = NULL, delivery_error = NULL, delivery_attempts = NULL",
                (owner, device, quiet_seconds, webhook_url, now_ns),
            )
        except sqlite3.IntegrityError:  # the foreign key: no such user
            raise UnknownUser(owner) from None
        rows = await self._fetchall(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE owner = ? AND device = ?", (owner, device)
        )
        return AlertRecord(*rows[0])

    async def list_alerts(self, owner: str | None = None) -> list[AlertRecord]:
        if owner is None:
            rows = await self._fetchall(f"SELECT {_ALERT_COLUMNS} FROM alerts ORDER BY owner, device")
        else:
            rows = await self._fetchall(
                f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE owner = ? ORDER BY device", (owner,)
            )
        return [AlertRecord(*row) for row in rows]

    async def remove_alert(self, owner: str, device: str) -> bool:
        return bool(await self._change("DELETE FROM alerts WHERE owner = ? AND device = ?", (owner, device)))

    async def set_alert_fired(self, alert_id: int, fired_ns: int | None) -> None:
        await self._note("UPDATE alerts SET fired_ns = ? WHERE id = ?", [(fired_ns, alert_id)])

    async def record_alert_delivery(
        self, alert_id: int, kind: str, at_ns: int, state: str,
        status: int | None, error_text: str | None, attempts: int,
    ) -> None:  # fmt: skip
        await self._note(
            "UPDATE alerts SET delivery_kind = ?, delivery_ns = ?, delivery_state = ?, delivery_status = ?, "
            "delivery_error = ?, delivery_attempts = ? WHERE id = ?",
            [(kind, at_ns, state, status, error_text, attempts, alert_id)],
        )

    async def close(self) -> None:
        async with self._lock:
            await self._conn.close()

