"""The activity page in Chromium, against a real server: the summary as the API says it, the route on
the map, the chart cursor and the map marker following each other, zoom at full resolution, laps,
the owner's rename, split, merge and delete (with its confirmation), and an activity link opened
signed out on a phone. Screenshots land in tests/artifacts/activity-{desktop,phone}.png."""

from __future__ import annotations

import base64
import json
import math
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import gpxpy

from tests.test_browser import (  # noqa: F401 (browser and open_page are fixtures)
    DESKTOP,
    PASSWORD,
    PHONE,
    TrackerServer,
    browser,
    open_page,
    pytestmark,
    sample,
    screenshot,
    serving,
    state,
    wait_until,
)

DAY_MS = 86_400_000
COUNT = 5000  # 1 Hz: more than the overview's 2,000 rows, so the overview is downsampled
LAT0, LNG0 = 46.5, 7.0


def api(server: TrackerServer, path: str, method: str = "GET", body: Any = None) -> Any:
    token = base64.b64encode(f"ann:{PASSWORD}".encode()).decode()
    request = urllib.request.Request(
        server.url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return {"status": error.code, **json.loads(error.read() or b"{}")}


def ride_lines(start_ms: int, count: int) -> list[str]:
    """A ride north-east at 1 Hz: sample i at LAT0 + i * 1e-5, LNG0 + i * 2e-5, with varied heart rate and power."""
    return [
        sample(
            start_ms + i * 1000,
            lat=round(LAT0 + i * 1e-5, 6),
            lng=round(LNG0 + i * 2e-5, 6),
            hr_bpm=110 + i % 40,
            pwr_w=150 + (i * 7) % 120,
            spd_kph=25 + (i % 10) / 2,
            alt_m=500 + 30 * math.sin(i / 300),
        )
        for i in range(count)
    ]


def position_of(start_ms: int, t_ns: float) -> tuple[float, float, int]:
    i = round((t_ns / 1e6 - start_ms) / 1000)
    return round(LAT0 + i * 1e-5, 6), round(LNG0 + i * 2e-5, 6), i


def js_round(value: float) -> int:
    return math.floor(value + 0.5)


def sign_in(page: Any) -> None:
    page.fill("input[name=username]", "ann")
    page.fill("input[name=password]", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#tracker-list li", timeout=5000)


def drag(page: Any, selector: str, x0: float, x1: float) -> None:
    box = page.locator(selector).bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * x0, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * x1, y, steps=5)
    page.mouse.up()


def test_the_activity_page_for_its_owner(tmp_path: Path, open_page: Callable[..., Any]) -> None:
    start_ms = (1_780_000_000_000 // DAY_MS) * DAY_MS + 6 * 3_600_000
    with serving(tmp_path, users=(("ann", False),)) as server:
        lines = ride_lines(start_ms, COUNT)
        for chunk in range(0, COUNT, 2500):
            server.write("ann", lines[chunk : chunk + 2500])
        # A short second ride on the same track two hours later: the one "merge with the next" finds.
        server.write("ann", [sample(start_ms + 7_200_000 + i * 1000, lat=LAT0, lng=LNG0, hr_bpm=90) for i in range(60)])
        second, first = api(server, "/api/activities")["activities"]
        assert first["samples"] == COUNT and second["samples"] == 60

        page = open_page(server.url + "/")
        sign_in(page)
        page.goto(f"{server.url}/activity/{first['id']}")
        s = wait_until(page, lambda s: s["loaded"], 5, "the activity")
        assert s["canChange"] and page.is_visible("#owner-tools")
        # The automatic name, made in the browser's time zone (UTC here): the sport (none) and the start.
        start = datetime.fromtimestamp(first["start_ns"] / 1e9, timezone.utc)
        shown = f"Activity, {start:%a} {start.day} {start:%b %Y, %H:%M}"
        assert s["name"] == first["name"] and not first["named"] and page.text_content("#title") == shown

        # The summary shows the API's values, each with its unit.
        summary = first["summary"]
        assert s["summary"]["distance_m"] == f"{summary['distance_m'] / 1000:.2f} km"
        assert s["summary"]["elapsed_s"] == "1:23:19"  # 4,999 s
        assert s["summary"]["hr_avg_bpm"] == f"{js_round(summary['hr_avg_bpm'])} bpm"
        assert s["summary"]["hr_max_bpm"] == "149 bpm" and s["summary"]["pwr_max_w"] == "269 W"
        assert s["summary"]["speed_avg_kph"] == f"{summary['speed_avg_kph']:.1f} km/h"
        assert s["summary"]["samples"] == str(COUNT)
        assert page.text_content(".summary-distance_m dd").startswith(s["summary"]["distance_m"])

        # The overview is downsampled by the server; the route runs from the first fix to the last.
        assert s["downsampled"] and 0 < s["overviewRows"] <= 2000
        assert s["routePoints"] == s["overviewRows"]
        # (A downsampled bucket's rows carry its last fix: the start marker is within the first bucket.)
        overview = api(server, f"/api/activities/{first['id']}/samples?points=2000")
        lat_at, lng_at = overview["columns"].index("lat"), overview["columns"].index("lng")
        assert s["start"] == [overview["values"][0][lat_at], overview["values"][0][lng_at]]
        assert position_of(start_ms, overview["values"][0][0])[2] <= 3
        assert s["end"] == list(position_of(start_ms, (start_ms + (COUNT - 1) * 1000) * 1e6)[:2])

        # Hovering a chart puts the map's marker on that sample's position.
        box = page.locator(".chart-hr_bpm .u-over").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
        s = wait_until(page, lambda s: s["hoverSample"] is not None and s["hover"] is not None, 2, "the hover marker")
        row = min(overview["values"], key=lambda row: abs(row[0] - s["hoverSample"]["t"]))
        assert 2000 < position_of(start_ms, row[0])[2] < 3000
        assert s["hover"] == [row[lat_at], row[lng_at]] == [s["hoverSample"]["lat"], s["hoverSample"]["lng"]]

        # Hovering the route puts the charts' cursor on the nearest sample.
        target = position_of(start_ms, (start_ms + 1234 * 1000) * 1e6)
        point = page.evaluate("([lat, lng]) => window.activityPage.pagePoint(lat, lng)", [target[0], target[1]])
        page.mouse.move(point["x"], point["y"])
        s = wait_until(
            page, lambda s: s["cursorT"] is not None and abs(s["cursorT"] / 1e6 - (start_ms + 1_234_000)) <= 6000, 2,
            "the chart cursor at the hovered route point",
        )
        # (The overview has two rows every 5 s, each with its bucket's last fix: the nearest is a few seconds off.)
        assert s["hover"] is not None and abs(position_of(start_ms, s["cursorT"])[2] - 1234) <= 6

        screenshot(page, "activity-desktop.png")

        # Selecting a range fetches it at full resolution: one row per sample in it.
        drag(page, ".chart-hr_bpm .u-over", 0.40, 0.46)
        s = wait_until(page, lambda s: s["zoomLoads"] >= 1, 3, "the zoomed range")
        low, high = s["zoom"]["min"] * 1000, s["zoom"]["max"] * 1000
        expected = sum(1 for i in range(COUNT) if low - 1 <= start_ms + i * 1000 <= high + 1)
        assert not s["zoomDownsampled"] and abs(s["zoomRows"] - expected) <= 1 and s["zoomRows"] > 200
        assert s["highlighted"] == s["zoomRows"]  # that part of the route stands out on the map
        # ... where the hover marker lands on the very sample too.
        box = page.locator(".chart-hr_bpm .u-over").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2)
        s = wait_until(page, lambda s: s["hoverSample"] is not None and s["hover"] is not None, 2, "the hover marker")
        lat, lng, index = position_of(start_ms, s["hoverSample"]["t"])
        assert s["hover"] == [lat, lng]
        page.click("#zoom-reset")
        wait_until(page, lambda s: not s["zoomed"] and s["highlighted"] == 0, 2, "the whole activity again")

        # Laps per km, then per 500 m: what the API says.
        assert s["laps"] == api(server, f"/api/activities/{first['id']}/laps?every_m=1000")["laps"]
        assert page.locator("#lap-rows tr").count() == len(s["laps"]) > 1
        page.fill("#lap-every", "0.5")
        page.click("#lap-form button[type=submit]")
        s = wait_until(page, lambda s: s["lapEvery"] == 500, 2, "500 m laps")
        assert s["laps"] == api(server, f"/api/activities/{first['id']}/laps?every_m=500")["laps"]
        assert page.locator("#lap-rows tr").count() == len(s["laps"])

        # Rename.
        page.fill("#rename-input", "Lakeside <b>loop</b>")
        page.click("#rename-form button[type=submit]")
        wait_until(page, lambda s: s["name"] == "Lakeside <b>loop</b>", 2, "the new name")
        assert api(server, f"/api/activities/{first['id']}")["name"] == "Lakeside <b>loop</b>"
        assert page.locator("#title b").count() == 0  # shown as text

        # Split at the chart cursor: two activities whose samples add up.
        page.locator(".chart-hr_bpm").scroll_into_view_if_needed()  # the laps scrolled the side pane
        box = page.locator(".chart-hr_bpm .u-over").bounding_box()
        before = state(page)["cursorT"]
        page.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + box["height"] / 2)
        s = wait_until(page, lambda s: s["cursorT"] != before, 2, "a cursor")
        page.click("#split")
        s = wait_until(page, lambda s: s.get("split") is not None and s.get("loads", 0) >= 2, 3, "the split")
        a, b = (api(server, f"/api/activities/{i}") for i in s["split"])
        assert a["samples"] + b["samples"] == COUNT and 3400 < a["samples"] < 4100
        assert a["end_ns"] < b["start_ns"]
        # The page stays on the larger part, which kept the id (and the name).
        assert a["id"] == first["id"] and s["summary"]["samples"] == str(a["samples"])
        assert "activity " + str(b["id"]) in page.text_content("#message")

        # Merge with the next activity of the track: the second part comes back.
        page.click("#merge")
        s = wait_until(page, lambda s: s.get("merged") == b["id"] and s.get("loads", 0) >= 3, 3, "the merge")
        assert api(server, f"/api/activities/{first['id']}")["samples"] == COUNT

        # Delete asks first; keeping it changes nothing, confirming removes it and its samples.
        page.click("#delete")
        assert page.is_visible("#delete-dialog") and str(COUNT) in page.text_content("#delete-text")
        page.click("#delete-cancel")
        assert not page.is_visible("#delete-dialog")
        assert api(server, f"/api/activities/{first['id']}")["samples"] == COUNT
        page.click("#delete")
        with page.expect_navigation():
            page.click("#delete-confirm")
        assert api(server, f"/api/activities/{first['id']}")["status"] == 404
        assert [x["id"] for x in api(server, "/api/activities")["activities"]] == [second["id"]]


def test_an_activity_link_opens_the_page_signed_out_on_a_phone(tmp_path: Path, open_page: Callable[..., Any]) -> None:
    start_ms = (1_780_000_000_000 // DAY_MS) * DAY_MS + 6 * 3_600_000
    with serving(tmp_path, users=(("ann", False),)) as server:
        server.write("ann", ride_lines(start_ms, 1500))
        # Thresholds set: the summary has time in heart-rate and power zones, shown as bars.
        api(server, "/api/activity-settings", "PUT", {"hr_max_bpm": 190, "ftp_w": 250})
        [ride] = api(server, "/api/activities")["activities"]
        hr_zones, pwr_zones = ride["summary"]["hr_zones_s"], ride["summary"]["pwr_zones_s"]
        assert hr_zones and pwr_zones and abs(sum(hr_zones) - 1499) < 1
        link = api(server, f"/api/activities/{ride['id']}/links", "POST", {"label": "for the club"})
        page = open_page(link["url"], PHONE)
        s = wait_until(page, lambda s: s["loaded"], 5, "the shared activity")
        assert not s["canChange"] and not page.is_visible("#owner-tools")
        assert not s["downsampled"] and s["overviewRows"] == 1500
        assert s["summary"]["samples"] == "1500" and s["summary"]["hr_max_bpm"] == "149 bpm"
        assert page.locator(".chart").count() >= 3
        assert page.locator(".zones .hr .zone").count() == len(hr_zones)
        assert page.locator(".zones .pwr .zone").count() == len(pwr_zones)
        minutes = [f"{int(v + 0.5) // 60}:{int(v + 0.5) % 60:02d}" for v in hr_zones]
        assert page.locator(".zones .hr .zone .time").all_text_contents() == minutes
        widths = page.eval_on_selector_all(".zones .hr .bar span", "spans => spans.map(s => parseFloat(s.style.width))")
        assert all(abs(w - 100 * v / sum(hr_zones)) <= 0.05 for w, v in zip(widths, hr_zones, strict=True))
        # The phone layout fits the screen: the map on top, the summary below it.
        assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
        map_box = page.locator("#map").bounding_box()
        assert map_box["width"] == PHONE["width"]
        assert page.locator("#summary").bounding_box()["y"] >= map_box["y"] + map_box["height"]
        screenshot(page, "activity-phone.png")
        # Export: the GPX button downloads the activity, every sample a track point, as gpxpy reads it.
        with page.expect_download() as download:
            page.click(".export-gpx")
        gpx = gpxpy.parse(Path(download.value.path()).read_text())
        points = [p for track in gpx.tracks for segment in track.segments for p in segment.points]
        assert len(points) == 1500 and (points[0].latitude, points[0].longitude) == (LAT0, LNG0)
        assert download.value.suggested_filename.endswith(".gpx")
        # The link opens no live view.
        watch = open_page(f"{server.url}/watch/ann?token={link['token']}", PHONE)
        wait_until(watch, lambda s: s["error"] == 403, 5, "the live view refused")

        # The owner's home page lists it with her other links, saying what it opens; revoking it there ends it.
        home = open_page(server.url + "/")
        sign_in(home)
        row = home.locator("#link-rows tr", has_text="for the club")
        row.wait_for(timeout=5000)
        assert f"activity {ride['id']}" in row.text_content()
        row.locator("button", has_text="Revoke").click()
        home.locator("#link-rows tr.revoked", has_text="for the club").wait_for(timeout=5000)

        # Revoked: the page says so, with the live view's words.
        page = open_page(link["url"], DESKTOP)
        s = wait_until(page, lambda s: s["error"] == 403, 5, "the revoked link")
        assert s["linkEnded"] == "link_revoked"
        assert page.text_content("#message") == "this share link was revoked; ask ann for a new one"


def test_signed_out_without_a_link_the_page_says_what_to_do(tmp_path: Path, open_page: Callable[..., Any]) -> None:
    start_ms = (1_780_000_000_000 // DAY_MS) * DAY_MS
    with serving(tmp_path, users=(("ann", False),)) as server:
        server.write("ann", ride_lines(start_ms, 20))
        [ride] = api(server, "/api/activities")["activities"]
        page = open_page(f"{server.url}/activity/{ride['id']}")
        s = wait_until(page, lambda s: s["error"] == 401, 5, "the refusal")
        assert page.text_content("#message") == "Sign in on the home page to see this activity, or ask its owner for a link."
        assert not s["loaded"] and s["summary"] == {} and page.locator(".chart").count() == 0
