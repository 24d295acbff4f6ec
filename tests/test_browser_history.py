"""The owner's history on the landing page, in Chromium against a real server: the list of activities
(paged with the API's cursor), the month calendar on the browser's local days, the activity settings,
import by upload and export of a time range.

Same real server and browser as tests/test_browser.py; screenshots at desktop and phone sizes land in
tests/artifacts/. The values on the page are checked against the API's summaries and against values
worked out by hand from the samples written.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import gpxpy
import pytest

from tests.test_browser import (  # noqa: F401  (browser is a fixture)
    DESKTOP,
    PASSWORD,
    PHONE,
    TrackerServer,
    browser,
    pytestmark,
    sample,
    screenshot,
    serving,
)
from tests.test_formats import FIT_START_MS, GARMIN_CONNECT_GPX, fit_tool_activity

HOUR_MS = 3_600_000


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def api(server: TrackerServer, user: str, path: str, method: str = "GET", body: Any = None) -> Any:
    token = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
    request = urllib.request.Request(
        server.url + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def all_activities(server: TrackerServer, user: str) -> list[dict[str, Any]]:
    return api(server, user, "/api/activities?limit=500")["activities"]


# How the page spells the numbers, written out here rather than taken from the page's script.
def duration_text(seconds: float) -> str:
    s = round(seconds)
    h, m, sec = s // 3600, s % 3600 // 60, s % 60
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def distance_text(metres: float) -> str:
    return f"{round(metres)} m" if metres < 1000 else f"{metres / 1000:.2f} km"


def row_texts(activity: dict[str, Any], when: str) -> dict[str, str]:
    """The row the list should show; `when` is the row's own start text (the browser's time zone)."""
    s = activity["summary"]
    dash = "–"
    sport = activity["sport"].replace("-", " ").replace("_", " ").capitalize()
    return {
        "when": when,
        # An automatic name is made in the browser, in its time zone: the sport and that start text.
        "name": activity["name"] if activity["named"] else f"{sport or 'Activity'}, {when}",
        "sport": activity["sport"].capitalize() or dash,
        "device": activity["device"] or dash,
        "duration": duration_text(s["elapsed_s"]),
        "distance": distance_text(s["distance_m"]),
        "speed": f"{s['speed_avg_kph']:.1f} km/h" if s["speed_avg_kph"] is not None else dash,
        "climb": f"{round(s['elev_gain_m'])} m" if s["elev_gain_m"] is not None else dash,
        "hr": f"{round(s['hr_avg_bpm'])} bpm" if s["hr_avg_bpm"] is not None else dash,
        "power": f"{round(s['pwr_avg_w'])} W" if s["pwr_avg_w"] is not None else dash,
    }


def page_row(page: Any, activity_id: int) -> dict[str, str]:
    cells = page.locator(f"#activity-rows tr[data-id='{activity_id}'] td")
    return {cells.nth(i).get_attribute("data-key"): cells.nth(i).inner_text().strip() for i in range(cells.count())}


def signed_in(browser: Any, server: TrackerServer, user: str, viewport: dict[str, int], timezone_id: str = "UTC") -> Any:
    context = browser.new_context(viewport=viewport, timezone_id=timezone_id, service_workers="block")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url + "/")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#history:not([hidden])", timeout=10_000)
    page.page_errors = errors
    return page


def show_month(page: Any, title: str) -> None:
    """Open the calendar and step to the month titled `title` ("November 2026")."""
    page.click("#history-show-month")
    wanted = datetime.strptime(title, "%B %Y")
    for _ in range(240):
        page.wait_for_function("() => window.trackerHistory && window.trackerHistory.monthShown")
        shown = datetime.strptime(page.inner_text("#month-title"), "%B %Y")
        if shown == wanted and page.evaluate("() => window.trackerHistory.monthShown") == wanted.strftime("%Y-%m"):
            return
        page.evaluate("() => { window.trackerHistory.monthShown = null; }")
        page.click("#month-prev" if shown > wanted else "#month-next")
    raise AssertionError(f"never reached {title}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackerServer]:
    with serving(tmp_path_factory.mktemp("browser-history")) as srv:
        yield srv


# ----- the list


def test_the_list_pages_with_the_cursor_and_shows_the_summaries(server: TrackerServer, browser: Any) -> None:
    server.add_user("lena")
    # 25 rides of 10 minutes, a day apart, in November 2026; the newest has every value.
    lines: list[str] = []
    first = ms("2026-11-01T08:00:00Z")
    for n in range(24):
        start = first + n * 24 * HOUR_MS
        lines += [sample(start + i * 60_000, dist_km=round(i * 0.5, 3), hr_bpm=130 + n) for i in range(11)]
    # The newest, hand-worked: 11 samples a minute apart, 0.5 km each (5.00 km in 10:00, 30.0 km/h),
    # altitude up 10 m a minute (100 m climbed), heart rate 140 + i (average 145), power 200 + 2i (210).
    newest = ms("2026-11-30T17:45:00Z")
    lines += [
        sample(newest + i * 60_000, dist_km=i * 0.5, spd_kph=30, alt_m=400 + 10 * i, hr_bpm=140 + i, pwr_w=200 + 2 * i)
        for i in range(11)
    ]
    server.write("lena", lines)
    expected = all_activities(server, "lena")
    assert len(expected) == 25

    page = signed_in(browser, server, "lena", DESKTOP)
    page.wait_for_selector("#activity-rows tr")
    assert page.locator("#activity-rows tr").count() == 20
    assert page.is_visible("#history-more")
    ids = [int(x) for x in page.eval_on_selector_all("#activity-rows tr", "rows => rows.map(r => r.dataset.id)")]
    assert ids == [a["id"] for a in expected[:20]]  # newest first, as the API lists them

    newest_row = page_row(page, expected[0]["id"])
    assert newest_row == {
        "when": "Mon 30 Nov 2026, 17:45",  # the browser runs in UTC here
        "name": "Activity, Mon 30 Nov 2026, 17:45",
        "sport": "–",
        "device": "–",
        "duration": "10:00",
        "distance": "5.00 km",
        "speed": "30.0 km/h",
        "climb": "100 m",
        "hr": "145 bpm",
        "power": "210 W",
    }
    assert page.get_attribute(f"#activity-rows tr[data-id='{expected[0]['id']}'] a", "href") == f"/activity/{expected[0]['id']}"
    screenshot(page, "history-list-desktop.png")

    page.click("#history-more")
    page.wait_for_function("() => document.querySelectorAll('#activity-rows tr').length === 25")
    assert page.is_hidden("#history-more")
    ids = [int(x) for x in page.eval_on_selector_all("#activity-rows tr", "rows => rows.map(r => r.dataset.id)")]
    assert ids == [a["id"] for a in expected]
    for activity in expected:
        row = page_row(page, activity["id"])
        assert row == row_texts(activity, row["when"])
    assert page.page_errors == []

    # A name is text, never markup.
    api(server, "lena", f"/api/activities/{expected[1]['id']}", "PATCH", {"name": "<img src=x onerror=window.pwned=1>"})
    phone = signed_in(browser, server, "lena", PHONE)
    phone.wait_for_selector(f"#activity-rows tr[data-id='{expected[1]['id']}']")
    assert page_row(phone, expected[1]["id"])["name"] == "<img src=x onerror=window.pwned=1>"
    assert phone.locator("#activity-rows img").count() == 0 and phone.evaluate("() => window.pwned") is None
    screenshot(phone, "history-list-phone.png")

    # A row opens its activity's page.
    page.click(f"#activity-rows tr[data-id='{expected[0]['id']}'] a")
    page.wait_for_url(f"**/activity/{expected[0]['id']}")
    page.wait_for_function("() => window.trackerState && window.trackerState.loaded", timeout=10_000)
    assert page.evaluate("() => [window.trackerState.activityId, window.trackerState.name]") == [expected[0]["id"], expected[0]["name"]]
    assert page.page_errors == []


# ----- the month


def test_the_calendar_puts_activities_on_the_browsers_local_days(server: TrackerServer, browser: Any) -> None:
    server.add_user("kenji")
    # 14:30 UTC is 23:30 in Tokyo (the 15th), 15:30 UTC is 00:30 (the 16th): one UTC day, two Tokyo days.
    rides = {
        "2026-11-15T14:30:00Z": 12,  # minutes long, 0.25 km a minute
        "2026-11-15T15:30:00Z": 40,
        "2026-11-17T06:00:00Z": 20,
    }
    lines: list[str] = []
    for start_iso, minutes in rides.items():
        start = ms(start_iso)
        lines += [sample(start + i * 60_000, dist_km=i * 0.25, hr_bpm=120) for i in range(minutes + 1)]
    server.write("kenji", lines)
    assert len(all_activities(server, "kenji")) == 3

    for viewport, name in ((DESKTOP, "desktop"), (PHONE, "phone")):
        page = signed_in(browser, server, "kenji", viewport, timezone_id="Asia/Tokyo")
        show_month(page, "November 2026")
        counts = page.eval_on_selector_all("#month-rows td[data-day]", "cells => Object.fromEntries(cells.map(c => [c.dataset.day, Number(c.dataset.count)]))")
        assert {day: n for day, n in counts.items() if n} == {"2026-11-15": 1, "2026-11-16": 1, "2026-11-17": 1}
        # November 2026 starts on a Sunday: the grid runs from Monday 26 October to Sunday 6 December.
        days = list(counts)
        assert (days[0], days[-1], len(days)) == ("2026-10-26", "2026-12-06", 42)
        day15 = page.locator("#month-rows td[data-day='2026-11-15']")
        assert day15.locator(".distance").text_content() == "3.00 km"
        assert day15.locator(".duration").text_content() == "12:00"
        # The 15th is a Sunday, the 16th and 17th the next week's Monday and Tuesday.
        week_of_15 = page.locator("#month-rows tr").nth(2)
        week_of_16 = page.locator("#month-rows tr").nth(3)
        assert week_of_15.locator("td.week").get_attribute("aria-label") == "week: 1 · 3.00 km · 12:00"
        assert week_of_16.locator("td.week").get_attribute("aria-label") == "week: 2 · 15.00 km · 1:00:00"
        assert week_of_16.locator("td.week .distance").text_content() == "15.00 km"
        day15.locator("button").click()
        page.wait_for_selector("#month-day:not([hidden])")
        assert page.inner_text("#month-day-title") == "Sun 15 Nov 2026"
        assert page.locator("#month-day-rows tr").count() == 1
        screenshot(page, f"history-month-{name}.png")
        assert page.page_errors == []

    # In UTC both of the 15th's rides are on the 15th.
    page = signed_in(browser, server, "kenji", DESKTOP, timezone_id="UTC")
    show_month(page, "November 2026")
    assert page.get_attribute("#month-rows td[data-day='2026-11-15']", "data-count") == "2"
    assert page.get_attribute("#month-rows td[data-day='2026-11-16']", "data-count") == "0"


# ----- the settings


def test_activity_settings_round_trip_and_the_servers_refusal(server: TrackerServer, browser: Any) -> None:
    server.add_user("sara")  # no samples yet: her settings are kept all the same
    page = signed_in(browser, server, "sara", DESKTOP)
    page.wait_for_function("() => document.getElementById('set-gap').value !== ''")
    assert page.input_value("#set-gap") == "30"  # the default, 1800 s
    assert page.input_value("#set-moving") == "1"
    page.fill("#set-gap", "45")
    page.fill("#set-moving", "2.5")
    page.fill("#set-hr-max", "190")
    page.fill("#set-ftp", "250")
    page.fill("#set-pwr-zones", "150, 200,240")
    page.click("#settings-form button[type=submit]")
    page.wait_for_selector("#message.ok:not([hidden])")
    assert api(server, "sara", "/api/activity-settings") == {
        "gap_s": 2700.0,
        "moving_kph": 2.5,
        "hr_max_bpm": 190.0,
        "hr_zones_bpm": None,
        "ftp_w": 250.0,
        "pwr_zones_w": [150.0, 200.0, 240.0],
    }
    page.reload()
    page.wait_for_function("() => document.getElementById('set-gap').value === '45'")
    assert [page.input_value(f"#{i}") for i in ("set-moving", "set-hr-max", "set-hr-zones", "set-ftp", "set-pwr-zones")] == [
        "2.5", "190", "", "250", "150, 200, 240",
    ]  # fmt: skip

    # Half a minute is below the server's 60 s: its own message is shown next to the form, nothing saved.
    page.fill("#set-gap", "0.5")
    page.click("#settings-form button[type=submit]")
    page.wait_for_selector("#settings-error:not([hidden])")
    assert page.inner_text("#settings-error") == "gap_s must be between 60 and 604800, got 30"
    page.fill("#set-gap", "45")
    page.fill("#set-hr-zones", "150, 140")
    page.click("#settings-form button[type=submit]")
    page.wait_for_function("() => document.getElementById('settings-error').textContent.includes('rise')")
    assert page.inner_text("#settings-error") == "hr_zones_bpm bounds must rise strictly, got [150.0, 140.0]"
    assert api(server, "sara", "/api/activity-settings")["gap_s"] == 2700.0
    screenshot(page, "history-settings-desktop.png")
    page.set_viewport_size(PHONE)
    screenshot(page, "history-settings-phone.png")
    assert page.page_errors == []


# ----- import and export


def test_import_by_upload_shows_progress_and_the_summary_then_export_a_range(
    server: TrackerServer, browser: Any, tmp_path: Path
) -> None:
    server.add_user("ida")
    # A GPX as Garmin Connect writes it (2 points, one unmapped `depth`), and a FIT written by fit_tool,
    # an independent library: 120 records of a Garmin Edge 530, each with an unmapped `grade`.
    gpx_path = tmp_path / "morning ride.gpx"
    gpx_path.write_text(GARMIN_CONNECT_GPX)
    fit_path = tmp_path / "edge.fit"
    fit_path.write_bytes(fit_tool_activity(120))
    page = signed_in(browser, server, "ida", DESKTOP)
    page.wait_for_selector("#no-activities:not([hidden])")
    page.set_input_files("#import-files", [str(gpx_path), str(fit_path)])
    for name in ("morning ride.gpx", "edge.fit"):
        page.wait_for_selector(f"#import-list li[data-file='{name}'][data-state='done']", timeout=20_000)
    uploads = page.evaluate("() => window.trackerHistory.uploads")
    # Each upload's progress reached the whole request: the file and its multipart envelope (a few hundred bytes).
    for name, path in (("morning ride.gpx", gpx_path), ("edge.fit", fit_path)):
        assert uploads[name]["state"] == "done"
        assert uploads[name]["loaded"] == uploads[name]["total"]
        assert path.stat().st_size < uploads[name]["total"] < path.stat().st_size + 1000
    for name in ("morning ride.gpx", "edge.fit"):
        bar = page.locator(f"#import-list li[data-file='{name}'] progress")
        assert bar.evaluate("p => p.value === p.max")
    gpx_lines = page.locator("#import-list li[data-file='morning ride.gpx'] .detail li").all_inner_texts()
    assert gpx_lines == [
        "GPX: 2 of 2 points stored",
        "activity, Morning Ride, Cycling, garmin-edge-530: 2 points",
        "not mapped: depth (1)",
        "in Cycling, 30 Nov 2026 07:00",  # the activity it went into, as the API names it
    ]
    fit_lines = page.locator("#import-list li[data-file='edge.fit'] .detail li").all_inner_texts()
    assert fit_lines[0] == "FIT: 120 of 120 points stored"
    assert fit_lines[1].endswith("Cycling, garmin-edge_530: 120 points")
    assert fit_lines[-2] == "not mapped: grade (120)"
    assert fit_lines[-1].startswith("in Cycling, ")

    # The history refreshed: both rides, with the API's summaries.
    page.wait_for_function("() => document.querySelectorAll('#activity-rows tr').length === 2")
    activities = all_activities(server, "ida")
    assert [(a["sport"], a["device"], a["samples"]) for a in activities] == [
        ("cycling", "garmin-edge-530", 2),  # 30 Nov 07:00, the newest
        ("cycling", "garmin-edge_530", 120),
    ]
    for activity in activities:
        row = page_row(page, activity["id"])
        assert row == row_texts(activity, row["when"])
    # Each file's summary links the activity it went into.
    for name, activity in (("morning ride.gpx", activities[0]), ("edge.fit", activities[1])):
        link = page.locator(f"#import-list li[data-file='{name}'] .detail a")
        assert link.get_attribute("href") == f"/activity/{activity['id']}" and link.inner_text() == "in " + activity["name"]
    # The FIT ride by hand: 119 s at 8 m/s (28.8 km/h), 8 m a second apart (952 m), climbing 1 m a second
    # (119 m), heart rate 120 + i (average 179.5), power 200 + i (259.5).
    fit_row = page_row(page, activities[1]["id"])
    assert [fit_row[k] for k in ("duration", "distance", "speed", "climb", "hr", "power")] == [
        "1:59", "952 m", "28.8 km/h", "119 m", "180 bpm", "260 W",
    ]  # fmt: skip
    assert fit_row["when"] == datetime.fromtimestamp(FIT_START_MS / 1000, timezone.utc).strftime("%a %-d %b %Y, %H:%M")
    screenshot(page, "history-import-desktop.png")

    # The same file again, dropped this time: stored again, nothing changes; a broken file: the server's words.
    page.evaluate_handle(
        """([text, name]) => {
            const data = new DataTransfer();
            data.items.add(new File([text], name));
            data.items.add(new File(["hello"], "notizen zürich.gpx"));
            document.getElementById("import-drop").dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
        }""",
        [GARMIN_CONNECT_GPX, "again.gpx"],
    )
    page.wait_for_selector("#import-list li[data-file='again.gpx'][data-state='done']", timeout=20_000)
    broken = page.locator("#import-list li[data-file='notizen zürich.gpx'][data-state='failed']")
    broken.wait_for(timeout=20_000)
    assert broken.locator(".detail li").all_inner_texts() == [
        "notizen zürich.gpx: not a GPX, TCX or FIT file (told by its content, not its name)"
    ]
    assert [a["samples"] for a in all_activities(server, "ida")] == [2, 120]
    page.set_viewport_size(PHONE)
    screenshot(page, "history-import-phone.png")
    page.set_viewport_size(DESKTOP)

    # Export the GPX ride's minute (the browser runs in UTC): gpxpy reads back the file's values.
    page.select_option("#export-format", "gpx")
    page.fill("#export-start", "2026-11-30T07:00")
    page.fill("#export-end", "2026-11-30T07:01")
    with page.expect_download() as download:
        page.click("#export-form button[type=submit]")
    exported = gpxpy.parse(Path(download.value.path()).read_text())
    assert download.value.suggested_filename.endswith(".gpx")
    points = [p for t in exported.tracks for seg in t.segments for p in seg.points]
    assert [(p.latitude, p.longitude, p.elevation) for p in points] == [(46.051234, 14.506001, 295.4), (46.051299, 14.506127, 295.8)]
    assert [p.time.isoformat() for p in points] == ["2026-11-30T07:00:00+00:00", "2026-11-30T07:00:01+00:00"]
    assert "<gpxtpx:hr>131</gpxtpx:hr>" in Path(download.value.path()).read_text()

    # A range without samples: the server's 404 message next to the form.
    page.fill("#export-start", "2020-01-01T00:00")
    page.fill("#export-end", "2020-01-02T00:00")
    page.click("#export-form button[type=submit]")
    page.wait_for_selector("#export-error:not([hidden])")
    assert page.inner_text("#export-error") == "no samples in the range (start, end, device, sport)"
    assert page.page_errors == []

    # The imported rides on the calendar: both on the 30th in UTC; in New York (UTC-5) the FIT ride,
    # 00:53 UTC, is the evening of the 29th and the GPX ride, 07:00 UTC, 02:00 on the 30th.
    show_month(page, "November 2026")
    assert page.get_attribute("#month-rows td[data-day='2026-11-30']", "data-count") == "2"
    new_york = signed_in(browser, server, "ida", DESKTOP, timezone_id="America/New_York")
    show_month(new_york, "November 2026")
    assert new_york.get_attribute("#month-rows td[data-day='2026-11-29']", "data-count") == "1"
    assert new_york.get_attribute("#month-rows td[data-day='2026-11-30']", "data-count") == "1"
    assert new_york.locator("#month-rows td[data-day='2026-11-29'] .distance").text_content() == "952 m"
    assert new_york.page_errors == []
