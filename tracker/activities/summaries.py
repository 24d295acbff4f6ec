"""Activity summaries and default laps as the API serves them: the cached ones, else folded from the
samples (off the event loop) and cached, unless the activity changed meanwhile.

The cache keeps the summary fold's state (tracker.activities.summary.SummaryFold). When the only
change since is samples appended after the last folded one (a live ride), the refresh keeps that state
and the next summary folds in the new samples alone; otherwise it folds all of the activity's samples.
Samples are read and folded in pieces of stored.READ_CHUNK_ROWS rows, so memory stays bounded
whatever the activity's length (a logger that never pauses).
"""

from __future__ import annotations

import asyncio
from typing import Any

from tracker.activities.settings import ActivitySettings
from tracker.activities.summary import DEFAULT_LAP_M, SummaryFold
from tracker.storage import activities as stored
from tracker.storage.samples import SampleStore


async def summary_of(store: SampleStore, user: str, row: stored.ActivityRow, settings: ActivitySettings) -> dict[str, Any]:
    if row.summary is not None:
        return row.summary
    state, _ = await stored.summary_state(store, user, row.id)
    summary, _ = await _folded(store, user, row, settings, state)
    return summary


async def default_laps_of(store: SampleStore, user: str, row: stored.ActivityRow, settings: ActivitySettings) -> list[dict[str, Any]]:
    """The laps at SummaryFold's default distance, from the cached fold when it is current."""
    state, current = await stored.summary_state(store, user, row.id)
    if state is not None and current and row.summary is not None:
        try:
            fold = SummaryFold.restore(state, settings)
        except ValueError:
            pass  # folded again below
        else:
            if fold.lap_m == DEFAULT_LAP_M:
                return await asyncio.to_thread(fold.laps)
    _, found = await _folded(store, user, row, settings, state)
    return found


async def _folded(
    store: SampleStore, user: str, row: stored.ActivityRow, settings: ActivitySettings, state: dict[str, Any] | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:  # fmt: skip
    """Bring the fold up to `row` from its stored `state` (the caller has read it; None: from the
    start), cache it; (summary, laps)."""
    try:
        fold = SummaryFold.restore(state, settings) if state is not None else SummaryFold(settings)
    except ValueError:
        fold = SummaryFold(settings)
    from_ns = fold.last_ns + 1 if fold.last_ns is not None else row.start_ns
    if fold.samples + await stored.track_count(store, user, row.track, from_ns, row.end_ns) != row.samples:
        # the stored state does not lead to this row (it changed meanwhile): fold everything
        fold = SummaryFold(settings)
        from_ns = row.start_ns
    await fold_samples(store, user, row.track, fold, from_ns, row.end_ns)

    def results() -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
        return fold.summary(), fold.laps(), fold.state()

    summary, found, new_state = await asyncio.to_thread(results)
    await stored.store_summary(store, user, row, summary, new_state, settings)
    return summary, found


async def fold_samples(store: SampleStore, user: str, track: stored.Track, fold: SummaryFold, start_ns: int, end_ns: int) -> None:
    """Fold the track's samples with start_ns <= time <= end_ns into `fold`, a bounded piece at a time
    (read, then folded off the event loop): memory stays the same for a month-long activity."""
    async for piece in stored.track_sample_chunks(store, user, track, start_ns, end_ns):
        await asyncio.to_thread(fold.add, piece.times, piece.columns)


async def laps_of(store: SampleStore, user: str, row: stored.ActivityRow, every_m: float, settings: ActivitySettings) -> list[dict[str, Any]]:
    """The activity's laps of `every_m` metres, folded from its samples piece by piece."""
    fold = SummaryFold(settings, lap_m=every_m)
    await fold_samples(store, user, row.track, fold, row.start_ns, row.end_ns)
    return await asyncio.to_thread(fold.laps)
