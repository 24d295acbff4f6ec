"""The owner's settings under /api/ (a session, and the CSRF token for changes): share links, the
public profile, shares with other users, device tokens and gone-quiet alerts."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from typing import Any

from aiohttp import web

from tracker import storage
from tracker.accounts import (
    SPEED_UNITS,
    InvalidAlert,
    InvalidDeviceToken,
    InvalidLink,
    InvalidShare,
    InvalidUsername,
    LabelTaken,
    UnknownUser,
    parse_duration,
    parse_quiet_time,
    validate_webhook_url,
)
from tracker.appkeys import ACCOUNTS, ALERTS, SETTINGS, WEBHOOKS
from tracker.appsetup import setup_json
from tracker.browser.errors import Refused, json_response
from tracker.browser.session import json_body, owner_session


def _link_json(link: storage.LinkRecord, now_ns: int) -> dict[str, Any]:
    return {
        "id": link.id,
        "label": link.label,
        "created_ns": link.created_ns,
        "expires_ns": link.expires_ns,
        "last_used_ns": link.last_used_ns,
        "revoked": link.revoked_ns is not None,
        "revoked_ns": link.revoked_ns,
        "expired": link.expires_ns is not None and link.expires_ns <= now_ns,
        "activity_id": link.activity_id,  # None: the live view; else the one activity the link opens
    }


def share_url(base: str, owner: str, token: str) -> str:
    return f"{base.rstrip('/')}/watch/{owner}?token={token}"


def activity_share_url(base: str, activity_id: int, token: str) -> str:
    return f"{base.rstrip('/')}/activity/{activity_id}?token={token}"


def new_link_json(link: storage.LinkRecord, token: str, url: str) -> dict[str, Any]:
    """A link as its creation answers it: the only time its token and URL are shown."""
    return {**_link_json(link, time.time_ns()), "token": token, "url": url}


async def links_list(request: web.Request) -> web.Response:
    session = await owner_session(request, changes=False)
    now = time.time_ns()
    links = await request.app[ACCOUNTS].list_links(session.user)
    return json_response({"links": [_link_json(link, now) for link in links]})


async def links_create(request: web.Request) -> web.Response:
    session = await owner_session(request, changes=True)
    body = await json_body(request)
    if body is None:
        raise Refused(400, 'expected a JSON object like {"label": "for mum", "expires": "2h"}')
    label, expires = body.get("label"), body.get("expires")
    if label is not None and not isinstance(label, str) or expires is not None and not isinstance(expires, str):
        raise Refused(400, "label and expires must be strings (or null)")
    try:
        seconds = parse_duration(expires) if expires else None
        token, link = await request.app[ACCOUNTS].create_link(session.user, label, seconds)
    except InvalidLink as exc:
        raise Refused(409 if isinstance(exc, LabelTaken) else 400, str(exc)) from None
    base = await public_base(request)
    return json_response(new_link_json(link, token, share_url(base, session.user, token)), 201)


async def public_base(request: web.Request) -> str:
    """How others reach this server, for the URLs the owner hands out: the public URL; else the address
    the owner's browser used, unless that is this machine's loopback while the server listens on every
    address: then, as the CLI says (Settings.external_url), this machine's address on its network."""
    settings = request.app[SETTINGS]
    if settings.public_url or settings.listens_everywhere and _is_loopback(request.url.host or ""):
        return await asyncio.to_thread(settings.external_url)  # may look up the machine's address once
    return f"{request.scheme}://{request.host}"


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def links_revoke(request: web.Request) -> web.Response:
    session = await owner_session(request, changes=True)
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit()):  # "²" is a digit to isdigit(), not to int()
        raise Refused(404, f"no active link {raw}")
    if not await request.app[ACCOUNTS].revoke_link(session.user, int(raw)):
        raise Refused(404, f"no active link {raw}")
    return json_response({"revoked": int(raw)})


async def profile_get(request: web.Request) -> web.Response:
    session = await owner_session(request, changes=False)
    return json_response({"user": session.user, "public": await request.app[ACCOUNTS].is_public(session.user)})


async def profile_set(request: web.Request) -> web.Response:
    session = await owner_session(request, changes=True)
    body = await json_body(request)
    if body is None or not isinstance(body.get("public"), bool):
        raise Refused(400, 'expected {"public": true} or {"public": false}')
    await request.app[ACCOUNTS].set_public(session.user, body["public"])
    return json_response({"user": session.user, "public": body["public"]})


async def _viewers(request: web.Request, owner: str) -> web.Response:
    shares = await request.app[ACCOUNTS].list_shares(owner)
    return json_response({"viewers": [viewer for _, viewer in shares]})


async def shares_list(request: web.Request) -> web.Response:
    session = await owner_session(request, changes=False)
    return await _viewers(request, session.user)


async def shares_add(request: web.Request) -> web.Response:
    session = await owner_session(request, changes=True)
    body = await json_body(request)
    viewer = body.get("viewer") if body else None
    if not isinstance(viewer, str):
        raise Refused(400, 'expected {"viewer": "USERNAME"}')
    try:
        await request.app[ACCOUNTS].add_share(session.user, viewer)
    except (InvalidUsername, InvalidShare) as exc:
        raise Refused(400, str(exc)) from None
    except UnknownUser:
        raise Refused(404, f"no user {viewer}") from None
    return await _viewers(request, session.user)


async def shares_remove(request: web.Request) -> web.Response:
    session = await owner_session(request, changes=True)
    viewer = request.match_info.get("viewer")
    if viewer is None:
        body = await json_body(request)
        viewer = body.get("viewer") if body else None
    if not isinstance(viewer, str):
        raise Refused(400, 'expected {"viewer": "USERNAME"}')
    try:
        removed = await request.app[ACCOUNTS].remove_share(session.user, viewer)
    except InvalidUsername as exc:
        raise Refused(400, str(exc)) from None
    if not removed:
        raise Refused(404, f"{viewer} cannot read {session.user}: no such share")
    return await _viewers(request, session.user)


# ----- the owner's device tokens (session + CSRF) -----


def _token_json(token: storage.DeviceTokenRecord) -> dict[str, Any]:
    return {
        "id": token.id,
        "label": token.label,
        "speed_unit": token.speed_unit,
        "created_ns": token.created_ns,
        "last_used_ns": token.last_used_ns,
        "last_sample_ns": token.last_sample_ns,
        "revoked": token.revoked_ns is not None,
        "revoked_ns": token.revoked_ns,
    }


async def tokens_list(request: web.Request) -> web.Response:
    session = await owner_session(request, changes=False)
    tokens = await request.app[ACCOUNTS].list_tokens(session.user)
    return json_response({"tokens": [_token_json(token) for token in tokens], "speed_units": list(SPEED_UNITS)})


async def tokens_create(request: web.Request) -> web.Response:
    session = await owner_session(request, changes=True)
    body = await json_body(request)
    label, speed_unit = (body.get("label"), body.get("speed_unit") or "knots") if body else (None, None)
    if not isinstance(label, str) or not isinstance(speed_unit, str):
        raise Refused(400, 'expected a JSON object like {"label": "garmin-phone", "speed_unit": "knots"}')
    try:
        token, record = await request.app[ACCOUNTS].create_token(session.user, label, speed_unit)
    except InvalidDeviceToken as exc:
        raise Refused(409 if isinstance(exc, LabelTaken) else 400, str(exc)) from None
    # The token is in this answer only (it is stored as a hash), and so is what to enter in each app:
    # the page shows both from here and never asks for them again.
    base = await public_base(request)
    setup = await asyncio.to_thread(setup_json, base, session.user, token, record.label, record.speed_unit)
    return json_response({**_token_json(record), "token": token, "setup": setup}, 201)


async def tokens_revoke(request: web.Request) -> web.Response:
    session = await owner_session(request, changes=True)
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit()) or not await request.app[ACCOUNTS].revoke_token(session.user, int(raw)):
        raise Refused(404, f"no active device token {raw}")
    return json_response({"revoked": int(raw)})


# ----- the owner's gone-quiet alerts (session + CSRF) -----


def _alert_json(request: web.Request, alert: storage.AlertRecord) -> dict[str, Any]:
    delivery = None
    if alert.delivery_state is not None:
        delivery = {
            "kind": alert.delivery_kind,
            "state": alert.delivery_state,
            "at_ns": alert.delivery_ns,
            "status": alert.delivery_status,
            "error": alert.delivery_error,
            "attempts": alert.delivery_attempts,
        }
    return {
        "id": alert.id,
        "device": alert.device or None,
        "after_seconds": alert.quiet_seconds,
        "webhook": alert.webhook_url,
        "created_ns": alert.created_ns,
        **request.app[ALERTS].state(alert.owner, alert.device),
        "delivery": delivery,
    }


async def _alerts_of(request: web.Request, owner: str, status: int = 200) -> web.Response:
    alerts = await request.app[ACCOUNTS].list_alerts(owner)
    return json_response(
        {
            "alerts": [_alert_json(request, alert) for alert in alerts],
            "min_after_seconds": request.app[SETTINGS].alert_min_quiet_seconds,
        },
        status,
    )


async def alerts_list(request: web.Request) -> web.Response:
    session = await owner_session(request, changes=False)
    await request.app[ALERTS].refresh()  # an alert just set with the CLI shows its state at once
    return await _alerts_of(request, session.user)


async def alerts_set(request: web.Request) -> web.Response:
    """{"after": "10m", "webhook": "https://...", "device": null | "LABEL"}: create or change one alert."""
    session = await owner_session(request, changes=True)
    body = await json_body(request)
    if body is None:
        raise Refused(400, 'expected a JSON object like {"after": "10m", "webhook": "https://...", "device": null}')
    after, webhook, device = body.get("after"), body.get("webhook"), body.get("device")
    if not isinstance(after, str) or not isinstance(webhook, str) or device is not None and not isinstance(device, str):
        raise Refused(400, "after and webhook must be strings, device a string or null")
    settings = request.app[SETTINGS]
    try:
        seconds = parse_quiet_time(after, settings.alert_min_quiet_seconds)
        webhook = validate_webhook_url(webhook)
        # Deliveries check again on connecting; this tells the owner at once.
        await request.app[WEBHOOKS].check_url(webhook, timeout=settings.alert_timeout_seconds)
        await request.app[ACCOUNTS].set_alert(session.user, device or None, seconds, webhook)
    except InvalidAlert as exc:
        raise Refused(400, str(exc)) from None
    await request.app[ALERTS].reload()
    return await _alerts_of(request, session.user)


async def alerts_remove(request: web.Request) -> web.Response:
    """?device=LABEL removes that device's alert; without it, the alert for any device."""
    session = await owner_session(request, changes=True)
    device = request.query.get("device") or None
    if not await request.app[ACCOUNTS].remove_alert(session.user, device):
        raise Refused(404, f"no alert for {'device ' + repr(device) if device else 'any device'}")
    await request.app[ALERTS].reload()
    return await _alerts_of(request, session.user)
