"""Samples from a clock that runs ahead: refused on every way in, and never making a tracker look
live or seen in the future, over HTTP against a real server and real files."""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import AddUser, TokenMaker, basic, stored
from tests.sse import sign_in
from tracker.appkeys import ACCOUNTS, SAMPLES
from tracker.config import Settings
from tracker.lineprotocol import Point

S = 10**9
HOUR = 3600 * S
AUTH = basic("rider", "rider-pass-1")
# The default tolerance: five minutes ahead of the server's clock.
AHEAD_RULE = (
    "ahead of the server's clock: a sample may be at most 5m0s in the future (check the device's clock and time zone)"
)


@pytest.fixture
async def rider(add_user: AddUser) -> None:
    await add_user("rider", "rider-pass-1")


def iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


@pytest.mark.usefixtures("rider")
async def test_write_refuses_points_ahead_of_the_clock_as_a_partial_write(client: TestClient, settings: Settings) -> None:
    now = time.time_ns()
    ahead, fresh, near = now + HOUR, now - 30 * S, now + 60 * S  # a minute ahead is within the tolerance
    body = f"samples hr_bpm=1 {ahead}\nsamples hr_bpm=2 {fresh}\nsamples hr_bpm=3 {near}\nsamples hr_bpm=4 {ahead + 1}"
    for url in ("/write?db=rider", "/api/v2/write?bucket=rider"):
        resp = await client.post(url, data=body, headers=AUTH)
        assert resp.status == 400
        assert await resp.json() == {"error": f"partial write: points {AHEAD_RULE}: lines 1, 4 dropped=2"}
    assert [r.time for r in await stored(settings, "rider")] == [fresh, near]

    # Every point ahead: still a partial write naming the rule, nothing stored.
    resp = await client.post("/write?db=rider&precision=s", data=f"samples cad_rpm=9 {ahead // S}", headers=AUTH)
    assert resp.status == 400
    assert await resp.json() == {"error": f"partial write: points {AHEAD_RULE}: line 1 dropped=1"}
    # With a refused line too, both are named and both count.
    resp = await client.post("/write?db=rider", data=f"samples foo=1 {fresh}\nsamples dur_s=5 {ahead}", headers=AUTH)
    error = (await resp.json())["error"]
    assert error.startswith("partial write: unable to parse 'samples foo=1 ")
    assert error.endswith(f"\npoints {AHEAD_RULE}: line 2 dropped=2")
    assert all("cad_rpm" not in r.fields and "dur_s" not in r.fields for r in await stored(settings, "rider"))


@pytest.mark.parametrize("settings", [{"max_future_seconds": 10.0}], indirect=True)
@pytest.mark.usefixtures("rider")
async def test_the_tolerance_is_a_setting(client: TestClient, settings: Settings) -> None:
    now = time.time_ns()
    resp = await client.post("/write?db=rider", data=f"samples hr_bpm=1 {now + 60 * S}", headers=AUTH)
    assert resp.status == 400
    assert "a sample may be at most 10s in the future" in (await resp.json())["error"]
    assert await stored(settings, "rider") == []


@pytest.mark.usefixtures("rider")
async def test_every_way_in_refuses_samples_ahead_of_the_clock(
    client: TestClient, settings: Settings, make_token: TokenMaker
) -> None:
    token = await make_token("rider", "phone")
    ahead_s = time.time_ns() // S + 3600

    async def refused(resp: Any, parameter: str) -> None:
        assert resp.status == 400
        assert await resp.json() == {"error": f'parameter "{parameter}": {AHEAD_RULE}'}

    await refused(await client.get(f"/osmand?id={token}&lat=1&lon=2&timestamp={ahead_s}"), "timestamp")
    await refused(await client.get(f"/gpslogger?id={token}&lat=1&lon=2&time={iso(ahead_s)}"), "time")
    await refused(await client.get(f"/gpslogger?id={token}&lat=1&lon=2&timestamp={ahead_s}"), "timestamp")
    traccar = {"device_id": token, "location": {"timestamp": iso(ahead_s), "coords": {"latitude": 1, "longitude": 2}}}
    await refused(await client.post("/osmand", json=traccar), "location.timestamp")
    owntracks = {"_type": "location", "lat": 1, "lon": 2, "tst": ahead_s}
    await refused(await client.post("/owntracks", json=owntracks, headers=AUTH), "tst")

    # The JSON API names the sample among the invalid items; with partial=true the others are stored.
    fresh_s = time.time_ns() // S - 5
    batch = {"samples": [{"time": ahead_s, "fields": {"hr_bpm": 1}}, {"time": fresh_s, "fields": {"hr_bpm": 2}}]}
    resp = await client.post("/api/v1/samples", json=batch, headers=AUTH)
    assert resp.status == 400
    assert (await resp.json())["errors"] == [{"index": 0, "path": "/samples/0/time", "message": AHEAD_RULE}]
    assert await stored(settings, "rider") == []
    resp = await client.post("/api/v1/samples?partial=true", json=batch, headers=AUTH)
    assert resp.status == 207
    assert [r.time for r in await stored(settings, "rider")] == [fresh_s * S]


@pytest.mark.usefixtures("rider")
async def test_samples_stored_in_the_future_never_make_a_tracker_look_live(client: TestClient) -> None:
    """Samples stored far ahead before the rule existed are not "seen"; one within the tolerance
    counts as seen now, never later."""
    now = time.time_ns()
    real = now - 10 * 60 * S  # the ride ended ten minutes ago...
    store = client.server.app[SAMPLES]
    await store.write("rider", [
        Point("samples", (("device", "watch"),), {"hr_bpm": 120.0}, real),
        Point("samples", (("device", "watch"),), {"hr_bpm": 121.0}, now + 24 * HOUR),  # ...and a clock a day ahead
        Point("samples", (("device", "phone"),), {"hr_bpm": 90.0}, real - S),
    ])  # fmt: skip
    await sign_in(client, "rider", "rider-pass-1")
    me = await (await client.get("/api/me")).json()
    assert me["trackers"] == [{"user": "rider", "last_sample_ns": real, "live": False}]
    devices = (await (await client.get("/api/watch/rider/devices")).json())["devices"]
    assert devices == [
        {"device": "watch", "last_sample_ns": real, "live": False},
        {"device": "phone", "last_sample_ns": real - S, "live": False},
    ]

    # A sample two minutes ahead (within the tolerance) counts, as seen now: live, and not in the future.
    resp = await client.post("/write?db=rider", data=f"samples,device=watch hr_bpm=122 {time.time_ns() + 120 * S}", headers=AUTH)
    assert resp.status == 204
    before = time.time_ns()
    me = await (await client.get("/api/me")).json()
    after = time.time_ns()
    (tracker,) = me["trackers"]
    assert tracker["live"] is True and before - 5 * S <= tracker["last_sample_ns"] <= after
    watch = (await (await client.get("/api/watch/rider/devices")).json())["devices"][0]
    assert watch["device"] == "watch" and watch["live"] is True and watch["last_sample_ns"] <= time.time_ns()


@pytest.mark.usefixtures("rider")
async def test_the_watch_window_never_reaches_past_the_tolerance(client: TestClient) -> None:
    """The page asks for an open window well ahead of now; a sample stored a day ahead (before the
    rule) is not in the answer, so it can neither hold the marker nor stretch the charts."""
    now = time.time_ns()
    store = client.server.app[SAMPLES]
    await store.write("rider", [
        Point("samples", (), {"hr_bpm": 120.0}, now - 60 * S),
        Point("samples", (), {"hr_bpm": 121.0}, now + 24 * HOUR),
    ])  # fmt: skip
    await sign_in(client, "rider", "rider-pass-1")
    body = await (await client.get(f"/api/watch/rider/samples?from={now - HOUR}&to={now + 48 * HOUR}")).json()
    assert [sample["t"] for sample in body["samples"]] == [now - 60 * S]
    assert body["to"] <= time.time_ns() + 300 * S + 1
    # A window wholly beyond the tolerance is empty, not an error.
    body = await (await client.get(f"/api/watch/rider/samples?from={now + HOUR}&to={now + 48 * HOUR}")).json()
    assert body["samples"] == []


@pytest.mark.parametrize("settings", [{"webhook_allow_private": True}], indirect=True)
@pytest.mark.usefixtures("rider")
async def test_a_sample_within_the_tolerance_is_seen_now_by_tokens_and_alerts(
    client: TestClient, make_token: TokenMaker
) -> None:
    token = await make_token("rider", "phone")
    csrf = await sign_in(client, "rider", "rider-pass-1")
    resp = await client.post(
        "/api/alerts", json={"after": "10m", "webhook": "http://127.0.0.1:9/hook"}, headers={"X-CSRF-Token": csrf}
    )
    assert resp.status in (200, 201), await resp.text()
    ahead_s = time.time_ns() // S + 120  # two minutes ahead: within the tolerance, taken
    assert (await client.get(f"/osmand?id={token}&lat=1&lon=2&timestamp={ahead_s}")).status == 200
    await client.server.app[ACCOUNTS].flush_token_use()
    tokens = (await (await client.get("/api/tokens")).json())["tokens"]
    assert tokens[0]["last_sample_ns"] <= time.time_ns()
    alerts = (await (await client.get("/api/alerts")).json())["alerts"]
    assert alerts[0]["last_sample_ns"] <= time.time_ns()
