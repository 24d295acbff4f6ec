"""What "live" and "last seen" mean, in one place: /api/me, the watch page's devices and config.

A tracker (or one of its devices) is live while its newest sample is at most `live_within_seconds`
old. Neither ever lies in the future: a sample within the tolerance ahead of the server's clock
(`max_future_seconds`) counts as seen now, and one further ahead, stored before such samples were
refused at every way in, is not counted at all.
"""

from __future__ import annotations

import time

from tracker.config import Settings
from tracker.storage import SampleStore


def is_live(settings: Settings, last_sample_ns: int | None, now_ns: int | None = None) -> bool:
    if last_sample_ns is None:
        return False
    now_ns = time.time_ns() if now_ns is None else now_ns
    return now_ns - last_sample_ns <= settings.live_within_ns


async def last_sample_ns(samples: SampleStore, settings: Settings, user: str) -> int | None:
    """When `user`'s newest sample was taken, never after now."""
    now_ns = time.time_ns()
    latest = await samples.latest(user, upto_ns=now_ns + settings.max_future_ns)
    return None if latest is None else min(latest.time, now_ns)
