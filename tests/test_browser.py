"""The watch page in a real browser: Debian's Chromium driven by Playwright, against a real Tracker server.

The server runs as a subprocess (`python -m tracker serve`) on a loopback port with its own data folder;
samples are posted over HTTP exactly as a phone would. Map tiles point at a closed local port, so nothing
is fetched from the internet and the page has to work without them.

Screenshots of the desktop and phone layouts land in tests/artifacts/ (not committed): look at them.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.tracker_process import TrackerProcess

# On a developer's machine a missing browser is a skip with the reason; in CI it is a failure.
IN_CI = bool(os.environ.get("CI"))
if IN_CI:
    import playwright.sync_api as sync_api
else:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need the playwright package")

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As root in a sandbox with no network: no sandbox, no GPU, and none of Chromium's own background traffic.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A port nothing listens on (Chromium refuses it outright): tiles fail fast, offline like a phone in a tunnel.
UNREACHABLE_TILES = "http://127.0.0.1:9/{z}/{x}/{y}.png"
PASSWORD = "correct horse battery"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

_MISSING = [
    reason
    for missing, reason in (
        (not Path(CHROMIUM).exists(), "Chromium is not installed (Debian package: chromium)"),
    )
    if missing
]
if _MISSING and IN_CI:
    raise RuntimeError("browser tests cannot run in CI: " + "; ".join(_MISSING))
pytestmark = [pytest.mark.skipif(bool(_MISSING), reason="; ".join(_MISSING)), pytest.mark.slow]


# ----- a real server in a subprocess -----


class TrackerServer(TrackerProcess):
    """The pages' server; its map tiles point at a closed port, so no test reaches the internet."""

    def __init__(self, data_dir: Path, log_path: Path, settings: dict[str, str] | None = None) -> None:
        # Webhooks to any address: the alert test's made-up receiver names must not be looked up.
        env = {"TRACKER_TILE_URL": UNREACHABLE_TILES, "TRACKER_WEBHOOK_ALLOW_PRIVATE": "1", **(settings or {})}
        super().__init__(data_dir, log_path, env=env)

    def add_user(self, name: str, password: str = PASSWORD, *, public: bool = False) -> None:
        super().add_user(name, password)
        if public:
            self.cli("user", "public", name, "on")

    def write(self, user: str, lines: list[str]) -> None:
        """POST line protocol (ms precision) with Basic auth, as a phone app does; expects 204."""
        token = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
        request = urllib.request.Request(
            f"{self.url}/write?db={user}&precision=ms",
            data="\n".join(lines).encode(),
            method="POST",
            headers={"Authorization": f"Basic {token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 204


@contextlib.contextmanager
def serving(folder: Path, settings: dict[str, str] | None = None, users: tuple[tuple[str, bool], ...] = ()) -> Iterator[TrackerServer]:
    """A started TrackerServer with its data and log in `folder` (`users`: (name, public) added
    first), stopped at the end and its process reaped whatever happens."""
    srv = TrackerServer(folder / "data", folder / "server.log", settings)
    for name, public in users:
        srv.add_user(name, public=public)
    srv.start()
    try:
        yield srv
        srv.stop()
    finally:
        srv.close()


def size_name(viewport: dict[str, int]) -> str:
    return "desktop" if viewport == DESKTOP else "phone"


def sample(t_ms: int, **fields: float) -> str:
    return "samples " + ",".join(f"{k}={v}" for k, v in fields.items()) + f" {t_ms}"


def now_ms() -> int:
    return int(time.time() * 1000)


def ride(start_ms: int, count: int, *, lat: float = 47.37, lng: float = 8.54) -> list[str]:
    """`count` 1 Hz samples heading north-east with every kind of value the page shows."""
    return [
        sample(
            start_ms + i * 1000,
            lat=round(lat + i * 0.0001, 6),
            lng=round(lng + i * 0.00012, 6),
            acc_m=6,
            hr_bpm=120 + i % 20,
            pwr_w=210 + i % 30,
            pwr_w_l=100 + i % 15,
            pwr_w_r=110 + i % 15,
            cad_rpm=88,
            spd_kph=28.4,
            alt_m=430 + i * 0.2,
            dist_km=round(12 + i * 0.008, 3),
            dur_s=1800 + i,
            temp_c=17.5,
            battery=81,
            gsm_signal=64,
        )
        for i in range(count)
    ]


# ----- fixtures -----


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackerServer]:
    users = (("alice", True), ("carol", True), ("bob", False))
    with serving(tmp_path_factory.mktemp("browser"), users=users) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """Open a URL in a fresh browser context; collect page errors and every host the page contacted."""
    contexts: list[Any] = []
    problems: list[str] = []
    hosts: set[str] = set()

    def open_(url: str, viewport: dict[str, int] = DESKTOP) -> Any:
        context = browser.new_context(viewport=viewport, service_workers="block")
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.on("request", lambda request: hosts.add(re.sub(r"^[a-z]+://([^/:]+).*$", r"\1", request.url)))
        page.goto(url)
        return page

    yield open_
    for context in contexts:
        context.close()
    assert not problems, problems
    # No CDN, nothing from the internet: every request went to the loopback server (or the dead tile port).
    assert hosts <= {"127.0.0.1"}, hosts


# ----- helpers for waiting on the page -----


def state(page: Any) -> dict[str, Any]:
    return page.evaluate("() => JSON.parse(JSON.stringify(window.trackerState || null))")


def wait_until(page: Any, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
    """Poll window.trackerState until predicate(state) holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        current = state(page)
        if current is not None and predicate(current):
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s; page state: {current}")
        time.sleep(0.02)


def near(latlng: list[float] | None, lat: float, lng: float) -> bool:
    return latlng is not None and abs(latlng[0] - lat) < 1e-7 and abs(latlng[1] - lng) < 1e-7


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


# ----- tests -----


def test_new_sample_moves_marker_and_updates_values_and_charts(
    server: TrackerServer, open_page: Callable[..., Any]
) -> None:
    start = now_ms() - 40_000
    server.write("alice", ride(start, 30))
    page = open_page(f"{server.url}/watch/alice")
    wait_until(page, lambda s: s["sampleCount"] == 30 and s["connected"], 5, "the window's samples and the stream")
    assert page.text_content("#rider-name") == "alice"
    assert page.text_content(".value-hr_bpm .num") == str(120 + 29 % 20)

    # A new fix: the marker, the values panel and the charts follow within a second.
    t = now_ms()
    posted = time.monotonic()
    server.write(
        "alice", [sample(t, lat=47.3761, lng=8.5472, hr_bpm=171, pwr_w=333, cad_rpm=95, spd_kph=31.5, alt_m=441)]
    )
    s = wait_until(
        page,
        lambda s: (
            s["sampleCount"] == 31 and s["values"].get("hr_bpm") == "171" and near(s["markerTarget"], 47.3761, 8.5472)
        ),
        1.0,
        "values and marker target after a new sample",
    )
    assert s["chartPoints"]["hr_bpm"] == 31 and s["chartPoints"]["pwr_w"] == 31 and s["chartPoints"]["alt_m"] == 31
    assert page.text_content(".value-hr_bpm .num") == "171"
    assert page.text_content(".value-pwr_w .num") == "333"
    # The marker glides there (at most 750 ms), then sits exactly on the fix.
    glide_done_by = posted + 1.0 + 0.75
    wait_until(
        page,
        lambda s: near(s["markerLatLng"], 47.3761, 8.5472),
        max(0.1, glide_done_by - time.monotonic()),
        "marker at the new fix",
    )
    assert s["status"] == "live"

    # A late sample (a phone flushing its backlog) fills in the track in time order; the marker stays.
    server.write("alice", [sample(start + 10_500, lat=47.3, lng=8.4, hr_bpm=99)])
    s = wait_until(page, lambda s: s["sampleCount"] == 32 and s["trackPointCount"] == 32, 1.0, "the late sample")
    assert near(s["markerTarget"], 47.3761, 8.5472) and near(s["markerLatLng"], 47.3761, 8.5472)
    times = page.evaluate("() => window.trackerState.sampleTimes()")
    assert times == sorted(times) and len(set(times)) == 32
    assert s["values"]["hr_bpm"] == "171"  # the newest value still shows

    # Left/right balance shows when both legs are reported; the follow button appears after a pan.
    assert page.text_content(".value-pwr_w .balance") is not None
    assert page.is_hidden("#follow")
    box = page.locator("#map").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 120, box["y"] + box["height"] / 2 + 60, steps=8)
    page.mouse.up()
    wait_until(page, lambda s: s["follow"] is False, 1.0, "follow off after a pan")
    page.click("#follow")
    wait_until(page, lambda s: s["follow"] is True, 1.0, "follow on again")

    # Hovering a chart puts the hover marker on the map at the crosshair's time.
    chart = page.locator(".chart-hr_bpm .u-over").bounding_box()
    page.mouse.move(chart["x"] + chart["width"] * 0.98, chart["y"] + chart["height"] / 2)
    wait_until(page, lambda s: s.get("hover") is not None, 1.0, "the chart crosshair on the map")
    page.mouse.move(1, 1)

    assert state(page)["tilesFailed"] > 0  # tiles were asked for and failed; the page still works
    screenshot(page, "watch-desktop.png")


def test_phone_layout_and_share_link(server: TrackerServer, open_page: Callable[..., Any]) -> None:
    server.write("bob", ride(now_ms() - 20_000, 15, lat=51.5, lng=-0.12))
    # Private by default: without a token the page shows why, and no data.
    page = open_page(f"{server.url}/watch/bob", PHONE)
    wait_until(page, lambda s: s["error"] in (401, 403), 5, "the private tracker's refusal")
    assert page.is_visible("#message") and state(page)["sampleCount"] == 0

    printed = re.search(r"https?://\S+", server.cli("link", "create", "bob", "--label", "mum").stdout)
    assert printed is not None
    link = urllib.parse.urlsplit(printed.group(0))
    assert link.path == "/watch/bob" and "token=" in link.query
    page = open_page(f"{server.url}{link.path}?{link.query}", PHONE)
    wait_until(page, lambda s: s["sampleCount"] == 15 and s["connected"], 5, "the shared tracker's window")
    # The token travels with the event stream too: a new sample arrives.
    server.write("bob", [sample(now_ms(), lat=51.5021, lng=-0.1178, hr_bpm=150)])
    wait_until(
        page, lambda s: s["sampleCount"] == 16 and s["values"].get("hr_bpm") == "150", 1.0, "a live sample via the link"
    )
    wait_until(page, lambda s: near(s["markerLatLng"], 51.5021, -0.1178), 1.5, "marker at the new fix")

    # The phone layout fits the screen: nothing wider than the viewport, map on top, values below it.
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    map_box = page.locator("#map").bounding_box()
    values_box = page.locator("#values").bounding_box()
    assert map_box["width"] == PHONE["width"] and values_box["y"] >= map_box["y"] + map_box["height"]
    screenshot(page, "watch-phone.png")

    # Revoking the link ends the open page's stream at the next event: it says so and hides the data.
    server.cli("link", "revoke", "bob", "mum")
    server.write("bob", [sample(now_ms(), hr_bpm=151)])
    s = wait_until(page, lambda s: s["error"] == 403 and s["sampleCount"] == 0, 2.0, "the revoked link")
    assert s["status"] == "ended" and page.is_visible("#message")  # "link revoked", not "offline"
    assert page.locator("#values .value").count() == 0


def test_stale_indicator_follows_the_servers_definition_of_live(tmp_path: Path, open_page: Callable[..., Any]) -> None:
    # "Live" is the server's setting (the landing page's too), read from the page's config.
    srv = TrackerServer(tmp_path / "data", tmp_path / "server.log", {"TRACKER_LIVE_WITHIN_SECONDS": "2"})
    srv.add_user("carol", public=True)
    srv.start()
    try:
        page = open_page(f"{srv.url}/watch/carol")
        wait_until(page, lambda s: s["connected"], 5, "the stream")
        srv.write("carol", [sample(now_ms(), lat=40.0, lng=-3.7, hr_bpm=133)])
        wait_until(page, lambda s: s["status"] == "live" and s["sampleCount"] == 1, 1.0, "live after a sample")
        assert page.text_content("#status") == "live"
        # Two seconds without a sample: the badge says how long ago the last one was.
        s = wait_until(page, lambda s: s["status"] == "stale", 2 + 1.5, "the stale indicator")
        assert re.fullmatch(r"last sample \d+ s ago", s["statusText"]), s["statusText"]
        assert page.text_content("#status") == s["statusText"]
        srv.write("carol", [sample(now_ms(), hr_bpm=135)])
        wait_until(page, lambda s: s["status"] == "live" and s["values"].get("hr_bpm") == "135", 1.0, "live again")
    finally:
        srv.stop()


def test_reconnect_after_server_restart_catches_up(tmp_path: Path, open_page: Callable[..., Any]) -> None:
    srv = TrackerServer(tmp_path / "data", tmp_path / "server.log")
    srv.add_user("dave", public=True)
    srv.start()
    try:
        srv.write("dave", ride(now_ms() - 10_000, 5, lat=45.0, lng=7.0))
        page = open_page(f"{srv.url}/watch/dave")
        wait_until(page, lambda s: s["sampleCount"] == 5 and s["connected"], 5, "the window and the stream")
        srv.write("dave", [sample(now_ms(), lat=45.001, lng=7.001, hr_bpm=140)])
        wait_until(page, lambda s: s["sampleCount"] == 6, 1.0, "a live sample")

        srv.stop()
        wait_until(page, lambda s: s["status"] == "offline", 5, "offline once the server is gone")
        assert page.text_content("#status") == "offline"

        srv.start()
        # Written before the page is back: the new server cannot replay them, so the page must refetch.
        srv.write("dave", [sample(now_ms(), lat=45.002, lng=7.002, hr_bpm=150), sample(now_ms() + 1, hr_bpm=151)])
        s = wait_until(page, lambda s: s["connected"] and s["sampleCount"] == 8, 10, "reconnected and caught up")
        wait_until(
            page,
            lambda s: near(s["markerLatLng"], 45.002, 7.002) and s["values"].get("hr_bpm") == "151",
            1.5,
            "the caught-up fix",
        )
        srv.write("dave", [sample(now_ms(), lat=45.003, lng=7.003, hr_bpm=152)])
        s = wait_until(
            page,
            lambda s: s["sampleCount"] == 9 and s["values"].get("hr_bpm") == "152",
            1.0,
            "live after the reconnect",
        )
        assert s["status"] == "live"
        times = page.evaluate("() => window.trackerState.sampleTimes()")
        assert len(times) == len(set(times)) == 9  # no duplicates from the overlap of refetch and replay
        srv.stop()
    finally:
        srv.close()


def test_landing_page_sign_in_and_sharing(server: TrackerServer, open_page: Callable[..., Any]) -> None:
    page = open_page(server.url + "/")
    page.fill("input[name=username]", "bob")
    page.fill("input[name=password]", "wrong password")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#message:not([hidden])", timeout=5000)
    assert "failed" in page.text_content("#message")

    page.fill("input[name=username]", "bob")
    page.fill("input[name=password]", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#tracker-list li", timeout=5000)
    assert page.text_content("#who") == "Signed in as bob"
    assert page.get_attribute("#tracker-list li a", "href") == "/watch/bob"
    assert not page.is_checked("#public-toggle")

    # A label is shown as text, never as markup.
    label = '<img src=x onerror="window.pwned=1">'
    page.fill("#link-label", label)
    page.select_option("#link-expires", "2h")
    page.click("#link-form button[type=submit]")
    page.wait_for_selector("#new-link:not([hidden])", timeout=5000)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/watch/bob\?token=\S+", page.text_content("#new-link-url"))
    row = page.locator("#link-rows tr", has_text="onerror")
    row.wait_for(timeout=5000)
    assert row.locator("td").first.text_content() == label
    assert page.locator("#link-rows img").count() == 0 and page.evaluate("() => window.pwned") is None

    # Grant alice read rights, then take them back.
    page.fill("#share-viewer", "alice")
    page.click("#share-form button[type=submit]")
    page.locator("#share-list li", has_text="alice").wait_for(timeout=5000)
    screenshot(page, "home-desktop.png")
    page.locator("#share-list li", has_text="alice").locator("button").click()
    page.locator("#no-shares").wait_for(timeout=5000)

    # Revoke the link; it is listed as revoked.
    row.locator("button").click()
    page.locator("#link-rows tr.revoked", has_text="onerror").wait_for(timeout=5000)

    # A device token: shown once, listed, good for writing until revoked.
    page.fill("#token-label", "garmin-phone")
    page.select_option("#token-speed-unit", "mps")
    page.click("#token-form button[type=submit]")
    page.wait_for_selector("#new-token:not([hidden])", timeout=5000)
    device_token = page.text_content("#new-token-value") or ""
    assert re.fullmatch(r"trk_[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{43}", device_token), device_token
    token_row = page.locator("#token-rows tr", has_text="garmin-phone")
    token_row.wait_for(timeout=5000)
    assert "m/s" in (token_row.text_content() or "")
    page.set_viewport_size(PHONE)
    screenshot(page, "home-devices-phone.png")
    page.set_viewport_size(DESKTOP)

    def write_with_token() -> int:
        request = urllib.request.Request(
            f"{server.url}/write?db=bob", data=b"samples hr_bpm=99", method="POST",
            headers={"Authorization": f"Bearer {device_token}"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status
        except urllib.error.HTTPError as exc:
            return exc.code

    assert write_with_token() == 204
    token_row.locator("button").click()
    page.locator("#token-rows tr.revoked", has_text="garmin-phone").wait_for(timeout=5000)
    assert write_with_token() == 401

    # Public on, then off again: the page says so and the server agrees.
    page.check("#public-toggle")
    page.wait_for_selector("#message.ok", timeout=5000)
    with urllib.request.urlopen(f"{server.url}/api/watch/bob/config", timeout=5) as answer:
        assert answer.status == 200
    page.uncheck("#public-toggle")
    deadline = time.monotonic() + 5
    while True:
        try:
            urllib.request.urlopen(f"{server.url}/api/watch/bob/config", timeout=5)
        except urllib.error.HTTPError as exc:
            assert exc.code == 401
            break
        assert time.monotonic() < deadline, "bob is still public"
        time.sleep(0.05)

    page.click("#logout-form button[type=submit]")
    page.wait_for_selector("#signin:not([hidden])", timeout=5000)
    assert page.is_hidden("#manage")


def test_time_windows_zoom_and_downsampling(server: TrackerServer, open_page: Callable[..., Any]) -> None:
    server.add_user("erin", public=True)
    end = now_ms() - 5 * 60_000
    start = end - 50 * 60_000
    step = (end - start) // 3000
    lines = [sample(start + i * step, lat=round(48 + i * 1e-5, 6), lng=11.5, hr_bpm=100 + i % 50) for i in range(3000)]
    for chunk in range(0, 3000, 1000):
        server.write("erin", lines[chunk : chunk + 1000])
    in_last_10_min = sum(1 for i in range(3000) if start + i * step >= now_ms() - 10 * 60_000 + 2000)

    page = open_page(f"{server.url}/watch/erin")
    s = wait_until(page, lambda s: s["loads"] >= 1 and s["sampleCount"] > 0, 5, "the live window")
    assert in_last_10_min - 5 <= s["sampleCount"] <= in_last_10_min + 5 and s["window"] == "10m"
    assert not s["downsampled"]

    # A long window comes downsampled by the server, fast; the URL remembers the choice.
    clicked = time.monotonic()
    page.click("[data-window='1h']")
    s = wait_until(page, lambda s: s["window"] == "1h" and s["loads"] >= 2, 1.0, "the hour window")
    assert s["downsampled"] and 0 < s["sampleCount"] <= 2000, s
    assert time.monotonic() - clicked < 1.0
    assert "window=1h" in page.url
    assert page.get_attribute("[data-window='1h']", "aria-pressed") == "true"

    # Drag across a chart to zoom (every chart follows), double-click for the whole window again.
    box = page.locator(".chart-hr_bpm .u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    s = wait_until(page, lambda s: s.get("zoom") is not None, 1.0, "zoomed in")
    page.dblclick(".chart-hr_bpm .u-over")
    wait_until(page, lambda s: s.get("zoom") is None, 1.0, "zoomed out")

    # A chosen range: exactly the samples inside it.
    range_from, range_to = start + 10 * 60_000, start + 20 * 60_000
    expected = sum(1 for i in range(3000) if range_from <= start + i * step < range_to)
    page.click("[data-window='custom']")
    fmt = "%Y-%m-%dT%H:%M:%S"
    page.fill("#range-from", datetime.fromtimestamp(range_from / 1000).strftime(fmt))
    page.fill("#range-to", datetime.fromtimestamp(range_to / 1000).strftime(fmt))
    page.click("#custom-range button[type=submit]")
    s = wait_until(page, lambda s: s["window"] == "custom" and s["loads"] >= 3, 2.0, "the chosen range")
    assert abs(s["sampleCount"] - expected) <= 1, (s["sampleCount"], expected)


def test_alerts_on_the_owner_page_and_devices_on_the_watch_page(
    server: TrackerServer, open_page: Callable[..., Any]
) -> None:
    server.add_user("gina", public=True)
    t = now_ms()
    server.write("gina", [f"samples,device=garmin hr_bpm=140 {t - 4000}", f"samples,device=phone lat=47.1,lng=8.5 {t - 1000}"])

    watch = open_page(server.url + "/watch/gina")
    state_now = wait_until(watch, lambda s: len(s["devices"]) == 2, 10, "the devices list")
    assert [d["device"] for d in state_now["devices"]] == ["phone", "garmin"]
    items = watch.locator("#device-list li")
    assert items.count() == 2 and watch.is_visible("#devices")
    assert items.nth(0).locator(".device-name").text_content() == "phone"
    assert re.fullmatch(r"last sample \d+ s ago", items.nth(1).locator(".device-ago").text_content() or "")
    # A sample from a new device shows up after the stream delivers it.
    server.write("gina", [f'samples,device=<b>watch</b> hr_bpm=150 {now_ms()}'])
    wait_until(watch, lambda s: len(s["devices"]) == 3, 15, "the new device")
    assert watch.locator("#device-list li").first.locator(".device-name").text_content() == "<b>watch</b>"
    assert watch.locator("#device-list b").count() == 0
    screenshot(watch, "watch-devices.png")

    page = open_page(server.url + "/")
    page.fill("input[name=username]", "gina")
    page.fill("input[name=password]", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#alerts:not([hidden])", timeout=5000)
    # The section shows before its list has loaded: wait for the list's answer, "No alerts."
    page.wait_for_selector("#no-alerts:not([hidden])", state="visible", timeout=5000)
    page.fill("#alert-after", "15")
    page.fill("#alert-webhook", "https://hooks.example.org/gina?key=1")
    page.click("#alert-form button[type=submit]")
    row = page.locator("#alert-rows tr", has_text="any device")
    row.wait_for(timeout=5000)
    cells = [row.locator("td").nth(i).text_content() for i in range(5)]
    assert cells == ["any device", "15 min", "https://hooks.example.org/gina?key=1", "live", "none yet"]

    page.fill("#alert-after", "5")
    page.fill("#alert-webhook", "ftp://nope")
    page.evaluate("() => { document.getElementById('alert-webhook').type = 'text'; }")  # past the browser's own check
    page.fill("#alert-device", "garmin")
    page.click("#alert-form button[type=submit]")
    page.wait_for_selector("#message:not(.ok):not([hidden])", timeout=5000)
    assert "http:// or https://" in (page.text_content("#message") or "")
    page.fill("#alert-webhook", "https://hooks.example.org/garmin")
    page.click("#alert-form button[type=submit]")
    garmin = page.locator("#alert-rows tr", has_text="garmin")
    garmin.wait_for(timeout=5000)
    assert garmin.locator("td").nth(1).text_content() == "5 min"
    screenshot(page, "home-alerts.png")
    garmin.locator("button").click()
    garmin.wait_for(state="detached", timeout=5000)
    assert page.locator("#alert-rows tr").count() == 1


def test_password_change_and_signing_out_elsewhere(server: TrackerServer, open_page: Callable[..., Any]) -> None:
    server.add_user("hana")

    def signed_in(viewport: dict[str, int], password: str = PASSWORD, *, stale_token: bool = False) -> Any:
        page = open_page(server.url + "/", viewport)
        page.wait_for_selector("#signin:not([hidden])", timeout=5000)
        if stale_token:  # as if the page had been open for hours: the form fetches a current token itself
            page.context.add_cookies([{"name": "tracker_csrf", "value": "stale-" + "x" * 40, "url": server.url}])
        page.fill("input[name=username]", "hana")
        page.fill("input[name=password]", password)
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("#session-rows tr", timeout=5000)
        return page

    phone = signed_in(PHONE, stale_token=True)
    desk = signed_in(DESKTOP)
    rows = desk.locator("#session-rows tr")
    assert rows.count() == 2
    assert desk.locator("#session-rows tr.current").count() == 1
    assert "(this session)" in (desk.locator("#session-rows tr.current td").first.text_content() or "")

    desk.fill("#password-current", PASSWORD)
    desk.fill("#password-new", "a brand new password")
    desk.fill("#password-again", "a different one")
    desk.click("#password-form button[type=submit]")
    desk.wait_for_selector("#message:not(.ok):not([hidden])", timeout=5000)
    assert "differ" in (desk.text_content("#message") or "")
    desk.fill("#password-again", "a brand new password")
    desk.click("#password-form button[type=submit]")
    desk.wait_for_selector("#message.ok:not([hidden])", timeout=5000)
    assert "1 other session signed out" in (desk.text_content("#message") or "")
    desk.wait_for_function("() => document.querySelectorAll('#session-rows tr').length === 1", timeout=5000)
    screenshot(desk, "home-account.png")

    phone.reload()
    phone.wait_for_selector("#signin:not([hidden])", timeout=5000)  # the phone's session has ended
    phone.close()
    phone = signed_in(PHONE, "a brand new password")
    screenshot(phone, "home-account-phone.png")
    desk.reload()
    desk.wait_for_function("() => document.querySelectorAll('#session-rows tr').length === 2", timeout=5000)
    desk.click("#sign-out-others")
    desk.wait_for_function("() => document.querySelectorAll('#session-rows tr').length === 1", timeout=5000)
    phone.reload()
    phone.wait_for_selector("#signin:not([hidden])", timeout=5000)

    desk.click("#sign-out-all")
    desk.wait_for_selector("#signin:not([hidden])", timeout=5000)
    desk.reload()
    desk.wait_for_selector("#signin:not([hidden])", timeout=5000)
