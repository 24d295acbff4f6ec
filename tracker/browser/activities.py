"""The activities API: a user's activities with their summaries, samples (downsampled for the
overview) and laps; the owner's edits; the activity settings.

Authenticated like /query (Basic, `u`/`p`, `Authorization: Token user:password`) or by the browser's
session (state-changing requests then need the CSRF token). `?user=NAME` selects whose activities
(default the caller's): the owner and those the owner shares with may read them; only the owner
changes them. Refusals are the browser API's: `{"error": message}`.

An activity's own share link (`?token=`, made by POST /api/activities/ID/links) reads that activity
alone (the activity, its samples, laps, page config and export) and nothing else; a live-view link
opens no activity. The activity page's exports go through the one export (tracker.transfer).
"""

from __future__ import annotations

import secrets
from typing import Any, NamedTuple

from aiohttp import web

from tracker.accounts import InvalidLink, LabelTaken, parse_duration
from tracker.activities.names import activity_name, automatic_name
from tracker.activities.settings import ActivitySettings, InvalidActivitySettings
from tracker.activities.summaries import default_laps_of, laps_of, summary_of
from tracker.activities.summary import DEFAULT_LAP_M
from tracker.appkeys import ACCOUNTS, SAMPLES, SETTINGS
from tracker.browser.errors import Refused, json_response, refusals
from tracker.browser.files import export_format, export_response, time_value
from tracker.browser.owner import activity_share_url, new_link_json, public_base
from tracker.browser.session import api_caller, api_owner, int_param, json_body, path_id
from tracker.browser.watch import LINK_ENDED, page_config
from tracker.formats.track import rfc3339
from tracker.storage import activities as stored
from tracker.vocabulary import FIELD_KEYS

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
DEFAULT_POINTS = 2000
MAX_POINTS = 20_000
MAX_MERGE = 100
MAX_NAME = 200
MAX_LINK_SECONDS = 10 * 365 * 86400  # an expiry further off is 'never'


def add_routes(app: web.Application) -> None:
    routes = [
        ("GET", "/api/activities", activities_list),
        ("POST", "/api/activities/merge", activities_merge),
        ("GET", "/api/activities/{id}", activity_get),
        ("PATCH", "/api/activities/{id}", activity_rename),
        ("DELETE", "/api/activities/{id}", activity_delete),
        ("GET", "/api/activities/{id}/samples", activity_samples),
        ("GET", "/api/activities/{id}/laps", activity_laps),
        ("POST", "/api/activities/{id}/split", activity_split),
        ("GET", "/api/activities/{id}/config", activity_config),
        ("GET", "/api/activities/{id}/export", activity_export),
        ("POST", "/api/activities/{id}/links", activity_link_create),
        ("GET", "/api/activity-settings", settings_get),
        ("PUT", "/api/activity-settings", settings_put),
    ]
    for method, path, view in routes:
        if method == "GET":
            app.router.add_get(path, refusals(view))
        else:
            app.router.add_route(method, path, refusals(view))


# ---- the activity as it is now


async def current_activity(request: web.Request, owner: str, activity_id: int) -> stored.ActivityRow:
    """The owner's activity as it is now (their activities refreshed first: late samples, imports), or 404."""
    store = request.app[SAMPLES]
    await stored.refresh(store, owner)
    row = await stored.get_activity(store, owner, activity_id)
    if row is None:
        raise Refused(404, f"{owner} has no activity {activity_id}")
    return row


# ---- who asks, for whose activities


class Reader(NamedTuple):
    owner: str  # whose activities
    caller: str | None  # who asks; None for an activity link's holder


async def _access(request: web.Request, *, changes: bool = False, activity_id: int | None = None) -> str:
    """The owner whose activities the request is about, once the caller may read (or change) them."""
    return (await _reader(request, changes=changes, activity_id=activity_id)).owner


async def _reader(request: web.Request, *, changes: bool = False, activity_id: int | None = None) -> Reader:
    """Who asks for whose activities, once they may read (or change) them.

    `?token=` is an activity link: it reads the one activity it was made for (`activity_id`, the
    request's), nothing else, and changes nothing; a live-view link opens no activity."""
    token = request.query.get("token")
    if token:
        return Reader(await _link_owner(request, token, activity_id, changes), None)
    caller = await api_caller(request, changes=changes)
    owner = await api_owner(request, caller, changes=changes, what="activities", may_read=request.app[ACCOUNTS].can_read)
    return Reader(owner, caller)


async def _link_owner(request: web.Request, token: str, activity_id: int | None, changes: bool) -> str:
    found = await request.app[ACCOUNTS].activity_link(token)
    if found is None:
        raise Refused(401, "this link opens no activity: sign in, send credentials as with /query, or use the activity's own link")
    link, ended = found
    if ended is not None:
        raise Refused(403, LINK_ENDED[ended].format(owner=link.owner), details={"reason": "link_" + ended})
    if changes:
        raise Refused(403, "a share link only reads: sign in to change the activity")
    if activity_id != link.activity_id:
        raise Refused(403, f"this link opens only activity {link.activity_id}")
    if request.query.get("user", link.owner) != link.owner:
        raise Refused(403, f"this link opens only an activity of {link.owner}")
    # Activity ids are never used again: an activity with the link's id is the link's, re-split or
    # lengthened by late samples or not. A late sample that joins two rides ends the later one's id.
    store = request.app[SAMPLES]
    await stored.refresh(store, link.owner)
    if link.activity_id is None or await stored.get_activity(store, link.owner, link.activity_id) is None:
        raise Refused(404, f"the activity of this link is gone; ask {link.owner} for a new link")
    return link.owner


# ---- parameters


def _time_param(request: web.Request, name: str) -> int | None:
    return time_value(request.query.get(name), name, None)


async def _activity_json(request: web.Request, owner: str, row: stored.ActivityRow, settings: ActivitySettings) -> dict[str, Any]:
    return {
        "id": row.id,
        "user": owner,
        "device": row.device,
        "sport": row.sport,
        "name": activity_name(row.name, row.sport, row.start_ns),
        "named": row.name is not None,
        "start": rfc3339(row.start_ns),
        "end": rfc3339(row.end_ns),
        "start_ns": row.start_ns,
        "end_ns": row.end_ns,
        "samples": row.samples,
        "summary": await summary_of(request.app[SAMPLES], owner, row, settings),
    }


def _cursor(row: stored.ActivityRow) -> str:
    return f"{row.start_ns}.{row.id}"


def _parse_cursor(raw: str) -> tuple[int, int]:
    start, _, ident = raw.partition(".")
    try:
        return int(start), int(ident)
    except ValueError:
        raise Refused(400, f"before must be a cursor from a previous page's next, got {raw[:40]!r}") from None


async def _body(request: web.Request) -> dict[str, Any]:
    body = await json_body(request)
    if body is None:
        raise Refused(400, "the body must be a JSON object")
    return body


def _edit_refused(error: stored.ActivityEditError) -> Refused:
    return Refused(404 if error.missing else 400, str(error))


# ---- reads


async def activities_list(request: web.Request) -> web.Response:
    owner = await _access(request)
    limit = int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    raw_before = request.query.get("before", "")
    before = _parse_cursor(raw_before) if raw_before else None
    from_ns, to_ns = _time_param(request, "from"), _time_param(request, "to")
    store = request.app[SAMPLES]
    await stored.refresh(store, owner)
    rows = await stored.list_activities(store, owner, limit=limit + 1, before=before, from_ns=from_ns, to_ns=to_ns)
    settings = await stored.read_settings(store, owner)
    page = rows[:limit]
    return json_response({
        "activities": [await _activity_json(request, owner, row, settings) for row in page],
        "next": _cursor(page[-1]) if len(rows) > limit else None,
    })  # fmt: skip


async def activity_get(request: web.Request) -> web.Response:
    activity_id = path_id(request, "activity")
    owner = await _access(request, activity_id=activity_id)
    row = await current_activity(request, owner, activity_id)
    settings = await stored.read_settings(request.app[SAMPLES], owner)
    return json_response(await _activity_json(request, owner, row, settings))


async def activity_samples(request: web.Request) -> web.Response:
    activity_id = path_id(request, "activity")
    owner = await _access(request, activity_id=activity_id)
    points = int_param(request, "points", DEFAULT_POINTS, 2, MAX_POINTS)
    start, end = _time_param(request, "start"), _time_param(request, "end")
    row = await current_activity(request, owner, activity_id)
    low = row.start_ns if start is None else max(start, row.start_ns)
    high = row.end_ns if end is None else min(end, row.end_ns)
    if low > high:
        return json_response({"columns": ["time"], "values": [], "downsampled": False})
    store = request.app[SAMPLES]
    if await stored.track_count(store, owner, row.track, low, high) <= points:
        samples = await stored.track_samples(store, owner, row.track, low, high)
        keys = [key for key in FIELD_KEYS if any(v is not None for v in samples.columns[key])]
        columns = [samples.columns[key] for key in keys]
        values = [[t, *(column[i] for column in columns)] for i, t in enumerate(samples.times)]
        return json_response({"columns": ["time", *keys], "values": values, "downsampled": False})
    buckets = await stored.track_envelope(store, owner, row.track, low, high, points // 2)
    keys = [key for key in FIELD_KEYS if any(fields[key][0] is not None for _, _, fields in buckets)]
    rows: list[list[Any]] = []
    # Two rows a bucket: each field's minimum at its first time, its maximum at its last, so peaks survive.
    for first, last, fields in buckets:
        rows.append([first, *(fields[key][0] for key in keys)])
        if last != first:
            rows.append([last, *(fields[key][1] for key in keys)])
    return json_response({"columns": ["time", *keys], "values": rows, "downsampled": True})


async def activity_laps(request: web.Request) -> web.Response:
    activity_id = path_id(request, "activity")
    owner = await _access(request, activity_id=activity_id)
    every_m = int_param(request, "every_m", 1000, 10, 1_000_000)
    row = await current_activity(request, owner, activity_id)
    store = request.app[SAMPLES]
    settings = await stored.read_settings(store, owner)
    if every_m == DEFAULT_LAP_M:  # kept with the cached summary
        return json_response({"laps": await default_laps_of(store, owner, row, settings)})
    return json_response({"laps": await laps_of(store, owner, row, float(every_m), settings)})


async def activity_config(request: web.Request) -> web.Response:
    """The activity page's settings: map tiles and fields as the live view's, and whether the caller
    may change the activity (the page shows the owner's controls only then)."""
    activity_id = path_id(request, "activity")
    reader = await _reader(request, activity_id=activity_id)
    await current_activity(request, reader.owner, activity_id)
    config = page_config(request.app[SETTINGS], reader.owner)
    return json_response({**config, "activity_id": activity_id, "can_change": reader.caller == reader.owner})


async def activity_export(request: web.Request) -> web.Response:
    """The activity as a file (`format=gpx|tcx|fit|csv|geojson`): its track over its span, written by
    the same export as GET /api/export."""
    activity_id = path_id(request, "activity")
    owner = await _access(request, activity_id=activity_id)
    fmt = export_format(request)
    row = await current_activity(request, owner, activity_id)
    # end_ns is the activity's last sample; the export's end is exclusive.
    return await export_response(request, owner, fmt, row.start_ns, row.end_ns + 1, device=row.device, sport=row.sport)


async def settings_get(request: web.Request) -> web.Response:
    owner = await _access(request)
    return json_response((await stored.read_settings(request.app[SAMPLES], owner)).to_json())


# ---- the owner's changes


async def settings_put(request: web.Request) -> web.Response:
    owner = await _access(request, changes=True)
    body = await _body(request)
    store = request.app[SAMPLES]
    try:
        settings = (await stored.read_settings(store, owner)).updated(body)
    except InvalidActivitySettings as error:
        raise Refused(400, str(error)) from None
    await stored.save_settings(store, owner, settings)
    return json_response(settings.to_json())


async def activity_rename(request: web.Request) -> web.Response:
    owner = await _access(request, changes=True)
    activity_id = path_id(request, "activity")
    body = await _body(request)
    if "name" not in body:
        raise Refused(400, "name is required (a string, or null for the automatic name)")
    name = body["name"]
    if name is not None:
        if not isinstance(name, str):
            raise Refused(400, f"name must be a string or null, got {type(name).__name__}")
        name = name.strip() or None
        if name is not None and len(name) > MAX_NAME:
            raise Refused(400, f"name must be at most {MAX_NAME} characters")
    row = await current_activity(request, owner, activity_id)
    await stored.rename(request.app[SAMPLES], owner, row.id, name)
    return await activity_get(request)


async def activity_split(request: web.Request) -> web.Response:
    owner = await _access(request, changes=True)
    activity_id = path_id(request, "activity")
    body = await _body(request)
    at = time_value(body.get("at"), "at", None)
    if at is None:
        raise Refused(400, "at is required: the time to split at (ns or RFC 3339)")
    store = request.app[SAMPLES]
    try:
        rows = await stored.split(store, owner, activity_id, at)
    except stored.ActivityEditError as error:
        raise _edit_refused(error) from None
    settings = await stored.read_settings(store, owner)
    return json_response({"activities": [await _activity_json(request, owner, row, settings) for row in rows]})


async def activities_merge(request: web.Request) -> web.Response:
    owner = await _access(request, changes=True)
    body = await _body(request)
    ids = body.get("ids")
    if (
        not isinstance(ids, list) or not 2 <= len(ids) <= MAX_MERGE
        or any(isinstance(i, bool) or not isinstance(i, int) for i in ids)
    ):  # fmt: skip
        raise Refused(400, f"ids must be a list of 2 to {MAX_MERGE} activity ids (integers)")
    store = request.app[SAMPLES]
    try:
        row = await stored.merge(store, owner, ids)
    except stored.ActivityEditError as error:
        raise _edit_refused(error) from None
    # The merged-away ids are gone: their links end, before a new activity may take an id again.
    await request.app[ACCOUNTS].revoke_activity_links(owner, [i for i in ids if i != row.id])
    settings = await stored.read_settings(store, owner)
    return json_response(await _activity_json(request, owner, row, settings))


async def activity_delete(request: web.Request) -> web.Response:
    owner = await _access(request, changes=True)
    activity_id = path_id(request, "activity")
    if request.query.get("confirm") != str(activity_id):
        raise Refused(400, f"confirm must be the activity's id ({activity_id}): deleting removes its samples")
    try:
        removed = await stored.delete(request.app[SAMPLES], owner, activity_id)
    except stored.ActivityEditError as error:
        raise _edit_refused(error) from None
    await request.app[ACCOUNTS].revoke_activity_links(owner, [activity_id])
    return json_response({"deleted": activity_id, "samples_removed": removed})



async def activity_link_create(request: web.Request) -> web.Response:
    """A share link that opens this activity only, read-only: `{"label"?, "expires_in"?}` (seconds, or
    a duration like "2h"; absent or null: never expires). The token and URL are in this answer only."""
    activity_id = path_id(request, "activity")
    owner = await _access(request, changes=True, activity_id=activity_id)
    body = await _body(request)
    label, expires_in = body.get("label"), body.get("expires_in")
    if label is not None and not isinstance(label, str):
        raise Refused(400, "label must be a string or null")
    try:
        if isinstance(expires_in, str):
            seconds: float | None = parse_duration(expires_in)
        elif expires_in is None:
            seconds = None
        elif isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool) and 0 < expires_in <= MAX_LINK_SECONDS:
            seconds = float(expires_in)
        else:
            raise Refused(400, f'expires_in must be seconds (1 to {MAX_LINK_SECONDS}), a duration like "2h", or null')
        row = await current_activity(request, owner, activity_id)
        label = label if label and label.strip() else f"{automatic_name(row.sport, row.start_ns)} ({secrets.token_hex(3)})"
        token, link = await request.app[ACCOUNTS].create_link(owner, label, seconds, activity_id=row.id)
    except InvalidLink as exc:
        raise Refused(409 if isinstance(exc, LabelTaken) else 400, str(exc)) from None
    url = activity_share_url(await public_base(request), row.id, token)
    return json_response(new_link_json(link, token, url), 201)
