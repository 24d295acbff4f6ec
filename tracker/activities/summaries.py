"""Activity summaries as the API serves them: the cached one, or computed from the samples (off the
event loop) and cached, unless the activity changed meanwhile."""

from __future__ import annotations

import asyncio
from typing import Any

from tracker.activities.settings import ActivitySettings
from tracker.activities.summary import SUMMARY_KEYS, summarize
from tracker.storage import activities as stored
from tracker.storage.samples import SampleStore


def _bounds_only(samples: stored.TrackSamples) -> dict[str, Any]:
    """What is known without the summary math: its keys, all None but the counts."""
    summary: dict[str, Any] = dict.fromkeys(SUMMARY_KEYS)
    summary["samples"] = len(samples.times)
    if samples.times:
        summary["elapsed_s"] = (samples.times[-1] - samples.times[0]) / 1e9
    return summary


def _computed(samples: stored.TrackSamples, settings: ActivitySettings) -> tuple[dict[str, Any], bool]:
    """(summary, whether to cache it): not cached while the summary math is not there."""
    try:
        return summarize(samples.times, samples.columns, settings), True
    except NotImplementedError:
        return _bounds_only(samples), False


async def summary_of(store: SampleStore, user: str, row: stored.ActivityRow, settings: ActivitySettings) -> dict[str, Any]:
    if row.summary is not None:
        return row.summary
    samples = await stored.track_samples(store, user, row.track, row.start_ns, row.end_ns)
    summary, cache = await asyncio.to_thread(_computed, samples, settings)
    if cache:
        await stored.store_summary(store, user, row, summary, settings)
    return summary
