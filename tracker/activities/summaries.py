"""Activity summaries as the API serves them: the cached one, or computed from the samples (off the
event loop) and cached, unless the activity changed meanwhile."""

from __future__ import annotations

import asyncio
from typing import Any

from tracker.activities.settings import ActivitySettings
from tracker.activities.summary import summarize
from tracker.storage import activities as stored
from tracker.storage.samples import SampleStore


async def summary_of(store: SampleStore, user: str, row: stored.ActivityRow, settings: ActivitySettings) -> dict[str, Any]:
    if row.summary is not None:
        return row.summary
    samples = await stored.track_samples(store, user, row.track, row.start_ns, row.end_ns)
    summary = await asyncio.to_thread(summarize, samples.times, samples.columns, settings)
    await stored.store_summary(store, user, row, summary, settings)
    return summary
