"""A user's courses and their attachments, in the user's own sample file (schema v6).

Reads go through the file's reader; changes through its writer (`SampleStore.run_on_writer`), each one
transaction. Points are stored as the JSON the API returns, so a watcher's read is one row, no parsing.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import orjson

from tracker.courses import Course
from tracker.storage.connection import immediate
from tracker.storage.samples import SampleStore


@dataclass(frozen=True, slots=True)
class CourseRecord:
    id: int
    name: str
    created_ns: int
    point_count: int
    distance_m: float
    points_json: bytes | None = None  # [[lat, lng, alt|null], ...]; only when asked for


_COLUMNS = "id, name, created_ns, point_count, distance_m"


async def list_courses(store: SampleStore, user: str) -> list[CourseRecord]:
    """The user's courses without their points, newest first."""
    rows = await store.read_all(user, f"SELECT {_COLUMNS} FROM courses ORDER BY id DESC")
    return [CourseRecord(*row) for row in rows]


async def attachments(store: SampleStore, user: str) -> dict[str, int]:
    """target → course id."""
    rows = await store.read_all(user, "SELECT target, course FROM course_attachments ORDER BY target")
    return {target: course for target, course in rows}


async def course_on(store: SampleStore, user: str, targets: list[str]) -> CourseRecord | None:
    """The course (with points) attached to the first of `targets` that has one."""
    for target in targets:
        rows = await store.read_all(
            user,
            f"SELECT {', '.join('c.' + c for c in _COLUMNS.split(', '))}, c.points FROM course_attachments a "
            "JOIN courses c ON c.id = a.course WHERE a.target = ?",
            (target,),
        )
        if rows:
            course_id, name, created_ns, point_count, distance_m, points = rows[0]
            return CourseRecord(course_id, name, created_ns, point_count, distance_m, points.encode())
    return None


async def add_course(
    store: SampleStore, user: str, course: Course, created_ns: int, max_courses: int
) -> CourseRecord | None:
    """The stored course; None when the user has `max_courses` already."""
    points = orjson.dumps(course.points).decode()

    def add(conn: sqlite3.Connection) -> CourseRecord | None:
        with immediate(conn):
            if conn.execute("SELECT count(*) FROM courses").fetchone()[0] >= max_courses:
                return None
            cursor = conn.execute(
                "INSERT INTO courses (name, created_ns, point_count, distance_m, points) VALUES (?, ?, ?, ?, ?)",
                (course.name, created_ns, len(course.points), course.distance_m, points),
            )
            assert cursor.lastrowid is not None
            return CourseRecord(cursor.lastrowid, course.name, created_ns, len(course.points), course.distance_m)

    return await store.run_on_writer(user, add, create=True)


async def delete_course(store: SampleStore, user: str, course_id: int) -> bool:
    """Removes the course and its attachments; False when there is no such course."""

    def delete(conn: sqlite3.Connection) -> bool:
        with immediate(conn):
            conn.execute("DELETE FROM course_attachments WHERE course = ?", (course_id,))
            return conn.execute("DELETE FROM courses WHERE id = ?", (course_id,)).rowcount > 0

    return await store.run_on_writer(user, delete, create=True)


async def attach(store: SampleStore, user: str, course_id: int, target: str) -> bool:
    """Shows the course on `target` (replacing what was there); False when there is no such course."""

    def put(conn: sqlite3.Connection) -> bool:
        with immediate(conn):
            if conn.execute("SELECT 1 FROM courses WHERE id = ?", (course_id,)).fetchone() is None:
                return False
            conn.execute(
                "INSERT INTO course_attachments (target, course) VALUES (?, ?) "
                "ON CONFLICT (target) DO UPDATE SET course = excluded.course",
                (target, course_id),
            )
            return True

    return await store.run_on_writer(user, put, create=True)


async def detach(store: SampleStore, user: str, target: str) -> bool:
    """False when nothing was attached to `target`."""

    def remove(conn: sqlite3.Connection) -> bool:
        return conn.execute("DELETE FROM course_attachments WHERE target = ?", (target,)).rowcount > 0

    return await store.run_on_writer(user, remove, create=True)
