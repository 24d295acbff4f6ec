"""The pages and their files, all shipped inside this package: the pages (`static/`), and the map and
chart libraries they load (`vendor/`: copies of the npm packages web/package-lock.json pins, made by
`make vendor`), so that any install serves the whole product.

Pages never contain user input. Everything a user can type (usernames, labels) reaches the
browser only inside JSON, which the page renders as text. The watch page is the same file for
everyone and leaks nothing.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from aiohttp import web

from tracker.accounts import InvalidUsername, validate_username
from tracker.browser.errors import Refused
from tracker.browser.session import csrf_cookie, current_session


def _package_folder(name: str) -> Path:
    """A folder of package data, as files on disk (FileResponse sends files)."""
    found = resources.files(__package__).joinpath(name)
    if not isinstance(found, Path):
        raise RuntimeError(f"tracker must be installed as files, not zipped: {name} is {found!r}")
    return found


STATIC_DIR = _package_folder("static")
# The libraries served under /vendor/<package>/.
VENDOR_DIRS = {name: _package_folder("vendor") / name for name in ("leaflet", "uplot")}

# Pages load only their own scripts and styles (no inline script: user input can never run);
# map tiles may come from anywhere (the tile URL is a setting).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob: https: http:; connect-src 'self'; font-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # The page URL may carry a share token: never send it to the tile server.
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Cache-Control": "no-cache",
}
_SAFE_PATH = re.compile(r"\A[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*\Z")


def _not_found(text: str = "not found") -> Refused:
    return Refused(404, text, plain=True)


def _file(path: Path, *, page: bool) -> web.StreamResponse:
    if not path.is_file():
        raise _not_found()
    return web.FileResponse(path, headers=PAGE_HEADERS if page else {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


async def index_page(request: web.Request) -> web.StreamResponse:
    response = _file(STATIC_DIR / "index.html", page=True)
    await csrf_cookie(request, response, await current_session(request))
    return response


async def watch_page(request: web.Request) -> web.StreamResponse:
    name = request.match_info["user"]
    try:
        validate_username(name)
    except InvalidUsername:
        raise _not_found("no such tracker") from None
    # Served for every possible name, whether it exists or not: the page's data endpoints refuse an
    # unknown name exactly as a private one, so nobody can tell which usernames exist.
    response = _file(STATIC_DIR / "watch.html", page=True)
    await csrf_cookie(request, response, await current_session(request))
    return response


async def activity_page(request: web.Request) -> web.StreamResponse:
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit()):
        raise _not_found("no such activity")
    # The same file for every id and every caller: its data endpoints decide who sees what.
    response = _file(STATIC_DIR / "activity.html", page=True)
    await csrf_cookie(request, response, await current_session(request))
    return response


def _safe_file(base: Path, relative: str) -> Path:
    """`base`/`relative`, refused (404) unless it is a plain name inside `base`."""
    # Plain names only: no '..', no absolute paths, no backslashes or odd characters.
    if not _SAFE_PATH.match(relative) or any(part in (".", "..") for part in relative.split("/")):
        raise _not_found()
    path = (base / relative).resolve()
    if not path.is_relative_to(base.resolve()):
        raise _not_found()
    return path


async def static_file(request: web.Request) -> web.StreamResponse:
    path = _safe_file(STATIC_DIR, request.match_info["path"])
    return _file(path, page=path.suffix == ".html")


async def vendor_file(request: web.Request) -> web.StreamResponse:
    base = VENDOR_DIRS.get(request.match_info["package"])
    if base is None:
        raise _not_found()
    return _file(_safe_file(base, request.match_info["path"]), page=False)
