"""Users, password hashes, the verification cache and the authorization rules.

Authentication identifies a user; the views ask `can_write` / `can_read` to authorize.
All SQL lives in `tracker.storage.AccountStore`; this module decides what is allowed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Callable

from passlib.context import CryptContext
from passlib.exc import PasswordSizeError

from tracker import storage
from tracker.storage import AccountStore, LinkRecord, UnknownUser, UserExists, UserRecord

__all__ = [
    "USERNAME_RULE",
    "Accounts",
    "InvalidLink",
    "InvalidPassword",
    "InvalidShare",
    "InvalidUsername",
    "UnknownUser",
    "UserExists",
    "UserRecord",
    "default_password_context",
    "validate_username",
]

USERNAME_RULE = "1-64 characters from A-Z a-z 0-9 _ -"
# ASCII only and no dots: a name is also a file name (users/<name>.sqlite) and an InfluxDB database
# name, so '..', '/', NUL and Unicode look-alikes must never get through. \Z, not $, so "a\n" fails.
_USERNAME_RE = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")


class InvalidUsername(ValueError):
    pass


class InvalidPassword(ValueError):
    pass


class InvalidShare(ValueError):
    pass


def _new_link_token() -> str:
    """192 random bits, URL-safe, never starting with '-': the token is also typed as a CLI argument
    (`tracker link revoke NAME TOKEN`), where a leading '-' would read as an option."""
    while (token := secrets.token_urlsafe(24)).startswith("-"):
        pass
    return token


def validate_username(name: str) -> str:
    if not isinstance(name, str) or not _USERNAME_RE.match(name):
        raise InvalidUsername(f"invalid username {name!r}: use {USERNAME_RULE}")
    return name


class InvalidLink(ValueError):
    pass


LABEL_MAX = 100
LINK_USE_RESOLUTION_NS = 60 * 10**9
_DURATION_RE = re.compile(r"\A\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*\Z")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def validate_label(label: str) -> str:
    """A link label: any printable text (it is only ever shown as text), 1-100 characters."""
    label = label.strip()
    if not label or len(label) > LABEL_MAX:
        raise InvalidLink(f"a link label must be 1-{LABEL_MAX} characters")
    if any(not ch.isprintable() for ch in label):
        raise InvalidLink("a link label must not contain control characters")
    return label


def parse_duration(text: str) -> float:
    """'90s', '30m', '2h', '7d', '1w' -> seconds."""
    match = _DURATION_RE.match(text or "")
    if not match or float(match.group(1)) <= 0:
        raise InvalidLink(f"invalid duration {text!r}: use a number and s, m, h, d or w, e.g. 2h")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def token_digest(token: str) -> str:
    """How link and session tokens are stored: their SHA-256, never the token."""
    # A cookie that is not UTF-8 reaches us with surrogates (aiohttp's surrogateescape): it matches
    # no token, and must not raise on the way.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def default_password_context() -> CryptContext:
    # argon2id with passlib's defaults (64 MiB, 3 passes, 4 lanes): the strong scheme for real use.
    return CryptContext(schemes=["argon2"])


@dataclass(slots=True)
class _Snapshot:
    """What authentication and authorization need, as of one `data_version` of the accounts file."""

    hashes: dict[str, str] = field(default_factory=dict)  # name -> current password hash
    readable: dict[str, list[str]] = field(default_factory=dict)  # viewer -> owners who share with them


@dataclass(frozen=True, slots=True)
class _Verified:
    password_digest: bytes  # keyed HMAC-SHA256 of the password, never the password itself
    password_hash: str  # the stored hash it was verified against
    expires_at: float  # clock() time


class Accounts:
    def __init__(
        self,
        store: AccountStore,
        *,
        cache_seconds: float = 300.0,
        password_context: CryptContext | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._cache_seconds = cache_seconds
        # Tests pass a cheap argon2 context; production uses the strong default.
        self._context = password_context if password_context is not None else default_password_context()
        self._clock = clock
        # Per-process secret: the cache holds HMACs of passwords, useless to anyone reading memory dumps.
        self._digest_key = secrets.token_bytes(32)
        self._verified: dict[str, _Verified] = {}  # one entry per user: name -> last successful check
        self._dummy_hash: str | None = None

        self._snapshot = _Snapshot()
        self._snapshot_version: int | None = None  # None: never loaded
        self._snapshot_lock = asyncio.Lock()
        self._checks_started = 0
        self._fresh_as_of_check = 0  # number of the last check that completed successfully

    # ----- users -----

    async def add_user(self, name: str, password: str) -> None:
        validate_username(name)
        password_hash = await self._hash(password)
        try:
            await self._store.add_user(name, password_hash)
        except UserExists:
            raise UserExists(f"user {name!r} already exists") from None

    async def set_password(self, name: str, password: str) -> None:
        validate_username(name)
        password_hash = await self._hash(password)
        try:
            await self._store.set_password_hash(name, password_hash)
        except UnknownUser:
            raise UnknownUser(f"unknown user {name!r}") from None

    async def delete_user(self, name: str) -> None:
        """Removes the account and every share to or from it (not the sample file: see SampleStore)."""
        validate_username(name)
        try:
            await self._store.delete_user(name)
        except UnknownUser:
            raise UnknownUser(f"unknown user {name!r}") from None
        self._verified.pop(name, None)

    async def list_users(self) -> list[UserRecord]:
        return await self._store.list_users()

    async def get_user(self, name: str) -> UserRecord | None:
        return await self._store.get_user(name)

    async def user_exists(self, name: str) -> bool:
        return name in (await self._current()).hashes

    # ----- authentication -----

    async def authenticate(self, name: str, password: str) -> bool:
        stored_hash = (await self._current()).hashes.get(name)
        if stored_hash is None:
            # Unknown users cost a verify too, so response time does not reveal who exists.
            await self._verify(password, await self._dummy())
            return False

        digest = hmac.new(self._digest_key, password.encode("utf-8"), hashlib.sha256).digest()
        hit = self._verified.get(name)
        # A hit counts only against the hash stored *now*: a changed password voids it at once.
        if (
            hit is not None
            and hit.password_hash == stored_hash
            and self._clock() < hit.expires_at
            and hmac.compare_digest(hit.password_digest, digest)
        ):
            return True

        if not await self._verify(password, stored_hash):
            return False  # failures are never cached
        if self._cache_seconds > 0:
            self._verified[name] = _Verified(digest, stored_hash, self._clock() + self._cache_seconds)
        return True

    # ----- authorization -----

    async def can_write(self, user: str, db: str) -> bool:
        return user == db

    async def can_read(self, user: str, db: str) -> bool:
        return user == db or db in (await self._current()).readable.get(user, ())

    async def readable_databases(self, user: str) -> list[str]:
        """Own database first, then those shared with the user, sorted."""
        snapshot = await self._current()
        own = [user] if user in snapshot.hashes else []
        return own + snapshot.readable.get(user, [])

    # ----- shares -----

    async def add_share(self, owner: str, viewer: str) -> None:
        """Lets `viewer` read `owner`'s database. Adding an existing share changes nothing."""
        validate_username(owner)
        validate_username(viewer)
        if owner == viewer:
            raise InvalidShare(f"{owner!r} can already read their own data")
        for name in (owner, viewer):
            if await self._store.get_user(name) is None:
                raise UnknownUser(f"unknown user {name!r}")
        await self._store.add_share(owner, viewer)

    async def remove_share(self, owner: str, viewer: str) -> bool:
        """Returns False if there was no such share."""
        validate_username(owner)
        validate_username(viewer)
        return await self._store.remove_share(owner, viewer)

    async def list_shares(self, owner: str | None = None) -> list[tuple[str, str]]:
        if owner is not None:
            validate_username(owner)
        return await self._store.list_shares(owner)

    # ----- the live view: public profiles, share links, web sessions, and who may watch -----

    async def set_public(self, name: str, public: bool) -> None:
        validate_username(name)
        try:
            await storage.set_public(self._store, name, public)
        except UnknownUser:
            raise UnknownUser(f"unknown user {name!r}") from None

    async def is_public(self, name: str) -> bool:
        return await storage.is_public(self._store, name)

    async def create_link(
        self, owner: str, label: str | None = None, expires_in_seconds: float | None = None
    ) -> tuple[str, LinkRecord]:
        """A new share link: (the token, shown only now, stored only hashed; its record)."""
        validate_username(owner)
        now_ns = time.time_ns()
        if label is None or not label.strip():
            # The date says when; the random suffix keeps two links made in one second apart.
            label = "link " + time.strftime("%Y-%m-%d", time.gmtime(now_ns / 1e9)) + " " + secrets.token_hex(3)
        label = validate_label(label)
        expires_ns = None
        if expires_in_seconds is not None:
            if expires_in_seconds <= 0:
                raise InvalidLink("the expiry must be in the future")
            expires_ns = now_ns + int(expires_in_seconds * 1e9)
        token = _new_link_token()
        try:
            record = await storage.add_link(self._store, owner, label, token_digest(token), now_ns, expires_ns)
        except UnknownUser:
            raise UnknownUser(f"unknown user {owner!r}") from None
        except storage.LinkLabelTaken:
            raise InvalidLink(f"{owner!r} already has a link labelled {label!r}") from None
        return token, record

    async def list_links(self, owner: str) -> list[LinkRecord]:
        validate_username(owner)
        return await storage.list_links(self._store, owner)

    async def revoke_link(self, owner: str, token_or_label: str | int) -> bool:
        """Revoke the owner's active link with this id (int), token, or label. False if none."""
        validate_username(owner)
        now_ns = time.time_ns()
        if isinstance(token_or_label, int):
            return await storage.revoke_link(self._store, owner, now_ns, link_id=token_or_label)
        if await storage.revoke_link(self._store, owner, now_ns, token_hash=token_digest(token_or_label)):
            return True
        return await storage.revoke_link(self._store, owner, now_ns, label=token_or_label)

    async def create_session(self, user: str, lifetime_seconds: float) -> tuple[str, str, int]:
        """(session token, its CSRF token, expiry ns); the session token is stored only hashed."""
        now_ns = time.time_ns()
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        expires_ns = now_ns + int(lifetime_seconds * 1e9)
        await storage.add_session(self._store, token_digest(token), user, csrf, now_ns, expires_ns)
        return token, csrf, expires_ns

    async def session(self, token: str) -> storage.SessionRecord | None:
        """The live session with this token, or None (unknown, expired, or its user deleted)."""
        if not token:
            return None
        record = await storage.get_session(self._store, token_digest(token))
        if record is None or record.expires_ns <= time.time_ns():
            return None
        return record

    async def end_session(self, token: str) -> None:
        if token:
            await storage.delete_session(self._store, token_digest(token))

    async def can_watch(self, owner: str, viewer: str | None, link_token: str | None) -> bool:
        """THE access rule of the watch page's data (JSON and event stream).

        The owner themselves; anyone if the owner's profile is public; a user the owner shares with;
        or anyone holding a valid (not revoked, not expired) share link of the owner.
        """
        if viewer is not None and (viewer == owner or await self.can_read(viewer, owner)):
            return await self.user_exists(owner)
        if await storage.is_public(self._store, owner):
            return True
        if not link_token:
            return False
        link = await storage.link_by_token_hash(self._store, token_digest(link_token))
        now_ns = time.time_ns()
        if link is None or link.owner != owner or link.revoked_ns is not None:
            return False
        if link.expires_ns is not None and link.expires_ns <= now_ns:
            return False
        # Last use to the minute: a write per viewer request would keep the accounts file busy.
        if link.last_used_ns is None or now_ns - link.last_used_ns >= LINK_USE_RESOLUTION_NS:
            await storage.touch_link(self._store, link.id, now_ns)
        return True

    async def data_version(self) -> int:
        """Changes whenever anything in the accounts file changed (this or another process)."""
        return await self._store.data_version()

    # ----- internals -----

    async def _hash(self, password: str) -> str:
        if not password:
            raise InvalidPassword("the password must not be empty")
        try:
            return await asyncio.to_thread(self._context.hash, password)
        except PasswordSizeError:
            raise InvalidPassword("the password is too long") from None

    async def _verify(self, password: str, password_hash: str) -> bool:
        try:
            return await asyncio.to_thread(self._context.verify, password, password_hash)
        except PasswordSizeError:
            return False  # an absurdly long password is simply wrong, not a server error

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            # Made with the same context, so verifying against it costs what a real verify costs.
            self._dummy_hash = await asyncio.to_thread(self._context.hash, secrets.token_urlsafe(16))
        return self._dummy_hash

    async def _current(self) -> _Snapshot:
        """The snapshot, reloaded if the accounts file changed since it was taken.

        `data_version` changes on every commit to the file, ours or another process's (the CLI while
        the server runs), so every call checks it. Concurrent callers share one check: a caller waits
        for the lock and then reuses the result of any check that *started after it arrived*, so it
        never sees data older than its own arrival, yet a burst of requests costs two checks at most.
        """
        arrived_after_check = self._checks_started
        async with self._snapshot_lock:
            if self._fresh_as_of_check > arrived_after_check:
                return self._snapshot
            self._checks_started += 1
            this_check = self._checks_started
            version = await self._store.data_version()
            if version != self._snapshot_version:
                self._snapshot = await self._load()
                self._snapshot_version = version
            self._fresh_as_of_check = this_check
            return self._snapshot

    async def _load(self) -> _Snapshot:
        # Read after data_version: a commit in between only causes one more (harmless) reload later.
        users = await self._store.list_users()
        shares = await self._store.list_shares(None)
        hashes = {user.name: user.password_hash for user in users}
        readable: dict[str, list[str]] = {}
        for owner, viewer in shares:
            readable.setdefault(viewer, []).append(owner)
        for owners in readable.values():
            owners.sort()
        return _Snapshot(hashes, readable)
