"""The one pipeline every way in uses once its input is validated: tag, commit, account.

The live fan-out is fed from the journal the commit wrote (tracker.livefeed), so that viewers see
every worker's writes; alerts and token bookkeeping are this process's, here.

Every way samples come in (/write, /api/v2/write, the phone apps, the JSON API) calls it. Validation
(the vocabulary, the writer's right to the database, the user's retention and the server's clock:
`cutoff`)
happens before; acknowledging happens after it returns.
"""

from __future__ import annotations

import time

from aiohttp import web

from tracker.accounts import Writer
from tracker.appkeys import ACCOUNTS, ALERTS, METRICS, SAMPLES, SETTINGS
from tracker.lineprotocol import Point
from tracker.retention import Cutoff
from tracker.storage import DEVICE_TAG


async def cutoff(app: web.Application, user: str, now_ns: int | None = None) -> Cutoff:
    """The times `user`'s incoming samples are held to now: every way in refuses a sample it does not
    keep (beyond the retention policy, as InfluxDB drops them, or too far ahead of the server's
    clock), each in its own words."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    return Cutoff.at(await app[ACCOUNTS].retention_ns(user), now_ns, app[SETTINGS].max_future_ns)


async def commit(app: web.Application, writer: Writer, points: list[Point], *, on_conflict: str = "merge") -> list[int]:
    """Store `points` in the writer's database; returns once they are committed.

    A device token's label becomes each point's `device` tag unless the point has one. Storage
    errors propagate (nothing was stored); after the commit nothing here raises. `on_conflict` is
    SampleStore.write's; returns the indices of the points it skipped (the journal, and so the
    live view, has only the points stored).
    """
    if not points:
        return []
    if writer.device is not None:
        for point in points:
            if not any(key == DEVICE_TAG for key, _ in point.tags):
                point.tags = tuple(sorted((*point.tags, (DEVICE_TAG, writer.device))))
    skipped = (await app[SAMPLES].write(writer.user, points, on_conflict=on_conflict)).skipped
    if skipped:
        left_out = set(skipped)
        points = [point for index, point in enumerate(points) if index not in left_out]
    if points:
        app[METRICS].samples_written.inc(amount=len(points))
        if writer.token_id is not None:
            # A sample within the tolerance ahead of the clock counts as seen now, never later.
            newest_ns = min(max(point.time for point in points), time.time_ns())
            app[ACCOUNTS].note_token_samples(writer.token_id, newest_ns)
        app[ALERTS].saw_points(writer.user, points)  # data arrived: last seen, gone-quiet deadlines (never raises)
    return skipped
