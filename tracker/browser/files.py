"""Activity files over HTTP: POST /api/import (owner only) and GET /api/export (owner and shares, as /query).

Callers authenticate as on /query (Basic, u/p, `Authorization: Token`) or with the browser session
(an import with the session also needs the CSRF token). `?user=NAME` says whose samples; default the
caller. Parsing and writing files runs off the event loop; the upload is bounded by max_body_size.
"""

from __future__ import annotations

import asyncio
import functools

import aiohttp
from aiohttp import web

from tracker import formats, ingest, transfer
from tracker.accounts import Writer
from tracker.appkeys import ACCOUNTS, SAMPLES, SETTINGS
from tracker.browser.errors import Refused, json_response
from tracker.browser.session import api_caller, api_owner
from tracker.http.body import read_body
from tracker.lineprotocol import Point


async def read_upload(request: web.Request, limit: int) -> tuple[str, bytes]:
    """(file name, bytes) of the body: multipart/form-data with one file part, or the file itself with X-Filename."""
    if request.content_type != "multipart/form-data":
        return request.headers.get("X-Filename", "") or "upload", await read_body(request, limit=limit, line_limit=False)
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, aiohttp.BodyPartReader) or part.filename is None:
            continue
        data = bytearray()
        while chunk := await part.read_chunk():
            data += chunk
            if len(data) > limit:
                raise Refused(413, f"file: larger than the limit of {limit} bytes (max_body_size)")
        return part.filename, bytes(data)
    raise Refused(400, "file: the multipart body has no file part")


async def import_file(request: web.Request) -> web.Response:
    caller = await api_caller(request, changes=True)
    user = await api_owner(request, caller, changes=True, what="samples", may_read=request.app[ACCOUNTS].can_read)
    filename, data = await read_upload(request, request.app[SETTINGS].max_body_size)
    if not data:
        raise Refused(400, f"file: {filename} is empty")
    try:
        tracks = await asyncio.to_thread(
            functools.partial(formats.read, data, filename, max_inflated=request.app[SETTINGS].max_decompressed_size)
        )
    except formats.FormatError as exc:
        raise Refused(400, str(exc)) from None
    writer = Writer(user, device=None, token_id=None)

    async def write(points: list[Point]) -> None:
        await ingest.commit(request.app, writer, points)

    summary = await transfer.import_tracks(filename, tracks, write=write, cutoff=await ingest.cutoff(request.app, user))
    await transfer.note_activities(request.app[SAMPLES], user, tracks, summary)
    return json_response(summary.as_json())


async def export_file(request: web.Request) -> web.Response:
    caller = await api_caller(request, changes=False)
    user = await api_owner(request, caller, changes=False, what="samples", may_read=request.app[ACCOUNTS].can_read)
    query = request.rel_url.query
    fmt = export_format(request)
    start_ns = time_value(query.get("start"), "start", transfer.MIN_TIME_NS)
    end_ns = time_value(query.get("end"), "end", transfer.MAX_TIME_NS)
    if end_ns <= start_ns:
        raise Refused(400, "end: must be after start")
    return await export_response(request, user, fmt, start_ns, end_ns, device=query.get("device"), sport=query.get("sport"))


def time_value(value: object, name: str, default: transfer.Default) -> int | transfer.Default:
    """A time the caller gave (a query parameter, a JSON field) as transfer.parse_time reads it; a 400 naming it."""
    try:
        return transfer.parse_time(value, name, default)
    except ValueError as exc:
        raise Refused(400, str(exc)) from None


def export_format(request: web.Request) -> str:
    fmt = request.rel_url.query.get("format", "")
    if fmt not in formats.EXPORT_FORMATS:
        raise Refused(400, f"format: must be one of {', '.join(formats.EXPORT_FORMATS)}, got {fmt!r}")
    return fmt


async def export_response(
    request: web.Request, user: str, fmt: str, start_ns: int, end_ns: int, *, device: str | None, sport: str | None
) -> web.Response:
    """The file of `user`'s samples of start_ns <= time < end_ns (of one track when device and sport are
    given) as an attachment: GET /api/export's answer, and an activity's export."""
    try:
        exported = await transfer.export_file(request.app[SAMPLES], user, fmt, start_ns, end_ns, device=device, sport=sport)
    except transfer.ExportTooLarge as exc:
        raise Refused(413, str(exc)) from None
    except transfer.NothingToExport as exc:
        raise Refused(404, str(exc)) from None
    return web.Response(
        body=exported.data,
        content_type=formats.MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{exported.filename}"', "Cache-Control": "private, no-store"},
    )
