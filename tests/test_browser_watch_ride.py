"""What a friend watching a ride sees, in Chromium at desktop and phone sizes, from known samples.

Nothing drawn runs ahead of the viewer's clock, and the page shows the ride's summary, every field
that arrives and rolling statistics. Same real server and browser as tests/test_browser.py;
screenshots land in tests/artifacts/.
"""

from __future__ import annotations

import re
import time
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
    sample,
    screenshot,
    wait_until,
)

VIEWPORTS = [pytest.param(DESKTOP, id="desktop"), pytest.param(PHONE, id="phone")]
LIVE_WITHIN_S = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackerServer]:
    folder = tmp_path_factory.mktemp("browser-ride")
    # "Live" is 2 s here, so that a badge that stays live too long shows within the test.
    srv = TrackerServer(folder / "data", folder / "server.log", {"TRACKER_LIVE_WITHIN_SECONDS": str(LIVE_WITHIN_S)})
    srv.start()
    try:
        yield srv
        srv.stop()
    finally:
        srv.close()


def size_name(viewport: dict[str, int]) -> str:
    return "desktop" if viewport == DESKTOP else "phone"


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_sample_from_a_clock_ahead_does_not_run_the_page_ahead(
    server: TrackerServer, open_page: Callable[..., Any], viewport: dict[str, int]
) -> None:
    user = "ahead" + size_name(viewport)
    server.add_user(user, public=True)
    t = now_ms()
    server.write(user, [sample(t - 20_000 + i * 1000, lat=47.0 + i * 1e-4, lng=8.0, hr_bpm=130) for i in range(18)])
    page = open_page(f"{server.url}/watch/{user}", viewport)
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
