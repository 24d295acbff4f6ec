"""Reading a request's body: within its limits, gunzipped within the server's budget, and only once
the sender is known (or, when the body itself names the sender, small and never inflated)."""

from __future__ import annotations

import sys

from aiohttp import web

from tracker.appkeys import INFLATE_LEASE, SETTINGS
from tracker.http.inflating import RETRY_AFTER_SECONDS, BudgetSpent, GzipError, inflate
from tracker.http.responses import InfluxError

# A body read before its sender is known: enough for any app's one location, too little to hurt.
UNAUTHENTICATED_BODY_BYTES = 64 * 1024


async def read_body(request: web.Request, limit: int | None = None, *, line_limit: bool = True) -> bytes:
    """The request body, gunzipped if so labelled, within the configured limits (413 past them):
    bytes as sent, bytes once inflated, and lines (counted before any parsing).

    Call it only once the sender is known (or use `read_unauthenticated_body`): reading costs
    memory, inflating much more. `limit` (bytes as sent) replaces the server's max body size for an
    endpoint with its own. Inflated bytes come from the server-wide budget (503 while it is spent).
    Without `line_limit` (a file that is not line protocol, such as a GPX upload) lines are not counted.
    """
    settings = request.app[SETTINGS]
    limit = settings.max_body_size if limit is None else limit
    if request.content_length is not None and request.content_length > limit:
        raise InfluxError(413, "Request Entity Too Large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(256 * 1024):
        size += len(chunk)
        if size > limit:
            raise InfluxError(413, "Request Entity Too Large")
        chunks.append(chunk)
    body = b"".join(chunks)
    del chunks
    max_lines = settings.max_lines_per_request if line_limit else sys.maxsize
    if is_gzipped(request) and body:
        lines = 0

        def count_lines(piece: bytes) -> None:  # a body of newlines is refused before it is all inflated
            nonlocal lines
            lines += piece.count(b"\n")
            if lines > max_lines:
                raise too_many_lines(lines, max_lines)

        try:
            body = await inflate(body, settings.max_decompressed_size, request[INFLATE_LEASE], count_lines)
        except GzipError as exc:
            raise InfluxError(413 if exc.too_large else 400, str(exc)) from None
        except BudgetSpent:
            raise InfluxError(
                503,
                f"too many compressed bodies are being inflated at once; try again in {RETRY_AFTER_SECONDS} seconds",
                {"Retry-After": str(RETRY_AFTER_SECONDS)},
            ) from None
    if len(body) > max_lines:  # shorter bodies cannot hold more lines
        lines = body.count(b"\n") + (not body.endswith(b"\n"))  # blank lines count too
        if lines > max_lines:
            raise too_many_lines(lines, max_lines)
    return body


def too_many_lines(lines: int, max_lines: int) -> InfluxError:
    """413 for a body of `lines` lines (or at least that many: a gzip body is refused while inflating)."""
    return InfluxError(413, f"Request Entity Too Large: {lines} lines, more than the limit of {max_lines} per request")


async def read_unauthenticated_body(request: web.Request) -> bytes:
    """The body of a request whose credentials are in it (a device token as an app's `id`, /auth's
    JSON): small, and never inflated, since nobody is known yet to charge for it."""
    if is_gzipped(request):
        raise InfluxError(
            401,
            "unable to parse authentication credentials: a compressed body is read only once its sender is known; "
            "give credentials in the URL or headers",
        )
    return await read_body(request, limit=UNAUTHENTICATED_BODY_BYTES)


def is_gzipped(request: web.Request) -> bool:
    return request.headers.get("Content-Encoding", "").lower() == "gzip"
