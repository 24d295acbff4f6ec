"""Signing in and out, who is signed in (/api/me), and the owner's sessions and password."""

from __future__ import annotations

import hmac
import logging
from typing import Any

import orjson
from aiohttp import web

from tracker import storage
from tracker.accounts import InvalidPassword, check_new_password, token_digest
from tracker.appkeys import ACCOUNTS, BANS, SAMPLES, SETTINGS
from tracker.bans import Banned
from tracker.browser.errors import JSON, Refused, json_response
from tracker.browser.session import (
    CSRF_COOKIE, SESSION_COOKIE, csrf_cookie, current_session, form, json_body, owner_session, require_csrf, set_cookie,
    wants_json,
)  # fmt: skip
from tracker.liveness import is_live, last_sample_ns

log = logging.getLogger(__name__)


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


async def login(request: web.Request) -> web.Response:
    """Form (username, password, csrf) or JSON ({"username", "password"} + X-CSRF-Token)."""
    as_json = wants_json(request)
    if request.content_type == JSON:
        data: Any = await json_body(request) or {}
    else:
        data = await form(request)
    # Signed in already (signing in again, as someone else say): the session's own token.
    require_csrf(request, await current_session(request), data.get("csrf"))
    # A genuine signed token can still be fetched and planted by an attacker; but browsers say where
    # a request comes from, and only this site's own page may sign a browser in (a sibling subdomain
    # is "same-site"). Clients that do not send the header (scripts, apps) are not browsers.
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        raise Refused(403, "sign-in is only possible from this site's own page")
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
        if as_json:
            raise Refused(429, str(exc), {"Retry-After": str(exc.retry_after)}) from None
        # The sign-in page says it, with the wait, in place of a bare text page with no way back.
        return _redirect(f"/?login=banned&retry_after={exc.retry_after}")
    if not ok:
        log.info("failed sign-in from %s", request.remote)
        if as_json:
            raise Refused(401, "wrong username or password")
        return _redirect("/?login=failed")
    # A fresh session (and CSRF token) on every sign-in: nothing chosen before it carries over.
    await accounts.end_session(request.cookies.get(SESSION_COOKIE, ""))
    user_agent = request.headers.get("User-Agent")
    token, csrf, _expires = await accounts.create_session(username, request.app[SETTINGS].session_seconds, user_agent)
    response = json_response({"user": username, "csrf": csrf}) if as_json else _redirect("/")
    set_cookie(request, response, SESSION_COOKIE, token, httponly=True)
    set_cookie(request, response, CSRF_COOKIE, csrf, httponly=False)
    return response


async def logout(request: web.Request) -> web.Response:
    session = await current_session(request)
    fields = await form(request) if request.content_type != JSON else {}
    require_csrf(request, session, fields.get("csrf"))
    await request.app[ACCOUNTS].end_session(request.cookies.get(SESSION_COOKIE, ""))
    response = json_response({"user": None}) if wants_json(request) else _redirect("/")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def me(request: web.Request) -> web.Response:
    session = await current_session(request)
    if session is None:
        # Not a bare refusal: the answer hands the sign-in form its CSRF token (body and cookie).
        response = json_response({"error": "not signed in"}, 401)
        csrf = await csrf_cookie(request, response, None)
        response.body = orjson.dumps({"error": "not signed in", "csrf": csrf})
        return response
    accounts, samples, settings = request.app[ACCOUNTS], request.app[SAMPLES], request.app[SETTINGS]
    trackers = []
    for name in await accounts.readable_databases(session.user):
        last = await last_sample_ns(samples, settings, name)
        trackers.append({"user": name, "last_sample_ns": last, "live": is_live(settings, last)})
    payload = {
        "user": session.user,
        "csrf": session.csrf,
        "public": await accounts.is_public(session.user),
        "live_within_seconds": settings.live_within_seconds,
        "trackers": trackers,
    }
    response = json_response(payload)
    await csrf_cookie(request, response, session)
    return response


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
    session = await owner_session(request, changes=False)
    return await _sessions_of(request, session.user)


async def sessions_end(request: web.Request) -> web.Response:
    """Sign out everywhere else (this session stays), or with ?all=true everywhere, this browser too."""
    session = await owner_session(request, changes=True)
    everywhere = request.query.get("all", "false")
    if everywhere not in ("true", "false"):
        raise Refused(400, f"all must be true or false, got {everywhere!r}")
    current = request.cookies.get(SESSION_COOKIE, "")
    keep = None if everywhere == "true" else current
    ended = await request.app[ACCOUNTS].end_sessions(session.user, keep_session=keep)
    response = await _sessions_of(request, session.user, {"ended": ended})
    if keep is None:
        response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def password_change(request: web.Request) -> web.Response:
    """{"current": "...", "new": "..."}: a new password; every other session of the user ends."""
    session = await owner_session(request, changes=True)
    body = await json_body(request)
    current, new = (body.get("current"), body.get("new")) if body else (None, None)
    if not isinstance(current, str) or not isinstance(new, str):
        raise Refused(400, 'expected a JSON object like {"current": "old password", "new": "new password"}')
    try:
        check_new_password(new)  # before the hash of the current one: a refusal costs nothing
    except InvalidPassword as exc:
        raise Refused(400, str(exc)) from None
    accounts, user = request.app[ACCOUNTS], session.user
    try:
        # Counted like a sign-in: a stolen session must not become a way to guess the password.
        ok = await request.app[BANS].verify(request.remote or "", user, lambda: accounts.authenticate(user, current))
    except Banned as exc:
        raise Refused(429, str(exc), {"Retry-After": str(exc.retry_after)}) from None
    if not ok:
        raise Refused(403, "the current password is wrong")
    try:
        ended = await accounts.set_password(user, new, keep_session=request.cookies.get(SESSION_COOKIE, ""))
    except InvalidPassword as exc:
        raise Refused(400, str(exc)) from None
    return json_response({"user": user, "ended": ended})
