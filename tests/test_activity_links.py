"""Share links for one activity: made by the owner, read-only, opening that activity's page and data
and nothing else (not the live view, /query, other activities, the list, the settings or any change);
revoked and expired ones refused with the live view's messages; a live-view link opens no activity.
And one activity's export: over HTTP (the owner, a reader, its link) and from the CLI."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import fitdecode
import gpxpy
import pytest
from aiohttp.test_utils import TestClient

from tests.cli_helpers import add_user, invoke
from tests.conftest import Pt, basic
from tests.sse import sign_in
from tracker.storage import SampleStore
from tracker.storage import activities as stored_activities

S = 1_000_000_000
T0 = 1_700_000_000 * S
ANN = basic("ann", "pw-ann")


def _line(t: int, **fields: float) -> str:
    values = ",".join(f"{k}={v}" for k, v in fields.items())
    return f"samples,device=garmin,sport=cycling {values} {t}"


@pytest.fixture
async def ann(client: TestClient, add_user: Any, accounts: Any) -> dict[str, Any]:
    """ann with two rides 3 h apart (ids `first`, `second`), bob reading her by a share."""
    for name in ("ann", "bob"):
        await add_user(name, f"pw-{name}")
    await accounts.add_share("ann", "bob")
    lines = [_line(T0 + i * S, lat=47.0 + i * 1e-4, lng=8.0, hr_bpm=120 + i) for i in range(30)]
    lines += [_line(T0 + 3 * 3600 * S + i * S, lat=46.0, lng=7.0 + i * 1e-4, hr_bpm=90) for i in range(10)]
    response = await client.post("/write?db=ann", data="\n".join(lines), headers=ANN)
    assert response.status == 204
    listed = (await (await client.get("/api/activities", headers=ANN)).json())["activities"]
    second, first = (a["id"] for a in listed)
    return {"first": first, "second": second}


async def _link(client: TestClient, activity_id: int, **body: Any) -> dict[str, Any]:
    response = await client.post(f"/api/activities/{activity_id}/links", json=body, headers=ANN)
    assert response.status == 201, await response.text()
    return await response.json()


async def test_the_owner_makes_a_link_that_opens_its_activity_signed_out(client: TestClient, ann: dict[str, Any]) -> None:
    link = await _link(client, ann["first"], label="for mum")
    assert link["activity_id"] == ann["first"] and link["label"] == "for mum" and link["expires_ns"] is None
    assert link["url"].endswith(f"/activity/{ann['first']}?token={link['token']}")
    token = link["token"]
    page = await client.get(f"/activity/{ann['first']}?token={token}")
    assert page.status == 200 and "text/html" in page.headers["Content-Type"]
    activity = await (await client.get(f"/api/activities/{ann['first']}?token={token}")).json()
    assert (activity["id"], activity["user"], activity["samples"]) == (ann["first"], "ann", 30)
    samples = await (await client.get(f"/api/activities/{ann['first']}/samples?token={token}")).json()
    assert len(samples["values"]) == 30 and samples["columns"][0] == "time"
    laps = await client.get(f"/api/activities/{ann['first']}/laps?token={token}&every_m=100")
    assert laps.status == 200 and len((await laps.json())["laps"]) >= 3
    config = await (await client.get(f"/api/activities/{ann['first']}/config?token={token}")).json()
    assert (config["user"], config["activity_id"], config["can_change"]) == ("ann", ann["first"], False)
    # Her reader sees the page's config too, without the owner's controls; she herself with them.
    bob = await client.get(f"/api/activities/{ann['first']}/config?user=ann", headers=basic("bob", "pw-bob"))
    assert (await bob.json())["can_change"] is False
    assert (await (await client.get(f"/api/activities/{ann['first']}/config", headers=ANN)).json())["can_change"] is True
    # `user=ann` is allowed too (it names the link's owner).
    assert (await client.get(f"/api/activities/{ann['first']}?token={token}&user=ann")).status == 200


async def test_an_activity_link_opens_nothing_else(client: TestClient, ann: dict[str, Any]) -> None:
    token = (await _link(client, ann["first"]))["token"]
    first, second = ann["first"], ann["second"]
    refused = {
        ("GET", f"/api/activities/{second}"): 403,
        ("GET", f"/api/activities/{second}/samples"): 403,
        ("GET", f"/api/activities/{second}/laps"): 403,
        ("GET", f"/api/activities/{second}/config"): 403,
        ("GET", "/api/activities"): 403,
        ("GET", "/api/activity-settings"): 403,
        ("GET", f"/api/activities/{first}?user=bob"): 403,
        ("PATCH", f"/api/activities/{first}"): 403,
        ("DELETE", f"/api/activities/{first}?confirm={first}"): 403,
        ("POST", f"/api/activities/{first}/split"): 403,
        ("POST", "/api/activities/merge"): 403,
        ("POST", f"/api/activities/{first}/links"): 403,
        ("PUT", "/api/activity-settings"): 403,
        ("GET", "/api/watch/ann/config"): 403,
        ("GET", "/api/watch/ann/samples"): 403,
        ("GET", "/api/watch/ann/devices"): 403,
        ("GET", "/api/watch/ann/events"): 403,
        ("GET", "/api/watch/ann/course"): 403,
        ("GET", "/api/export?user=ann&format=gpx"): 401,
        ("POST", "/api/import?user=ann"): 401,
        ("GET", "/api/courses?user=ann"): 401,
        ("GET", "/query?db=ann&q=SELECT * FROM samples"): 401,
        ("GET", "/api/links"): 401,
        ("GET", "/api/me"): 401,
    }
    bodies = {"PATCH": {"name": "mine now"}, "POST": {"at": T0 + 10 * S, "ids": [first, second]}, "PUT": {"gap_s": 60}}
    for (method, path), status in refused.items():
        joiner = "&" if "?" in path else "?"
        response = await client.request(method, f"{path}{joiner}token={token}", json=bodies.get(method))
        text = await response.text()
        assert response.status == status, f"{method} {path}: {response.status} {text}"
        assert "47.0" not in text and "120" not in text, f"{method} {path} leaks the ride: {text[:200]}"
    # Nothing changed: name, samples and settings as they were.
    activity = await (await client.get(f"/api/activities/{first}", headers=ANN)).json()
    assert (activity["named"], activity["samples"]) == (False, 30)
    assert (await (await client.get("/api/activity-settings", headers=ANN)).json())["gap_s"] == 1800
    # The messages say why.
    other = await (await client.get(f"/api/activities/{second}?token={token}")).json()
    assert other["error"] == f"this link opens only activity {first}"
    change = await (await client.patch(f"/api/activities/{first}?token={token}", json={"name": "x"})).json()
    assert change["error"] == "a share link only reads: sign in to change the activity"


async def test_a_live_view_link_opens_no_activity_and_an_activity_link_no_live_view(
    client: TestClient, ann: dict[str, Any], accounts: Any
) -> None:
    live_token, _ = await accounts.create_link("ann", "live")
    assert (await client.get(f"/api/watch/ann/samples?token={live_token}")).status == 200
    for path in (f"/api/activities/{ann['first']}", f"/api/activities/{ann['first']}/samples", "/api/activities"):
        response = await client.get(f"{path}?token={live_token}")
        assert response.status == 401, path
        assert "opens no activity" in (await response.json())["error"]
    activity_token = (await _link(client, ann["first"]))["token"]
    watch = await client.get(f"/api/watch/ann/samples?token={activity_token}")
    assert watch.status == 403
    assert await watch.json() == {"error": "not allowed to watch ann"}  # no "link ended" story for it


async def test_revoked_and_expired_links_are_refused_with_the_live_views_messages(
    client: TestClient, ann: dict[str, Any]
) -> None:
    revoked = await _link(client, ann["first"], label="to revoke")
    expiring = await _link(client, ann["first"], label="short", expires_in=0.2)
    assert expiring["expires_ns"] is not None
    assert (await client.get(f"/api/activities/{ann['first']}?token={expiring['token']}")).status == 200
    csrf = await sign_in(client, "ann", "pw-ann")
    listed = {link["id"]: link for link in (await (await client.get("/api/links")).json())["links"]}
    assert listed[revoked["id"]]["activity_id"] == ann["first"]
    assert (await client.delete(f"/api/links/{revoked['id']}", headers={"X-CSRF-Token": csrf})).status == 200
    await client.post("/logout", json={}, headers={"X-CSRF-Token": csrf})
    await asyncio.sleep(0.25)
    for link, reason, message in (
        (revoked, "link_revoked", "this share link was revoked; ask ann for a new one"),
        (expiring, "link_expired", "this share link has expired; ask ann for a new one"),
    ):
        for path in (f"/api/activities/{ann['first']}", f"/api/activities/{ann['first']}/samples"):
            response = await client.get(f"{path}?token={link['token']}")
            assert response.status == 403
            assert await response.json() == {"error": message, "reason": reason}


async def test_only_the_owner_makes_activity_links_and_bad_input_is_named(client: TestClient, ann: dict[str, Any]) -> None:
    first = ann["first"]
    bob = await client.post(f"/api/activities/{first}/links?user=ann", json={}, headers=basic("bob", "pw-bob"))
    assert bob.status == 403
    # Signed out, no credentials: an API's caller is told first that it needs credentials, as on
    # /api/courses and /api/import.
    assert (await client.post(f"/api/activities/{first}/links", json={})).status == 401
    for body, status, words in (
        ({"expires_in": -5}, 400, "expires_in"),
        ({"expires_in": "soon"}, 400, "invalid duration"),
        ({"expires_in": True}, 400, "expires_in"),
        ({"label": 7}, 400, "label"),
        ({"label": "x" * 101}, 400, "label"),
    ):
        response = await client.post(f"/api/activities/{first}/links", json=body, headers=ANN)
        assert response.status == status, body
        assert words in (await response.json())["error"], body
    missing = await client.post("/api/activities/999/links", json={}, headers=ANN)
    assert missing.status == 404
    # A label in use by an active link of hers is a conflict, as for live-view links.
    await _link(client, first, label="twice")
    assert (await client.post(f"/api/activities/{first}/links", json={"label": "twice"}, headers=ANN)).status == 409
    # Without a label: the activity's name, kept apart by a suffix; "2h" is a duration.
    made = await _link(client, first, expires_in="2h")
    assert made["label"].startswith("Cycling, 14 Nov 2023 22:13")
    assert 7190 * S < made["expires_ns"] - made["created_ns"] <= 7200 * S


# ---- exporting one activity


async def test_an_activity_exports_its_own_track_and_span_as_gpxpy_and_fitdecode_read_them(
    client: TestClient, ann: dict[str, Any]
) -> None:
    # Another device at the same time: not part of the activity, so not in its file.
    other = "samples,device=watch,sport=running hr_bpm=77,lat=10,lng=10 " + str(T0 + 5 * S)
    assert (await client.post("/write?db=ann", data=other, headers=ANN)).status == 204
    first = ann["first"]
    response = await client.get(f"/api/activities/{first}/export?format=gpx", headers=ANN)
    assert response.status == 200
    assert response.headers["Content-Disposition"].startswith('attachment; filename="ann-')
    gpx = gpxpy.parse((await response.read()).decode())
    points = [p for track in gpx.tracks for segment in track.segments for p in segment.points]
    assert len(points) == 30
    assert [(p.latitude, p.longitude) for p in points[:2]] == [(47.0, 8.0), (47.0001, 8.0)]
    assert points[-1].time.timestamp() == (T0 + 29 * S) / S  # the last sample is in: the span is inclusive

    # FIT, read by an independent library: 30 records, heart rates as written.
    fit = await (await client.get(f"/api/activities/{first}/export?format=fit", headers=ANN)).read()
    with fitdecode.FitReader(io.BytesIO(fit)) as reader:
        records = [frame for frame in reader if isinstance(frame, fitdecode.FitDataMessage) and frame.name == "record"]
    assert [record.get_value("heart_rate") for record in records] == [120 + i for i in range(30)]

    # An activity link exports its activity, and only that one.
    token = (await _link(client, first))["token"]
    assert (await client.get(f"/api/activities/{first}/export?format=csv&token={token}")).status == 200
    assert (await client.get(f"/api/activities/{ann['second']}/export?format=csv&token={token}")).status == 403
    bad = await client.get(f"/api/activities/{first}/export?format=kml", headers=ANN)
    assert bad.status == 400 and "format: must be one of gpx" in (await bad.json())["error"]
    assert (await client.get("/api/activities/999/export?format=gpx", headers=ANN)).status == 404


def test_cli_exports_one_activity(data_dir: Path, tmp_path: Path) -> None:
    add_user(data_dir, "ann")

    async def write() -> int:
        store = SampleStore(data_dir)
        try:
            tags = (("device", "garmin"), ("sport", "cycling"))
            await store.write("ann", [Pt(T0 + i * S, {"lat": 47.0 + i * 1e-4, "lng": 8.0}, tags) for i in range(12)])
            await store.write("ann", [Pt(T0 + 7200 * S + i * S, {"lat": 46.0, "lng": 7.0}, tags) for i in range(5)])
            await stored_activities.refresh(store, "ann")
            rows = await stored_activities.list_activities(store, "ann", limit=10)
            return next(row.id for row in rows if row.start_ns == T0)
        finally:
            await store.close()

    first = asyncio.run(write())
    out = tmp_path / "ride.gpx"
    result = invoke(["export", "ann", "--activity", str(first), "--format", "gpx", "-o", str(out), "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    gpx = gpxpy.parse(out.read_text())
    assert sum(len(segment.points) for track in gpx.tracks for segment in track.segments) == 12
    missing = invoke(["export", "ann", "--activity", "999", "--format", "gpx", "--data-dir", str(data_dir)])
    assert missing.exit_code == 1 and "ann has no activity 999" in missing.output
    both = invoke(["export", "ann", "--activity", str(first), "--start", "0", "--format", "gpx", "--data-dir", str(data_dir)])
    assert both.exit_code == 2 and "leave out --start" in both.output


_PATHS = ("", "/samples", "/laps", "/config", "/export?format=csv")


async def _opens_nothing(client: TestClient, activity_id: int, token: str, reason: str) -> None:
    """Every path of a gone activity's link: 403 revoked or 404 gone, never another ride's data."""
    for path in _PATHS:
        joiner = "&" if "?" in path else "?"
        response = await client.get(f"/api/activities/{activity_id}{path}{joiner}token={token}")
        text = await response.text()
        assert "45.0" not in text and "95" not in text, f"{path} leaks a later ride: {text[:200]}"
        answer = json.loads(text)
        if reason == "revoked":
            assert (response.status, answer.get("reason")) == (403, "link_revoked"), f"{path}: {response.status} {text}"
        else:
            assert response.status == 404, f"{path}: {response.status} {text}"
            assert answer["error"] == "the activity of this link is gone; ask ann for a new link", path


async def _later_ride(client: TestClient, hours: int) -> dict[str, Any]:
    """A 5-sample ride `hours` after T0 (lat 45.0, hr 95), as the owner lists it (the newest)."""
    later = [_line(T0 + hours * 3600 * S + i * S, lat=45.0, lng=6.0, hr_bpm=95) for i in range(5)]
    assert (await client.post("/write?db=ann", data="\n".join(later), headers=ANN)).status == 204
    newest: dict[str, Any] = (await (await client.get("/api/activities?limit=1", headers=ANN)).json())["activities"][0]
    assert newest["samples"] == 5 and newest["start_ns"] == T0 + hours * 3600 * S
    return newest


async def test_deleting_or_merging_away_an_activity_revokes_its_links(client: TestClient, ann: dict[str, Any]) -> None:
    first, second = ann["first"], ann["second"]
    to_second = (await _link(client, second, label="second"))["token"]
    deleted = await client.delete(f"/api/activities/{second}?confirm={second}", headers=ANN)
    assert deleted.status == 200
    # The next ride gets a new id, never the deleted (newest) one's; the old link opens nothing of it.
    newest = await _later_ride(client, 6)
    assert newest["id"] > second
    await _opens_nothing(client, second, to_second, "revoked")

    # Merged: the later activity's id is gone, its link with it; the surviving activity's link still opens.
    to_first = (await _link(client, first, label="first"))["token"]
    to_newest = (await _link(client, newest["id"], label="newest"))["token"]
    merged = await client.post("/api/activities/merge", json={"ids": [first, newest["id"]]}, headers=ANN)
    assert merged.status == 200 and (await merged.json())["id"] == first
    after_merge = await _later_ride(client, 12)
    assert after_merge["id"] not in (first, second, newest["id"]) and after_merge["id"] > newest["id"]
    await _opens_nothing(client, newest["id"], to_newest, "revoked")
    survivor = await client.get(f"/api/activities/{first}/samples?token={to_first}")
    assert survivor.status == 200 and len((await survivor.json())["values"]) == 30 + 5


async def test_a_link_to_a_ride_joined_into_another_opens_nothing_and_its_id_never_comes_back(
    client: TestClient, ann: dict[str, Any]
) -> None:
    first, second = ann["first"], ann["second"]
    to_first = (await _link(client, first))["token"]
    to_second = (await _link(client, second))["token"]
    # A phone's backlog fills the 3 hours between the rides: they become one, which keeps the first's id
    # (no API call, so the second's link is not revoked: its activity is simply gone).
    bridge = [_line(T0 + k * 1500 * S, lat=46.5, lng=7.5, hr_bpm=100) for k in range(1, 8)]
    assert (await client.post("/write?db=ann", data="\n".join(bridge), headers=ANN)).status == 204
    [joined] = (await (await client.get("/api/activities", headers=ANN)).json())["activities"]
    assert joined["id"] == first and joined["samples"] == 30 + 7 + 10
    await _opens_nothing(client, second, to_second, "gone")
    # A later ride gets a new id, not the freed one: the old link still opens nothing of it.
    newest = await _later_ride(client, 9)
    assert newest["id"] > second
    await _opens_nothing(client, second, to_second, "gone")
    # The first ride's link, made before the join, opens what became of it: the same ride, lengthened.
    lengthened = await client.get(f"/api/activities/{first}?token={to_first}")
    assert lengthened.status == 200 and (await lengthened.json())["samples"] == 30 + 7 + 10


def test_cli_makes_and_lists_an_activity_link(data_dir: Path) -> None:
    add_user(data_dir, "ann")

    async def write() -> int:
        store = SampleStore(data_dir)
        try:
            tags = (("device", "garmin"), ("sport", "cycling"))
            await store.write("ann", [Pt(T0 + i * S, {"lat": 47.0, "lng": 8.0}, tags) for i in range(3)])
            await stored_activities.refresh(store, "ann")
            [row] = await stored_activities.list_activities(store, "ann", limit=10)
            return row.id
        finally:
            await store.close()

    ride = asyncio.run(write())
    made = invoke(["link", "create", "ann", "--activity", str(ride), "--label", "club", "--public-url", "https://t.example", "--data-dir", str(data_dir)])
    assert made.exit_code == 0, made.output
    assert made.stdout.startswith(f"https://t.example/activity/{ride}?token=")
    listing = invoke(["link", "list", "ann", "--data-dir", str(data_dir)]).stdout
    assert f"activity {ride}" in listing.splitlines()[1]
    missing = invoke(["link", "create", "ann", "--activity", "99", "--data-dir", str(data_dir)])
    assert missing.exit_code == 1 and "ann has no activity 99" in missing.output
    nobody = invoke(["link", "create", "ghost", "--activity", "1", "--data-dir", str(data_dir)])
    assert nobody.exit_code == 1 and not (data_dir / "users" / "ghost.sqlite").exists()
