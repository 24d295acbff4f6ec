"""The watch page's data: its settings, a window of samples, the devices, and the live event stream.

Authorization is `Accounts.watch_right` for everything under /api/watch/: the owner, a reader the
owner shares with, anyone for a public profile, or a share link's token.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, NamedTuple

import orjson
from aiohttp import web

from tracker import storage, vocabulary
from tracker.accounts import InvalidUsername, WatchRight, validate_username
from tracker.appkeys import ACCOUNTS, ALERTS, LIVE, SAMPLES, SETTINGS, STREAM_PLACES
from tracker.bans import address_key
from tracker.browser.errors import Refused, json_response
from tracker.browser.session import SESSION_COOKIE, int_param
from tracker.config import Settings
from tracker.live import HubClosed, TooManyStreams, Viewer
from tracker.liveness import is_live

DEFAULT_WINDOW_NS = 10 * 60 * 10**9
DEFAULT_MAX_POINTS = 2000
MAX_MAX_POINTS = 20_000


class WatchAccess(NamedTuple):
    owner: str
    session_token: str  # the session cookie, re-checked while a stream lasts
    link_token: str | None
    right: WatchRight  # what grants it


async def watch_access(request: web.Request) -> WatchAccess:
    """Who is watched and by what right; refused if the request may not watch them.

    A name nobody has is refused exactly as a private tracker is (401 without sign-in or link, else
    403), so that nobody without a right to watch can tell which usernames exist.
    """
    owner = request.match_info["user"]
    accounts = request.app[ACCOUNTS]
    try:
        validate_username(owner)
    except InvalidUsername:
        raise Refused(404, f"no tracker {owner}") from None  # a name that can never exist: nothing to hide
    session_token = request.cookies.get(SESSION_COOKIE, "")
    session = await accounts.session(session_token) if session_token else None
    link_token = request.query.get("token") or None
    right = await accounts.watch_right(owner, session.user if session else None, link_token)
    if right is not None:
        return WatchAccess(owner, session_token, link_token, right)
    if session is None and link_token is None:
        raise Refused(401, f"sign in or use a share link to watch {owner}")
    raise await _refusal(request, owner, link_token)


# What a viewer whose share link ended is told, by reason: not a network fault, and what to do.
LINK_ENDED = {
    "revoked": "this share link was revoked; ask {owner} for a new one",
    "expired": "this share link has expired; ask {owner} for a new one",
}

# The stream's `denied` for every other ending (profile private again, share removed, signed out).
ACCESS_ENDED = {"error": "access to this tracker has ended"}


async def _refusal(request: web.Request, owner: str, link_token: str | None) -> Refused:
    """403 for a viewer without the right; with `reason` ("link_revoked", "link_expired") when a
    share link of `owner` ended, so the page can say so."""
    ended = await request.app[ACCOUNTS].ended_link(owner, link_token) if link_token else None
    if ended is None:
        return Refused(403, f"not allowed to watch {owner}")
    return Refused(403, LINK_ENDED[ended].format(owner=owner), details={"reason": "link_" + ended})


async def _still_allowed(request: web.Request, owner: str, session_token: str, link_token: str | None) -> bool:
    accounts = request.app[ACCOUNTS]
    session = await accounts.session(session_token) if session_token else None
    return await accounts.can_watch(owner, session.user if session else None, link_token)


def page_config(settings: Settings, user: str) -> dict[str, Any]:
    """What a page with a map and charts needs to draw them: the tiles, the fields and their units."""
    return {
        "user": user,
        "tile_url": settings.tile_url,
        "tile_attribution": settings.tile_attribution,
        # The one definition of "live" (tracker.liveness): the page's badge and stale values use it.
        "live_within_seconds": settings.live_within_seconds,
        "fields": [{"key": f.key, "unit": f.unit, "meaning": f.meaning} for f in vocabulary.FIELDS],
    }


async def watch_config(request: web.Request) -> web.Response:
    access = await watch_access(request)
    return json_response(page_config(request.app[SETTINGS], access.owner))


async def watch_samples(request: web.Request) -> web.Response:
    owner = (await watch_access(request)).owner
    now_ns = time.time_ns()
    end = int_param(request, "to", now_ns)
    start = int_param(request, "from", end - DEFAULT_WINDOW_NS)
    max_points = int_param(request, "max_points", DEFAULT_MAX_POINTS)
    if start >= end:
        raise Refused(400, "from must be before to")
    if not 1 <= max_points <= MAX_MAX_POINTS:
        raise Refused(400, f"max_points must be 1..{MAX_MAX_POINTS}")
    # Nothing further ahead of the clock than a write may be: a sample stored that far ahead (before
    # such writes were refused) must not draw the marker or stretch the charts into the future.
    end = min(end, now_ns + request.app[SETTINGS].max_future_ns + 1)
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
    owner = (await watch_access(request)).owner
    seen = await request.app[ALERTS].last_seen(owner)  # never after now (tracker.liveness)
    devices = sorted(seen.items(), key=lambda item: -item[1])
    settings, now_ns = request.app[SETTINGS], time.time_ns()
    return json_response(
        {
            "devices": [
                {"device": device, "last_sample_ns": ns, "live": is_live(settings, ns, now_ns)} for device, ns in devices
            ]
        }
    )


async def watch_events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: one `samples` event per committed write, `reset` when the page must refetch."""
    owner, session_token, link_token, right = await watch_access(request)
    hub = request.app[LIVE]
    # The address as the sign-in bans see it (behind a trusted proxy, the client's).
    viewer = Viewer(signed_in=right.signed_in, address=address_key(request.remote or ""), link_id=right.link_id)
    # The browser sends Last-Event-ID on its own reconnects; the first connection passes the
    # window's last_event_id in the query (EventSource cannot set headers).
    last_event_id = request.headers.get("Last-Event-ID") or request.query.get("last_event_id") or None
    try:
        # The limits across every worker first (a no-op with one worker), then this hub's own.
        place = await request.app[STREAM_PLACES].take(owner, viewer)
    except TooManyStreams as exc:
        raise Refused(429, str(exc), {"Retry-After": "30"}) from None
    try:
        subscription, start_id = await hub.subscribe_from(owner, last_event_id, viewer=viewer)
    except TooManyStreams as exc:
        place.release()
        raise Refused(429, str(exc), {"Retry-After": "30"}) from None
    except HubClosed:
        place.release()
        raise Refused(503, "the server is shutting down") from None
    with place, subscription:
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
                refusal = await _refusal(request, owner, link_token)
                body = {"error": refusal.message, **refusal.details} if refusal.details else ACCESS_ENDED
                await response.write(b"event: denied\ndata: " + orjson.dumps(body) + b"\n\n")
                return
            version, next_check = current, now + recheck
        if events:
            await response.write(b"".join(event.encode() for event in events))
            next_ping = now + heartbeat
        elif now >= next_ping:
            await response.write(b": ping\n\n")
            next_ping = now + heartbeat
