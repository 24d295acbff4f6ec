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

from tracker.storage import AccountStore, UnknownUser, UserExists, UserRecord

__all__ = [
    "USERNAME_RULE",
    "Accounts",
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


def validate_username(name: str) -> str:
    if not isinstance(name, str) or not _USERNAME_RE.match(name):
        raise InvalidUsername(f"invalid username {name!r}: use {USERNAME_RULE}")
    return name


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
