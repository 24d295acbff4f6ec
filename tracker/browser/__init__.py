"""The browser side: pages, sign-in (sessions + CSRF), the watch page's JSON and event stream,
and the owner's settings.

    pages    the pages and their files, all package data: static/, and the libraries in vendor/ (served as /vendor/)
    session  the session cookie, CSRF double submit, who is signed in, reading request bodies
    signin   signing in and out, /api/me, the owner's sessions and password
    owner    the owner's links, profile, shares, device tokens and alerts
    watch    the watch page's JSON and its event stream
    activities  the activities API: summaries, samples, laps, the owner's edits, activity links
    courses  the owner's planned routes, and the one a watcher sees
    files    activity files: import (GPX, TCX, FIT) and export (GPX, TCX, FIT, CSV, GeoJSON)
    errors   the JSON answers, and refusals: raised as `Refused`, rendered once by `refusals`
"""

from __future__ import annotations

from aiohttp import web

from tracker.browser import activities, courses, files, owner, pages, signin, watch
from tracker.browser.errors import refusals


def add_routes(app: web.Application) -> None:
    """Every browser route, each view wrapped in `refusals`."""
    routes = [
        ("GET", "/", pages.index_page),
        ("GET", "/watch/{user}", pages.watch_page),
        ("GET", "/activity/{id}", pages.activity_page),
        ("GET", "/static/{path:.+}", pages.static_file),
        ("GET", "/vendor/{package}/{path:.+}", pages.vendor_file),
        ("POST", "/login", signin.login),
        ("POST", "/logout", signin.logout),
        ("GET", "/api/me", signin.me),
        ("GET", "/api/sessions", signin.sessions_list),
        ("DELETE", "/api/sessions", signin.sessions_end),
        ("POST", "/api/password", signin.password_change),
        ("GET", "/api/watch/{user}/config", watch.watch_config),
        ("GET", "/api/watch/{user}/samples", watch.watch_samples),
        ("GET", "/api/watch/{user}/events", watch.watch_events),
        ("GET", "/api/watch/{user}/devices", watch.watch_devices),
        ("GET", "/api/watch/{user}/course", courses.watch_course),
        ("GET", "/api/courses", courses.courses_list),
        ("POST", "/api/courses", courses.courses_create),
        ("DELETE", "/api/courses/{id}", courses.courses_delete),
        ("PUT", "/api/courses/{id}/attach", courses.courses_attach),
        ("DELETE", "/api/courses/attach/{target}", courses.courses_detach),
        ("GET", "/api/links", owner.links_list),
        ("POST", "/api/links", owner.links_create),
        ("DELETE", "/api/links/{id}", owner.links_revoke),
        ("GET", "/api/profile", owner.profile_get),
        ("POST", "/api/profile", owner.profile_set),
        ("GET", "/api/shares", owner.shares_list),
        ("POST", "/api/shares", owner.shares_add),
        ("DELETE", "/api/shares", owner.shares_remove),
        ("DELETE", "/api/shares/{viewer}", owner.shares_remove),
        ("GET", "/api/alerts", owner.alerts_list),
        ("POST", "/api/alerts", owner.alerts_set),
        ("DELETE", "/api/alerts", owner.alerts_remove),
        ("GET", "/api/tokens", owner.tokens_list),
        ("POST", "/api/tokens", owner.tokens_create),
        ("DELETE", "/api/tokens/{id}", owner.tokens_revoke),
        ("POST", "/api/import", files.import_file),
        ("GET", "/api/export", files.export_file),
    ]
    for method, path, view in routes:
        if method == "GET":
            app.router.add_get(path, refusals(view))  # add_get answers HEAD too
        else:
            app.router.add_route(method, path, refusals(view))
    activities.add_routes(app)
