"""Sessions and CSRF: the session cookie, the double-submit token, who a request is signed in as (or
the refusal), and reading a request's form or JSON body or an integer query parameter.

Every state-changing request needs the CSRF token (double submit: the `tracker_csrf` cookie and the
same value in the `X-CSRF-Token` header or a `csrf` form field; for a signed-in user it must also
be the session's own token, and before sign-in a token this server signed that has not expired,
so a pair planted by whoever can set a cookie for the host does not pass).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from tracker import storage
from tracker.accounts import InvalidUsername, validate_username
from tracker.appkeys import ACCOUNTS, SETTINGS
from tracker.browser.errors import JSON, Refused
from tracker.http.auth import authenticate, credentials_from
from tracker.http.responses import InfluxError

SESSION_COOKIE = "tracker_session"
CSRF_COOKIE = "tracker_csrf"
CSRF_HEADER = "X-CSRF-Token"
# Lifetime of a pre-login CSRF token; a page is handed a new one once less than half of it is left,
# and the sign-in form fetches a current one as it is sent.
SIGN_IN_CSRF_SECONDS = 2 * 3600
CSRF_REFUSED = "missing or wrong CSRF token: reload the page and try again"


def set_cookie(
    request: web.Request, response: web.StreamResponse, name: str, value: str, *, httponly: bool,
    max_age: float | None = None,
) -> None:  # fmt: skip
    seconds = int(request.app[SETTINGS].session_seconds if max_age is None else max_age)
    response.set_cookie(
        name, value, max_age=seconds, path="/", httponly=httponly or None, samesite="Lax", secure=request.secure or None
    )


async def csrf_cookie(request: web.Request, response: web.StreamResponse, session: storage.SessionRecord | None) -> str:
    """The CSRF token the page must send, set as the `tracker_csrf` cookie unless the browser has it:
    the session's own, or before sign-in a server-signed one (kept while over half its life is left)."""
    current = request.cookies.get(CSRF_COOKIE, "")
    accounts = request.app[ACCOUNTS]
    if session is not None:
        token, max_age = session.csrf, None
    elif accounts.sign_in_csrf_left(current) > SIGN_IN_CSRF_SECONDS / 2:
        return current
    else:
        token, max_age = accounts.issue_sign_in_csrf(SIGN_IN_CSRF_SECONDS), SIGN_IN_CSRF_SECONDS
    if current != token:
        set_cookie(request, response, CSRF_COOKIE, token, httponly=False, max_age=max_age)
    return token


def csrf_ok(request: web.Request, session: storage.SessionRecord | None, form_value: Any = None) -> bool:
    supplied = request.headers.get(CSRF_HEADER) or (form_value if isinstance(form_value, str) else "")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    # surrogatepass: header bytes that are not UTF-8 arrive as surrogates; they must compare, not raise
    supplied_bytes, cookie_bytes = supplied.encode("utf-8", "surrogatepass"), cookie.encode("utf-8", "surrogatepass")
    if not supplied or not cookie or not hmac.compare_digest(supplied_bytes, cookie_bytes):
        return False
    if session is not None:
        return hmac.compare_digest(supplied_bytes, session.csrf.encode())
    # Before sign-in, cookie == field alone proves nothing: whoever can set a cookie for this host
    # (a sibling subdomain over http) can plant both. Only a token this server signed passes.
    return request.app[ACCOUNTS].sign_in_csrf_left(supplied) > 0


def require_csrf(request: web.Request, session: storage.SessionRecord | None, form_value: Any = None) -> None:
    """Refuses (403) a state-changing request without the right CSRF token."""
    if not csrf_ok(request, session, form_value):
        raise Refused(403, CSRF_REFUSED)


async def current_session(request: web.Request) -> storage.SessionRecord | None:
    token = request.cookies.get(SESSION_COOKIE, "")
    return await request.app[ACCOUNTS].session(token) if token else None


async def owner_session(request: web.Request, *, changes: bool) -> storage.SessionRecord:
    """The signed-in user's session; refused without one, and for `changes` without the CSRF token."""
    session = await current_session(request)
    if changes:
        # Checked first: a state-changing request without the token is refused whoever sends it.
        require_csrf(request, session)
    if session is None:
        raise Refused(401, "not signed in")
    return session


async def api_caller(request: web.Request, *, changes: bool) -> str:
    """Who calls an owner's JSON API (activities, courses, import, export): the credentials /query takes (any
    Authorization header is held to them, a Bearer token too), else the browser session (with the
    CSRF token for `changes`). Refusals in the browser's form."""
    try:
        if credentials_from(request) is not None or request.headers.get("Authorization"):
            return await authenticate(request, request.app[ACCOUNTS])
    except InfluxError as exc:
        raise Refused(exc.status, str(exc), exc.headers) from None
    session = await current_session(request)
    if session is None:  # an API's caller is told first that it needs credentials
        raise Refused(401, "not signed in: send credentials (Basic, u/p) or sign in")
    if changes:
        require_csrf(request, session)
    return session.user


async def api_owner(
    request: web.Request, caller: str, *, changes: bool, what: str, may_read: Callable[[str, str], Awaitable[bool]]
) -> str:
    """Whose `what` (activities, courses, samples) an owner's JSON API call is about: `?user=`, default
    the caller. Only the owner changes them; another caller reads them when `may_read(caller, owner)`."""
    owner = request.query.get("user") or caller
    if owner == caller:
        return owner
    try:
        validate_username(owner)
    except InvalidUsername:
        raise Refused(400, f"user must be a username, got {owner[:40]!r}") from None
    if changes:
        raise Refused(403, f"user: only {owner} may change their {what}")
    if not await may_read(caller, owner):
        raise Refused(403, f"user: {caller} may not read the {what} of {owner}")
    return owner


def path_id(request: web.Request, what: str) -> int:
    """The `{id}` of the path (an activity's, a course's): a positive integer SQLite holds, else a 400."""
    raw = request.match_info["id"]
    # isascii: "²" is a digit to isdigit(), not to int(); 18 digits stay below 2**63
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18 or int(raw) < 1:
        raise Refused(400, f"{what} id must be a positive integer, got {raw[:40]!r}")
    return int(raw)


def int_param(request: web.Request, name: str, default: int, low: int | None = None, high: int | None = None) -> int:
    """The integer query parameter `name` (`default` when absent or ""); a 400 naming it when it is not
    an integer, or outside low..high when those are given."""
    raw = request.query.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Refused(400, f"{name} must be an integer, got {raw[:40]!r}") from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise Refused(400, f"{name} must be between {low} and {high}, got {value}")
    return value


def wants_json(request: web.Request) -> bool:
    return request.content_type == JSON or JSON in request.headers.get("Accept", "")


async def form(request: web.Request) -> Any:
    """The form fields of the body; none when it is not a readable form (bad multipart, not UTF-8,
    a charset nobody knows: LookupError)."""
    try:
        return await request.post()
    except (ValueError, LookupError):
        return {}


async def json_body(request: web.Request) -> dict[str, Any] | None:
    # JSON is UTF-8 (RFC 8259): the bytes are parsed as sent, whatever charset the client declared.
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None
