"""Courses (planned routes): stored in the user's own file, the API, who sees which, and the bounds.

Distances are checked against hand-worked values: on the equator a degree of longitude is
R·π/180 = 111,194.93 m (R = 6,371,008.8 m), so 0.01° is 1,111.95 m.
"""

from __future__ import annotations

import orjson
import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import AddUser, basic
from tests.sse import sign_in
from tracker.accounts import Accounts
from tracker.config import Settings
from tracker.courses import MAX_COURSES, MAX_POINTS, course_from_points
from tracker.storage import SampleStore
from tracker.storage import courses as stored

ALICE = basic("alice", "pw-alice")
BOB = basic("bob", "pw-bob")
CAROL = basic("carol", "pw-carol")
LINE = [[0.0, 0.0], [0.0, 0.01], [0.0, 0.02]]  # 2,223.9 m east along the equator


@pytest.fixture
async def people(add_user: AddUser, accounts: Accounts) -> Accounts:
    for name in ("alice", "bob", "carol"):
        await add_user(name, f"pw-{name}")
    await accounts.add_share("alice", "bob")
    return accounts


async def test_courses_are_kept_in_the_users_file(settings: Settings) -> None:
    store = SampleStore(settings.data_dir)
    try:
        course = course_from_points("Out", LINE)
        record = await stored.add_course(store, "alice", course, 123, MAX_COURSES)
        assert record is not None and record.point_count == 3
        assert record.distance_m == pytest.approx(2223.90, abs=0.02)
        assert await stored.attach(store, "alice", record.id, "now")
        assert not await stored.attach(store, "alice", record.id + 1, "now")  # no such course
    finally:
        await store.close()
    reopened = SampleStore(settings.data_dir)  # as another process would read it
    try:
        assert [c.name for c in await stored.list_courses(reopened, "alice")] == ["Out"]
        on = await stored.course_on(reopened, "alice", ["link:7", "now"])
        assert on is not None and orjson.loads(on.points_json or b"") == [[0, 0, None], [0, 0.01, None], [0, 0.02, None]]
        assert await stored.list_courses(reopened, "bob") == []  # no file: nothing, and none made
        assert not reopened.path_for("bob").exists()
        assert await stored.delete_course(reopened, "alice", record.id)
        assert await stored.attachments(reopened, "alice") == {}  # deleting a course detaches it
    finally:
        await reopened.close()


async def test_the_course_api_for_the_owner(client: TestClient, people: Accounts) -> None:
    resp = await client.post("/api/courses", json={"name": "  Out  ", "points": LINE}, headers=ALICE)
    assert resp.status == 201, await resp.text()
    made = await resp.json()
    assert made["name"] == "Out" and made["points"] == 3
    assert made["distance_m"] == pytest.approx(2223.9, abs=0.1)
    # GeoJSON: coordinates are [lng, lat(, alt)]; 0.01° north along the meridian is 1,111.95 m as well.
    geo = {"type": "Feature", "properties": {"name": "North"},
           "geometry": {"type": "LineString", "coordinates": [[0, 0, 400], [0, 0.01, 410]]}}  # fmt: skip
    resp = await client.post("/api/courses", json=geo, headers=ALICE)
    assert resp.status == 201, await resp.text()
    north = await resp.json()
    assert north["name"] == "North" and north["distance_m"] == pytest.approx(1111.95, abs=0.05)
    resp = await client.post("/api/courses", json={"type": "LineString", "coordinates": [[8, 47], [8.001, 47]]}, headers=ALICE)
    assert resp.status == 201 and (await resp.json())["name"] == "Course"

    resp = await client.put(f"/api/courses/{north['id']}/attach", json={"target": "now"}, headers=ALICE)
    assert resp.status == 200, await resp.text()
    listing = await (await client.get("/api/courses", headers=ALICE)).json()
    assert [c["name"] for c in listing["courses"]] == ["Course", "North", "Out"]  # newest first
    assert listing["attachments"] == [{"target": "now", "course": north["id"]}]
    # The watch API goes by the browser session or a link, as the rest of /api/watch/ does.
    assert (await client.get("/api/watch/alice/course", headers=ALICE)).status == 401
    await sign_in(client, "alice", "pw-alice")
    watched = await (await client.get("/api/watch/alice/course")).json()
    assert watched == {
        "course": {"id": north["id"], "name": "North", "distance_m": pytest.approx(1111.95, abs=0.05),
                   "points": [[0.01, 0.0, 410.0], [0.0, 0.0, 400.0]][::-1]},
        "off_route_m": 50.0,
    }  # fmt: skip

    # Asked again with the tag of what the page shows: 304 while it is unchanged, the new one after.
    resp = await client.get("/api/watch/alice/course")
    tag = resp.headers["ETag"]
    assert (await client.get("/api/watch/alice/course", headers={"If-None-Match": tag})).status == 304
    assert (await client.delete("/api/courses/attach/now", headers=ALICE)).status == 200
    assert (await client.delete("/api/courses/attach/now", headers=ALICE)).status == 404
    resp = await client.get("/api/watch/alice/course", headers={"If-None-Match": tag})
    assert resp.status == 200 and (await resp.json())["course"] is None
    assert (await client.delete(f"/api/courses/{made['id']}", headers=ALICE)).status == 200
    resp = await client.delete(f"/api/courses/{made['id']}", headers=ALICE)
    assert resp.status == 404 and "no course" in (await resp.json())["error"]


async def test_the_session_needs_the_csrf_token_for_changes(client: TestClient, people: Accounts) -> None:
    csrf = await sign_in(client, "alice", "pw-alice")
    body = {"name": "Out", "points": LINE}
    assert (await client.post("/api/courses", json=body)).status == 403
    assert (await client.post("/api/courses", json=body, headers={"X-CSRF-Token": csrf})).status == 201
    assert len((await (await client.get("/api/courses")).json())["courses"]) == 1


async def test_a_link_viewer_sees_the_course_of_their_link(
    client: TestClient, people: Accounts, settings: Settings
) -> None:
    ids = {}
    for name in ("For mum", "Everyone"):
        resp = await client.post("/api/courses", json={"name": name, "points": LINE}, headers=ALICE)
        ids[name] = (await resp.json())["id"]
    mum_token, mum_link = await people.create_link("alice", "mum")
    other_token, _ = await people.create_link("alice", "club")
    attach = await client.put(f"/api/courses/{ids['For mum']}/attach", json={"target": f"link:{mum_link.id}"}, headers=ALICE)
    assert attach.status == 200, await attach.text()
    assert (await client.put(f"/api/courses/{ids['Everyone']}/attach", json={"target": "now"}, headers=ALICE)).status == 200

    async def seen(token: str) -> str | None:
        resp = await client.get(f"/api/watch/alice/course?token={token}")
        assert resp.status == 200, await resp.text()
        course = (await resp.json())["course"]
        return course and course["name"]

    assert await seen(mum_token) == "For mum"
    assert await seen(other_token) == "Everyone"  # no course on that link: the one on "now"
    await sign_in(client, "bob", "pw-bob")  # a reader alice shares with
    assert (await (await client.get("/api/watch/alice/course")).json())["course"]["name"] == "Everyone"
    # Bob may list alice's courses, not change them; carol may do neither.
    assert (await client.get("/api/courses?user=alice", headers=BOB)).status == 200
    resp = await client.delete(f"/api/courses/{ids['Everyone']}?user=alice", headers=BOB)
    assert resp.status == 403 and "only alice" in (await resp.json())["error"]
    assert (await client.get("/api/courses?user=alice", headers=CAROL)).status == 403
    assert (await client.get("/api/watch/alice/course?token=not-a-token")).status in (200, 403)

    assert (await client.delete(f"/api/courses/attach/link:{mum_link.id}", headers=ALICE)).status == 200
    assert await seen(mum_token) == "Everyone"
    assert (await client.delete(f"/api/courses/{ids['Everyone']}", headers=ALICE)).status == 200
    assert await seen(other_token) is None
    client.session.cookie_jar.clear()
    assert (await client.get("/api/watch/alice/course")).status == 401


@pytest.mark.parametrize("settings", [{"off_route_m": 75.0}], indirect=True)
async def test_the_off_route_threshold_is_a_setting(client: TestClient, people: Accounts) -> None:
    await sign_in(client, "alice", "pw-alice")
    assert (await (await client.get("/api/watch/alice/course")).json()) == {"course": None, "off_route_m": 75.0}


def test_the_off_route_threshold_must_be_positive(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="off route m must be positive"):
        Settings(data_dir=tmp_path, off_route_m=0).validate()


@pytest.mark.parametrize(
    "body, says",
    [
        ({"name": "x", "points": [[0, 0]]}, "points must hold 2 to 100000 points, got 1"),
        ({"name": "x", "points": [[0, 0]] * (MAX_POINTS + 1)}, "points must hold 2 to 100000 points, got 100001"),
        ({"name": "x" * 201, "points": LINE}, "name must be at most 200 characters, got 201"),
        ({"name": "", "points": LINE}, "name must be a non-empty string"),
        ({"name": "x", "points": [[0, 0], [91, 0]]}, "points[1] latitude must be -90..90, got 91"),
        ({"name": "x", "points": [[0, 0], [0, 181]]}, "points[1] longitude must be -180..180, got 181"),
        ({"name": "x", "points": [[0, 0], [0, "8"]]}, "points[1][1] must be a number"),
        ({"name": "x", "points": [[0, 0], [0]]}, "points[1] must be [lat, lng(, alt)]"),
        ({"name": "x", "points": "0,0"}, "points must be a list of points"),
        ({"type": "Point", "coordinates": [0, 0]}, "GeoJSON type must be LineString"),
        ([1, 2], "expected a JSON object"),
    ],
)
async def test_bad_courses_get_a_400_naming_the_field(client: TestClient, people: Accounts, body: object, says: str) -> None:
    resp = await client.post("/api/courses", json=body, headers=ALICE)
    assert resp.status == 400, await resp.text()
    assert says in (await resp.json())["error"]


async def test_bad_requests_and_targets(client: TestClient, people: Accounts) -> None:
    resp = await client.post("/api/courses", data=b"{not json", headers={**ALICE, "Content-Type": "application/json"})
    assert resp.status == 400 and "not JSON" in (await resp.json())["error"]
    resp = await client.post("/api/courses", data=b"<gpx/>", headers={**ALICE, "Content-Type": "application/gpx+xml"})
    assert resp.status == 400 and "GPX" in (await resp.json())["error"]
    made = await (await client.post("/api/courses", json={"name": "Out", "points": LINE}, headers=ALICE)).json()
    attach = f"/api/courses/{made['id']}/attach"
    for target, status, says in [
        ("later", 400, 'target must be "now" or "link:<link id>"'),
        ("link:x", 400, "target must be"),
        (5, 400, "target must be"),
        ("link:999", 404, "alice has no share link 999"),
    ]:
        resp = await client.put(attach, json={"target": target}, headers=ALICE)
        assert resp.status == status and says in (await resp.json())["error"], (target, await resp.text())
    _, bobs = await people.create_link("bob", "bob's")
    resp = await client.put(attach, json={"target": f"link:{bobs.id}"}, headers=ALICE)
    assert resp.status == 404  # another user's link
    token, revoked = await people.create_link("alice", "gone")
    await people.revoke_link("alice", token)
    resp = await client.put(attach, json={"target": f"link:{revoked.id}"}, headers=ALICE)
    assert resp.status == 400 and "has ended" in (await resp.json())["error"]
    assert (await client.put(attach, data=b"[]", headers=ALICE)).status == 400
    assert (await client.put("/api/courses/abc/attach", json={"target": "now"}, headers=ALICE)).status == 400
    assert (await client.put("/api/courses/999/attach", json={"target": "now"}, headers=ALICE)).status == 404
    assert (await client.delete("/api/courses/attach/somewhere", headers=ALICE)).status == 400
    assert (await client.get("/api/courses", headers=basic("alice", "wrong"))).status == 401
    resp = await client.get("/api/courses", headers={"Authorization": "Bearer abc"})
    assert resp.status == 401 and "error" in await resp.json()  # as /query answers a Bearer token
    resp = await client.put(attach, data=b"{" * 5000, headers=ALICE)
    assert resp.status == 413
    assert (await client.get("/api/courses?user=../x", headers=ALICE)).status == 400


async def test_at_most_200_courses_per_user(client: TestClient, people: Accounts, settings: Settings) -> None:
    store = SampleStore(settings.data_dir)
    try:
        course = course_from_points("c", LINE)
        for i in range(MAX_COURSES):
            assert await stored.add_course(store, "alice", course, i, MAX_COURSES) is not None
    finally:
        await store.close()
    resp = await client.post("/api/courses", json={"name": "one more", "points": LINE}, headers=ALICE)
    assert resp.status == 409 and "at most 200 courses" in (await resp.json())["error"]


async def test_a_course_id_that_is_no_id_is_a_400(client: TestClient, people: Accounts) -> None:
    # "²" is a digit to str.isdigit() but not to int(): it must be refused, not raise.
    for raw in ("%C2%B2", "0", "9" * 19, "x"):
        resp = await client.delete(f"/api/courses/{raw}", headers=ALICE)
        assert resp.status == 400, (raw, await resp.text())
        assert "course id must be a positive integer" in (await resp.json())["error"]
