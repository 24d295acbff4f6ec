"""livetracking.io's account API, in its shapes, for the phone apps and scripts written against it.

POST /register (operator's choice, README "Coming from livetracking.io"), GET /auth, GET /user,
POST /user/change-password and DELETE /user. Forms come url-encoded or multipart, as its clients
send them; every password check goes through the failed sign-in counter (tracker/bans.py).
"""

from __future__ import annotations

from aiohttp import web

from tracker.accounts import InvalidPassword, InvalidUsername, UserExists, check_new_password, registration_name
from tracker.appkeys import ACCOUNTS, BANS, SAMPLES, SETTINGS
from tracker.bans import Banned
from tracker.http.auth import authenticate
from tracker.http.body import UNAUTHENTICATED_BODY_BYTES
from tracker.http.responses import InfluxError, json_response

__all__ = ["add_routes"]


def add_routes(app: web.Application) -> None:
    app.router.add_post("/register", register)
    app.router.add_get("/auth", check_credentials)
    app.router.add_get("/user", current_user)
    app.router.add_post("/user/change-password", change_password)
    app.router.add_delete("/user", delete_account)


def _answer(payload: object, status: int = 200) -> web.Response:
    return json_response(payload, status, private=True)  # names and ids of an account: never cached


async def _form(request: web.Request) -> dict[str, str]:
    """The form's text fields (url-encoded or multipart). A form is small: read with a 64 KiB cap
    (aiohttp answers 413 past it), whatever the body's length says or if it says none."""
    form = await request.clone(client_max_size=UNAUTHENTICATED_BODY_BYTES).post()
    return {key: value for key, value in form.items() if isinstance(value, str)}


async def register(request: web.Request) -> web.Response:
    """POST /register: username, password (and invite, in invite mode) -> {"status":"OK","id","username"}
    or 400 {"errors":[...]}."""
    mode = request.app[SETTINGS].registration
    if mode == "closed":
        raise InfluxError(403, "registration is closed")
    form = await _form(request)
    typed, password, invite = form.get("username", ""), form.get("password", ""), form.get("invite", "")
    errors: list[str] = []
    accounts = request.app[ACCOUNTS]
    try:
        name = registration_name(typed)
    except InvalidUsername:
        name = ""
        errors.append("INVALIDATE_USERNAME")
    try:
        check_new_password(password)
        if len(password) > 100:
            raise InvalidPassword("at most 100 characters")
    except InvalidPassword:
        errors.append("INVALIDATE_PASSWORD")

    async def create() -> bool:
        # A refused registration counts as a failed sign-in: guessing taken names leads to a ban too.
        if mode == "invite" and not invite:
            errors.append("INVALIDATE_INVITE")
        if errors:
            return False
        try:
            if mode == "open":
                await accounts.add_user(name, password)
            elif not await accounts.add_user_with_invite(name, password, invite):
                errors.append("INVALIDATE_INVITE")  # unknown or used up
                return False
        except UserExists:
            errors.append("USERNAME_DOUBLE")
            return False
        return True

    try:
        created = await request.app[BANS].verify(request.remote or "", name or typed, create)
    except Banned as exc:
        raise InfluxError(429, str(exc), {"Retry-After": str(exc.retry_after)}) from None
    if not created:
        return _answer({"errors": errors}, status=400)
    return _answer({"status": "OK", "id": await accounts.user_id(name), "username": name})


async def check_credentials(request: web.Request) -> web.Response:
    """GET /auth: a credentials check (Basic, or u/p like /query)."""
    user = await authenticate(request, request.app[ACCOUNTS])
    return _answer({"username": user, "status": "OK"})


async def current_user(request: web.Request) -> web.Response:
    """GET /user: {"user": {"id", "username"}}."""
    accounts = request.app[ACCOUNTS]
    user = await authenticate(request, accounts)
    return _answer({"user": {"id": await accounts.user_id(user), "username": user}})


async def _confirm_password(request: web.Request, user: str, password: str) -> None:
    """The form's `password` must be the account's own (counted like a sign-in), else 403 FORBIDDEN."""
    accounts = request.app[ACCOUNTS]
    try:
        ok = await request.app[BANS].verify(
            request.remote or "", user, lambda: accounts.authenticate(user, password)
        )
    except Banned as exc:
        raise InfluxError(429, str(exc), {"Retry-After": str(exc.retry_after)}) from None
    if not ok:
        raise InfluxError(403, "FORBIDDEN")  # livetracking.io's answer to a wrong password here


async def change_password(request: web.Request) -> web.Response:
    """POST /user/change-password: password, new_password. Ends the user's web sessions, as the owner's page does."""
    accounts = request.app[ACCOUNTS]
    user = await authenticate(request, accounts)
    form = await _form(request)
    await _confirm_password(request, user, form.get("password", ""))
    new_password = form.get("new_password", "")
    try:
        check_new_password(new_password)
    except InvalidPassword:
        return _answer({"errors": ["INVALIDATE_PASSWORD"]}, status=400)
    await accounts.set_password(user, new_password)
    return _answer({"status": "OK"})


async def delete_account(request: web.Request) -> web.Response:
    """DELETE /user: password. The account first (so no new samples arrive), then its data, as `tracker user delete`."""
    accounts = request.app[ACCOUNTS]
    user = await authenticate(request, accounts)
    form = await _form(request)
    await _confirm_password(request, user, form.get("password", ""))
    await accounts.delete_user(user)
    await request.app[SAMPLES].delete_user(user)
    return _answer({"status": "OK"})
