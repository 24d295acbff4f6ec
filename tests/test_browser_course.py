"""A planned route on the live view, in Chromium at desktop and phone sizes: the owner attaches a
course, samples stream in along it, and a friend with a share link sees the course under the track,
the distance done and to go, the arrival at the recent pace and, once the rider leaves it, "off route".

The course runs due north along the meridian 8° E from 47.00° to 47.02° N, so lengths along it are
exact by hand: 0.0001° of latitude is 11.119493 m (R·π/180·1e-4, R = 6,371,008.8 m). Screenshots
land in tests/artifacts/.
"""

from __future__ import annotations

import base64
import json
import math
import re
import urllib.request
from datetime import datetime
from typing import Any, Callable, Iterator

import pytest

from tests.test_browser import (  # noqa: F401  (browser and open_page are fixtures)
    DESKTOP,
    PASSWORD,
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
    wait_until,
)

M_PER_DEG = 111194.93
COURSE = [[47.0, 8.0], [47.01, 8.0], [47.02, 8.0]]  # 2,223.90 m
STEP_DEG, STEP_S = 0.0005, 50  # the rider's pace: 55.6 m every 50 s


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackerServer]:
    with serving(tmp_path_factory.mktemp("browser-course")) as srv:
        yield srv


def api(server: TrackerServer, user: str, method: str, path: str, body: Any) -> Any:
    token = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
    request = urllib.request.Request(
        server.url + path, data=None if body is None else json.dumps(body).encode(), method=method,
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def km(metres: float) -> str:
    return f"{metres / 1000:.2f} km"


def clock(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s).strftime("%H:%M")  # the browser's time zone is this machine's


@pytest.mark.parametrize("viewport", [pytest.param(DESKTOP, id="desktop"), pytest.param(PHONE, id="phone")])
def test_a_link_viewer_follows_the_rider_along_the_planned_route(
    server: TrackerServer, open_page: Callable[..., Any], viewport: dict[str, int]
) -> None:
    user = "route" + size_name(viewport)
    server.add_user(user)
    course = api(server, user, "POST", "/api/courses", {"name": "Up the valley", "points": COURSE})
    assert course["distance_m"] == pytest.approx(0.02 * M_PER_DEG, abs=0.1)
    api(server, user, "PUT", f"/api/courses/{course['id']}/attach", {"target": "now"})
    token = re.search(r"\?token=(\S+)", server.cli("link", "create", user, "--label", "club").stdout).group(1)

    # Nine fixes on the route, 50 s apart, the last 100 s ago.
    base_ms = now_ms() - 500_000

    def position(i: int) -> dict[str, float]:
        return {"lat": round(47.0 + i * STEP_DEG, 6), "lng": 8.0}

    server.write(user, [sample(base_ms + i * STEP_S * 1000, **position(i), spd_kph=4.0) for i in range(9)])
    page = open_page(f"{server.url}/watch/{user}?token={token}", viewport)
    s = wait_until(page, lambda s: s["connected"] and s["route"] and s["route"].get("done"), 5, "the route readout")
    # 0.004° done of 0.02°; 0.0005° per 50 s, so the 0.016° left take 1,600 s.
    assert s["course"] == {"id": course["id"], "name": "Up the valley", "distance_m": pytest.approx(2223.9, abs=0.1), "points": 3}
    r = s["route"]
    assert r["doneM"] == pytest.approx(0.004 * M_PER_DEG, abs=0.05) and r["done"] == km(444.78) == "0.44 km"
    assert r["remainingM"] == pytest.approx(0.016 * M_PER_DEG, abs=0.05) and r["remaining"] == "1.78 km"
    assert r["etaSeconds"] == pytest.approx(1600, abs=0.5) and r["etaIn"] == "26:40"
    assert r["eta"] == clock(base_ms / 1000 + 400 + 1600)
    assert r["offRoute"] is None and page.locator("#off-route").is_hidden()
    assert r["total"] == "2.22 km"
    # The course is drawn under the track, and the first view holds all of it.
    assert s["courseDrawn"] == 3
    assert page.evaluate("() => document.querySelector('.leaflet-overlay-pane path').classList.contains('course-line')")
    (south, west), (north, east) = s["viewBounds"]
    assert south <= 47.0 and north >= 47.02 and west <= 8.0 <= east, s["viewBounds"]
    text = page.locator("#route").inner_text()
    assert "Up the valley" in text and "0.44 km" in text and "26:40" in text

    # A live fix: the readout follows; at the same pace the arrival stays put.
    server.write(user, [sample(base_ms + 9 * STEP_S * 1000, **position(9), spd_kph=4.0)])
    s = wait_until(page, lambda s: s["route"]["done"] == "0.50 km", 3, "the live fix along the route")
    assert s["route"]["remaining"] == "1.72 km" and s["route"]["etaIn"] == "25:50"
    assert s["route"]["eta"] == clock(base_ms / 1000 + 450 + 1550)
    screenshot(page, f"watch-course-{size_name(viewport)}.png")

    # 0.0012° of longitude east of the route at 47.005° N: 0.0012·111,194.93·cos 47.005° = 91 m off.
    off_m = 0.0012 * M_PER_DEG * math.cos(math.radians(47.005))
    server.write(user, [sample(base_ms + 10 * STEP_S * 1000, lat=47.005, lng=8.0012, spd_kph=4.0)])
    s = wait_until(page, lambda s: s["route"]["offRoute"] is not None, 3, "off route")
    assert s["route"]["offM"] == pytest.approx(off_m, abs=0.05)
    assert s["route"]["offRoute"] == f"Off route by {round(off_m)} m" == "Off route by 91 m"
    assert s["route"]["done"] == "0.50 km" and s["route"]["eta"] is None  # progress stays; no arrival off route
    assert page.locator("#off-route").inner_text() == "Off route by 91 m"
    screenshot(page, f"watch-course-off-route-{size_name(viewport)}.png")


def test_a_course_attached_or_hidden_while_the_page_is_open(server: TrackerServer, open_page: Callable[..., Any]) -> None:
    server.add_user("later", public=True)
    server.write("later", [sample(now_ms() - 1000, lat=47.005, lng=8.0)])
    # The page asks for the course every second here (?course_every=; a minute by default).
    page = open_page(f"{server.url}/watch/later?course_every=1")
    s = wait_until(page, lambda s: s["connected"] and s["sampleCount"] == 1, 5, "the page")
    assert s["course"] is None and s["route"] is None and page.locator("#route").is_hidden()
    course = api(server, "later", "POST", "/api/courses", {"name": "Late plan", "points": COURSE})
    api(server, "later", "PUT", f"/api/courses/{course['id']}/attach", {"target": "now"})
    s = wait_until(page, lambda s: s["route"] is not None and s["route"].get("done") is not None, 3, "the course shown")
    assert s["route"]["done"] == km(0.005 * M_PER_DEG) == "0.56 km" and s["route"]["remaining"] == "1.67 km"
    assert s["route"]["eta"] is None  # one fix: no pace yet
    api(server, "later", "DELETE", "/api/courses/attach/now", None)
    wait_until(page, lambda s: s["course"] is None and s["route"] is None, 3, "the course hidden")
    assert page.locator("#route").is_hidden() and page.evaluate("() => !document.querySelector('.course-line')")


def test_the_owner_adds_shows_hides_and_deletes_a_course(server: TrackerServer, open_page: Callable[..., Any]) -> None:
    server.add_user("planner")
    server.cli("link", "create", "planner", "--label", "for mum")
    page = open_page(server.url + "/")
    page.wait_for_selector("#signin:not([hidden])", timeout=5000)
    page.fill("input[name=username]", "planner")
    page.fill("input[name=password]", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#courses:not([hidden])", timeout=5000)
    # GeoJSON is [lng, lat]: 0.01° north along 8° E, 1,111.95 m.
    page.fill("#course-name", "Short climb")
    page.fill("#course-text", json.dumps({"type": "LineString", "coordinates": [[8.0, 47.0], [8.0, 47.01]]}))
    page.click("#course-form button[type=submit]")
    page.wait_for_selector("#course-rows tr", timeout=5000)
    row = page.locator("#course-rows tr").first
    assert "Short climb" in row.inner_text() and "1.11 km" in row.inner_text()
    row.locator("select").select_option(label="link for mum")
    row.locator("button", has_text="Show").click()
    page.wait_for_selector(".course-target", timeout=5000)
    assert "link for mum" in page.locator(".course-target").inner_text()
    listed = api(server, "planner", "GET", "/api/courses", None)
    assert [a["target"].startswith("link:") for a in listed["attachments"]] == [True]
    screenshot(page, "owner-courses-desktop.png")
    page.locator(".course-target button", has_text="Hide").click()
    page.wait_for_function("() => !document.querySelector('.course-target')", timeout=5000)
    assert api(server, "planner", "GET", "/api/courses", None)["attachments"] == []
    page.locator("#course-rows button", has_text="Delete").click()
    page.wait_for_selector("#no-courses:not([hidden])", timeout=5000)
    assert api(server, "planner", "GET", "/api/courses", None)["courses"] == []
    # Not GeoJSON: a clear message, nothing stored.
    page.fill("#course-text", "<gpx></gpx>")
    page.click("#course-form button[type=submit]")
    page.wait_for_function("() => document.body.innerText.includes('not GeoJSON')", timeout=5000)
