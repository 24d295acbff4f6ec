"""HTTP endpoints for senders that are not InfluxDB clients: the phone apps and the JSON API.

Each one identifies a writer (an account password or a device token), maps the request onto the
vocabulary (tracker.apps, tracker.jsonapi: pure) and stores through tracker.ingest.commit, so it
answers only once the samples are committed, like /write.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from tracker import apps, ingest, jsonapi, openapi
from tracker.accounts import BEARER_TOKEN_PREFIX, DEVICE_TOKEN_PREFIX, Writer
from tracker.appkeys import ACCOUNTS, SETTINGS
from tracker.http.auth import authenticate_writer, check_writer, credentials_from
from tracker.http.body import read_body, read_unauthenticated_body
from tracker.http.responses import InfluxError, json_response
from tracker.lineprotocol import Point
from tracker.storage import ON_CONFLICT
from tracker.vocabulary import MEASUREMENT

log = logging.getLogger(__name__)

BOOLEANS = {"true": True, "1": True, "false": False, "0": False, "": False}


def add_routes(app: web.Application) -> None:
    for method in ("GET", "POST"):
        app.router.add_route(method, "/osmand", osmand)
        app.router.add_route(method, "/gpslogger", gpslogger)
    app.router.add_post("/owntracks", owntracks)
    app.router.add_post("/api/v1/samples", post_samples)
    app.router.add_get("/api/v1/openapi.json", openapi_document)


# --------------------------------------------------------------------------------------------------
# The phone apps


async def osmand(request: web.Request) -> web.Response:
    """OsmAnd / Traccar Client: a query string or form body, or Traccar Client 9's JSON."""
    query = request.rel_url.query
    sender, body = await _sender_and_body(request, query.get("id") or query.get("deviceid"))
    try:
        if _is_json(request, body):
            document = _json(body)
            identity = document.get("device_id") if isinstance(document, dict) else None
            writer, device = await _app_writer(request, sender, _text(identity), "device_id")
            sample = apps.traccar_json(document, now_ns=time.time_ns())
            time_parameter = "location.timestamp"
        else:
            params = _params(request, body)
            writer, device = await _app_writer(request, sender, params.get("id") or params.get("deviceid"), "id")
            sample = apps.osmand_query(params, speed_unit=writer.speed_unit, now_ns=time.time_ns())
            time_parameter = "timestamp"
    except apps.AppInputError as exc:
        raise InfluxError(400, str(exc)) from None
    await _commit(request, writer, sample, device, time_parameter)
    return web.Response(status=200)  # Traccar answers 200 with an empty body


async def gpslogger(request: web.Request) -> web.Response:
    """GPSLogger's custom URL: placeholders in the query string, a form body (%ALL) or a JSON body."""
    sender, body = await _sender_and_body(request, request.rel_url.query.get("id"))
    params = _params(request, body)
    try:
        writer, device = await _app_writer(request, sender, params.get("id"), "id")
        sample = apps.gpslogger(params, now_ns=time.time_ns())
    except apps.AppInputError as exc:
        raise InfluxError(400, str(exc)) from None
    await _commit(request, writer, sample, device, "time" if params.get("time", "").strip() else "timestamp")
    return web.Response(status=200)


async def owntracks(request: web.Request) -> web.Response:
    """OwnTracks in HTTP mode: Basic auth; `_type: location` is stored, other types are ignored."""
    writer = await authenticate_writer(request, request.app[ACCOUNTS])
    document = _json(await read_body(request))
    named = request.headers.get("X-Limit-D") or request.rel_url.query.get("d")
    try:
        device = apps.device_name("X-Limit-D", named) if named else None
        sample = apps.owntracks(document, device=device)
    except apps.AppInputError as exc:
        raise InfluxError(400, str(exc)) from None
    if sample is not None:
        await _commit(request, writer, sample, sample.device, "tst")
    elif isinstance(document, dict) and document.get("_type") == "encrypted":
        log.info("owntracks: %s sent an encrypted message; turn encryption off in the app to store it", writer.user)
    # The app expects a JSON list of messages back: none.
    return web.Response(status=200, body=b"[]", content_type="application/json")


@dataclass(frozen=True, slots=True)
class _Sender:
    """Who sends, known before the body is read: from credentials, or from a device token as the id."""

    writer: Writer
    by_credentials: bool  # Basic, `Authorization: Token|Bearer`, `?u=&p=`: then the app's id names the device


async def _sender_and_body(request: web.Request, query_identity: str | None) -> tuple[_Sender | None, bytes]:
    """Who sends, checked before the body is read whenever the URL or headers say (so a body from
    nobody costs nothing), and the body. None: only the body names the sender (a device token as
    `id` in a form or `device_id` in JSON); such a body is read small and never inflated."""
    accounts = request.app[ACCOUNTS]
    credentials = credentials_from(request, tokens=True)
    if credentials is not None:
        sender = _Sender(await check_writer(request, accounts, credentials), by_credentials=True)
    elif query_identity:
        sender = _Sender(await _token_writer(request, query_identity, "id"), by_credentials=False)
    else:
        return None, await read_unauthenticated_body(request)
    return sender, await read_body(request)


async def _app_writer(
    request: web.Request, sender: _Sender | None, identity: str | None, parameter: str
) -> tuple[Writer, str | None]:
    """Who writes, and the device the request names.

    With credentials the app's id names the device; without, the id must itself be a device token
    (so the app needs only the URL), whose label becomes the device.
    """
    if sender is not None and sender.by_credentials:
        # An id that is a token (the URL made for token-only use, with credentials added in the app)
        # names no device: a secret must never become a tag that watchers see.
        if not identity or identity.startswith((DEVICE_TOKEN_PREFIX, BEARER_TOKEN_PREFIX)):
            return sender.writer, None
        return sender.writer, apps.device_name(parameter, identity)
    if sender is not None:
        return sender.writer, None
    return await _token_writer(request, identity, parameter), None


async def _token_writer(request: web.Request, identity: str | None, parameter: str) -> Writer:
    """The writer of the device token an app gives as its id; 401 if it is none."""
    if not identity:
        raise InfluxError(401, f'unable to parse authentication credentials: give a device token as "{parameter}"')
    found = await request.app[ACCOUNTS].authenticate_writer(None, identity)
    if found is None:
        raise InfluxError(401, f'authorization failed: "{parameter}" is not an active device token')
    return found


async def _commit(
    request: web.Request, writer: Writer, sample: apps.AppSample, device: str | None, time_parameter: str
) -> None:
    """Store one app sample; a 400 naming the time parameter if it is older than the user's retention
    or too far ahead of the server's clock."""
    refusal = (await ingest.cutoff(request.app, writer.user)).refusal(sample.time_ns)
    if refusal is not None:
        raise InfluxError(400, str(apps.AppInputError(time_parameter, refusal)))
    tags = (("device", device),) if device else ()
    await ingest.commit(request.app, writer, [Point(MEASUREMENT, tags, dict(sample.fields), sample.time_ns)])


def _is_json(request: web.Request, body: bytes) -> bool:
    # Traccar decides by the content type; a body that opens an object is JSON whatever the label.
    return request.content_type == "application/json" or body.lstrip()[:1] == b"{"


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InfluxError(400, f"the body is not valid JSON: {exc}") from None


def _params(request: web.Request, body: bytes) -> dict[str, str]:
    """The query string's parameters, then a form (or flat JSON) body's for names the query lacks."""
    params = dict(request.rel_url.query)
    if not body.strip():
        return params
    if _is_json(request, body):
        document = _json(body)
        if not isinstance(document, dict):
            raise InfluxError(400, "the body must be a JSON object of parameters")
        pairs = [(key, _text(value) or "") for key, value in document.items()]
    else:
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    for key, value in pairs:
        params.setdefault(key, value)
    return params


def _text(value: Any) -> str | None:
    """A JSON scalar as the text an app would have put in a URL."""
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --------------------------------------------------------------------------------------------------
# The JSON API


async def post_samples(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    writer = await authenticate_writer(request, request.app[ACCOUNTS])
    query = request.rel_url.query
    partial = BOOLEANS.get(query.get("partial", "").lower())
    if partial is None:
        raise InfluxError(400, f'invalid partial "{query["partial"]}" (use true or false)')
    on_conflict = query.get("on_conflict", "") or "merge"
    if on_conflict not in ON_CONFLICT:
        raise InfluxError(400, f'invalid on_conflict "{on_conflict}" (use {", ".join(ON_CONFLICT)})')
    body = await read_body(request, limit=settings.api_max_body_size)
    cutoff = await ingest.cutoff(request.app, writer.user)
    try:
        checked = jsonapi.check_document(
            jsonapi.parse_body(body),
            precision=query.get("precision") or None,
            max_samples=settings.api_max_samples,
            cutoff=cutoff,
        )
    except jsonapi.DocumentError as exc:
        raise InfluxError(exc.status, exc.message) from None
    errors = [error.as_json() for error in checked.errors]
    if errors and (not partial or not checked.samples):
        invalid = len({error.index for error in checked.errors})
        message = f"{invalid} of {checked.count} samples are invalid; nothing was stored"
        raise InfluxError(400, message, details={"errors": errors})
    points = [
        Point(MEASUREMENT, (("device", s.device),) if s.device else (), dict(s.fields), s.time_ns)
        for s in checked.samples
    ]
    left_out = await ingest.commit(request.app, writer, points, on_conflict=on_conflict)
    skipped = [checked.samples[position].index for position in left_out]
    answer: dict[str, Any] = {"stored": len(points) - len(skipped), "skipped": skipped}
    if errors:
        return json_response({**answer, "errors": errors}, status=207)
    return json_response(answer, status=201)


async def openapi_document(request: web.Request) -> web.Response:
    return json_response(openapi.document(request.app[SETTINGS]))
