"""Who is asking: credentials in InfluxDB 1.x's order of precedence, checked against the accounts.

Authentication identifies the user here; each view decides what that user may do. The read paths
(`authenticate`) take passwords only; the write paths (`authenticate_writer`) also take device tokens
and /auth bearer tokens, which can only ever write.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Awaitable, Callable

from aiohttp import web

from tracker.accounts import BEARER_TOKEN_PREFIX, DEVICE_TOKEN_PREFIX, Accounts, Writer
from tracker.appkeys import ACCOUNTS, BANS, SETTINGS
from tracker.bans import Banned
from tracker.http.body import read_unauthenticated_body
from tracker.http.responses import InfluxError, json_response


@dataclass(frozen=True, slots=True)
class Credentials:
    user: str  # "" for a bare token
    password: str  # a password or a token


def credentials_from(request: web.Request, *, tokens: bool = False) -> Credentials | None:
    """u/p query parameters, then `Authorization: Token user:password`, then Basic; None if nothing usable.

    A Bearer token (InfluxDB's JWT) is refused outright. With `tokens` (the write paths), one of
    Tracker's own tokens may also come bare: `Authorization: Bearer TOKEN`, `Authorization: Token TOKEN`
    (no colon) or `p=TOKEN` without `u`; anything else in those places is refused as before.
    """
    query = request.rel_url.query
    user, password = query.get("u", ""), query.get("p", "")
    if user and password:
        return Credentials(user, password)
    header = request.headers.get("Authorization", "")
    if not header.isascii() and _has_surrogates(header):  # bytes that are not UTF-8: no usable credentials
        return None
    if tokens and not header and _is_token(password):
        return Credentials("", password)
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "bearer":
        if not (tokens and _is_token(value)):
            raise InfluxError(401, "bearer auth disabled")
        return Credentials("", value)
    if scheme == "token":
        user, sep, password = value.partition(":")
        if not sep:
            return Credentials("", value) if tokens and _is_token(value) else None
        return Credentials(user, password)
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, password = decoded.partition(":")
        return Credentials(user, password) if sep else None
    return None


def _is_token(secret: str) -> bool:
    return secret.startswith((DEVICE_TOKEN_PREFIX, BEARER_TOKEN_PREFIX))


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


async def authenticate(request: web.Request, accounts: Accounts) -> str:
    """The authenticated user's name, or an InfluxError: 401 with InfluxDB's wording, 429 while banned."""
    credentials = credentials_from(request)
    if credentials is None:
        raise InfluxError(401, "unable to parse authentication credentials")
    if not credentials.user:
        raise InfluxError(401, "username required")
    if not await _counted(request, credentials.user, lambda: accounts.authenticate(credentials.user, credentials.password)):
        raise InfluxError(401, "authorization failed")
    return credentials.user


async def _counted(request: web.Request, user: str, check: Callable[[], Awaitable[bool]]) -> bool:
    """Run a credentials check through the failed sign-in counter of the client's address (429 while banned)."""
    try:
        return await request.app[BANS].verify(request.remote or "", user, check)
    except Banned as exc:
        raise InfluxError(429, str(exc), {"Retry-After": str(exc.retry_after)}) from None


async def authenticate_writer(request: web.Request, accounts: Accounts) -> Writer:
    """Who writes: an account password, a device token or an /auth bearer token; else a 401."""
    return await check_writer(request, accounts, credentials_from(request, tokens=True))


async def check_writer(request: web.Request, accounts: Accounts, credentials: Credentials | None) -> Writer:
    """THE check of a writer's credentials, wherever they came from (headers, query, /auth's JSON body).

    Counted like every password check: failures from one address lead to a ban (429).
    """
    if credentials is None:
        raise InfluxError(401, "unable to parse authentication credentials")
    found: list[Writer] = []

    async def check() -> bool:
        writer = await accounts.authenticate_writer(credentials.user or None, credentials.password)
        if writer is not None:
            found.append(writer)
        return writer is not None

    if await _counted(request, credentials.user, check):
        return found[0]
    if accounts.bearer_expired(credentials.password):
        raise InfluxError(401, "token expired")
    if not credentials.user and not _is_token(credentials.password):
        raise InfluxError(401, "username required")
    raise InfluxError(401, "authorization failed")


async def issue_bearer_token(request: web.Request) -> web.Response:
    """POST /auth: a signed bearer token that expires, for a password or a device token.

    Credentials as on /write (Basic, u/p, `Authorization: Token`), or a JSON body
    {"username": ..., "password": ...} (username optional with a device token). A bearer token cannot
    renew itself: its lifetime stays bounded by the password or device token behind it.
    """
    credentials = credentials_from(request, tokens=True)
    if credentials is None and request.body_exists:
        credentials = await _json_credentials(request)
    if credentials is not None and credentials.password.startswith(BEARER_TOKEN_PREFIX):
        raise InfluxError(401, "a bearer token cannot be renewed: use a password or a device token")
    accounts = request.app[ACCOUNTS]
    writer = await check_writer(request, accounts, credentials)
    lifetime = request.app[SETTINGS].bearer_token_seconds
    token = await accounts.issue_bearer(writer, lifetime)
    response = json_response({"token": token, "token_type": "Bearer", "expires_in": round(lifetime)})
    response.headers.update({"Cache-Control": "no-store", "Pragma": "no-cache"})
    return response


async def _json_credentials(request: web.Request) -> Credentials:
    try:
        body = json.loads(await read_unauthenticated_body(request))
    except ValueError:
        body = None
    username = (body.get("username") or "") if isinstance(body, dict) else None
    password = body.get("password") if isinstance(body, dict) else None
    if not isinstance(username, str) or not isinstance(password, str) or not password:
        raise InfluxError(400, 'expected a JSON object like {"username": "alice", "password": "..."}')
    return Credentials(username, password)
