"""Times of an InfluxQL answer: GROUP BY time buckets (with tz(), aligned to the zone's midnights and
clock changes) and how a time is written (epoch units, or RFC 3339 in UTC or with the zone's offset).

The one place for this arithmetic: SELECT (tracker.influx.select) and the functions beside it use these
helpers. Zone rules come from the standard library's zoneinfo (the system's tzdata, as InfluxDB's Go
runtime reads it). `window` and the bucket walk follow InfluxDB 1.x's IteratorOptions.Window and its
fill iterator step for step, so buckets across a clock change (23 h and 25 h days) are InfluxDB's.
"""

from __future__ import annotations

import functools
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Sequence
from zoneinfo import ZoneInfo

import numpy as np

from tracker.influx.workers import check_deadline
from tracker.storage import EPOCH_NS

_SECOND = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MIN_TIME = -(2**63) + 2  # InfluxDB's influxql.MinTime
_MAX_TIME = 2**63 - 1


_STRETCH = 7 * 86_400 * _SECOND  # see Buckets: no zone changes its clocks twice within this


class UnknownZone(ValueError):
    """tz() named no zone this system knows (InfluxDB's words as the message)."""


@functools.lru_cache(maxsize=64)
def load_zone(name: str) -> ZoneInfo | None:
    """The zone tz() names; None for UTC (and '', which Go's LoadLocation takes as UTC). Names are
    case-sensitive, as on InfluxDB's Linux: 'utc' is no zone."""
    if name in ("", "UTC"):
        return None
    try:
        return ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise UnknownZone(f"unable to find time zone {name}") from None


def zone_offset(zone: ZoneInfo | None, ns: int) -> int:
    """The zone's offset from UTC at the instant `ns`, in ns (Go's time.Unix(0, ns).In(zone).Zone())."""
    if zone is None:
        return 0
    offset = (_EPOCH + timedelta(seconds=ns // _SECOND)).astimezone(zone).utcoffset()
    return 0 if offset is None else int(offset.total_seconds()) * _SECOND


def window(t: int, every: int, offset: int, zone: ZoneInfo | None) -> tuple[int, int]:
    """[start, end) of the GROUP BY time(every, offset) bucket holding `t`: InfluxDB's Window()."""
    t -= offset
    zone_at_t = zone_offset(zone, t)
    dt = (t + zone_at_t) % every  # Python's % is already the floored modulo Go's code corrects for
    start = _MIN_TIME if _MIN_TIME + dt >= t else t - dt
    if zone is not None:
        # The bucket may have begun before a clock change: its start is where the zone said midnight.
        o = zone_at_t - zone_offset(zone, start)
        if o != 0 and abs(o) < every:
            start += o
    start += offset
    rest = every - dt
    end = _MAX_TIME if _MAX_TIME - rest <= t else t + rest
    if zone is not None:
        end_offset = zone_offset(zone, end)
        o = zone_at_t - end_offset
        if o != 0 and abs(o) < every and (o > 0 or zone_offset(zone, end + o) == end_offset):
            end += o
    return start, end + offset


@dataclass(frozen=True, slots=True)
class Run:
    """Buckets of one length in a row over [lo, hi): a plain GROUP BY time(step, phase) over that range,
    whose bucket number n starts at n * step + phase; or, with `bucket`, one bucket of another length
    (23 h on a day the clocks go forward), which starts at `bucket` whatever number storage gives it."""

    lo: int
    hi: int
    step: int
    phase: int
    bucket: int | None = None

    def start_of(self, index: Any) -> Any:
        """Where bucket number `index` starts (an int, or a numpy array of them at once)."""
        return self.bucket if self.bucket is not None else index * self.step + self.phase


class Buckets:
    """The buckets of GROUP BY time over [start, end): `starts`, the times the answer's rows are
    stamped with where fill() makes them, and `runs`, the ranges of equal buckets storage aggregates
    over, whose values are keyed by their bucket's start.

    With tz(), InfluxDB makes the two a little differently: a point goes to the bucket Window() gives
    it, while fill() steps from bucket to bucket; over a clock change with an offset they can disagree
    (see `row_times`). Without tz() both are the plain grid."""

    def __init__(self, start: int, end: int, every: int, offset: int, zone: ZoneInfo | None,
                 check: Callable[[int], None] = lambda count: None, deadline: float | None = None) -> None:  # fmt: skip
        self.every, self.offset, self.zone = every, offset, zone
        first = window(start, every, offset, zone)[0]
        last = window(end - 1, every, offset, zone)[0]
        self.starts: Sequence[int]
        if zone is None:
            self.starts = range(first, last + 1, every)
            check(len(self.starts))
            self.runs = [Run(start, end, every, offset % every)]
            return
        check((last - first) // every + 1)  # about the count, before the walk that costs as much
        # InfluxDB's fill iterator: one step of `every`, moved by a clock change it stepped over.
        starts = [first]
        time, zone_now = first, zone_offset(zone, first)
        while True:
            if len(starts) % 4096 == 0:
                check_deadline(deadline)
            time += every
            changed = zone_offset(zone, time - 1)
            if changed != zone_now:
                if abs(zone_now - changed) < every:
                    time += zone_now - changed
                zone_now = changed
            if time > last:
                break
            starts.append(time)
        self.starts = starts
        # Where the points go: Window() from one bucket's end to the next.
        self.runs = []
        lo = start
        while lo < end:
            if len(self.runs) % 4096 == 0:
                check_deadline(deadline)
            bucket, bucket_end = window(lo, every, offset, zone)
            hi = min(max(bucket_end, lo + 1), end)
            run = self.runs[-1] if self.runs else None
            if bucket_end - bucket != every:  # a bucket of its own length, across a clock change
                self.runs.append(Run(lo, hi, hi - lo, lo % (hi - lo), bucket))
                lo = hi
                continue
            if every < _STRETCH:
                # Zones change clocks months apart: the same offset a stretch later means equal
                # buckets all the way there, taken in one step rather than one window() each.
                stretch = _STRETCH // every * every
                if zone_offset(zone, bucket - offset + stretch) == zone_offset(zone, bucket - offset):
                    hi = min(bucket + stretch, end)
            if run is not None and run.bucket is None and run.hi == lo and run.phase == bucket % every:
                self.runs[-1] = Run(run.lo, hi, every, run.phase)
            else:
                self.runs.append(Run(lo, hi, every, bucket % every))
            lo = hi

    def runs_within(self, lo: int, hi: int) -> list[Run]:
        """The runs clipped to [lo, hi): what storage aggregates over for a part of the range."""
        return [
            Run(max(run.lo, lo), min(run.hi, hi), run.step, run.phase, run.bucket)
            for run in self.runs if run.lo < hi and run.hi > lo
        ]  # fmt: skip

    def starts_of(self, times: np.ndarray) -> np.ndarray:
        """The start of the bucket each time (inside the range) falls in, as storage keys its
        aggregates: the functions that reduce points themselves bucket them alike."""
        los = np.array([run.lo for run in self.runs], dtype=np.int64)
        which = np.searchsorted(los, times, side="right") - 1
        out = np.empty(len(times), dtype=np.int64)
        for n in np.unique(which).tolist():
            run = self.runs[max(n, 0)]
            mask = which == n
            out[mask] = run.start_of((times[mask] - run.phase) // run.step)
        return out

    def row_times(self, keys: Sequence[int], descending: bool = False) -> Sequence[int]:
        """The times of the answer's rows, in its order, where fill() makes them, given the buckets
        holding values (`keys`, sorted): InfluxDB's fill iterator, which stamps an empty step while a
        point lies ahead, and lets every point, on its step or not, use one up. Its steps run from the
        answer's first bucket, so ORDER BY time DESC steps back from the last one. Without tz() these
        are `starts`."""
        steps: Sequence[int] = self.starts if not descending else self.starts[::-1]
        if self.zone is None or set(keys) <= set(self.starts):
            return steps
        if descending:
            steps = self._steps_back()
            keys = keys[::-1]
        ahead = (lambda key, step: key < step) if descending else (lambda key, step: key > step)
        out: list[int] = []
        n = 0
        for key in keys:
            while n < len(steps) and ahead(key, steps[n]):
                out.append(steps[n])
                n += 1
            out.append(key)
            n += 1
        out.extend(steps[n:])
        return out

    def _steps_back(self) -> list[int]:
        """fill()'s steps from the last bucket back to the first, moved by the clock changes it crosses."""
        first, last, zone = self.starts[0], self.starts[-1], self.zone
        steps = [last]
        time, zone_now = last, zone_offset(zone, last)
        while True:
            time -= self.every
            changed = zone_offset(zone, time - 1)
            if changed != zone_now:
                if abs(zone_now - changed) < self.every:
                    time += zone_now - changed
                zone_now = changed
            if time < first:
                return steps
            steps.append(time)


def format_time(ns: int, epoch: str | None, zone: ZoneInfo | None = None) -> int | str:
    """A time as the answer writes it: floored to the epoch unit, or RFC 3339 as Go's RFC3339Nano
    (fraction without trailing zeros; 'Z' where the offset is 0, else the zone's +hh:mm)."""
    if epoch is not None:
        return ns // EPOCH_NS[epoch]
    seconds, fraction = divmod(ns, _SECOND)
    offset = zone_offset(zone, ns) // _SECOND
    text = (_EPOCH + timedelta(seconds=seconds + offset)).strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    if offset == 0:
        return text + "Z"
    sign = "-" if offset < 0 else "+"
    hours, minutes = divmod(abs(offset) // 60, 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"
