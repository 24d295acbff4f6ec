"""What a friend watching a ride sees, in Chromium at desktop and phone sizes, from known samples.

Nothing drawn runs ahead of the viewer's clock, and the page shows the ride's summary, every field
that arrives and rolling statistics. Same real server and browser as tests/test_browser.py;
screenshots land in tests/artifacts/.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

import pytest

from tests.test_browser import (  # noqa: F401  (browser and open_page are fixtures)
    DESKTOP,
    PHONE,
    TrackerServer,
    browser,
    near,
    now_ms,
    open_page,
    pytestmark,
    ride,
    sample,
    screenshot,
    serving,
    size_name,
    wait_until,
)

VIEWPORTS = [pytest.param(DESKTOP, id="desktop"), pytest.param(PHONE, id="phone")]
LIVE_WITHIN_S = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackerServer]:
    with serving(tmp_path_factory.mktemp("browser-ride")) as srv:
        yield srv


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_sample_from_a_clock_ahead_does_not_run_the_page_ahead(
    server: TrackerServer, open_page: Callable[..., Any], viewport: dict[str, int]
) -> None:
    user = "ahead" + size_name(viewport)
    server.add_user(user, public=True)
    t = now_ms()
    server.write(user, [sample(t - 20_000 + i * 1000, lat=47.0 + i * 1e-4, lng=8.0, hr_bpm=130) for i in range(18)])
    # "Live" is 2 s here (?stale=), so that a badge that stays live too long shows within the test.
    page = open_page(f"{server.url}/watch/{user}?stale={LIVE_WITHIN_S}", viewport)
    wait_until(page, lambda s: s["connected"] and s["sampleCount"] == 18, 5, "the ride")
    # One sample from a phone whose clock runs 3 minutes ahead (within the server's 5-minute
    # tolerance, so it is stored), then the ride goes on with the right time.
    server.write(user, [sample(now_ms() + 180_000, lat=47.5, lng=8.5, hr_bpm=199)])
    server.write(user, [sample(now_ms(), lat=47.002, lng=8.0, hr_bpm=131)])
    s = wait_until(page, lambda s: s["sampleCount"] == 20 and s["values"].get("hr_bpm") == "131", 1.5, "the ride going on")
    # The marker is on the newest real fix, the future point is not drawn yet, the axis ends now.
    assert near(s["markerTarget"], 47.002, 8.0) and s["heldBack"] == 1, s
    assert s["trackPointCount"] == 19
    axis_end_ms = s["chartRange"]["max"] * 1000
    assert abs(axis_end_ms - now_ms()) < 2500, (axis_end_ms, now_ms())
    assert s["status"] == "live"
    screenshot(page, f"watch-clock-ahead-{size_name(viewport)}.png")
    # The phone stops: "live" ends after the threshold, not 3 minutes later.
    stopped = time.monotonic()
    s = wait_until(page, lambda s: s["status"] == "stale", LIVE_WITHIN_S + 1.5, "not live once the phone stopped")
    assert re.fullmatch(r"last sample \d s ago", s["statusText"]), s["statusText"]
    assert time.monotonic() - stopped < LIVE_WITHIN_S + 1.5
    axis_end_ms = s["chartRange"]["max"] * 1000
    assert abs(axis_end_ms - now_ms()) < 2500, (axis_end_ms, now_ms())


def server_fields(server: TrackerServer, user: str) -> list[dict[str, str]]:
    with urllib.request.urlopen(f"{server.url}/api/watch/{user}/config", timeout=5) as answer:
        fields: list[dict[str, str]] = json.loads(answer.read())["fields"]
    return fields


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_every_field_that_arrives_is_shown_with_the_servers_unit(
    server: TrackerServer, open_page: Callable[..., Any], viewport: dict[str, int]
) -> None:
    user = "fields" + size_name(viewport)
    server.add_user(user, public=True)
    # Every field of the vocabulary (the ride has all but the bearing).
    server.write(user, ride(now_ms() - 30_000, 29) + [sample(now_ms() - 500, bearing=92)])
    fields = server_fields(server, user)
    expected = [f["key"] for f in fields if f["key"] not in ("lat", "lng")]  # the position is the map's
    page = open_page(f"{server.url}/watch/{user}", viewport)
    wait_until(page, lambda s: s["connected"] and set(s["values"]) >= set(expected), 5, "every field's value")
    shown = page.eval_on_selector_all("#values .value", "items => items.map(i => i.dataset.key)")
    assert set(shown) == set(expected) and shown[:5] == ["spd_kph", "hr_bpm", "pwr_w", "cad_rpm", "alt_m"], shown
    short = {"beats/min": "bpm", "rev/min": "rpm", "deg": "°", "s": None}  # a duration reads h:mm:ss
    for f in fields:
        if f["key"] in expected:
            unit = page.locator(f".value-{f['key']} .unit")
            want = short.get(f["unit"], f["unit"])
            assert (unit.text_content() if unit.count() else None) == want, f
    assert page.text_content(".value-acc_m dt") == "GPS accuracy" and page.text_content(".value-acc_m .num") == "6"
    assert page.text_content(".value-pwr_w_l .num") == str(100 + 28 % 15)
    assert page.text_content(".value-bearing .num") == "92"
    assert page.evaluate("() => document.documentElement.scrollWidth") <= viewport["width"]
    screenshot(page, f"watch-all-fields-{size_name(viewport)}.png")


def known_ride(base_ms: int) -> list[str]:
    """Ten minutes at 1 Hz, due north at 40 km/h by position, with known values to sum up.

    Heart rate 100 for 5 min, 150 for 4, 170 for the last; speed 30 km/h, 36 in the last minute;
    power 200 W with one 400 W spike; a flat, noisy altitude for 5 min, then a 60 m climb; battery
    90 %, 84 % from the 500th second; signal 55 %. No dist_km: the distance comes from the positions.
    """
    lines = []
    for i in range(600):
        climb = 0.2 * (i - 300) if i >= 300 else 0.0
        lines.append(
            sample(
                base_ms + i * 1000,
                lat=round(47.0 + i * 1e-4, 6),
                lng=8.0,
                hr_bpm=100 if i < 300 else 150 if i < 540 else 170,
                spd_kph=30 if i < 540 else 36,
                pwr_w=400 if i == 100 else 200,
                cad_rpm=90,
                alt_m=round(400 + (2 if i % 2 else -2) + climb, 1),
                battery=90 if i < 500 else 84,
                gsm_signal=55,
            )
        )
    return lines


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_ride_summary_and_rolling_statistics_of_a_known_ride(
    server: TrackerServer, open_page: Callable[..., Any], viewport: dict[str, int]
) -> None:
    user = "summary" + size_name(viewport)
    server.add_user(user, public=True)
    base = (now_ms() // 1000) * 1000 - 720_000  # the ride ended two minutes ago
    lines = known_ride(base)
    for chunk in range(0, len(lines), 300):
        server.write(user, lines[chunk : chunk + 300])

    # The live window: the statistics end now, so the spans the ride is not in are empty ("–").
    page = open_page(f"{server.url}/watch/{user}", viewport)
    s = wait_until(page, lambda s: s["connected"] and "hr_bpm" in s["rolling"], 5, "the rolling statistics")
    assert s["rolling"]["hr_bpm"]["3 s"] == ["–"] * 4 and s["rolling"]["hr_bpm"]["1 min"] == ["–"] * 4
    assert s["rolling"]["hr_bpm"]["5 min"][0] == "170" and s["summary"]["elapsed"]
    assert page.is_visible("#summary") and page.is_visible("#rolling")

    # The ride's own window: every number is known.
    page = open_page(f"{server.url}/watch/{user}?window=custom&from={iso(base - 1000)}&to={iso(base + 600_000)}", viewport)
    s = wait_until(page, lambda s: s["sampleCount"] == 600 and "hr_bpm" in s["rolling"], 5, "the ride's window")
    summary = s["summary"]
    assert summary["elapsed"] == "9:59"
    assert summary["distance"] == "6.66 km"  # 599 steps of 1e-4 degree of latitude, 11.1 m each
    assert summary["speed"] == "avg 30.6 · max 36.0 km/h"
    assert summary["hr"] == "avg 127 · max 170 bpm"
    assert summary["power"] == "avg 200 · max 400 W"
    assert re.fullmatch(r"(5[5-9]|6[0-4]) m", summary["climb"]), summary["climb"]  # the climb, not the noise
    assert summary["battery"] == "84 %" and summary["gsm_signal"] == "55 %"
    assert page.text_content("#summary .summary-distance dd") == "6.66 km"
    rolling = s["rolling"]
    assert rolling["hr_bpm"]["3 s"] == ["170", "170", "170", "170"]
    assert rolling["hr_bpm"]["1 min"] == ["170", "170", "170", "170"]
    assert rolling["hr_bpm"]["5 min"] == ["170", "154", "150", "170"]
    assert rolling["hr_bpm"]["10 min"] == ["170", "127", "100", "170"]
    assert rolling["spd_kph"]["10 min"] == ["36.0", "30.6", "30.0", "36.0"]
    assert rolling["pwr_w"]["10 min"][3] == "400" and rolling["cad_rpm"]["1 min"] == ["90", "90", "90", "90"]
    assert list(rolling) == ["spd_kph", "hr_bpm", "pwr_w", "cad_rpm"]
    cells = page.locator("#rolling .rolling-hr_bpm tbody tr").nth(2).locator("td").all_text_contents()
    assert cells == ["170", "154", "150", "170"], cells
    assert page.evaluate("() => document.documentElement.scrollWidth") <= viewport["width"]
    screenshot(page, f"watch-summary-{size_name(viewport)}.png")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_viewer_whose_clock_is_slow_still_sees_samples_as_they_come(
    server: TrackerServer, browser: Any, viewport: dict[str, int]
) -> None:
    user = "slowclock" + size_name(viewport)
    server.add_user(user, public=True)
    server.write(user, [sample(now_ms() - 10_000 + i * 1000, lat=47.0 + i * 1e-4, lng=8.0, hr_bpm=120) for i in range(9)])
    context = browser.new_context(viewport=viewport, service_workers="block")
    try:
        page = context.new_page()
        # The viewer's computer is two minutes slow; its time still flows.
        page.clock.install(time=(now_ms() - 120_000) / 1000)
        page.clock.resume()
        page.goto(f"{server.url}/watch/{user}")
        s = wait_until(page, lambda s: s["connected"] and s["sampleCount"] == 9, 5, "the ride")
        assert 118_000 <= s["clockOffset"] <= 122_500, s["clockOffset"]
        assert s["heldBack"] == 0 and s["values"].get("hr_bpm") == "120" and s["status"] == "live"
        server.write(user, [sample(now_ms(), lat=47.001, lng=8.0, hr_bpm=150)])
        s = wait_until(page, lambda s: s["values"].get("hr_bpm") == "150", 1.5, "a new sample at once")
        assert near(s["markerTarget"], 47.001, 8.0) and s["heldBack"] == 0 and s["status"] == "live"
        assert "hr_bpm" not in s["staleValues"]
        axis_end_ms = s["chartRange"]["max"] * 1000
        assert abs(axis_end_ms - now_ms()) < 2500, (axis_end_ms, now_ms())
        screenshot(page, f"watch-slow-clock-{size_name(viewport)}.png")
    finally:
        context.close()
