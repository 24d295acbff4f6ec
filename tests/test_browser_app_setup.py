"""The rider setting up, in Chromium: make a device token on the owner's page, see what to enter in every
app, copy a value, and read each QR code off the screen as a phone's camera would (zxing-cpp on the
screenshot), on desktop and phone sizes. The token is never fetched again after its creation answer.

Screenshots land in tests/artifacts/ beside the other browser tests'.
"""

from __future__ import annotations

import base64
import io
import json
import urllib.parse
from typing import Any, Iterator

import pytest

from tests.test_browser import (
    _MISSING,
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    IN_CI,
    PASSWORD,
    PHONE,
    TrackerServer,
    screenshot,
    sync_api,
    serving,
)

if IN_CI:
    import zxingcpp
    from PIL import Image
else:
    zxingcpp = pytest.importorskip("zxingcpp", reason="reading the QR codes needs zxing-cpp")
    Image = pytest.importorskip("PIL.Image", reason="reading the QR codes needs pillow")

pytestmark = [pytest.mark.skipif(bool(_MISSING), reason="; ".join(_MISSING)), pytest.mark.slow]

APP_NAMES = {
    "osmand": "OsmAnd",
    "traccar": "Traccar Client",
    "owntracks": "OwnTracks",
    "gpslogger": "GPSLogger",
    "ipbike": "IpBike",
    "influxdb": "InfluxDB client or script",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackerServer]:
    with serving(tmp_path_factory.mktemp("app-setup"), users=(("rider", False),)) as srv:
        yield srv


def read_qr(locator: Any) -> str:
    """The text of the QR code this element shows, read from its pixels on the screen."""
    image = Image.open(io.BytesIO(locator.screenshot()))
    found = zxingcpp.read_barcodes(image)
    assert len(found) == 1, f"expected one QR code, read {len(found)}"
    return found[0].text


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_new_token_shows_every_apps_settings_copyable_with_readable_qr_codes(
    server: TrackerServer, viewport: dict[str, int]
) -> None:
    size = "phone" if viewport == PHONE else "desktop"
    label = f"bike-{size}"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=viewport, service_workers="block")
            context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
            page = context.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.goto(server.url + "/")
            page.fill("input[name=username]", "rider")
            page.fill("input[name=password]", PASSWORD)
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("#devices:not([hidden])", timeout=5000)

            page.fill("#token-label", label)
            page.select_option("#token-speed-unit", "mps")
            with page.expect_response(lambda r: r.url.endswith("/api/tokens") and r.request.method == "POST") as made:
                page.click("#token-form button[type=submit]")
            token = made.value.json()["token"]
            # From here on, nothing the page sends carries the token: the setup came in that one answer.
            sent: list[str] = []
            page.on("request", lambda request: sent.append(request.url + " " + (request.post_data or "")))
            page.wait_for_selector("#token-setup details[data-app]", timeout=5000)
            assert page.text_content("#new-token-value") == token

            # Every app's block, opened, with the token where the app needs it.
            blocks = page.locator("#token-setup details[data-app]")
            assert [blocks.nth(i).get_attribute("data-app") for i in range(blocks.count())] == list(APP_NAMES)
            page.evaluate("() => document.querySelectorAll('#token-setup details').forEach((d) => { d.open = true; })")
            for app, name in APP_NAMES.items():
                block = page.locator(f'#token-setup details[data-app="{app}"]')
                assert block.locator("summary").text_content() == name
                assert token in (block.locator("dl").text_content() or ""), app
                assert block.locator(".speed").is_visible() and not block.locator(".speed.wrong").count()
            base = server.url
            osmand_url = (
                f"{base}/osmand?id={token}&lat={{0}}&lon={{1}}&timestamp={{2}}&hdop={{3}}&altitude={{4}}"
                "&speed={5}&bearing={6}"
            )
            gpslogger_url = (
                f"{base}/gpslogger?id={token}&lat=%LAT&lon=%LON&time=%TIME&spd=%SPD&alt=%ALT&acc=%ACC&dir=%DIR&batt=%BATT"
            )

            # Copy OsmAnd's web address: the clipboard holds it exactly.
            osmand = page.locator('#token-setup details[data-app="osmand"]')
            osmand.locator("button.copy").first.click()
            osmand.locator("button.copy", has_text="Copied").wait_for(timeout=3000)
            assert page.evaluate("() => navigator.clipboard.readText()") == osmand_url

            # The QR codes, read off the screen: what each app (or the phone's camera) gets.
            qr = {app: f'#token-setup details[data-app="{app}"] img.qr' for app in APP_NAMES}
            assert read_qr(page.locator(qr["osmand"])) == osmand_url
            assert read_qr(page.locator(qr["gpslogger"])) == gpslogger_url
            assert read_qr(page.locator(qr["traccar"])) == f"{base}/osmand?id={token}"
            link = urllib.parse.urlsplit(read_qr(page.locator(qr["owntracks"])))
            assert (link.scheme, link.path) == ("owntracks", "/config")
            config = json.loads(base64.b64decode(urllib.parse.parse_qs(link.query)["inline"][0]))
            assert config == {
                "_type": "configuration", "mode": 3, "url": f"{base}/owntracks", "auth": True,
                "username": "rider", "password": token, "deviceId": label, "tid": "BI",
            }  # fmt: skip
            assert page.locator(qr["ipbike"]).count() == 0 and page.locator(qr["influxdb"]).count() == 0

            screenshot(page, f"home-app-setup-{size}.png")
            assert not [line for line in sent if token in line], sent

            # Done: the token and its setup leave the page.
            page.click("#hide-token")
            assert page.is_hidden("#new-token")
            assert token not in page.content()

            # A token in knots: OsmAnd's block says its speeds would be wrong, in the warning colour.
            page.fill("#token-label", f"old-traccar-{size}")
            page.select_option("#token-speed-unit", "knots")
            page.click("#token-form button[type=submit]")
            warning = page.locator('#token-setup details[data-app="osmand"] .speed.wrong')
            warning.wait_for(state="attached", timeout=5000)
            assert "make a token with m/s for OsmAnd" in (warning.text_content() or "")
            assert page.locator("#token-setup .speed.wrong").count() == 1
            assert not problems, problems
        finally:
            browser.close()
