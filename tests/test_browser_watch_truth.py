"""The watch page tells a friend only what is true, in Chromium at desktop and phone sizes.

A dead sensor's value looks old, the map library failing leaves values and charts working, the
chosen window's whole route stays in view, and an ended share link or a banned sign-in says what
happened. Same real server and browser as tests/test_browser.py; screenshots land in tests/artifacts/.
"""

from __future__ import annotations

import re
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.test_browser import (  # noqa: F401  (browser and open_page are fixtures)
    DESKTOP,
    PHONE,
    TrackerServer,
    browser,
    now_ms,
    open_page,
    pytestmark,
    sample,
    screenshot,
    state,
    wait_until,
)

VIEWPORTS = [pytest.param(DESKTOP, id="desktop"), pytest.param(PHONE, id="phone")]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackerServer]:
    folder = tmp_path_factory.mktemp("browser-truth")
    srv = TrackerServer(folder / "data", folder / "server.log")
    srv.start()
    try:
        yield srv
        srv.stop()
    finally:
        srv.close()


def size_name(viewport: dict[str, int]) -> str:
    return "desktop" if viewport == DESKTOP else "phone"


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
