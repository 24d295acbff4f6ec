"""Where a track's samples split into activities: times in, index ranges out (pure, no I/O).

Two consecutive samples more than `gap_ns` apart belong to different activities, unless an owner's
join spans that pause; an owner's cut at `at` splits between the last sample before `at` and the
first at or after it, whatever the pause.
"""

from __future__ import annotations

import bisect
from typing import Sequence

Join = tuple[int, int]  # (from_ns, to_ns): no pause inside this span splits


def split_points(times: Sequence[int], gap_ns: int, cuts: Sequence[int] = (), joins: Sequence[Join] = ()) -> list[tuple[int, int]]:
    """[start, end) index ranges of `times` (rising, repeats allowed), one per activity, in order."""
    if not times:
        return []
    cut_times = sorted(cuts)
    join_spans = sorted(joins)
    ranges: list[tuple[int, int]] = []
    start = 0
    for index in range(1, len(times)):
        before, after = times[index - 1], times[index]
        if before == after:
            continue
        # A cut c with before < c <= after lies between the two samples.
        cut = False
        if cut_times:
            position = bisect.bisect_left(cut_times, before + 1)
            cut = position < len(cut_times) and cut_times[position] <= after
        if cut or (after - before > gap_ns and not _joined(join_spans, before, after)):
            ranges.append((start, index))
            start = index
    ranges.append((start, len(times)))
    return ranges


def _joined(spans: Sequence[Join], before: int, after: int) -> bool:
    # Any span with from <= before and after <= to; spans are few (an owner's merges), so a scan.
    return any(low <= before and after <= high for low, high in spans)
