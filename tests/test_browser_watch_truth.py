"""The watch page tells a friend only what is true, in Chromium at desktop and phone sizes.

A dead sensor's value looks old, the map library failing leaves values and charts working, the
chosen window's whole route stays in view, and an ended share link or a banned sign-in says what
happened. Same real server and browser as tests/test_browser.py; screenshots land in tests/artifacts/.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.test_browser import (  # noqa: F401  (browser and open_page are fixtures)
    DESKTOP,
    PASSWORD as PASSWORD_OF_TESTS,
    PHONE,
    TrackerServer,
    browser,
    now_ms,
    open_page,
    pytestmark,
    sample,
    screenshot,
    serving,
    size_name,
    state,
    wait_until,
)

VIEWPORTS = [pytest.param(DESKTOP, id="desktop"), pytest.param(PHONE, id="phone")]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackerServer]:
    # An expired link's open stream ends within a second.
    with serving(tmp_path_factory.mktemp("browser-truth"), {"TRACKER_LIVE_RECHECK_SECONDS": "1"}) as srv:
        yield srv


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_value_that_stopped_coming_looks_old(
    server: TrackerServer, open_page: Callable[..., Any], viewport: dict[str, int]
) -> None:
    user = "strap" + size_name(viewport)
    server.add_user(user, public=True)
    t = now_ms()
    # The heart-rate strap stopped a minute ago; the phone still sends speed and position every second.
    lines = [sample(t - 90_000 + i * 1000, hr_bpm=117, spd_kph=25.0, lat=47.0 + i * 1e-4, lng=8.0) for i in range(30)]
    lines += [sample(t - 60_000 + i * 1000, spd_kph=26.0, lat=47.003 + i * 1e-4, lng=8.0) for i in range(60)]
    server.write(user, lines)
    page = open_page(f"{server.url}/watch/{user}", viewport)
    s = wait_until(page, lambda s: s["connected"] and s["values"].get("hr_bpm") == "117", 5, "the values")
    assert s["status"] == "live"
    # The speed is current; the heart rate is greyed and says how old it is.
    assert "value-stale" not in (page.get_attribute(".value-spd_kph", "class") or "")
    assert "value-stale" in (page.get_attribute(".value-hr_bpm", "class") or "")
    age = page.text_content(".value-hr_bpm .value-age") or ""
    assert re.fullmatch(r"(6\d|7\d) s ago", age), age
    grey = "rgb(138, 148, 156)"
    assert page.evaluate("() => getComputedStyle(document.querySelector('.value-hr_bpm .num')).color") == grey
    screenshot(page, f"watch-stale-value-{size_name(viewport)}.png")


@pytest.mark.parametrize("failure", ["missing", "throws"])
@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_values_and_charts_without_the_map_library(
    server: TrackerServer, browser: Any, viewport: dict[str, int], failure: str
) -> None:
    user = f"nomap{failure}{size_name(viewport)}"
    server.add_user(user, public=True)
    server.write(user, [sample(now_ms() - 5000 + i * 1000, hr_bpm=140 + i, lat=47.0, lng=8.0 + i * 1e-4) for i in range(5)])
    context = browser.new_context(viewport=viewport, service_workers="block")
    errors: list[str] = []
    try:
        if failure == "missing":
            context.route("**/vendor/leaflet/leaflet.js", lambda route: route.fulfill(status=404, body="not found"))
        else:
            context.route(
                "**/vendor/leaflet/leaflet.js",
                lambda route: route.fulfill(status=200, content_type="text/javascript", body="throw new Error('broken');"),
            )
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{server.url}/watch/{user}")
        s = wait_until(page, lambda s: s["connected"] and s["values"].get("hr_bpm") == "144", 5, "values without a map")
        assert s["mapFailed"] and s["chartPoints"].get("hr_bpm") == 5
        assert page.is_visible("#map-note") and "map could not be loaded" in (page.text_content("#map-note") or "")
        server.write(user, [sample(now_ms(), hr_bpm=150)])
        wait_until(page, lambda s: s["values"].get("hr_bpm") == "150", 1.0, "a live sample without a map")
        screenshot(page, f"watch-no-map-{failure}-{size_name(viewport)}.png")
    finally:
        context.close()
    # Only the broken library's own error; the page itself raised nothing.
    assert errors == ([] if failure == "missing" else ["broken"]), errors


def route_in_view(s: dict[str, Any], points: list[tuple[float, float]]) -> bool:
    view = s.get("viewBounds")
    if not view:
        return False
    (south, west), (north, east) = view
    return all(south <= lat <= north and west <= lng <= east for lat, lng in points)


@pytest.mark.parametrize("window", ["1h", "8h", "today"])
@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_windows_whole_route_stays_in_view(
    server: TrackerServer, open_page: Callable[..., Any], viewport: dict[str, int], window: str
) -> None:
    user = f"route{window}{size_name(viewport)}"
    server.add_user(user, public=True)
    # 40 minutes of riding north-east (today's window: since local midnight, so at most the last
    # few minutes when the test runs just after it), one fix every 20 s.
    end = now_ms() - 1000
    local_now = datetime.now()
    since_midnight = local_now - local_now.replace(hour=0, minute=0, second=0, microsecond=0)
    minutes = 40 if window != "today" else min(40, int(since_midnight.total_seconds() // 60) - 1)
    count = max(3, minutes * 3)
    start = end - (count - 1) * 20_000
    points = [(round(46.5 + i * 2e-4, 6), round(7.0 + i * 3e-4, 6)) for i in range(count)]
    server.write(user, [sample(start + i * 20_000, lat=lat, lng=lng, hr_bpm=130) for i, (lat, lng) in enumerate(points)])
    page = open_page(f"{server.url}/watch/{user}?window={window}", viewport)
    s = wait_until(page, lambda s: s["trackPointCount"] == count and s["viewBounds"] is not None, 5, "the route")
    s = wait_until(page, lambda s: route_in_view(s, points), 1.0, "the whole route in view after the fit")
    assert s["follow"]
    # The ride goes on: a new fix past the view's edge refits, the whole route still in view.
    points.append((round(points[-1][0] + 0.02, 6), round(points[-1][1] + 0.03, 6)))
    server.write(user, [sample(now_ms(), lat=points[-1][0], lng=points[-1][1], hr_bpm=131)])
    wait_until(page, lambda s: s["trackPointCount"] == count + 1, 1.0, "the new fix")
    wait_until(page, lambda s: route_in_view(s, points), 1.5, "the whole route in view after the new fix")
    screenshot(page, f"watch-route-{window}-{size_name(viewport)}.png")


@pytest.mark.parametrize("ending", ["revoked", "expired"])
@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_an_ended_share_link_says_so(
    server: TrackerServer, open_page: Callable[..., Any], viewport: dict[str, int], ending: str
) -> None:
    user = f"link{ending}{size_name(viewport)}"
    server.add_user(user)  # private: only the link opens it
    server.write(user, [sample(now_ms() - 2000, lat=51.5, lng=-0.12, hr_bpm=140)])
    expires = ["--expires", "3s"] if ending == "expired" else []
    printed = re.search(r"\?token=(\S+)", server.cli("link", "create", user, "--label", "mum", *expires).stdout)
    assert printed is not None
    page = open_page(f"{server.url}/watch/{user}?token={printed.group(1)}", viewport)
    wait_until(page, lambda s: s["connected"] and s["sampleCount"] == 1, 5, "the shared view")
    if ending == "revoked":
        server.cli("link", "revoke", user, "mum")
        server.write(user, [sample(now_ms(), hr_bpm=141)])
    s = wait_until(page, lambda s: s["linkEnded"] == ending, 6, f"the {ending} link")
    wanted = "was revoked by" if ending == "revoked" else "has expired"
    message = page.text_content("#message") or ""
    assert page.is_visible("#message") and wanted in message and f"Ask {user} for a new link." in message, message
    assert s["status"] == "ended" and page.text_content("#status") == f"link {ending}"
    assert "offline" not in (page.text_content("body") or "") and "not allowed" not in message
    assert s["sampleCount"] == 0 and page.locator("#values .value").count() == 0
    # A reload (the friend tries again later) says the same.
    page.reload()
    wait_until(page, lambda s: s["linkEnded"] == ending, 5, "the same words after a reload")
    assert wanted in (page.text_content("#message") or "")
    screenshot(page, f"watch-link-{ending}-{size_name(viewport)}.png")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_banned_sign_in_is_told_in_the_page_with_its_wait(
    tmp_path: Path, open_page: Callable[..., Any], viewport: dict[str, int]
) -> None:
    srv = TrackerServer(tmp_path / "data", tmp_path / "server.log")
    srv.serve_args += ["--max-auth-failures", "2", "--auth-ban", "4"]
    srv.add_user("ivy")
    srv.start()
    try:
        page = open_page(srv.url + "/", viewport)

        def sign_in(password: str) -> str:
            page.wait_for_selector("#login-form button[type=submit]:not([disabled])", timeout=8000)
            page.fill("input[name=username]", "ivy")
            page.fill("input[name=password]", password)
            with page.expect_navigation():
                page.click("#login-form button[type=submit]")
            return page.text_content("#message") or ""

        # A wrong password says so, and nothing about attempts.
        first = sign_in("wrong password")
        assert first == "Sign-in failed: wrong username or password. Try again.", first
        sign_in("wrong again")
        # Banned: the sign-in page, not a bare text page, says how long to wait, and the button waits too.
        banned = sign_in(PASSWORD_OF_TESTS)
        assert re.fullmatch(r"Too many failed sign-ins from your address\. Try again in [1-4] s\.", banned), banned
        assert page.is_visible("#signin") and page.is_disabled("#login-form button[type=submit]")
        assert "login=" not in page.url  # a reload later shows the plain form
        screenshot(page, f"home-banned-{size_name(viewport)}.png")
        # Once the ban is over the page says so, and the right password signs in.
        page.wait_for_selector("#message.ok", timeout=8000)
        assert page.text_content("#message") == "You can sign in again now."
        sign_in(PASSWORD_OF_TESTS)
        page.wait_for_selector("#tracker-list li", timeout=5000)
        srv.stop()
    finally:
        srv.close()


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_speed_unit_choice_names_the_apps_and_has_no_silent_default(
    server: TrackerServer, open_page: Callable[..., Any], viewport: dict[str, int]
) -> None:
    user = "units" + size_name(viewport)
    server.add_user(user)
    page = open_page(server.url + "/", viewport)
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD_OF_TESTS)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#devices:not([hidden])", timeout=5000)
    options = page.locator("#token-speed-unit option").all_text_contents()
    assert options[0] == "Choose the app…" and any("OsmAnd" in o and "m/s" in o for o in options), options
    assert any("Traccar Client before version 9" in o and "knots" in o for o in options), options
    assert page.input_value("#token-speed-unit") == ""  # no unit chosen for the rider
    assert "OsmAnd sends m/s" in (page.text_content("#speed-unit-explain") or "")
    # Without a choice the form is not sent: no token is made.
    page.fill("#token-label", "phone")
    page.click("#token-form button[type=submit]")
    assert page.is_hidden("#new-token")
    assert page.evaluate("() => document.getElementById('token-speed-unit').validity.valueMissing")
    page.select_option("#token-speed-unit", "mps")
    page.click("#token-form button[type=submit]")
    page.wait_for_selector("#new-token:not([hidden])", timeout=5000)
    page.locator("#token-rows tr", has_text="phone").wait_for(timeout=5000)
    assert "m/s" in (page.locator("#token-rows tr", has_text="phone").text_content() or "")
    screenshot(page, f"home-speed-unit-{size_name(viewport)}.png")


def test_on_a_phone_the_tile_notice_does_not_cover_the_track(server: TrackerServer, open_page: Callable[..., Any]) -> None:
    user = "tilenote"
    server.add_user(user, public=True)
    server.write(user, [sample(now_ms() - 30_000 + i * 1000, lat=47.0 + i * 2e-4, lng=8.0 + i * 1e-4) for i in range(30)])
    page = open_page(f"{server.url}/watch/{user}", PHONE)
    wait_until(page, lambda s: s["tilesFailed"] > 0 and s["trackPointCount"] == 30, 5, "the track, tiles failed")
    page.wait_for_selector("#map-note:not([hidden])", timeout=2000)
    note = page.locator("#map-note").bounding_box()
    map_box = page.locator("#map").bounding_box()
    assert note["y"] >= map_box["y"] + map_box["height"] - 0.5, (note, map_box)  # below the map, not over it
    assert map_box["width"] == PHONE["width"] and page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "watch-tile-notice-phone.png")
