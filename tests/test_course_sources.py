"""Courses from where routes already are: a past activity (thinned), course files (GPX, TCX, FIT) over
HTTP and the `tracker course` commands.

Lengths are hand-worked: on the equator a degree of longitude (and anywhere a degree of latitude) is
R·π/180 = 111,194.93 m (R = 6,371,008.8 m), so 0.01° is 1,111.95 m.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import gpxpy
import gpxpy.geo
import orjson
import pytest
from aiohttp.test_utils import TestClient

from tests.cli_helpers import add_user as cli_add_user
from tests.cli_helpers import invoke
from tests.conftest import CHEAP_HASHING, basic
from tests.test_formats import GARMIN_COURSE_TCX, fit_tool_activity, fit_tool_course, fixture
from tracker.browser import courses as browser_courses
from tracker.config import Settings
from tracker.courses import MAX_THINNED, thinned
from tracker.accounts import Accounts
from tracker.lineprotocol import Point
from tracker.storage import AccountStore, SampleStore, activities
from tracker.storage import courses as stored

S = 1_000_000_000
T0 = 1_764_918_720 * S  # 2025-12-05 07:12:00 UTC
ANN = basic("ann", "pw-ann")
DEGREE_M = 111_194.93


def Pt(time_ns: int, fields: dict[str, float]) -> Point:  # noqa: N802 (reads as the Point it is)
    return Point("samples", (), fields, time_ns)


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


async def test_a_course_from_an_activity_is_bounded(ann: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(browser_courses, "MAX_ACTIVITY_SAMPLES", 9)  # read at call time
    await _write(ann, _l_shaped_ride()[:10])
    activity = await _only_activity(ann)
    resp = await ann.post("/api/courses", json={"activity": activity["id"]}, headers=ANN)
    assert resp.status == 413
    assert f"activity {activity['id']} holds 10 samples; a course is made from at most 9" in (await resp.json())["error"]
    monkeypatch.setattr(browser_courses, "MAX_ACTIVITY_SAMPLES", 10)
    assert (await ann.post("/api/courses", json={"activity": activity["id"]}, headers=ANN)).status == 201


async def test_only_the_owner_makes_a_course_of_her_activity(ann: TestClient) -> None:
    await _write(ann, _l_shaped_ride()[:10])
    activity = await _only_activity(ann)
    resp = await ann.post("/api/courses?user=ann", json={"activity": activity["id"]}, headers=basic("bob", "pw-bob"))
    assert resp.status == 403
    # Bob's own: he has no activity of that id.
    resp = await ann.post("/api/courses", json={"activity": activity["id"]}, headers=basic("bob", "pw-bob"))
    assert resp.status == 404


# ----- course files: gpxpy's own GPX files, a FIT course written by fit_tool, Garmin Connect's TCX


def gpxpy_length_m(points: list[tuple[float, float]]) -> float:
    """The route's length by gpxpy's own haversine, rescaled from its radius (the equator's, 6,378,137 m)
    to the mean one Tracker uses (6,371,008.8 m)."""
    length = sum(gpxpy.geo.haversine_distance(a[0], a[1], b[0], b[1]) for a, b in zip(points, points[1:]))
    return length * 6_371_008.8 / gpxpy.geo.EARTH_RADIUS


async def _post_file(client: TestClient, data: bytes, filename: str, query: str = "") -> Any:
    resp = await client.post(
        f"/api/courses{query}", data=data,
        headers={**ANN, "Content-Type": "application/octet-stream", "X-Filename": filename},
    )  # fmt: skip
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_a_gpx_route_from_gpxpys_files(ann: TestClient) -> None:
    data = fixture("route.gpx")
    reference = [(p.latitude, p.longitude) for p in gpxpy.parse(data.decode()).routes[0].points]
    made = await _post_file(ann, data, "route.gpx")
    assert made["points"] == len(reference)
    assert made["distance_m"] == pytest.approx(gpxpy_length_m(reference), abs=0.5)
    assert made["name"] == "route"  # the rte has no name: the file's


async def test_a_gpx_track_without_times_is_a_course_of_all_its_parts(ann: TestClient) -> None:
    data = fixture("cerknicko-without-times.gpx")
    tracks = gpxpy.parse(data.decode()).tracks
    # Six trk lost their times (the seventh kept five: a recording, left out as there is a course).
    untimed = [(p.latitude, p.longitude) for t in tracks[:7] for seg in t.segments for p in seg.points if p.time is None
               and t is not tracks[-1]]  # fmt: skip
    made = await _post_file(ann, data, "cerknicko.gpx", "?name=Lake")
    assert made["name"] == "Lake" and made["points"] == len(untimed) == 275
    assert made["distance_m"] == pytest.approx(gpxpy_length_m(untimed), abs=1)


async def test_a_fit_course_written_by_fit_tool(ann: TestClient, settings: Settings) -> None:
    form = aiohttp.FormData()
    form.add_field("file", fit_tool_course(), filename="loop.fit", content_type="application/vnd.ant.fit")
    resp = await ann.post("/api/courses", data=form, headers=ANN)
    assert resp.status == 201, await resp.text()
    made = await resp.json()
    # 0.002° of latitude is 222.39 m; semicircles round positions to 8.4e-8°.
    assert (made["name"], made["points"]) == ("Loop", 3)
    assert made["distance_m"] == pytest.approx(0.002 * DEGREE_M, abs=0.1)


async def test_a_tcx_course_as_garmin_connect_writes_it(ann: TestClient) -> None:
    made = await _post_file(ann, GARMIN_COURSE_TCX.encode(), "loop.tcx")
    assert (made["name"], made["points"]) == ("Vrhnika loop", 2)
    assert made["distance_m"] == pytest.approx(gpxpy_length_m([(45.96, 14.29), (45.961, 14.291)]), abs=0.05)


async def test_a_recorded_activity_file_gives_its_route_thinned(ann: TestClient) -> None:
    # fit_tool's five fixes lie on one straight line (0.0001° north and east each): its two ends remain.
    made = await _post_file(ann, fit_tool_activity(), "ride.fit")
    assert made["points"] == 2
    assert made["distance_m"] == pytest.approx(gpxpy_length_m([(46.05, 14.5), (46.0504, 14.5004)]), abs=0.1)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"<gpx/>", "GPX"),
        (b"\x00\x01 not a course", "not a GPX, TCX or FIT file"),
        (b"{not json", "not JSON"),
        (b"", "the course is empty"),
    ],
)
async def test_files_that_are_no_course_get_a_400_naming_the_fault(ann: TestClient, data: bytes, says: str) -> None:
    resp = await ann.post("/api/courses", data=data, headers={**ANN, "Content-Type": "application/octet-stream"})
    assert resp.status == 400, await resp.text()
    assert says in (await resp.json())["error"]


# ----- tracker course add / list / remove


def test_the_course_commands(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    cli_add_user(data_dir, "ann")
    course_file = tmp_path / "loop.fit"
    course_file.write_bytes(fit_tool_course())
    geojson = tmp_path / "line.geojson"
    geojson.write_text('{"type": "LineString", "coordinates": [[0, 0], [0.01, 0]]}')
    link = invoke(["link", "create", "ann", "--label", "club", "--data-dir", str(data_dir)])
    assert link.exit_code == 0, link.output

    added = invoke(["course", "add", "ann", str(course_file), "--attach", "now", "--data-dir", str(data_dir)])
    assert added.exit_code == 0, added.output
    assert "course 1 'Loop' of ann: 3 points, 0.22 km, shown on now" in added.output
    added = invoke(["course", "add", "ann", str(geojson), "--name", "East", "--attach", "club", "--data-dir", str(data_dir)])
    assert added.exit_code == 0, added.output
    assert "course 2 'East' of ann: 2 points, 1.11 km, shown on link:1" in added.output

    listing = invoke(["course", "list", "ann", "--data-dir", str(data_dir)])
    assert listing.exit_code == 0, listing.output
    lines = listing.output.splitlines()
    assert lines[0].split() == ["ID", "NAME", "POINTS", "KM", "CREATED", "SHOWN", "ON"]
    assert lines[1].split()[:4] == ["2", "East", "2", "1.11"] and lines[1].endswith("link:1")
    assert lines[2].split()[:4] == ["1", "Loop", "3", "0.22"] and lines[2].endswith("now")

    removed = invoke(["course", "remove", "ann", "1", "--data-dir", str(data_dir)])
    assert removed.exit_code == 0 and "removed course 1 of ann" in removed.output
    assert invoke(["course", "list", "ann", "--data-dir", str(data_dir)]).output.count("Loop") == 0


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["course", "add", "ann", "{file}", "--attach", "nobody"], "ann has no active live-view share link labelled 'nobody'"),
        (["course", "add", "zed", "{file}"], "unknown user 'zed'"),
        (["course", "add", "ann", "{bad}"], "not a GPX, TCX or FIT file"),
        (["course", "remove", "ann", "7"], "ann has no course 7"),
    ],
)
def test_course_command_errors_are_one_line(tmp_path: Path, args: list[str], says: str) -> None:
    data_dir = tmp_path / "data"
    cli_add_user(data_dir, "ann")
    (tmp_path / "loop.fit").write_bytes(fit_tool_course())
    (tmp_path / "bad.gpx").write_bytes(b"nothing here")
    paths = {"{file}": str(tmp_path / "loop.fit"), "{bad}": str(tmp_path / "bad.gpx")}
    result = invoke([paths.get(a, a) for a in args] + ["--data-dir", str(data_dir)])
    assert result.exit_code == 1, result.output
    assert says in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
    assert "Traceback" not in result.output


async def test_a_course_from_an_imported_activity(ann: TestClient) -> None:
    # GPSBabel's recording of a lake loop (gpxpy's test file): imported, then its first activity planned.
    data = fixture("cerknicko-jezero.gpx")
    resp = await ann.post("/api/import", data=data, headers={**ANN, "X-Filename": "cerknicko-jezero.gpx"})
    assert resp.status == 200, await resp.text()
    first = (await resp.json())["activities"][0]
    activity = await (await ann.get(f"/api/activities/{first['id']}", headers=ANN)).json()
    # The same fixes as gpxpy reads them, within the activity's span.
    fixes = [
        (p.latitude, p.longitude) for t in gpxpy.parse(data.decode()).tracks for seg in t.segments for p in seg.points
        if activity["start_ns"] <= p.time.timestamp() * 1e9 <= activity["end_ns"]
    ]  # fmt: skip
    fixes = list(dict.fromkeys(fixes))  # a fix repeated at once adds no length
    assert len(fixes) > 20
    made = await _post_file_json(ann, {"activity": first["id"]})
    assert made["name"] == first["name"]
    # Thinning keeps fewer points and shortens the line only by the wiggles under 1 m it drops.
    assert 2 <= made["points"] < len(fixes)
    full = gpxpy_length_m(fixes)
    assert full * 0.98 <= made["distance_m"] <= full + 0.5


async def _post_file_json(client: TestClient, body: dict[str, Any]) -> Any:
    resp = await client.post("/api/courses", json=body, headers=ANN)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_an_activity_link_shows_no_course(ann: TestClient, accounts: Any) -> None:
    await _write(ann, _l_shaped_ride()[:10])
    activity = await _only_activity(ann)
    _, link = await accounts.create_link("ann", "the ride", activity_id=activity["id"])
    made = await _post_file_json(ann, {"activity": activity["id"]})
    resp = await ann.put(f"/api/courses/{made['id']}/attach", json={"target": f"link:{link.id}"}, headers=ANN)
    assert resp.status == 400
    assert f"target link {link.id} opens activity {activity['id']}, not the live view" in (await resp.json())["error"]


def test_course_add_attaches_to_live_view_links_only(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    cli_add_user(data_dir, "ann")
    (tmp_path / "loop.fit").write_bytes(fit_tool_course())

    async def activity_link() -> None:
        store = SampleStore(data_dir)
        try:
            await store.write("ann", [Pt(T0, {"lat": 1.0, "lng": 1.0}), Pt(T0 + S, {"lat": 1.0, "lng": 1.001})])
            await activities.refresh(store, "ann")
        finally:
            await store.close()
        account_store = await AccountStore.open(data_dir)
        try:
            await Accounts(account_store, password_context=CHEAP_HASHING).create_link("ann", "ride", activity_id=1)
        finally:
            await account_store.close()

    asyncio.run(activity_link())
    result = invoke(["course", "add", "ann", str(tmp_path / "loop.fit"), "--attach", "ride", "--data-dir", str(data_dir)])
    assert result.exit_code == 1
    assert "ann has no active live-view share link labelled 'ride'" in result.stderr
