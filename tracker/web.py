"""The browser side: pages, sign-in (sessions + CSRF), the watch page's JSON and event stream,
and the owner's sharing settings.

Pages are static files from `web/static/`; they never contain user input. Everything a user can
type (usernames, labels) reaches the browser only inside JSON, which the page renders as text.

Authorization is `Accounts.watch_right` for everything under /api/watch/ (the page itself is the
same file for everyone and leaks nothing); the owner endpoints need a session, and every
state-changing request needs the CSRF token (double submit: the `tracker_csrf` cookie and the
same value in the `X-CSRF-Token` header or a `csrf` form field; for a signed-in user it must also
be the session's own token, and before sign-in a token this server signed that has not expired,
so a pair planted by whoever can set a cookie for the host does not pass).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from tracker import storage, vocabulary
from tracker.accounts import (
    SPEED_UNITS,
    InvalidAlert,
    InvalidDeviceToken,
    InvalidLink,
    InvalidPassword,
    InvalidShare,
    InvalidUsername,
    UnknownUser,
    WatchRight,
    parse_duration,
    parse_quiet_time,
    token_digest,
    validate_username,
    validate_webhook_url,
)
from tracker.appkeys import ACCOUNTS, ALERTS, BANS, LIVE, SAMPLES, SETTINGS, WEBHOOKS
from tracker.bans import Banned, address_key
from tracker.http.responses import private_json_response as json_response
from tracker.live import HubClosed, TooManyStreams, Viewer

log = logging.getLogger(__name__)

# The repository's web/ folder: static pages, and the npm packages the Makefile installs.
WEB_DIR = Path(__file__).resolve().parent.parent / "web"
STATIC_DIR = WEB_DIR / "static"
# Only these npm packages' dist/ folders are served, under /vendor/<package>/.
VENDOR_DIRS = {"leaflet": WEB_DIR / "node_modules" / "leaflet" / "dist", "uplot": WEB_DIR / "node_modules" / "uplot" / "dist"}

SESSION_COOKIE = "tracker_session"
CSRF_COOKIE = "tracker_csrf"
CSRF_HEADER = "X-CSRF-Token"
JSON = "application/json"
DEFAULT_WINDOW_NS = 10 * 60 * 10**9
DEFAULT_MAX_POINTS = 2000
MAX_MAX_POINTS = 20_000
# A tracker counts as "live" on the landing page while its newest sample is this recent.
LIVE_WITHIN_NS = 2 * 60 * 10**9
# Lifetime of a pre-login CSRF token; a page is handed a new one once less than half of it is left,
# and the sign-in form fetches a current one as it is sent.
SIGN_IN_CSRF_SECONDS = 2 * 3600

# Pages load only their own scripts and styles (no inline script: user input can never run);
# map tiles may come from anywhere (the tile URL is a setting).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob: https: http:; connect-src 'self'; font-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # The page URL may carry a share token: never send it to the tile server.
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Cache-Control": "no-cache",
}
_SAFE_PATH = re.compile(r"\A[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*\Z")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/", index_page)
    r.add_get("/watch/{user}", watch_page)
    r.add_get("/static/{path:.+}", static_file)
    r.add_get("/vendor/{package}/{path:.+}", vendor_file)
    r.add_post("/login", login)
    r.add_post("/logout", logout)
    r.add_get("/api/me", me)
    r.add_get("/api/sessions", sessions_list)
    r.add_delete("/api/sessions", sessions_end)
    r.add_post("/api/password", password_change)
    r.add_get("/api/watch/{user}/config", watch_config)
    r.add_get("/api/watch/{user}/samples", watch_samples)
    r.add_get("/api/watch/{user}/events", watch_events)
    r.add_get("/api/watch/{user}/devices", watch_devices)
    r.add_get("/api/links", links_list)
    r.add_post("/api/links", links_create)
    r.add_delete("/api/links/{id}", links_revoke)
    r.add_get("/api/profile", profile_get)
    r.add_post("/api/profile", profile_set)
    r.add_get("/api/shares", shares_list)
    r.add_post("/api/shares", shares_add)
    r.add_delete("/api/shares", shares_remove)
    r.add_delete("/api/shares/{viewer}", shares_remove)
    r.add_get("/api/alerts", alerts_list)
    r.add_post("/api/alerts", alerts_set)
    r.add_delete("/api/alerts", alerts_remove)
    r.add_get("/api/tokens", tokens_list)
    r.add_post("/api/tokens", tokens_create)
    r.add_delete("/api/tokens/{id}", tokens_revoke)


# ----- small helpers -----


def error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return json_response({"error": message}, status, headers)


def _set_cookie(
    request: web.Request, response: web.StreamResponse, name: str, value: str, *, httponly: bool,
    max_age: float | None = None,
) -> None:  # fmt: skip
    seconds = int(request.app[SETTINGS].session_seconds if max_age is None else max_age)
    response.set_cookie(
        name, value, max_age=seconds, path="/", httponly=httponly or None, samesite="Lax", secure=request.secure or None
    )


async def _csrf_cookie(request: web.Request, response: web.StreamResponse, session: storage.SessionRecord | None) -> str:
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
        _set_cookie(request, response, CSRF_COOKIE, token, httponly=False, max_age=max_age)
    return token


def _csrf_ok(request: web.Request, session: storage.SessionRecord | None, form_value: Any = None) -> bool:
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


CSRF_REFUSED = "missing or wrong CSRF token: reload the page and try again"


async def _session(request: web.Request) -> storage.SessionRecord | None:
    token = request.cookies.get(SESSION_COOKIE, "")
    return await request.app[ACCOUNTS].session(token) if token else None


def _wants_json(request: web.Request) -> bool:
    return request.content_type == JSON or JSON in request.headers.get("Accept", "")


async def _form(request: web.Request) -> Any:
    """The form fields of the body; none when it is not a readable form (bad multipart, not UTF-8,
    a charset nobody knows: LookupError)."""
    try:
        return await request.post()
    except (ValueError, LookupError):
        return {}


async def _json_body(request: web.Request) -> dict[str, Any] | None:
    # JSON is UTF-8 (RFC 8259): the bytes are parsed as sent, whatever charset the client declared.
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


# ----- pages and files -----


def _file(path: Path, *, page: bool) -> web.StreamResponse:
    if not path.is_file():
        return web.Response(status=404, text="not found", content_type="text/plain")
    return web.FileResponse(path, headers=PAGE_HEADERS if page else {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


async def index_page(request: web.Request) -> web.StreamResponse:
    response = _file(STATIC_DIR / "index.html", page=True)
    await _csrf_cookie(request, response, await _session(request))
    return response


async def watch_page(request: web.Request) -> web.StreamResponse:
    name = request.match_info["user"]
    try:
        validate_username(name)
    except InvalidUsername:
        return web.Response(status=404, text="no such tracker", content_type="text/plain")
    if not await request.app[ACCOUNTS].user_exists(name):
        return web.Response(status=404, text="no such tracker", content_type="text/plain")
    response = _file(STATIC_DIR / "watch.html", page=True)
    await _csrf_cookie(request, response, await _session(request))
    return response


def _safe_file(base: Path, relative: str) -> Path | None:
    # Plain names only: no '..', no absolute paths, no backslashes or odd characters.
    if not _SAFE_PATH.match(relative) or any(part in (".", "..") for part in relative.split("/")):
        return None
    path = (base / relative).resolve()
    return path if path.is_relative_to(base.resolve()) else None


async def static_file(request: web.Request) -> web.StreamResponse:
    path = _safe_file(STATIC_DIR, request.match_info["path"])
    if path is None:
        return web.Response(status=404, text="not found", content_type="text/plain")
    return _file(path, page=path.suffix == ".html")


async def vendor_file(request: web.Request) -> web.StreamResponse:
    base = VENDOR_DIRS.get(request.match_info["package"])
    path = None if base is None else _safe_file(base, request.match_info["path"])
    if path is None:
        return web.Response(status=404, text="not found", content_type="text/plain")
    return _file(path, page=False)


# ----- signing in and out -----


async def login(request: web.Request) -> web.Response:
    """Form (username, password, csrf) or JSON ({"username", "password"} + X-CSRF-Token)."""
    as_json = _wants_json(request)
    if request.content_type == JSON:
        data: Any = await _json_body(request) or {}
    else:
        data = await _form(request)
    # Signed in already (signing in again, as someone else say): the session's own token.
    if not _csrf_ok(request, await _session(request), data.get("csrf")):
        return error(403, CSRF_REFUSED)
    # A genuine signed token can still be fetched and planted by an attacker; but browsers say where
    # a request comes from, and only this site's own page may sign a browser in (a sibling subdomain
    # is "same-site"). Clients that do not send the header (scripts, apps) are not browsers.
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return error(403, "sign-in is only possible from this site's own page")
    username, password = data.get("username"), data.get("password")
    accounts = request.app[ACCOUNTS]
    if not isinstance(username, str) or not isinstance(password, str):
        username = password = ""  # a missing field is a wrong one, checked (and counted) like any other
    try:
        # Any name, even one that could never exist, costs one hash check: timing tells no names apart.
        ok = await request.app[BANS].verify(
            request.remote or "", username, lambda: accounts.authenticate(username, password)
        )
    except Banned as exc:
        headers = {"Retry-After": str(exc.retry_after)}
        if as_json:
            return error(429, str(exc), headers)
        return web.Response(status=429, text=str(exc) + "\n", content_type="text/plain", headers=headers)
    if not ok:
        log.info("failed sign-in from %s", request.remote)
        return error(401, "wrong username or password") if as_json else _redirect("/?login=failed")
    # A fresh session (and CSRF token) on every sign-in: nothing chosen before it carries over.
    await accounts.end_session(request.cookies.get(SESSION_COOKIE, ""))
    user_agent = request.headers.get("User-Agent")
    token, csrf, _expires = await accounts.create_session(username, request.app[SETTINGS].session_seconds, user_agent)
    response = json_response({"user": username, "csrf": csrf}) if as_json else _redirect("/")
    _set_cookie(request, response, SESSION_COOKIE, token, httponly=True)
    _set_cookie(request, response, CSRF_COOKIE, csrf, httponly=False)
    return response


async def logout(request: web.Request) -> web.Response:
    session = await _session(request)
    form = await _form(request) if request.content_type != JSON else {}
    if not _csrf_ok(request, session, form.get("csrf")):
        return error(403, CSRF_REFUSED)
    await request.app[ACCOUNTS].end_session(request.cookies.get(SESSION_COOKIE, ""))
    response = json_response({"user": None}) if _wants_json(request) else _redirect("/")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def me(request: web.Request) -> web.Response:
    session = await _session(request)
    if session is None:
        response = error(401, "not signed in")
        csrf = await _csrf_cookie(request, response, None)
        response.body = orjson.dumps({"error": "not signed in", "csrf": csrf})
        return response
    accounts, samples = request.app[ACCOUNTS], request.app[SAMPLES]
    now = time.time_ns()
    trackers = []
    for name in await accounts.readable_databases(session.user):
        latest = await samples.latest(name)
        last = latest.time if latest is not None else None
        trackers.append({"user": name, "last_sample_ns": last, "live": last is not None and now - last < LIVE_WITHIN_NS})
    payload = {
        "user": session.user,
        "csrf": session.csrf,
        "public": await accounts.is_public(session.user),
        "trackers": trackers,
    }
    response = json_response(payload)
    await _csrf_cookie(request, response, session)
    return response


# ----- the watch page's data -----


async def _watch_access(request: web.Request) -> tuple[str, str, str | None, WatchRight] | web.Response:
    """(owner, session cookie, link token, what grants the right) if the request may watch the owner;
    else the refusal."""
    owner = request.match_info["user"]
    accounts = request.app[ACCOUNTS]
    try:
        validate_username(owner)
    except InvalidUsername:
        return error(404, f"no tracker {owner}")
    if not await accounts.user_exists(owner):
        return error(404, f"no tracker {owner}")
    session_token = request.cookies.get(SESSION_COOKIE, "")
    session = await accounts.session(session_token) if session_token else None
    link_token = request.query.get("token") or None
    right = await accounts.watch_right(owner, session.user if session else None, link_token)
    if right is not None:
        return owner, session_token, link_token, right
    if session is None and link_token is None:
        return error(401, f"sign in or use a share link to watch {owner}")
    return error(403, f"not allowed to watch {owner}")


async def _still_allowed(request: web.Request, owner: str, session_token: str, link_token: str | None) -> bool:
    accounts = request.app[ACCOUNTS]
    session = await accounts.session(session_token) if session_token else None
    return await accounts.can_watch(owner, session.user if session else None, link_token)


async def watch_config(request: web.Request) -> web.Response:
    access = await _watch_access(request)
    if isinstance(access, web.Response):
        return access
    settings = request.app[SETTINGS]
    return json_response(
        {
            "user": access[0],
            "tile_url": settings.tile_url,
            "tile_attribution": settings.tile_attribution,
            "fields": [{"key": f.key, "unit": f.unit, "meaning": f.meaning} for f in vocabulary.FIELDS],
        }
    )


def _int_param(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


async def watch_samples(request: web.Request) -> web.Response:
    access = await _watch_access(request)
    if isinstance(access, web.Response):
        return access
    owner = access[0]
    try:
        end = _int_param(request, "to", time.time_ns())
        start = _int_param(request, "from", end - DEFAULT_WINDOW_NS)
        max_points = _int_param(request, "max_points", DEFAULT_MAX_POINTS)
    except ValueError as exc:
        return error(400, str(exc))
    if start >= end:
        return error(400, "from must be before to")
    if not 1 <= max_points <= MAX_MAX_POINTS:
        return error(400, f"max_points must be 1..{MAX_MAX_POINTS}")
    # The hub position BEFORE the read: every event after it is either in this answer or will be
    # replayed from it; never neither (an overlap is possible, the page merges by time).
    position = request.app[LIVE].position(owner)
    downsampled, rows = await storage.window_samples(request.app[SAMPLES], owner, start, end, max_points)
    return json_response(
        {
            "from": start,
            "to": end,
            "downsampled": downsampled,
            "last_event_id": position,
            "samples": [{"t": t, "f": fields} for t, fields in rows],
        }
    )


async def watch_devices(request: web.Request) -> web.Response:
    """When each of the user's devices last sent a sample, newest first (device null: no device tag)."""
    access = await _watch_access(request)
    if isinstance(access, web.Response):
        return access
    seen = await request.app[ALERTS].last_seen(access[0])
    devices = sorted(seen.items(), key=lambda item: -item[1])
    return json_response({"devices": [{"device": device, "last_sample_ns": ns} for device, ns in devices]})


async def watch_events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: one `samples` event per committed write, `reset` when the page must refetch."""
    access = await _watch_access(request)
    if isinstance(access, web.Response):
        return access
    owner, session_token, link_token, right = access
    hub = request.app[LIVE]
    # The address as the sign-in bans see it (behind a trusted proxy, the client's).
    viewer = Viewer(signed_in=right.signed_in, address=address_key(request.remote or ""), link_id=right.link_id)
    # The browser sends Last-Event-ID on its own reconnects; the first connection passes the
    # window's last_event_id in the query (EventSource cannot set headers).
    last_event_id = request.headers.get("Last-Event-ID") or request.query.get("last_event_id") or None
    try:
        subscription, start_id = hub.subscribe(owner, last_event_id, viewer=viewer)
    except TooManyStreams as exc:
        return error(429, str(exc), {"Retry-After": "30"})
    except HubClosed:
        return error(503, "the server is shutting down")
    with subscription:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",  # a proxy must pass every event on at once
                "X-Content-Type-Options": "nosniff",
            }
        )
        try:
            await response.prepare(request)
            # Without a position from the page, the stream starts now: say where, so that a
            # reconnect before the first event still resumes without a gap. (Only our own id is echoed.)
            first = b"retry: 2000\n"
            if last_event_id is None:
                first += b"id: " + start_id.encode() + b"\n"
            await response.write(first + b"\n")
            await _pump(request, response, subscription, owner, session_token, link_token)
        except ConnectionResetError:
            pass  # the viewer went away
        return response


async def _pump(
    request: web.Request,
    response: web.StreamResponse,
    subscription: Any,
    owner: str,
    session_token: str,
    link_token: str | None,
) -> None:
    settings, accounts = request.app[SETTINGS], request.app[ACCOUNTS]
    loop = asyncio.get_running_loop()
    heartbeat, recheck = settings.live_heartbeat_seconds, settings.live_recheck_seconds
    next_ping = loop.time() + heartbeat
    next_check = loop.time() + recheck
    version = await accounts.data_version()
    while True:
        try:
            events = await subscription.next_events(max(0.0, min(next_ping, next_check) - loop.time()))
        except HubClosed:
            return
        now = loop.time()
        # Access is re-checked on a timer (expiry) and before each event whenever anything in the
        # accounts file changed (a revoked link, public off, a removed share): cheap when nothing did.
        current = await accounts.data_version() if events or now >= next_check else version
        if now >= next_check or current != version:
            if not await _still_allowed(request, owner, session_token, link_token):
                await response.write(b'event: denied\ndata: {"error": "access to this tracker has ended"}\n\n')
                return
            version, next_check = current, now + recheck
        if events:
            await response.write(b"".join(event.encode() for event in events))
            next_ping = now + heartbeat
        elif now >= next_ping:
            await response.write(b": ping\n\n")
            next_ping = now + heartbeat


# ----- the owner's sharing settings (session + CSRF) -----


async def _owner(request: web.Request, *, changes: bool) -> storage.SessionRecord | web.Response:
    session = await _session(request)
    if changes:
        # Checked first: a state-changing request without the token is refused whoever sends it.
        if not _csrf_ok(request, session):
            return error(403, CSRF_REFUSED)
    if session is None:
        return error(401, "not signed in")
    return session


def _link_json(link: storage.LinkRecord, now_ns: int) -> dict[str, Any]:
    return {
        "id": link.id,
        "label": link.label,
        "created_ns": link.created_ns,
        "expires_ns": link.expires_ns,
        "last_used_ns": link.last_used_ns,
        "revoked": link.revoked_ns is not None,
        "revoked_ns": link.revoked_ns,
        "expired": link.expires_ns is not None and link.expires_ns <= now_ns,
    }


def share_url(base: str, owner: str, token: str) -> str:
    return f"{base.rstrip('/')}/watch/{owner}?token={token}"


async def links_list(request: web.Request) -> web.Response:
    session = await _owner(request, changes=False)
    if isinstance(session, web.Response):
        return session
    now = time.time_ns()
    links = await request.app[ACCOUNTS].list_links(session.user)
    return json_response({"links": [_link_json(link, now) for link in links]})


async def links_create(request: web.Request) -> web.Response:
    session = await _owner(request, changes=True)
    if isinstance(session, web.Response):
        return session
    body = await _json_body(request)
    if body is None:
        return error(400, 'expected a JSON object like {"label": "for mum", "expires": "2h"}')
    label, expires = body.get("label"), body.get("expires")
    if label is not None and not isinstance(label, str) or expires is not None and not isinstance(expires, str):
        return error(400, "label and expires must be strings (or null)")
    try:
        seconds = parse_duration(expires) if expires else None
        token, link = await request.app[ACCOUNTS].create_link(session.user, label, seconds)
    except InvalidLink as exc:
        return error(409 if "already has" in str(exc) else 400, str(exc))
    settings = request.app[SETTINGS]
    base = settings.public_url or f"{request.scheme}://{request.host}"
    payload = {**_link_json(link, time.time_ns()), "token": token, "url": share_url(base, session.user, token)}
    return json_response(payload, 201)


async def links_revoke(request: web.Request) -> web.Response:
    session = await _owner(request, changes=True)
    if isinstance(session, web.Response):
        return session
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit()):  # "²" is a digit to isdigit(), not to int()
        return error(404, f"no active link {raw}")
    if not await request.app[ACCOUNTS].revoke_link(session.user, int(raw)):
        return error(404, f"no active link {raw}")
    return json_response({"revoked": int(raw)})


async def profile_get(request: web.Request) -> web.Response:
    session = await _owner(request, changes=False)
    if isinstance(session, web.Response):
        return session
    return json_response({"user": session.user, "public": await request.app[ACCOUNTS].is_public(session.user)})


async def profile_set(request: web.Request) -> web.Response:
    session = await _owner(request, changes=True)
    if isinstance(session, web.Response):
        return session
    body = await _json_body(request)
    if body is None or not isinstance(body.get("public"), bool):
        return error(400, 'expected {"public": true} or {"public": false}')
    await request.app[ACCOUNTS].set_public(session.user, body["public"])
    return json_response({"user": session.user, "public": body["public"]})


async def _viewers(request: web.Request, owner: str) -> web.Response:
    shares = await request.app[ACCOUNTS].list_shares(owner)
    return json_response({"viewers": [viewer for _, viewer in shares]})


async def shares_list(request: web.Request) -> web.Response:
    session = await _owner(request, changes=False)
    if isinstance(session, web.Response):
        return session
    return await _viewers(request, session.user)


async def shares_add(request: web.Request) -> web.Response:
    session = await _owner(request, changes=True)
    if isinstance(session, web.Response):
        return session
    body = await _json_body(request)
    viewer = body.get("viewer") if body else None
    if not isinstance(viewer, str):
        return error(400, 'expected {"viewer": "USERNAME"}')
    try:
        await request.app[ACCOUNTS].add_share(session.user, viewer)
    except (InvalidUsername, InvalidShare) as exc:
        return error(400, str(exc))
    except UnknownUser:
        return error(404, f"no user {viewer}")
    return await _viewers(request, session.user)


async def shares_remove(request: web.Request) -> web.Response:
    session = await _owner(request, changes=True)
    if isinstance(session, web.Response):
        return session
    viewer = request.match_info.get("viewer")
    if viewer is None:
        body = await _json_body(request)
        viewer = body.get("viewer") if body else None
    if not isinstance(viewer, str):
        return error(400, 'expected {"viewer": "USERNAME"}')
    try:
        removed = await request.app[ACCOUNTS].remove_share(session.user, viewer)
    except InvalidUsername as exc:
        return error(400, str(exc))
    if not removed:
        return error(404, f"{viewer} cannot read {session.user}: no such share")
    return await _viewers(request, session.user)


# ----- the owner's sessions and password (session + CSRF) -----


def _session_json(record: storage.SessionRecord, current_hash: str) -> dict[str, Any]:
    # Never the token or its hash: the page needs only to tell the sessions apart by their times.
    return {
        "created_ns": record.created_ns,
        "expires_ns": record.expires_ns,
        "last_used_ns": record.last_used_ns,
        "user_agent": record.user_agent,
        "current": hmac.compare_digest(record.token_hash, current_hash),
    }


async def _sessions_of(request: web.Request, user: str, extra: dict[str, Any] | None = None) -> web.Response:
    current_hash = token_digest(request.cookies.get(SESSION_COOKIE, ""))
    sessions = await request.app[ACCOUNTS].list_sessions(user)
    return json_response({**(extra or {}), "sessions": [_session_json(record, current_hash) for record in sessions]})


async def sessions_list(request: web.Request) -> web.Response:
    session = await _owner(request, changes=False)
    if isinstance(session, web.Response):
        return session
    return await _sessions_of(request, session.user)


async def sessions_end(request: web.Request) -> web.Response:
    """Sign out everywhere else (this session stays), or with ?all=true everywhere, this browser too."""
    session = await _owner(request, changes=True)
    if isinstance(session, web.Response):
        return session
    everywhere = request.query.get("all", "false")
    if everywhere not in ("true", "false"):
        return error(400, f"all must be true or false, got {everywhere!r}")
    current = request.cookies.get(SESSION_COOKIE, "")
    keep = None if everywhere == "true" else current
    ended = await request.app[ACCOUNTS].end_sessions(session.user, keep_session=keep)
    response = await _sessions_of(request, session.user, {"ended": ended})
    if keep is None:
        response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def password_change(request: web.Request) -> web.Response:
    """{"current": "...", "new": "..."}: a new password; every other session of the user ends."""
    session = await _owner(request, changes=True)
    if isinstance(session, web.Response):
        return session
    body = await _json_body(request)
    current, new = (body.get("current"), body.get("new")) if body else (None, None)
    if not isinstance(current, str) or not isinstance(new, str):
        return error(400, 'expected a JSON object like {"current": "old password", "new": "new password"}')
    accounts, user = request.app[ACCOUNTS], session.user
    try:
        # Counted like a sign-in: a stolen session must not become a way to guess the password.
        ok = await request.app[BANS].verify(request.remote or "", user, lambda: accounts.authenticate(user, current))
    except Banned as exc:
        return error(429, str(exc), {"Retry-After": str(exc.retry_after)})
    if not ok:
        return error(403, "the current password is wrong")
    try:
        ended = await accounts.set_password(user, new, keep_session=request.cookies.get(SESSION_COOKIE, ""))
    except InvalidPassword as exc:
        return error(400, str(exc))
    return json_response({"user": user, "ended": ended})


# ----- the owner's device tokens (session + CSRF) -----


def _token_json(token: storage.DeviceTokenRecord) -> dict[str, Any]:
    return {
        "id": token.id,
        "label": token.label,
        "speed_unit": token.speed_unit,
        "created_ns": token.created_ns,
        "last_used_ns": token.last_used_ns,
        "last_sample_ns": token.last_sample_ns,
        "revoked": token.revoked_ns is not None,
        "revoked_ns": token.revoked_ns,
    }


async def tokens_list(request: web.Request) -> web.Response:
    session = await _owner(request, changes=False)
    if isinstance(session, web.Response):
        return session
    tokens = await request.app[ACCOUNTS].list_tokens(session.user)
    return json_response({"tokens": [_token_json(token) for token in tokens], "speed_units": list(SPEED_UNITS)})


async def tokens_create(request: web.Request) -> web.Response:
    session = await _owner(request, changes=True)
    if isinstance(session, web.Response):
        return session
    body = await _json_body(request)
    label, speed_unit = (body.get("label"), body.get("speed_unit") or "knots") if body else (None, None)
    if not isinstance(label, str) or not isinstance(speed_unit, str):
        return error(400, 'expected a JSON object like {"label": "garmin-phone", "speed_unit": "knots"}')
    try:
        token, record = await request.app[ACCOUNTS].create_token(session.user, label, speed_unit)
    except InvalidDeviceToken as exc:
        return error(409 if "already has" in str(exc) else 400, str(exc))
    # The token is in this answer only: it is stored as a hash.
    return json_response({**_token_json(record), "token": token}, 201)


async def tokens_revoke(request: web.Request) -> web.Response:
    session = await _owner(request, changes=True)
    if isinstance(session, web.Response):
        return session
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit()) or not await request.app[ACCOUNTS].revoke_token(session.user, int(raw)):
        return error(404, f"no active device token {raw}")
    return json_response({"revoked": int(raw)})


# ----- the owner's gone-quiet alerts (session + CSRF) -----


def _alert_json(request: web.Request, alert: storage.AlertRecord) -> dict[str, Any]:
    delivery = None
    if alert.delivery_state is not None:
        delivery = {
            "kind": alert.delivery_kind,
            "state": alert.delivery_state,
            "at_ns": alert.delivery_ns,
            "status": alert.delivery_status,
            "error": alert.delivery_error,
            "attempts": alert.delivery_attempts,
        }
    return {
        "id": alert.id,
        "device": alert.device or None,
        "after_seconds": alert.quiet_seconds,
        "webhook": alert.webhook_url,
        "created_ns": alert.created_ns,
        **request.app[ALERTS].state(alert.owner, alert.device),
        "delivery": delivery,
    }


async def _alerts_of(request: web.Request, owner: str, status: int = 200) -> web.Response:
    alerts = await request.app[ACCOUNTS].list_alerts(owner)
    return json_response(
        {
            "alerts": [_alert_json(request, alert) for alert in alerts],
            "min_after_seconds": request.app[SETTINGS].alert_min_quiet_seconds,
        },
        status,
    )


async def alerts_list(request: web.Request) -> web.Response:
    session = await _owner(request, changes=False)
    if isinstance(session, web.Response):
        return session
    await request.app[ALERTS].refresh()  # an alert just set with the CLI shows its state at once
    return await _alerts_of(request, session.user)


async def alerts_set(request: web.Request) -> web.Response:
    """{"after": "10m", "webhook": "https://...", "device": null | "LABEL"}: create or change one alert."""
    session = await _owner(request, changes=True)
    if isinstance(session, web.Response):
        return session
    body = await _json_body(request)
    if body is None:
        return error(400, 'expected a JSON object like {"after": "10m", "webhook": "https://...", "device": null}')
    after, webhook, device = body.get("after"), body.get("webhook"), body.get("device")
    if not isinstance(after, str) or not isinstance(webhook, str) or device is not None and not isinstance(device, str):
        return error(400, "after and webhook must be strings, device a string or null")
    settings = request.app[SETTINGS]
    try:
        seconds = parse_quiet_time(after, settings.alert_min_quiet_seconds)
        webhook = validate_webhook_url(webhook)
        # Deliveries check again on connecting; this tells the owner at once.
        await request.app[WEBHOOKS].check_url(webhook, timeout=settings.alert_timeout_seconds)
        await request.app[ACCOUNTS].set_alert(session.user, device or None, seconds, webhook)
    except InvalidAlert as exc:
        return error(400, str(exc))
    await request.app[ALERTS].reload()
    return await _alerts_of(request, session.user)


async def alerts_remove(request: web.Request) -> web.Response:
    """?device=LABEL removes that device's alert; without it, the alert for any device."""
    session = await _owner(request, changes=True)
    if isinstance(session, web.Response):
        return session
    device = request.query.get("device") or None
    if not await request.app[ACCOUNTS].remove_alert(session.user, device):
        return error(404, f"no alert for {'device ' + repr(device) if device else 'any device'}")
    await request.app[ALERTS].reload()
    return await _alerts_of(request, session.user)
