"""What a newcomer sees after the first steps, in Chromium: a tracker whose newest sample is years old
shows the day it was seen ("last seen on 2015-06-11"), not "last seen 3851 days ago".

Screenshots (desktop and phone) land in tests/artifacts/ beside the other browser tests'.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.test_browser import (
    _MISSING,
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    PASSWORD,
    PHONE,
    TrackerServer,
    screenshot,
    sync_api,
)

pytestmark = [pytest.mark.skipif(bool(_MISSING), reason="; ".join(_MISSING)), pytest.mark.slow]

# The README's old example sample: 2015-06-11 20:46:02 UTC.
OLD_SAMPLE_MS = 1434055562000


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TrackerServer]:
    srv = TrackerServer(tmp_path / "data", tmp_path / "server.log")
    srv.add_user("test")
    srv.start()
    try:
        srv.write("test", [f"samples hr_bpm=145 {OLD_SAMPLE_MS}"])
        yield srv
        srv.stop()
    finally:
        srv.close()


def signed_in_home(browser: Any, server: TrackerServer, viewport: dict[str, int]) -> Any:
    # The viewer's time zone decides the day; UTC here, so the expected day is fixed.
    context = browser.new_context(viewport=viewport, timezone_id="UTC", service_workers="block")
    page = context.new_page()
    page.goto(server.url + "/")
    page.fill("input[name=username]", "test")
    page.fill("input[name=password]", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#tracker-list li .status", timeout=5000)
    return page


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_an_old_last_sample_shows_its_day(server: TrackerServer, viewport: dict[str, int]) -> None:
    day = datetime.fromtimestamp(OLD_SAMPLE_MS / 1000, timezone.utc).strftime("%Y-%m-%d")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = signed_in_home(browser, server, viewport)
            badge = page.locator("#tracker-list li .status").first.text_content()
            screenshot(page, f"home-old-sample-{'phone' if viewport == PHONE else 'desktop'}.png")
            assert badge == f"last seen on {day}", badge
            assert "days ago" not in page.locator("body").inner_text()
        finally:
            browser.close()
