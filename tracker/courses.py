"""Planned routes (courses): what an owner may upload, and the one length of a route.

A course is a polyline of [lat, lng, alt|null] points with a name. The owner attaches it to a target:
"now" (everyone who may watch the live view) or "link:<link id>" (the viewers of one share link).
Watchers get the course of their link, else the one on "now" (tracker.browser.courses). Where the
watcher is along it is worked out in the page (static/watch/route.js), from the live samples.

Courses come as JSON (`{"name", "points": [[lat, lng(, alt)], ...]}`) or GeoJSON (a LineString, or a
Feature of one; coordinates are [lng, lat(, alt)] there). GPX and FIT course files are read by the
formats package and come in through `course_from_points`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

MAX_POINTS = 100_000
MAX_COURSES = 200  # per user
MAX_NAME = 200
EARTH_RADIUS_M = 6_371_008.8  # the mean radius (IUGG), as route.js uses

Point = tuple[float, float, float | None]


class InvalidCourse(ValueError):
    """A course that cannot be stored; the message names the field and the rule."""


@dataclass(frozen=True, slots=True)
class Course:
    name: str
    points: list[Point]
    distance_m: float


def haversine_m(a: Point, b: Point) -> float:
    lat1, lng1, lat2, lng2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def route_length_m(points: list[Point]) -> float:
    return sum(haversine_m(a, b) for a, b in zip(points, points[1:]))


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
