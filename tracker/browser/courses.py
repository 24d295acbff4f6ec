"""Courses (planned routes) under /api/courses, and the watchers' /api/watch/{user}/course.

Authenticated like /query (Basic, u/p, `Authorization: Token`) or by the browser session (with the
CSRF token for changes). `?user=NAME` selects whose courses, default the caller's: readers the owner
shares with (and anyone, for a public profile) may list them; only the owner changes them.

POST /api/courses takes a course as JSON or GeoJSON, `{"activity": id, "name"?}` (the route of one of
the owner's activities, thinned), or a GPX, TCX or FIT file (the body itself, or multipart) read by
tracker.formats, named by `?name=` or by the file. JSON is told from a file by its first character.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from aiohttp import web

from tracker.accounts import live_view_refusal
from tracker.activities.names import activity_name
from tracker.appkeys import ACCOUNTS, SAMPLES, SETTINGS
from tracker.browser.activities import current_activity
from tracker.browser.errors import Refused, json_response
from tracker.browser.files import read_upload
from tracker.browser.session import api_caller, api_owner, path_id
from tracker.browser.watch import watch_access
from tracker.courses import (
    MAX_COURSES,
    Course,
    InvalidCourse,
    Point,
    course_from_track,
    course_from_upload,
    parse_target,
)
from tracker.http.body import read_body
from tracker.http.responses import InfluxError
from tracker.storage import activities
from tracker.storage import courses as stored
from tracker.storage.courses import CourseRecord


async def _whose(request: web.Request, *, changes: bool) -> str:
    caller = await api_caller(request, changes=changes)
    accounts = request.app[ACCOUNTS]

    async def may_see(viewer: str, owner: str) -> bool:  # as the live view: shares and public profiles
        return await accounts.can_watch(owner, viewer, None)

    return await api_owner(request, caller, changes=changes, what="courses", may_read=may_see)


def _course_json(record: CourseRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "created_ns": record.created_ns,
        "points": record.point_count,
        "distance_m": round(record.distance_m, 1),
    }


async def courses_list(request: web.Request) -> web.Response:
    user = await _whose(request, changes=False)
    store = request.app[SAMPLES]
    courses = await stored.list_courses(store, user)
    attached = await stored.attachments(store, user)
    return json_response(
        {
            "courses": [_course_json(course) for course in courses],
            "attachments": [{"target": target, "course": course} for target, course in attached.items()],
        }
    )


async def courses_create(request: web.Request) -> web.Response:
    user = await _whose(request, changes=True)
    settings = request.app[SETTINGS]
    try:
        filename, body = await read_upload(request, settings.max_body_size)
    except InfluxError as exc:
        raise Refused(exc.status, f"a course is at most {settings.max_body_size} bytes" if exc.status == 413 else str(exc)) from None
    name = request.query.get("name")
    activity = _activity_request(body)
    if activity is not None:
        course = await _course_of_activity(request, user, activity, name)
    else:
        # Files are parsed, and 100,000 points checked, off the event loop.
        course = await asyncio.to_thread(_checked_course, body, filename, name, settings.max_decompressed_size)
    record = await stored.add_course(request.app[SAMPLES], user, course, time.time_ns(), MAX_COURSES)
    if record is None:
        raise Refused(409, f"at most {MAX_COURSES} courses per user: delete one first")
    return json_response(_course_json(record), 201)


def _activity_request(body: bytes) -> dict[str, Any] | None:
    """`{"activity": id, "name"?}`, a few bytes of JSON; None for anything else (a course itself)."""
    if len(body) > 4096 or body.lstrip()[:1] != b"{":
        return None
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None  # the course parser says what is wrong with it
    return parsed if isinstance(parsed, dict) and "activity" in parsed else None


def _checked_course(body: bytes, filename: str, name: str | None, max_inflated: int) -> Course:
    try:
        return course_from_upload(body, filename, name, max_inflated=max_inflated)
    except InvalidCourse as exc:
        raise Refused(400, str(exc)) from None


# A course from an activity reads all its samples at once: at most this many (about 5 days at 1 Hz).
MAX_ACTIVITY_SAMPLES = 500_000


async def _course_of_activity(request: web.Request, user: str, body: dict[str, Any], name: str | None) -> Course:
    """`{"activity": id, "name"?}`: the activity's positions, thinned; named `?name=`, the body's name,
    else as the activity is."""
    activity_id = body["activity"]
    if isinstance(activity_id, bool) or not isinstance(activity_id, int) or activity_id < 1:
        raise Refused(400, f"activity must be an activity id (a positive integer), got {activity_id!r}")
    row = await current_activity(request, user, activity_id)
    if name is None:
        name = body.get("name")
    if name is None:
        name = activity_name(row.name, row.sport, row.start_ns)
    store = request.app[SAMPLES]
    held = await activities.track_count(store, user, row.track, row.start_ns, row.end_ns)
    if held > MAX_ACTIVITY_SAMPLES:
        raise Refused(
            413, f"activity {activity_id} holds {held} samples; a course is made from at most {MAX_ACTIVITY_SAMPLES}: "
            "split the activity, or upload the part you want as a file",
        )
    samples = await activities.track_samples(store, user, row.track, row.start_ns, row.end_ns)
    columns = samples.columns
    positions: list[Point] = [
        (lat, lng, alt) for lat, lng, alt in zip(columns["lat"], columns["lng"], columns["alt_m"])
        if lat is not None and lng is not None
    ]  # fmt: skip
    try:
        return await asyncio.to_thread(course_from_track, name, positions)
    except InvalidCourse as exc:
        raise Refused(400, f"activity {activity_id}: {exc}") from None


async def courses_delete(request: web.Request) -> web.Response:
    user = await _whose(request, changes=True)
    course_id = path_id(request, "course")
    if not await stored.delete_course(request.app[SAMPLES], user, course_id):
        raise Refused(404, f"no course {course_id}")
    return json_response({"deleted": course_id})


def _parsed_target(raw: Any) -> tuple[str, int | None]:
    """("now", None) or ("link", link id), or a 400 naming the rule."""
    try:
        return parse_target(raw)
    except InvalidCourse as exc:
        raise Refused(400, str(exc)) from None


async def _checked_target(request: web.Request, user: str, raw: Any) -> str:
    kind, link_id = _parsed_target(raw)
    if kind == "now":
        return "now"
    now = time.time_ns()
    for link in await request.app[ACCOUNTS].list_links(user):
        if link.id == link_id:
            refusal = live_view_refusal(link, now)
            if refusal is not None:
                raise Refused(400, f"target link {link_id} {refusal}")
            return f"link:{link_id}"
    raise Refused(404, f"target: {user} has no share link {link_id}")


async def courses_attach(request: web.Request) -> web.Response:
    user = await _whose(request, changes=True)
    course_id = path_id(request, "course")
    try:
        body = orjson.loads(await read_body(request, limit=4096))
    except InfluxError as exc:
        raise Refused(exc.status, str(exc)) from None
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict) or "target" not in body:
        raise Refused(400, 'expected a JSON object like {"target": "now"} or {"target": "link:3"}')
    target = await _checked_target(request, user, body["target"])
    if not await stored.attach(request.app[SAMPLES], user, course_id, target):
        raise Refused(404, f"no course {course_id}")
    return json_response({"target": target, "course": course_id})


async def courses_detach(request: web.Request) -> web.Response:
    user = await _whose(request, changes=True)
    kind, link_id = _parsed_target(request.match_info["target"])
    target = "now" if kind == "now" else f"link:{link_id}"
    if not await stored.detach(request.app[SAMPLES], user, target):
        raise Refused(404, f"no course is attached to {target}")
    return json_response({"detached": target})


async def watch_course(request: web.Request) -> web.Response:
    """The course a watcher sees: their link's, else the one on "now", else none."""
    access = await watch_access(request)
    link_id = access.right.link_id
    targets = ([f"link:{link_id}"] if link_id is not None else []) + ["now"]
    record = await stored.course_on(request.app[SAMPLES], access.owner, targets)
    off_route_m = request.app[SETTINGS].off_route_m
    # A course's points never change (only its attachments do): the page asks again every minute with
    # the tag of what it shows, and a 304 spares it the points.
    etag = f'"course-{record.id if record else 0}-{off_route_m:g}"'
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers={"ETag": etag, "Cache-Control": "no-store"})
    course = None
    if record is not None and record.points_json is not None:
        course = {
            "id": record.id,
            "name": record.name,
            "distance_m": round(record.distance_m, 1),
            "points": orjson.Fragment(record.points_json),  # stored as the JSON it is sent as
        }
    return json_response({"course": course, "off_route_m": off_route_m}, headers={"ETag": etag})
