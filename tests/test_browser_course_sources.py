"""A past activity planned as a course from its page, in Chromium against a real server.

The ride goes 0.01° north along 8° E, then 0.01° east along 47.01° N, a fix a second: the course keeps
its three corners, and its length is hand-worked: 1,111.95 m north (R·π/180·0.01, R = 6,371,008.8 m),
then 1,111.95·cos(47.01°) = 758.19 m east (a small circle's arc; the haversine over 0.01° differs by
under a millimetre): 1.87 km.
"""

from __future__ import annotations

import base64
import json
import math
import urllib.request
from pathlib import Path
from typing import Any, Callable

from tests.test_browser import (  # noqa: F401 (browser and open_page are fixtures)
    PASSWORD,
    TrackerServer,
    browser,
    open_page,
    pytestmark,
    sample,
    serving,
    wait_until,
)

START_MS = 1_780_000_000_000  # 2026-05-28
NORTH_M = 0.01 * 111_194.93


def courses(server: TrackerServer) -> list[dict[str, Any]]:
    token = base64.b64encode(f"ann:{PASSWORD}".encode()).decode()
    request = urllib.request.Request(server.url + "/api/courses", headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())["courses"]


def test_the_owner_plans_a_past_ride_as_a_course(tmp_path: Path, open_page: Callable[..., Any]) -> None:
    with serving(tmp_path, users=(("ann", False),)) as server:
        north = [(47.0 + i * 1e-5, 8.0) for i in range(1001)]
        east = [(47.01, 8.0 + i * 1e-5) for i in range(1, 1001)]
        lines = [sample(START_MS + i * 1000, lat=round(lat, 5), lng=round(lng, 5)) for i, (lat, lng) in enumerate(north + east)]
        server.write("ann", lines)
        page = open_page(server.url + "/")
        page.fill("input[name=username]", "ann")
        page.fill("input[name=password]", PASSWORD)
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("#tracker-list li", timeout=5000)
        page.goto(f"{server.url}/activity/1")
        wait_until(page, lambda s: s["loaded"], 5, "the activity")
        page.click("#as-course")
        page.wait_for_function("() => document.getElementById('message').textContent.includes('added')", timeout=5000)
        [course] = courses(server)
        expected_m = NORTH_M + NORTH_M * math.cos(math.radians(47.01))
        assert course["points"] == 3
        assert abs(course["distance_m"] - expected_m) < 0.2
        message = page.text_content("#message") or ""
        assert f"“{course['name']}” added ({expected_m / 1000:.2f} km)" in message
