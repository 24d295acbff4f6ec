"""Courses from where routes already are: a past activity (thinned), course files (GPX, TCX, FIT) over
HTTP and the `tracker course` commands.

Lengths are hand-worked: on the equator a degree of longitude (and anywhere a degree of latitude) is
R·π/180 = 111,194.93 m (R = 6,371,008.8 m), so 0.01° is 1,111.95 m.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import basic
from tracker.config import Settings
from tracker.courses import MAX_THINNED, thinned
from tracker.storage import SampleStore
from tracker.storage import courses as stored

S = 1_000_000_000
T0 = 1_764_918_720 * S  # 2025-12-05 07:12:00 UTC
ANN = basic("ann", "pw-ann")
DEGREE_M = 111_194.93


def test_thinning_keeps_the_corners_and_drops_the_straight_runs() -> None:
    # 101 points 0.0001° (11.1 m) apart along the equator, the middle one 0.0001° north: the kept points
    # are the ends, the bump and its two neighbours (each 10.9 m off the line to the bump), nothing else.
    line = [(0.0, i * 1e-4, None) for i in range(101)]
    line[50] = (1e-4, 50 * 1e-4, None)
    assert thinned(line) == [line[0], line[49], line[50], line[51], line[100]]
    # Fewer allowed: the nearest to its neighbours' line goes first, a neighbour of the bump, not the bump.
    fewer = thinned(line, max_points=4)
    assert len(fewer) == 4 and fewer[0] == line[0] and fewer[-1] == line[100] and line[50] in fewer
    assert thinned(line, max_points=2) == [line[0], line[100]]
    assert thinned(line[:2]) == line[:2]


def test_thinning_caps_a_track_that_is_all_corners() -> None:
    # A zigzag 3 m either side of the equator, a vertex every 1.1 m: every point is a corner at 1 m.
    zigzag = [((3 if i % 2 else -3) / DEGREE_M, i * 1e-5, None) for i in range(25_000)]
    assert len(thinned(zigzag, max_points=30_000)) == 25_000
    kept = thinned(zigzag)
    assert 2 <= len(kept) <= MAX_THINNED
    assert kept[0] == zigzag[0] and kept[-1] == zigzag[-1]


async def _write(client: TestClient, lines: list[str]) -> None:
    for first in range(0, len(lines), 5000):
        resp = await client.post("/write?db=ann", data="\n".join(lines[first:first + 5000]), headers=ANN)
        assert resp.status == 204, await resp.text()


def _l_shaped_ride() -> list[str]:
    """1 Hz along the equator from 0° to 0.02° east (2,001 fixes), then north to 0.01° (1,000 more)."""
    east = [(0.0, i * 1e-5) for i in range(2001)]
    north = [(i * 1e-5, 0.02) for i in range(1, 1001)]
    return [
        f"samples,device=edge,sport=cycling lat={lat:.5f},lng={lng:.5f},alt_m=100,hr_bpm=120i {T0 + i * S}"
        for i, (lat, lng) in enumerate(east + north)
    ]


@pytest.fixture
async def ann(client: TestClient, add_user: Any) -> TestClient:
    await add_user("ann", "pw-ann")
    await add_user("bob", "pw-bob")
    return client


async def _only_activity(client: TestClient) -> dict[str, Any]:
    listing = await (await client.get("/api/activities", headers=ANN)).json()
    assert len(listing["activities"]) == 1, listing
    return listing["activities"][0]


async def test_a_course_from_an_activity(ann: TestClient, settings: Settings) -> None:
    await _write(ann, _l_shaped_ride())
    activity = await _only_activity(ann)
    resp = await ann.post("/api/courses", json={"activity": activity["id"]}, headers=ANN)
    assert resp.status == 201, await resp.text()
    course = await resp.json()
    # The corner and the two ends are all the shape there is; named as the activity is.
    assert course["name"] == "Cycling, 5 Dec 2025 07:12"
    assert course["points"] == 3
    assert course["distance_m"] == pytest.approx(0.03 * DEGREE_M, abs=0.2)  # 2,223.9 + 1,111.95 m
    resp = await ann.post("/api/courses", json={"activity": activity["id"], "name": "Again"}, headers=ANN)
    assert resp.status == 201 and (await resp.json())["name"] == "Again"

    store = SampleStore(settings.data_dir)
    try:
        assert await stored.attach(store, "ann", course["id"], "now")
        on = await stored.course_on(store, "ann", ["now"])
        assert on is not None
        assert orjson.loads(on.points_json or b"") == [[0, 0, 100], [0, 0.02, 100], [0.01, 0.02, 100]]
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"activity": "1"}, 400, "activity must be an activity id"),
        ({"activity": True}, 400, "activity must be an activity id"),
        ({"activity": 0}, 400, "activity must be an activity id"),
        ({"activity": 999}, 404, "ann has no activity 999"),
        ({"activity": 1, "name": ""}, 400, "name must be a non-empty string"),
    ],
)
async def test_a_course_from_an_activity_refuses_what_does_not_apply(
    ann: TestClient, body: dict[str, Any], status: int, message: str
) -> None:
    await _write(ann, _l_shaped_ride()[:10])
    resp = await ann.post("/api/courses", json=body, headers=ANN)
    assert resp.status == status, await resp.text()
    assert message in (await resp.json())["error"]


async def test_an_activity_without_positions_makes_no_course(ann: TestClient) -> None:
    await _write(ann, [f"samples,device=watch hr_bpm=90i {T0 + i * S}" for i in range(5)])
    activity = await _only_activity(ann)
    resp = await ann.post("/api/courses", json={"activity": activity["id"]}, headers=ANN)
    assert resp.status == 400
    assert "at least 2 positions, the track has 0" in (await resp.json())["error"]


async def test_only_the_owner_makes_a_course_of_her_activity(ann: TestClient) -> None:
    await _write(ann, _l_shaped_ride()[:10])
    activity = await _only_activity(ann)
    resp = await ann.post("/api/courses?user=ann", json={"activity": activity["id"]}, headers=basic("bob", "pw-bob"))
    assert resp.status == 403
    # Bob's own: he has no activity of that id.
    resp = await ann.post("/api/courses", json={"activity": activity["id"]}, headers=basic("bob", "pw-bob"))
    assert resp.status == 404
