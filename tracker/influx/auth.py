"""Who is asking: credentials in InfluxDB 1.x's order of precedence, checked against the accounts.

Authentication identifies the user here; each view decides what that user may do.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from aiohttp import web

from tracker.accounts import Accounts
from tracker.influx.errors import InfluxError


@dataclass(frozen=True, slots=True)
class Credentials:
    user: str
    password: str


def credentials_from(request: web.Request) -> Credentials | None:
    """u/p query parameters, then `Authorization: Token user:password`, then Basic; None if nothing usable.

    A Bearer token (InfluxDB's JWT) is refused outright: Tracker has no shared secret to check it with.
    """
    query = request.rel_url.query
    user, password = query.get("u", ""), query.get("p", "")
    if user and password:
        return Credentials(user, password)
    header = request.headers.get("Authorization", "")
    if not header.isascii() and _has_surrogates(header):  # bytes that are not UTF-8: no usable credentials
        return None
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "bearer":
        raise InfluxError(401, "bearer auth disabled")
    if scheme == "token":
        user, sep, password = value.partition(":")
        return Credentials(user, password) if sep else None
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, password = decoded.partition(":")
        return Credentials(user, password) if sep else None
    return None


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


async def authenticate(request: web.Request, accounts: Accounts) -> str:
    """The authenticated user's name, or an InfluxError 401 with InfluxDB's wording."""
    credentials = credentials_from(request)
    if credentials is None:
        raise InfluxError(401, "unable to parse authentication credentials")
    if not credentials.user:
        raise InfluxError(401, "username required")
    if not await accounts.authenticate(credentials.user, credentials.password):
        raise InfluxError(401, "authorization failed")
    return credentials.user
