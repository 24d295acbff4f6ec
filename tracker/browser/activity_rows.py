"""An owner's activity as the APIs hand it out: the activities API's reads and edits, and a course
made from an activity, look it up the same way."""

from __future__ import annotations

from aiohttp import web

from tracker.appkeys import SAMPLES
from tracker.browser.errors import Refused
from tracker.storage import activities as stored


async def current_activity(request: web.Request, owner: str, activity_id: int) -> stored.ActivityRow:
    """The owner's activity as it is now (their activities refreshed first: late samples, imports), or 404."""
    store = request.app[SAMPLES]
    await stored.refresh(store, owner)
    row = await stored.get_activity(store, owner, activity_id)
    if row is None:
        raise Refused(404, f"{owner} has no activity {activity_id}")
    return row
