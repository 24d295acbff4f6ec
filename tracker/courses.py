"""Planned routes (courses): what an owner may upload, and the one length of a route.

A course is a polyline of [lat, lng, alt|null] points with a name. The owner attaches it to a target:
"now" (everyone who may watch the live view) or "link:<link id>" (the viewers of one share link).
Watchers get the course of their link, else the one on "now" (tracker.browser.courses). Where the
watcher is along it is worked out in the page (static/watch/route.js), from the live samples.

Courses come as JSON (`{"name", "points": [[lat, lng(, alt)], ...]}`) or GeoJSON (a LineString, or a
Feature of one; coordinates are [lng, lat(, alt)] there). GPX, TCX and FIT course files are read by the
formats package and come in through `course_from_points`. A recorded track (a past activity, or an
activity file given as a course) is thinned first (`thinned`): a 1 Hz ride holds far more points than its
shape needs.
"""

from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import orjson

from tracker import formats
from tracker.geo import EARTH_RADIUS_M, haversine_m

MAX_POINTS = 100_000
MAX_COURSES = 200  # per user
MAX_NAME = 200
MAX_THINNED = 10_000  # points kept of a recorded track
THIN_TOLERANCE_M = 1.0  # a point this near its neighbours' line adds no shape: well under GPS noise

Point = tuple[float, float, float | None]


class InvalidCourse(ValueError):
    """A course that cannot be stored; the message names the field and the rule."""


@dataclass(frozen=True, slots=True)
class Course:
    name: str
    points: list[Point]
    distance_m: float


def route_length_m(points: list[Point]) -> float:
    return sum(haversine_m(a[0], a[1], b[0], b[1]) for a, b in itertools.pairwise(points))


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidCourse(f"{where} must be a number, got {value!r}")
    return float(value)


def _point(raw: Any, index: int, lng_first: bool) -> Point:
    order = "[lng, lat(, alt)]" if lng_first else "[lat, lng(, alt)]"
    if not isinstance(raw, (list, tuple)) or not 2 <= len(raw) <= 3:
        raise InvalidCourse(f"points[{index}] must be {order}, got {raw!r}")
    first, second = _number(raw[0], f"points[{index}][0]"), _number(raw[1], f"points[{index}][1]")
    lat, lng = (second, first) if lng_first else (first, second)
    if not -90 <= lat <= 90:
        raise InvalidCourse(f"points[{index}] latitude must be -90..90, got {lat:g}")
    if not -180 <= lng <= 180:
        raise InvalidCourse(f"points[{index}] longitude must be -180..180, got {lng:g}")
    alt = None if len(raw) < 3 or raw[2] is None else _number(raw[2], f"points[{index}][2]")
    return (lat, lng, alt)


def course_from_points(name: Any, raw_points: Any, *, lng_first: bool = False) -> Course:
    """A checked course: 2..MAX_POINTS points, a name of 1..MAX_NAME characters."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidCourse("name must be a non-empty string")
    name = name.strip()
    if len(name) > MAX_NAME:
        raise InvalidCourse(f"name must be at most {MAX_NAME} characters, got {len(name)}")
    if not isinstance(raw_points, list):
        raise InvalidCourse("points must be a list of points")
    if not 2 <= len(raw_points) <= MAX_POINTS:
        raise InvalidCourse(f"points must hold 2 to {MAX_POINTS} points, got {len(raw_points)}")
    points = [_point(raw, i, lng_first) for i, raw in enumerate(raw_points)]
    return Course(name, points, route_length_m(points))


def thinned(points: list[Point], max_points: int = MAX_THINNED, tolerance_m: float = THIN_TOLERANCE_M) -> list[Point]:
    """The points that keep the line's shape: repeatedly drops the point nearest the line between its two
    neighbours (Visvalingam-Whyatt, by distance rather than area) while that is under `tolerance_m`, and
    on while more than `max_points` are left. A heap keeps it O(n log n) whatever the track's shape (the
    recursive Douglas-Peucker turns quadratic on a zigzag). Distances are measured in an equirectangular
    plane around the track's mean latitude, exact enough at the scale of one activity."""
    count = len(points)
    if count <= 2:
        return list(points)
    mean_lat = math.radians(sum(p[0] for p in points) / count)
    metres_per_degree = EARTH_RADIUS_M * math.pi / 180
    xs = [p[1] * metres_per_degree * math.cos(mean_lat) for p in points]
    ys = [p[0] * metres_per_degree for p in points]
    before = list(range(-1, count - 1))
    after = list(range(1, count + 1))
    offset = [math.inf] * count  # the ends are never dropped
    for i in range(1, count - 1):
        offset[i] = _offset_m(xs, ys, i - 1, i, i + 1)
    heap = [(offset[i], i) for i in range(1, count - 1)]
    heapq.heapify(heap)
    left = count
    while heap:
        distance, i = heapq.heappop(heap)
        if distance != offset[i]:
            continue  # stale: its neighbours changed since, or it is gone
        if distance >= tolerance_m and left <= max_points:
            break
        offset[i] = -1.0  # gone
        left -= 1
        prev, nxt = before[i], after[i]
        after[prev], before[nxt] = nxt, prev
        for j in (prev, nxt):
            if 0 < j < count - 1:
                offset[j] = _offset_m(xs, ys, before[j], j, after[j])
                heapq.heappush(heap, (offset[j], j))
    return [point for point, d in zip(points, offset) if d >= 0]


def _offset_m(xs: list[float], ys: list[float], first: int, middle: int, last: int) -> float:
    """How far the middle point lies from the segment between the other two."""
    ax, ay = xs[first], ys[first]
    dx, dy = xs[last] - ax, ys[last] - ay
    px, py = xs[middle] - ax, ys[middle] - ay
    length_sq = dx * dx + dy * dy
    t = 0.0 if length_sq == 0.0 else max(0.0, min(1.0, (px * dx + py * dy) / length_sq))
    return math.hypot(px - t * dx, py - t * dy)


def course_from_track(name: Any, points: list[Point]) -> Course:
    """A course along a recorded track (positions in time order): thinned, then checked."""
    if len(points) < 2:
        raise InvalidCourse(f"a course needs at least 2 positions, the track has {len(points)}")
    return course_from_points(name, [list(p) for p in thinned(points)])


def course_from_upload(data: bytes, filename: str, name: str | None, *, max_inflated: int) -> Course:
    """What POST /api/courses and `tracker course add` take: JSON or GeoJSON (told by its first
    character), else a GPX, TCX or FIT file. `name`, when given, replaces the one inside."""
    if data.lstrip()[:1] in (b"{", b"["):
        try:
            parsed = orjson.loads(data)  # bounded nesting, unlike json's recursion
        except orjson.JSONDecodeError as exc:
            raise InvalidCourse(f"the body is not JSON: {exc}") from None
        if name is not None and isinstance(parsed, dict):
            parsed["name"] = name
        return course_from_json(parsed)
    if not data:
        raise InvalidCourse("the course is empty: send JSON, GeoJSON, or a GPX, TCX or FIT file")
    return course_from_file(data, filename, name, max_inflated=max_inflated)


def course_from_file(data: bytes, filename: str, name: str | None, *, max_inflated: int) -> Course:
    """A course from a GPX, TCX or FIT file (gzipped or not). Its course parts (GPX rte, a trk without
    times, a TCX Course, a FIT course) are joined in the file's order, points as given; a file with none
    (a recorded activity) gives its positions, thinned. Named `name`, else the file's first name, else
    the file name without its extension."""
    try:
        tracks = formats.read(data, filename, max_inflated=max_inflated)
    except formats.FormatError as exc:
        raise InvalidCourse(str(exc)) from None
    if name is None:
        name = next((track.name for track in tracks if track.name.strip()), "") or PurePath(filename).stem or "Course"
    planned = [point for track in tracks if track.kind == "course" for point in track.route]
    if planned:
        return course_from_points(name, [list(point) for point in planned])
    positions: list[Point] = [
        (fields["lat"], fields["lng"], fields.get("alt_m"))
        for track in tracks for _, fields in track.points if "lat" in fields and "lng" in fields
    ]  # fmt: skip
    return course_from_track(name, positions)


def course_from_json(body: Any) -> Course:
    """A course from the JSON of POST /api/courses: Tracker's own form, or GeoJSON."""
    if not isinstance(body, dict):
        raise InvalidCourse('expected a JSON object: {"name": ..., "points": [[lat, lng], ...]} or GeoJSON')
    kind = body.get("type")
    if kind is None:
        return course_from_points(body.get("name"), body.get("points"))
    name = body.get("name")
    geometry: Any = body
    if kind == "Feature":
        geometry = body.get("geometry")
        properties = body.get("properties")
        if name is None and isinstance(properties, dict):
            name = properties.get("name")
    if not isinstance(geometry, dict) or geometry.get("type") != "LineString":
        raise InvalidCourse("GeoJSON type must be LineString or a Feature with a LineString geometry")
    return course_from_points(name if name is not None else "Course", geometry.get("coordinates"), lng_first=True)


def parse_target(raw: Any) -> tuple[str, int | None]:
    """("now", None) or ("link", link id) from "now" / "link:<id>"."""
    if raw == "now":
        return "now", None
    if isinstance(raw, str) and raw.startswith("link:") and raw[5:].isdigit() and len(raw) < 30:
        return "link", int(raw[5:])
    raise InvalidCourse(f'target must be "now" or "link:<link id>", got {raw!r}')
