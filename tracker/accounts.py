"""Users, password hashes, the verification cache and the authorization rules.

Authentication identifies a user; the views ask `can_write` / `can_read` to authorize.
All SQL lives in `tracker.storage.AccountStore`; this module decides what is allowed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

from passlib.context import CryptContext
from passlib.exc import PasswordSizeError

from tracker import rules, storage
from tracker.rules import USERNAME_RULE, InvalidDuration, is_username
from tracker.vocabulary import device_problem
from tracker.storage import (
    AccountStore,
    AlertRecord,
    DeviceTokenRecord,
    InviteRecord,
    LinkRecord,
    UnknownUser,
    UserExists,
    UserRecord,
)

log = logging.getLogger(__name__)

# How long after a check of the accounts file the same request may rely on it: see Accounts._current.
_SAME_REQUEST_SECONDS = 0.001

__all__ = [
    "USERNAME_RULE",
    "Accounts",
    "InvalidAlert",
    "InvalidDeviceToken",
    "InvalidLink",
    "InvalidPassword",
    "InvalidShare",
    "InvalidUsername",
    "MIN_PASSWORD_LENGTH",
    "UnknownUser",
    "UserExists",
    "UserRecord",
    "Writer",
    "check_new_password",
    "default_password_context",
    "validate_username",
]


class InvalidUsername(ValueError):
    pass


class InvalidPassword(ValueError):
    pass


MIN_PASSWORD_LENGTH = 8


def check_new_password(password: str) -> None:
    """The rule for a password a person chooses (`tracker user add|passwd`, the owner's page):
    InvalidPassword unless it has at least MIN_PASSWORD_LENGTH characters."""
    if not password:
        raise InvalidPassword("the password must not be empty")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidPassword(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")


class InvalidShare(ValueError):
    pass


class InvalidDeviceToken(ValueError):
    pass


class LabelTaken(ValueError):
    """A new link or device token names a label the owner already uses (a conflict, not bad input)."""


class InvalidSecretFile(ValueError):
    pass


# Recognisable at a glance (and by secret scanners); the '_' also means no token starts with '-'.
DEVICE_TOKEN_PREFIX = "trk_"
BEARER_TOKEN_PREFIX = "trkb_"
# The pre-login CSRF token of the sign-in form: signed like a bearer token, for this purpose only.
SIGN_IN_CSRF_PREFIX = "trkc_"
INVITE_CODE_PREFIX = "trki_"
SPEED_UNITS = ("knots", "mps", "kph")
BEARER_SECRET_FILE = "bearer-secret"


@dataclass(frozen=True, slots=True)
class Writer:
    """Who is writing: the account (device None) or one of its device tokens (device = its label)."""

    user: str
    device: str | None
    token_id: int | None
    speed_unit: str = "knots"  # how the token's sender spells speed where a protocol leaves it open


@dataclass(frozen=True, slots=True)
class WatchRight:
    """What lets someone watch a user: a sign-in (the owner, or a reader the owner shares with), a
    public profile, or a share link (its id). The live view's stream limits differ between them."""

    signed_in: bool
    link_id: int | None = None


def _link_ended(link: LinkRecord, now_ns: int) -> str | None:
    """Why a share link no longer opens its owner's view ("revoked", "expired"), or None: it does."""
    if link.revoked_ns is not None:
        return "revoked"
    if link.expires_ns is not None and link.expires_ns <= now_ns:
        return "expired"
    return None


def live_view_refusal(link: LinkRecord, now_ns: int) -> str | None:
    """Why a share link opens no live view (so no course is shown through it either), or None: it does.
    A link made for one activity never opens the live view."""
    if link.activity_id is not None:
        return f"opens activity {link.activity_id}, not the live view"
    ended = _link_ended(link, now_ns)
    return f"has ended ({ended})" if ended is not None else None


def _new_link_token() -> str:
    """192 random bits, URL-safe, never starting with '-': the token is also typed as a CLI argument
    (`tracker link revoke NAME TOKEN`), where a leading '-' would read as an option."""
    while (token := secrets.token_urlsafe(24)).startswith("-"):
        pass
    return token


def validate_username(name: str) -> str:
    if not is_username(name):
        raise InvalidUsername(f"invalid username {name!r}: use {USERNAME_RULE}")
    return name


# livetracking.io's rule for a name a person registers, inside ours (validate_username): 4-20
# characters, a letter first, stored lowercased; and names that must never belong to a stranger.
_REGISTERED_NAME = re.compile(r"\A[a-z][a-z0-9_-]{3,19}\Z")
RESERVED_NAMES = frozenset({"root", "public", "admin", "administrator", "livetracking"})


def registration_name(name: str) -> str:
    """The name POST /register stores for what a person typed (lowercased), or InvalidUsername."""
    lowered = name.lower()
    if not _REGISTERED_NAME.match(lowered) or lowered in RESERVED_NAMES:
        raise InvalidUsername(f"invalid username {name!r}: 4-20 characters from a-z 0-9 _ -, a letter first")
    return validate_username(lowered)


class InvalidLink(ValueError):
    pass


class LinkLabelTaken(InvalidLink, LabelTaken):
    pass


class TokenLabelTaken(InvalidDeviceToken, LabelTaken):
    pass


LABEL_MAX = 100
LINK_USE_RESOLUTION_NS = 60 * 10**9


def validate_label(label: str, noun: str = "link", error: type[ValueError] = InvalidLink) -> str:
    """A link's or device token's label: any printable text (only ever shown as text), 1-100 characters."""
    label = label.strip()
    if not label or len(label) > LABEL_MAX:
        raise error(f"a {noun} label must be 1-{LABEL_MAX} characters")
    if any(not ch.isprintable() for ch in label):
        raise error(f"a {noun} label must not contain control characters")
    return label


def parse_duration(text: str) -> float:
    """'90s', '30m', '2h', '7d', '1w', '1.5h' -> seconds (a positive duration, written as
    tracker.rules reads them; spaces do not count)."""
    try:
        ns = rules.parse_duration("".join((text or "").split()), fractions=True)
    except InvalidDuration:
        ns = 0
    if ns <= 0:
        raise InvalidLink(f"invalid duration {text!r}: use a number and s, m, h, d or w, e.g. 2h")
    return ns / 1e9


class InvalidAlert(ValueError):
    pass


WEBHOOK_URL_MAX = 2000
QUIET_MAX_SECONDS = 7 * 86400.0


def validate_device(device: str) -> str:
    """A device as named by the `device` tag (or a device token's label): the vocabulary's rule."""
    problem = device_problem(device)
    if problem is not None:
        raise InvalidAlert(f"a device name {problem}")
    return device


def validate_webhook_url(url: str) -> str:
    """An absolute http:// or https:// URL naming a host (it is POSTed to, never shown as HTML)."""
    url = url.strip()
    if not url or len(url) > WEBHOOK_URL_MAX or any(ch.isspace() or not ch.isprintable() for ch in url):
        raise InvalidAlert(f"a webhook URL must be 1-{WEBHOOK_URL_MAX} characters without spaces")
    try:
        parts = urlsplit(url)
        parts.port  # raises ValueError for a port that is not a number in range
    except ValueError:
        raise InvalidAlert(f"invalid webhook URL {url!r}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidAlert(f"a webhook URL must start with http:// or https://, got {url!r}")
    if not parts.hostname:
        raise InvalidAlert(f"a webhook URL must name a host, got {url!r}")
    return url


def parse_quiet_time(text: str, min_seconds: float) -> float:
    """'10m', '90s', '1h' -> seconds, between `min_seconds` and a week."""
    try:
        seconds = parse_duration(text)
    except InvalidLink:
        raise InvalidAlert(f"invalid quiet time {text!r}: use a number and s, m or h, e.g. 10m") from None
    if not min_seconds <= seconds <= QUIET_MAX_SECONDS:
        raise InvalidAlert(f"the quiet time must be between {min_seconds:g} s and 7 days, got {text!r}")
    return seconds


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
    retention: dict[str, int] = field(default_factory=dict)  # name -> own retention ns (0 = forever), if set
    tokens: dict[str, DeviceTokenRecord] = field(default_factory=dict)  # token hash -> active device token
    token_ids: dict[int, DeviceTokenRecord] = field(default_factory=dict)  # id -> active device token


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
        default_retention_ns: int = 0,
        bearer_secret: bytes | None = None,
    ) -> None:
        self._store = store
        # How long samples are kept for users without a retention of their own; 0 = forever.
        self.default_retention_ns = default_retention_ns
        self._cache_seconds = cache_seconds
        # Tests pass a cheap argon2 context; production uses the strong default.
        self._context = password_context if password_context is not None else default_password_context()
        self._clock = clock
        # Per-process secret: the cache holds HMACs of passwords, useless to anyone reading memory dumps.
        self._digest_key = secrets.token_bytes(32)
        self._verified: dict[str, _Verified] = {}  # one entry per user: name -> last successful check
        self._dummy_hash: str | None = None
        # Signs /auth bearer tokens and sign-in CSRF tokens; None (the CLI): neither issued nor accepted.
        self._signed = SignedTokens(bearer_secret) if bearer_secret is not None else None
        # Device token id -> (last used ns, newest sample ns) not yet written: see flush_token_use.
        self._token_use: dict[int, tuple[int | None, int | None]] = {}

        self._snapshot = _Snapshot()
        self._snapshot_version: int | None = None  # None: never loaded
        self._snapshot_lock = asyncio.Lock()
        self._checks_started = 0
        self._fresh_as_of_check = 0  # number of the last check that completed successfully
        # (the task that made the last check, own_commits then, time.monotonic() then): see _current
        self._last_check: tuple[asyncio.Task[Any] | None, int, float] | None = None

    # ----- users -----

    async def check_name_free(self, name: str) -> None:
        """UserExists if an account has this name, or one that differs from it only in case."""
        validate_username(name)
        # On a case-insensitive file system (macOS, Windows) users/Bob.sqlite *is* users/bob.sqlite.
        same = [other for other in (await self._current()).hashes if other.lower() == name.lower()]
        if same and same[0] != name:
            raise UserExists(f"user {same[0]!r} already exists (names may not differ only in case)")
        if same:
            raise UserExists(f"user {name!r} already exists")

    async def add_user(self, name: str, password: str) -> None:
        await self.check_name_free(name)
        password_hash = await self._hash(password)
        try:
            await self._store.add_user(name, password_hash)
        except UserExists:
            raise UserExists(f"user {name!r} already exists") from None

    async def add_user_with_invite(self, name: str, password: str, invite_code: str) -> bool:
        """Create the account if `invite_code` has a use left (and use it up); False if it has none."""
        await self.check_name_free(name)
        password_hash = await self._hash(password)
        try:
            return await self._store.add_user_with_invite(name, password_hash, token_digest(invite_code))
        except UserExists:
            raise UserExists(f"user {name!r} already exists") from None

    async def create_invite(self, uses: int = 1) -> tuple[str, InviteRecord]:
        """A new invite code for POST /register, good for `uses` accounts: (the code, shown only now; its record)."""
        if not 1 <= uses <= 1_000_000:
            raise ValueError("an invite is good for 1 to 1000000 accounts")
        code = INVITE_CODE_PREFIX + secrets.token_urlsafe(18)
        return code, await self._store.add_invite(token_digest(code), uses)

    async def list_invites(self) -> list[InviteRecord]:
        return await self._store.list_invites()

    async def revoke_invite(self, invite_id: int) -> bool:
        """Use up what is left of the invite; False if it had nothing left (or is unknown)."""
        return await self._store.revoke_invite(invite_id)

    async def set_password(self, name: str, password: str, *, keep_session: str | None = None) -> int:
        """Set NAME's password and end every web session of NAME but `keep_session` (the token of the
        session that made the change; None ends all). Returns how many sessions ended."""
        validate_username(name)
        password_hash = await self._hash(password)
        keep = token_digest(keep_session) if keep_session else None
        try:
            return await self._store.set_password_hash(name, password_hash, keep_session_hash=keep)
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

    async def user_id(self, name: str) -> int | None:
        """The account's number (livetracking.io's `id`), None if there is no such account."""
        return await self._store.user_id(name)

    async def user_exists(self, name: str) -> bool:
        return name in (await self._current()).hashes

    # ----- authentication -----

    async def authenticate(self, name: str, password: str) -> bool:
        """True if `password` is `name`'s. Unknown names and wrong passwords cost the same: one verify.

        (The dummy hash is made before the first check of any name, so even the first unknown
        name costs no more than a known one; a cached success costs none, but it says only what
        the success itself says.)
        """
        dummy_hash = await self._dummy()
        stored_hash = (await self._current()).hashes.get(name)
        if stored_hash is None:
            await self._verify(password, dummy_hash)
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
            # Kept while in use: a phone posting every second must not pay a full verify (~0.2 s of
            # CPU) every `cache_seconds`; an idle credential is forgotten after them.
            self._verified[name] = _Verified(digest, stored_hash, self._clock() + self._cache_seconds)
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
            await self._store.set_public(name, public)
        except UnknownUser:
            raise UnknownUser(f"unknown user {name!r}") from None

    async def is_public(self, name: str) -> bool:
        return await self._store.is_public(name)

    async def create_link(
        self, owner: str, label: str | None = None, expires_in_seconds: float | None = None,
        *, activity_id: int | None = None,
    ) -> tuple[str, LinkRecord]:
        """A new share link: (the token, shown only now, stored only hashed; its record). With
        `activity_id`, the link opens only that activity of the owner, never the live view."""
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
            record = await self._store.add_link(owner, label, token_digest(token), now_ns, expires_ns, activity_id)
        except UnknownUser:
            raise UnknownUser(f"unknown user {owner!r}") from None
        except storage.LinkLabelTaken:
            raise LinkLabelTaken(f"{owner!r} already has a link labelled {label!r}") from None
        return token, record

    async def list_links(self, owner: str) -> list[LinkRecord]:
        validate_username(owner)
        return await self._store.list_links(owner)

    async def revoke_link(self, owner: str, token_or_label: str | int) -> bool:
        """Revoke the owner's active link with this id (int), token, or label. False if none."""
        validate_username(owner)
        now_ns = time.time_ns()
        if isinstance(token_or_label, int):
            return await self._store.revoke_link(owner, now_ns, link_id=token_or_label)
        if await self._store.revoke_link(owner, now_ns, token_hash=token_digest(token_or_label)):
            return True
        return await self._store.revoke_link(owner, now_ns, label=token_or_label)

    async def create_session(
        self, user: str, lifetime_seconds: float, user_agent: str | None = None
    ) -> tuple[str, str, int]:
        """(session token, its CSRF token, expiry ns); the session token is stored only hashed."""
        now_ns = time.time_ns()
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        expires_ns = now_ns + int(lifetime_seconds * 1e9)
        agent = _clean_user_agent(user_agent)
        await self._store.add_session(token_digest(token), user, csrf, now_ns, expires_ns, agent)
        return token, csrf, expires_ns

    async def session(self, token: str) -> storage.SessionRecord | None:
        """The live session with this token, or None (unknown, expired, ended, or its user deleted).

        Read from the file on every call, never cached: a session ended by a password change (this
        process or the CLI) or by "sign out everywhere" is refused on the very next request.
        """
        if not token:
            return None
        record = await self._store.get_session(token_digest(token))
        now_ns = time.time_ns()
        if record is None or record.expires_ns <= now_ns:
            return None
        # Last use to the minute, as for share links: a write per request would keep the file busy.
        if record.last_used_ns is None or now_ns - record.last_used_ns >= LINK_USE_RESOLUTION_NS:
            try:
                await self._store.touch_session(record.token_hash, now_ns)
            except storage.StorageUnavailable:
                pass  # a full disk must not sign anyone out; "last used" is only a statistic
            record = replace(record, last_used_ns=now_ns)
        return record

    async def end_session(self, token: str) -> None:
        if token:
            await self._store.delete_session(token_digest(token))

    async def list_sessions(self, user: str) -> list[storage.SessionRecord]:
        """The user's live sessions, oldest first."""
        validate_username(user)
        return await self._store.list_sessions(user, time.time_ns())

    async def end_sessions(self, user: str, *, keep_session: str | None = None) -> int:
        """End every session of `user` but the one with token `keep_session` (None: all); how many ended."""
        validate_username(user)
        keep = token_digest(keep_session) if keep_session else None
        return await self._store.end_sessions(user, keep, time.time_ns())

    def issue_sign_in_csrf(self, lifetime_seconds: float) -> str:
        """A CSRF token for the sign-in form, signed with the server's key, that expires: a cookie and
        form field pair planted by someone else (a sibling subdomain can set cookies) is not one."""
        claims = {"x": int((time.time() + lifetime_seconds) * 1000), "n": secrets.token_urlsafe(12)}
        return self._signer().issue(SIGN_IN_CSRF_PREFIX, claims)

    def sign_in_csrf_left(self, token: str) -> float:
        """Seconds a genuine sign-in CSRF token of this server has left; 0 for expired ones and any other text."""
        claims = self._signed.claims(SIGN_IN_CSRF_PREFIX, token) if self._signed else None
        return 0.0 if claims is None else max(0.0, claims["x"] / 1000 - time.time())

    async def can_watch(self, owner: str, viewer: str | None, link_token: str | None) -> bool:
        """Whether `viewer` (signed in, or None) or the holder of `link_token` may watch `owner`."""
        return await self.watch_right(owner, viewer, link_token) is not None

    async def watch_right(self, owner: str, viewer: str | None, link_token: str | None) -> WatchRight | None:
        """THE access rule of the watch page's data (JSON and event stream), and what grants it.

        The owner themselves; a user the owner shares with; anyone if the owner's profile is public;
        or anyone holding a valid (not revoked, not expired) share link of the owner. None: no right.
        """
        if viewer is not None and (viewer == owner or await self.can_read(viewer, owner)):
            return WatchRight(signed_in=True) if await self.user_exists(owner) else None
        if await self._store.is_public(owner):
            return WatchRight(signed_in=False)
        if not link_token:
            return None
        link = await self._store.link_by_token_hash(token_digest(link_token))
        now_ns = time.time_ns()
        if link is None or link.owner != owner or live_view_refusal(link, now_ns) is not None:
            return None
        await self._touch_link(link, now_ns)
        return WatchRight(signed_in=False, link_id=link.id)

    async def _touch_link(self, link: LinkRecord, now_ns: int) -> None:
        # Last use to the minute: a write per viewer request would keep the accounts file busy.
        if link.last_used_ns is None or now_ns - link.last_used_ns >= LINK_USE_RESOLUTION_NS:
            try:
                await self._store.touch_link(link.id, now_ns)
            except storage.StorageUnavailable:
                pass  # a full disk must not stop anyone watching; "last used" is only a statistic

    async def ended_link(self, owner: str, link_token: str) -> str | None:
        """Why a real share link of `owner` no longer opens the view: "revoked" or "expired"; None for
        a link still valid, or a token that is no live-view link of theirs (nothing is told about those)."""
        link = await self._store.link_by_token_hash(token_digest(link_token))
        if link is None or link.owner != owner or link.activity_id is not None:
            return None
        return _link_ended(link, time.time_ns())

    async def revoke_activity_links(self, owner: str, activity_ids: Sequence[int]) -> int:
        """Revoke the owner's links to activities that are gone (deleted, merged into another): an id
        may be given to a new activity later, which the old link must not open."""
        validate_username(owner)
        if not activity_ids:
            return 0
        return await self._store.revoke_activity_links(owner, list(activity_ids), time.time_ns())

    async def activity_link(self, link_token: str) -> tuple[LinkRecord, str | None] | None:
        """The activity link with this token, and why it no longer opens its activity ("revoked",
        "expired") or None: it does. None for a token that is no activity link (a live-view link
        opens no activity). Its last use is noted while it is valid."""
        link = await self._store.link_by_token_hash(token_digest(link_token)) if link_token else None
        if link is None or link.activity_id is None:
            return None
        now_ns = time.time_ns()
        ended = _link_ended(link, now_ns)
        if ended is None:
            await self._touch_link(link, now_ns)
        return link, ended

    # ----- retention -----

    async def set_retention(self, name: str, retention_ns: int | None) -> None:
        """NAME's own retention in ns (0 = keep everything), or None to follow the server's default."""
        validate_username(name)
        try:
            await self._store.set_retention(name, retention_ns)
        except UnknownUser:
            raise UnknownUser(f"unknown user {name!r}") from None

    async def retention_overrides(self) -> dict[str, int]:
        """{user: own retention ns} for the users who have one (read from the file, for the CLI)."""
        return await self._store.retention_overrides()

    async def retention_ns(self, name: str) -> int:
        """How long NAME's samples are kept, in ns; 0 = forever. Follows CLI changes at once."""
        return (await self._current()).retention.get(name, self.default_retention_ns)

    async def retention_by_user(self) -> dict[str, int]:
        """Every user's retention in ns (0 = forever)."""
        snapshot = await self._current()
        return {name: snapshot.retention.get(name, self.default_retention_ns) for name in snapshot.hashes}

    # ----- gone-quiet alerts -----

    async def set_alert(
        self, owner: str, device: str | None, quiet_seconds: float, webhook_url: str
    ) -> AlertRecord:
        """Create or change the owner's alert (device None: any of the owner's devices)."""
        validate_username(owner)
        device = validate_device(device) if device is not None else ""
        webhook_url = validate_webhook_url(webhook_url)
        try:
            return await self._store.set_alert(owner, device, quiet_seconds, webhook_url, time.time_ns())
        except UnknownUser:
            raise UnknownUser(f"unknown user {owner!r}") from None

    async def list_alerts(self, owner: str | None = None) -> list[AlertRecord]:
        if owner is not None:
            validate_username(owner)
        return await self._store.list_alerts(owner)

    async def remove_alert(self, owner: str, device: str | None) -> bool:
        """False if the owner had no such alert."""
        validate_username(owner)
        return await self._store.remove_alert(owner, device or "")

    async def set_alert_fired(self, alert_id: int, fired_ns: int | None) -> None:
        await self._store.set_alert_fired(alert_id, fired_ns)

    async def record_alert_delivery(
        self, alert_id: int, kind: str, state: str, status: int | None, error_text: str | None, attempts: int
    ) -> None:
        await self._store.record_alert_delivery(
            alert_id, kind, time.time_ns(), state, status, error_text, attempts
        )

    async def data_version(self) -> int:
        """Changes whenever anything in the accounts file changed (this or another process).

        Bookkeeping (device tokens' last use) does not count: it decides nothing about access.
        """
        version = await self._store.data_version()
        if version != self._snapshot_version:
            self._last_check = None  # whoever saw the change gets answers from it at their next question
        return version

    # ----- device tokens, and the writers they and passwords authenticate -----

    async def create_token(self, owner: str, label: str, speed_unit: str = "knots") -> tuple[str, DeviceTokenRecord]:
        """A new device token: (the token, shown only now, stored only hashed; its record)."""
        validate_username(owner)
        label = validate_label(label, "device token", InvalidDeviceToken)
        if speed_unit not in SPEED_UNITS:
            raise InvalidDeviceToken(f"invalid speed unit {speed_unit!r}: use {', '.join(SPEED_UNITS)}")
        # The owner's name up front, before a '.': a proxy in front of several shards routes on it
        # without a database (see tracker.shard); the 256 random bits after it are the secret.
        token = f"{DEVICE_TOKEN_PREFIX}{owner}.{secrets.token_urlsafe(32)}"
        try:
            record = await self._store.add_device_token(
                owner, label, token_digest(token), speed_unit, time.time_ns()
            )
        except UnknownUser:
            raise UnknownUser(f"unknown user {owner!r}") from None
        except storage.TokenLabelTaken:
            raise TokenLabelTaken(f"{owner!r} already has a device token labelled {label!r}") from None
        return token, record

    async def list_tokens(self, owner: str) -> list[DeviceTokenRecord]:
        """The owner's device tokens, revoked ones too, with use not yet flushed to the file included."""
        validate_username(owner)
        records = await self._store.list_device_tokens(owner)
        return [self._with_pending_use(record) for record in records]

    async def revoke_token(self, owner: str, token_or_label: str | int) -> bool:
        """Revoke the owner's active device token with this id (int), token, or label. False if none."""
        validate_username(owner)
        now_ns = time.time_ns()
        if isinstance(token_or_label, int):
            return await self._store.revoke_device_token(owner, now_ns, token_id=token_or_label)
        if token_or_label.startswith(DEVICE_TOKEN_PREFIX) and await self._store.revoke_device_token(
            owner, now_ns, token_hash=token_digest(token_or_label)
        ):
            return True
        return await self._store.revoke_device_token(owner, now_ns, label=token_or_label)

    async def authenticate_writer(self, name: str | None, secret: str) -> Writer | None:
        """Who may write with this secret: a device token, an /auth bearer token, or `name`'s password.

        `name` may be None for a bare token; when given it must be the token's owner. Revocation, a
        deleted user or a changed password take effect on the next call (the snapshot follows the file).
        """
        writer: Writer | None = None
        if secret.startswith(DEVICE_TOKEN_PREFIX):
            record = (await self._current()).tokens.get(token_digest(secret))
            if record is not None:
                writer = Writer(record.owner, record.label, record.id, record.speed_unit)
        elif secret.startswith(BEARER_TOKEN_PREFIX):
            writer = self._bearer_writer(secret, await self._current())
        if writer is not None and name in (None, writer.user):
            if writer.token_id is not None:
                self._note_token_use(writer.token_id, used_ns=time.time_ns())
            return writer
        if name is None:
            return None
        return Writer(name, None, None) if await self.authenticate(name, secret) else None

    def note_token_samples(self, token_id: int, newest_ns: int) -> None:
        """Remember the newest sample time committed with a token (written by flush_token_use)."""
        self._note_token_use(token_id, sample_ns=newest_ns)

    async def flush_token_use(self) -> None:
        """Write the remembered last-used and last-sample times to the accounts file, in one transaction.

        Called every few seconds and at shutdown, so a phone posting every second does not write the
        accounts file every second. If the write fails, the times stay remembered for the next flush.
        """
        if not self._token_use:
            return
        pending, self._token_use = self._token_use, {}
        try:
            await self._store.record_token_use([(tid, used, sample) for tid, (used, sample) in pending.items()])
        except BaseException:
            for token_id, (used, sample) in pending.items():
                self._note_token_use(token_id, used, sample)
            raise

    async def issue_bearer(self, writer: Writer, lifetime_seconds: float) -> str:
        """A signed bearer token for `writer` that expires after `lifetime_seconds` (POST /auth).

        It carries the device token's id (void once that token is revoked) or, for a password, a keyed
        digest of the current password hash (void once the password changes). It names its owner in
        the clear, `trkb_OWNER.…`, so that a sharding proxy routes it (README "Running on more than one machine").
        """
        signer = self._signer()
        claims: dict[str, Any] = {"u": writer.user, "x": int((time.time() + lifetime_seconds) * 1000)}
        if writer.token_id is not None:
            claims["t"] = writer.token_id
        else:
            password_hash = (await self._current()).hashes.get(writer.user)
            if password_hash is None:
                raise UnknownUser(f"unknown user {writer.user!r}")
            claims["g"] = self._password_generation(password_hash)
        return signer.issue(BEARER_TOKEN_PREFIX, claims, owner=writer.user)

    def bearer_expired(self, secret: str) -> bool:
        """True for a genuine bearer token of this server whose time is up (to answer 'token expired')."""
        claims = self._bearer_claims(secret)
        return claims is not None and claims["x"] <= time.time() * 1000

    def _bearer_writer(self, secret: str, snapshot: _Snapshot) -> Writer | None:
        claims = self._bearer_claims(secret)
        if claims is None or claims["x"] <= time.time() * 1000:
            return None
        user, token_id = claims["u"], claims.get("t")
        if token_id is not None:
            record = snapshot.token_ids.get(token_id)
            if record is None or record.owner != user:
                return None
            return Writer(user, record.label, record.id, record.speed_unit)
        password_hash = snapshot.hashes.get(user)
        generation = claims.get("g")
        if password_hash is None or not isinstance(generation, str):
            return None
        if not hmac.compare_digest(generation.encode(), self._password_generation(password_hash).encode()):
            return None
        return Writer(user, None, None)

    def _bearer_claims(self, secret: str) -> dict[str, Any] | None:
        """The claims of a bearer token signed with our secret, expired or not; None if not genuine."""
        claims = self._signed.claims(BEARER_TOKEN_PREFIX, secret) if self._signed else None
        # Signed by us, so well formed; checked anyway, so a bug elsewhere can never become a 500.
        if claims is None or not isinstance(claims.get("u"), str):
            return None
        if "t" in claims and not isinstance(claims["t"], int):
            return None
        return claims

    def _signer(self) -> SignedTokens:
        if self._signed is None:
            raise RuntimeError("no server key: signed tokens are issued by the server only")
        return self._signed

    def _password_generation(self, password_hash: str) -> str:
        return _b64(self._signer().mac("password:", password_hash)[:12])

    def _note_token_use(self, token_id: int, used_ns: int | None = None, sample_ns: int | None = None) -> None:
        old_used, old_sample = self._token_use.get(token_id, (None, None))
        self._token_use[token_id] = (_later(old_used, used_ns), _later(old_sample, sample_ns))

    def _with_pending_use(self, record: DeviceTokenRecord) -> DeviceTokenRecord:
        used, sample = self._token_use.get(record.id, (None, None))
        if used is None and sample is None:
            return record
        return replace(
            record,
            last_used_ns=_later(record.last_used_ns, used),
            last_sample_ns=_later(record.last_sample_ns, sample),
        )

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
            self._dummy_hash = str(await asyncio.to_thread(self._context.hash, secrets.token_urlsafe(16)))
        return self._dummy_hash

    async def _current(self) -> _Snapshot:
        """The snapshot, reloaded if the accounts file changed since it was taken.

        `data_version` changes on every commit to the file, ours or another process's (the CLI while
        the server runs), so every call checks it, but for the questions one request asks in a row.
        Concurrent callers share one check: a caller waits for the lock and then reuses the result of
        any check that *started after it arrived*, so it never sees data older than its own arrival,
        yet a burst of requests costs two checks at most.
        """
        # One request asks several questions in a row (who is it, may it write, its retention): the
        # check made for its first question answers the ones it asks within the next millisecond.
        task = asyncio.current_task()
        last = self._last_check
        if (
            last is not None
            and last[0] is task
            and last[1] == self._store.own_commits
            and time.monotonic() - last[2] < _SAME_REQUEST_SECONDS
        ):
            return self._snapshot
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
            self._last_check = (task, self._store.own_commits, time.monotonic())
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
        active = await self._store.active_device_tokens()
        return _Snapshot(
            hashes,
            readable,
            retention=await self._store.retention_overrides(),
            tokens={t.token_hash: t for t in active},
            token_ids={t.id: t for t in active},
        )


class SignedTokens:
    """Tokens the server signs with its key (the data folder's bearer-secret): PREFIX, [OWNER '.'],
    claims, '.', HMAC.

    The prefix names the token's purpose and is part of what is signed, so a token made for one
    purpose (an /auth bearer token, say) never passes as another (a sign-in CSRF token). Every token
    carries its expiry `x` (ms since the epoch); `claims` answers for expired tokens too, so that
    callers can tell "expired" from "not ours". A token issued with an owner names it in the clear,
    before the claims (a proxy routes on it, as on a device token's `trk_OWNER.`); it is signed with
    the rest and must be the claims' `u`. Tokens without one (made before owners) still pass.
    """

    PREFIXES = (BEARER_TOKEN_PREFIX, SIGN_IN_CSRF_PREFIX)

    def __init__(self, key: bytes) -> None:
        self._key = key

    def mac(self, label: str, text: str) -> bytes:
        """HMAC-SHA256 of label + text under the server key (labels keep each use's inputs apart)."""
        return hmac.new(self._key, label.encode() + text.encode(), hashlib.sha256).digest()

    def issue(self, prefix: str, claims: dict[str, Any], *, owner: str | None = None) -> str:
        assert prefix in self.PREFIXES and isinstance(claims.get("x"), int)
        assert owner is None or (is_username(owner) and claims.get("u") == owner)
        signed = _b64(json.dumps(claims, separators=(",", ":")).encode())
        if owner is not None:
            signed = f"{owner}.{signed}"  # a username has no '.', base64url neither: the dots split it
        return f"{prefix}{signed}.{_b64(self.mac(prefix, signed))}"

    def claims(self, prefix: str, token: str) -> dict[str, Any] | None:
        """The claims of a token this server signed for `prefix`'s purpose, expired or not; else None."""
        # ASCII only: a header or cookie that is not UTF-8 arrives with surrogates, which match nothing.
        if not token.startswith(prefix) or not token.isascii():
            return None
        signed, dot, signature = token[len(prefix) :].rpartition(".")
        if not dot:
            return None
        # Compared as text: the one spelling we issue, so no other spelling of the same bytes passes.
        if not hmac.compare_digest(signature.encode(), _b64(self.mac(prefix, signed)).encode()):
            return None
        owner, _, payload = signed.rpartition(".")
        try:
            claims = json.loads(_unb64(payload))
        except (ValueError, binascii.Error):
            return None
        if not isinstance(claims, dict) or not isinstance(claims.get("x"), int):
            return None
        if "." in signed and claims.get("u") != owner:
            return None
        return claims


USER_AGENT_MAX = 200


def _clean_user_agent(user_agent: str | None) -> str | None:
    """What the browser called itself, printable and short: it is only ever shown, as text, to its owner."""
    if not user_agent:
        return None
    cleaned = "".join(ch if ch.isprintable() else " " for ch in user_agent).strip()
    return cleaned[:USER_AGENT_MAX] or None


def _later(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_bearer_secret(data_dir: Path) -> bytes:
    """The server's signing key (see SignedTokens: /auth bearer tokens, the sign-in form's CSRF tokens):
    made on first start, kept in the data folder (mode 0600).

    Kept across restarts, so tokens stay valid until they expire; deleting the file voids them all.
    """
    path = Path(data_dir) / BEARER_SECRET_FILE
    if not path.exists():
        # Written aside, then linked into place: a second process starting at once uses one key too.
        spare = path.with_name(f".{BEARER_SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_hex(32) + "\n")
                file.flush()
                os.fsync(file.fileno())
            try:
                os.link(spare, path)
            except FileExistsError:
                pass
        finally:
            spare.unlink()
    if path.stat().st_mode & 0o077:
        log.warning("%s was readable by others; making it private (0600)", path)
        os.chmod(path, 0o600)
    return read_bearer_secret(path)


def read_bearer_secret(path: Path) -> bytes:
    """The key in `path`; InvalidSecretFile (saying what to do) unless it holds one."""
    try:
        secret = bytes.fromhex(path.read_text("ascii").strip())
    except (ValueError, UnicodeDecodeError):
        secret = b""
    if len(secret) < 32:
        raise InvalidSecretFile(
            f"{path} is not a Tracker key (64 hex digits): delete it and a new one is made at the next start"
        )
    return secret
