"""The browser side's answers in JSON, and its refusals: raised as `Refused`, rendered once.

A view (or a helper it calls, such as `session.owner`) raises `Refused(status, message, headers)`;
`refusals`, which wraps every browser view, answers it with `{"error": message}` (or plain text for
pages and files). `Refused` is an `InfluxError`, the InfluxDB surface's refusal, with the same
status, message, headers and extra body keys (`details`): one escaping the wrapper is still
answered, in InfluxDB's form, by the application's middleware.
"""

from __future__ import annotations

import functools
from typing import Awaitable, Callable, Mapping

from aiohttp import web

from tracker.http.responses import JSON, InfluxError
from tracker.http.responses import private_json_response as json_response

__all__ = ["JSON", "Refused", "json_response", "refusals", "render"]

View = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Refused(InfluxError):
    """Raised by a browser view to refuse: JSON `{"error": message, **details}`, or with `plain`
    the message itself as text/plain (a page, a file, a sign-in form's answer)."""

    def __init__(
        self,
        status: int,
        message: str,
        headers: Mapping[str, str] | None = None,
        *,
        details: Mapping[str, object] | None = None,
        plain: bool = False,
    ) -> None:
        super().__init__(status, message, headers, details=details)
        self.plain = plain


def render(refused: Refused) -> web.Response:
    if refused.plain:
        return web.Response(
            status=refused.status, text=refused.message, content_type="text/plain", headers=refused.headers
        )
    return json_response({"error": refused.message, **refused.details}, refused.status, refused.headers)


def refusals(view: View) -> View:
    """`view`, with what it raises as `Refused` answered in the browser's form."""

    @functools.wraps(view)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await view(request)
        except Refused as refused:
            return render(refused)

    return wrapped
