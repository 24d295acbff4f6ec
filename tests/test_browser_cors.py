"""A page on another origin reads and writes through CORS in a real browser (Chromium), as
livetracking.io's polling page does: only when the operator allows its origin, and a public user
without a password."""

from __future__ import annotations

import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.test_browser import _MISSING, PASSWORD, browser, serving  # noqa: F401  (browser is a fixture)

pytestmark = [pytest.mark.skipif(bool(_MISSING), reason="; ".join(_MISSING)), pytest.mark.slow]

PAGE = b"<!doctype html><title>rides</title><p>a livetracking.io-style page"
CALL = """async ([url, method, auth, body]) => {
  try {
    const headers = auth ? {Authorization: auth} : {};
    const response = await fetch(url, {method, headers, body});
    return {status: response.status, text: await response.text()};
  } catch (error) {
    return {blocked: String(error)};
  }
}"""


class _PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    """Another origin for the page: a second server on loopback, as Tracker is (Chromium refuses a
    page from elsewhere any loopback request, CORS or not)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def page_on_another_origin(browser: Any, origin: str) -> Any:
    page = browser.new_context(service_workers="block").new_page()
    page.goto(f"{origin}/rides.html")
    return page


def test_an_allowed_origins_page_reads_a_public_user_and_writes_with_a_password(
    tmp_path: Path, browser: Any, page_origin: str
) -> None:
    auth = "Basic " + base64.b64encode(f"rider:{PASSWORD}".encode()).decode()
    users = (("rider", True), ("hidden", False))
    with serving(tmp_path, {"TRACKER_CORS_ORIGINS": page_origin}, users) as server:
        page = page_on_another_origin(browser, page_origin)
        # With a password: a preflight (Authorization is not a simple header), then the write.
        wrote = page.evaluate(CALL, [f"{server.url}/write?db=rider&rp=livetracking", "POST", auth, "samples hr_bpm=142i"])
        assert wrote == {"status": 204, "text": ""}
        read = page.evaluate(CALL, [f"{server.url}/query?db=rider&q=SELECT+hr_bpm+FROM+samples", "GET", None, None])
        assert read["status"] == 200 and "142" in read["text"]
        private = page.evaluate(CALL, [f"{server.url}/query?db=hidden&q=SELECT+*+FROM+samples", "GET", None, None])
        assert private["status"] == 401  # readable by the page: it can tell "sign in" from a network failure
        page.context.close()
    with serving(tmp_path / "plain", None, users) as server:
        page = page_on_another_origin(browser, page_origin)
        for url, method, body in (
            (f"{server.url}/query?db=rider&q=SELECT+hr_bpm+FROM+samples", "GET", None),
            (f"{server.url}/write?db=rider", "POST", "samples hr_bpm=1i"),
        ):
            assert "blocked" in page.evaluate(CALL, [url, method, auth, body])  # no CORS unless configured
        page.context.close()
