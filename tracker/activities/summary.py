"""An activity's summary and laps, computed from its samples: columns in, numbers out (no I/O).

The columns are the vocabulary's keys (tracker.vocabulary.FIELD_KEYS), each a list as long as `times`
(ns since the epoch, rising), None where a sample has no value for that key; a key may be absent.

The rules (README, "Activity summaries: how the numbers are computed"):
- distance: the positive increments of dist_km (a device reset to 0 is a drop, ignored), else the
  haversine sum (R = 6371008.8 m) over consecutive samples with lat and lng.
- a sample's speed: spd_kph, else derived over the interval ending at it (from positions, else from
  dist_km increments). An interval between two samples is moving when the mean of its ends' speeds is
  >= moving_kph; an interval longer than PAUSE_S (no samples for a while) is moving only when both its
  ends are moving and the distance covered across it (where known) says moving too.
- time in zones: each sample's value weighs the interval to the next sample, at most PAUSE_S for an
  interval that is not moving (a sensor silent through a stop is not 10 minutes at that heart rate).
- elevation: hysteresis of ELEVATION_HYSTERESIS_M; a climb or descent counts once the altitude has
  turned by that much, so noise smaller than it adds nothing.
- max speed: the largest running median of MAX_SPEED_WINDOW consecutive speeds (one GPS jump never
  makes the max).
- power average includes zeros (coasting is part of the ride); cadence average excludes zeros (as
  Garmin and Strava do by default).
- normalized power: power held to a 1 s grid (a grid second with no power sample in the PAUSE_S before
  it is a pause and left out), 30 s rolling mean, fourth-power mean, fourth root; None under 30 s.
- laps end on the first sample at or past each every_m boundary; the next lap starts on that sample.

Every figure is computed by one fold (SummaryFold): samples in time order, in chunks of any size, a
small JSON state between them, so a cached summary grows by new samples alone; summarize() and laps()
fold all the samples at once.

Speed (timeit, best of 3, CPython 3.11 on the development machine under other load): folding 43,200
samples (12 h at 1 Hz, every key) takes about 120-200 ms with the laps per km.
"""

from __future__ import annotations

import copy
import math
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from tracker.activities.settings import ActivitySettings
from tracker.geo import EARTH_RADIUS_M, haversine_m

Columns = Mapping[str, Sequence[float | None]]

# The keys of a summary, every one present (None where the samples say nothing):
#   elapsed_s, moving_s, distance_m, distance_source ("dist_km" | "positions" | None),
#   elev_gain_m, elev_loss_m, speed_avg_kph (moving), speed_max_kph,
#   hr_avg_bpm, hr_max_bpm, pwr_avg_w, pwr_max_w, np_w, cad_avg_rpm, cad_max_rpm, temp_avg_c,
#   hr_zones_s, pwr_zones_s (seconds per zone, lists, None without bounds or values),
#   bbox ([[south, west], [north, east]] or None), samples.
SUMMARY_KEYS: tuple[str, ...] = (
    "samples", "elapsed_s", "moving_s", "distance_m", "distance_source", "elev_gain_m", "elev_loss_m",
    "speed_avg_kph", "speed_max_kph", "hr_avg_bpm", "hr_max_bpm", "pwr_avg_w", "pwr_max_w", "np_w",
    "cad_avg_rpm", "cad_max_rpm", "temp_avg_c", "hr_zones_s", "pwr_zones_s", "bbox",
)
LAP_KEYS: tuple[str, ...] = (
    "lap", "start_ns", "end_ns", "distance_m", "elapsed_s", "moving_s", "speed_avg_kph", "hr_avg_bpm",
    "pwr_avg_w", "cad_avg_rpm", "elev_gain_m",
)

PAUSE_S = 10.0  # an interval longer than this without samples is a pause unless its ends say moving
ELEVATION_HYSTERESIS_M = 5.0  # above GPS altitude noise of a few metres
MAX_SPEED_WINDOW = 5  # samples; odd. A position jump spoils two derived speeds, a median of 5 drops both
NP_WINDOW_S = 30
_NS = 1e-9
_RADIANS = math.pi / 180


DEFAULT_LAP_M = 1000.0  # the laps a fold keeps by default: what the activity page shows first
_FIELDS = ("spd_kph", "lat", "lng", "dist_km", "alt_m", "hr_bpm", "pwr_w", "cad_rpm", "temp_c")


def summarize(times: Sequence[int], columns: Columns, settings: ActivitySettings) -> dict[str, Any]:
    """The summary of one activity's samples (keys: SUMMARY_KEYS)."""
    fold = SummaryFold(settings, lap_m=None)
    fold.add(times, columns)
    return fold.summary()


def laps(times: Sequence[int], columns: Columns, every_m: float, settings: ActivitySettings) -> list[dict[str, Any]]:
    """Laps of `every_m` metres along the activity's distance, the last one shorter.

    Each lap: lap (1, 2, ...), start_ns, end_ns, distance_m, elapsed_s, moving_s, speed_avg_kph,
    hr_avg_bpm, pwr_avg_w, cad_avg_rpm, elev_gain_m. A lap ends on the first sample at or past its
    boundary (no interpolation), and the next lap starts on that sample. No distance: no laps.
    """
    fold = SummaryFold(settings, lap_m=every_m)
    fold.add(times, columns)
    return fold.laps()


def _moving(before: float | None, after: float | None, dt: float, covered: float | None, threshold: float) -> bool:
    """Whether the interval between two samples with these speeds is moving (the module's rule)."""
    if before is None or after is None:
        known = before if after is None else after
        return known is not None and known >= threshold and (dt <= PAUSE_S or _at_least(covered, threshold))
    if dt <= PAUSE_S:
        return before + after >= 2 * threshold
    return before >= threshold and after >= threshold and _at_least(covered, threshold)


# Elevation hysteresis as a fold: [started, direction, low, high, turn, extreme, gain, loss]. direction
# is 0 until the first move of the threshold's size (low/high: the range so far), then +1 climbing or
# -1 descending (turn: the last turn, extreme: the extreme since).
def _elevation_start() -> list[Any]:
    return [False, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]


def _elevation_add(state: list[Any], altitude: float) -> None:
    threshold = ELEVATION_HYSTERESIS_M
    if not state[0]:
        state[0], state[2], state[3] = True, altitude, altitude
        return
    direction = state[1]
    if direction == 0:
        low, high = min(state[2], altitude), max(state[3], altitude)
        state[2], state[3] = low, high
        if altitude - low >= threshold:
            state[1], state[4], state[5] = 1, low, altitude
        elif high - altitude >= threshold:
            state[1], state[4], state[5] = -1, high, altitude
    elif direction > 0:
        if altitude > state[5]:
            state[5] = altitude
        elif altitude <= state[5] - threshold:
            state[6] += state[5] - state[4]
            state[1], state[4], state[5] = -1, state[5], altitude
    elif altitude < state[5]:
        state[5] = altitude
    elif altitude >= state[5] + threshold:
        state[7] += state[4] - state[5]
        state[1], state[4], state[5] = 1, state[5], altitude


def _elevation_result(state: list[Any]) -> tuple[float, float] | None:
    """(gain, loss) so far, the climb or descent under way counted to its extreme; None without altitude."""
    if not state[0]:
        return None
    gain, loss = state[6], state[7]
    if state[1] > 0:
        gain += state[5] - state[4]
    elif state[1] < 0:
        loss += state[4] - state[5]
    return gain, loss


def elevation_change(altitudes: Sequence[float | None]) -> tuple[float, float]:
    """(gain, loss) in metres with ELEVATION_HYSTERESIS_M hysteresis; samples without altitude skipped.

    A climb counts from its lowest to its highest point once the road has turned down by the threshold
    (or the samples end), a descent likewise; wobbles smaller than the threshold never turn it.
    """
    state = _elevation_start()
    for altitude in altitudes:
        if altitude is not None:
            _elevation_add(state, altitude)
    return _elevation_result(state) or (0.0, 0.0)


# A lap under way: [start_ns, end_ns, start_m, end_m, moving_s, hr_sum, hr_n, pwr_sum, pwr_n, cad_sum,
# cad_n (non-zero), elevation fold].
def _lap_start(t: int, metres: float, alt: float | None, hr: float | None, pwr: float | None, cad: float | None) -> list[Any]:
    lap: list[Any] = [t, t, metres, metres, 0.0, 0.0, 0, 0.0, 0, 0.0, 0, _elevation_start()]
    _lap_values(lap, alt, hr, pwr, cad)
    return lap


def _lap_values(lap: list[Any], alt: float | None, hr: float | None, pwr: float | None, cad: float | None) -> None:
    if hr is not None:
        lap[5] += hr
        lap[6] += 1
    if pwr is not None:
        lap[7] += pwr
        lap[8] += 1
    if cad is not None and cad != 0:
        lap[9] += cad
        lap[10] += 1
    if alt is not None:
        _elevation_add(lap[11], alt)


def _lap_result(lap: list[Any]) -> dict[str, Any]:
    distance_m = lap[3] - lap[2]
    moving_s = lap[4]
    elevation = _elevation_result(lap[11])
    return {
        "start_ns": lap[0], "end_ns": lap[1], "distance_m": distance_m, "elapsed_s": (lap[1] - lap[0]) * _NS,
        "moving_s": moving_s, "speed_avg_kph": distance_m / moving_s * 3.6 if moving_s > 0 else None,
        "hr_avg_bpm": lap[5] / lap[6] if lap[6] else None, "pwr_avg_w": lap[7] / lap[8] if lap[8] else None,
        "cad_avg_rpm": lap[9] / lap[10] if lap[10] else None,
        "elev_gain_m": elevation[0] if elevation is not None else None,
    }


def _laps_start(every_m: float) -> dict[str, Any]:
    # finished: closed laps' results. While the samples after the last boundary add no distance, they
    # belong to the lap before it (README): `closed` is that lap as it was at its boundary, `extended`
    # the same lap still taking samples, and whichever applies at the end is the last lap.
    return {"every_m": every_m, "boundary": every_m, "finished": [], "closed": None, "extended": None, "current": None}


def _laps_add(
    state: dict[str, Any], t: int, metres: float, moving_s: float,
    alt: float | None, hr: float | None, pwr: float | None, cad: float | None,
) -> None:  # fmt: skip
    current = state["current"]
    if current is None:
        state["current"] = _lap_start(t, metres, alt, hr, pwr, cad)
        return
    current[1], current[3] = t, metres
    current[4] += moving_s
    _lap_values(current, alt, hr, pwr, cad)
    extended = state["extended"]
    if extended is not None:
        if metres > current[2]:
            state["finished"].append(state["closed"])
            state["closed"] = state["extended"] = None
        else:
            extended[1], extended[3] = t, metres
            extended[4] += moving_s
            _lap_values(extended, alt, hr, pwr, cad)
    if metres >= state["boundary"]:
        state["closed"], state["extended"] = _lap_result(current), current
        state["current"] = _lap_start(t, metres, alt, hr, pwr, cad)
        # a sample may cross several boundaries at once (a gap in positions): one lap, not empty ones
        state["boundary"] = (math.floor(metres / state["every_m"]) + 1) * state["every_m"]


def _laps_result(state: dict[str, Any]) -> list[dict[str, Any]]:
    if state["current"] is None:
        return []
    last = _lap_result(state["extended"]) if state["closed"] is not None else _lap_result(state["current"])
    return [{"lap": number, **lap} for number, lap in enumerate([*state["finished"], last], 1)]


def _total(total: list[Any], counted: float | None, value: float) -> None:
    """[sum, count, max]: the sum and count of the counted values, the max of all."""
    if counted is not None:
        total[0] += counted
        total[1] += 1
    if total[2] is None or value > total[2]:
        total[2] = value


class SummaryFold:
    """The summary (and the laps of one distance) of samples given in time order, in chunks.

    `add` takes the next samples (times after every earlier one); `summary()` and `laps()` answer for
    the samples so far at any point; `state()` is a small JSON value from which `restore` continues
    the fold, so a cached summary grows by the new samples alone. Its size is bounded except for the
    finished laps (one small record per lap).

    A sample's speed derived from positions may need the interval after it, and whether an interval
    is moving needs both ends' speeds: samples therefore reach the totals one behind (`_pending`
    holds the last one), and the answers count the pending sample as the last.
    """

    def __init__(self, settings: ActivitySettings, *, lap_m: float | None = DEFAULT_LAP_M) -> None:
        if lap_m is not None and not (isinstance(lap_m, (int, float)) and math.isfinite(lap_m) and lap_m > 0):
            raise ValueError(f"every_m must be a positive number of metres, got {lap_m!r}")
        self._threshold = settings.moving_kph
        self._hr_bounds = settings.heart_rate_bounds()
        self._pwr_bounds = settings.power_bounds()
        s: dict[str, Any] = {
            "samples": 0, "first_ns": None, "last_ns": None,
            # the last sample, not yet counted: [t, spd, lat, lng, dist, alt, hr, pwr, cad, temp,
            # covered_in (kph over the interval before it, or None), dt_in, speed_before, haversine_in]
            "pending": None,
            "radians": None,  # the pending sample's [latitude, longitude, cos(latitude)] in radians, when it has a position
            "moving_s": 0.0,
            "dist": [0.0, None, 0],  # metres from dist_km's positive increments, the last value, values seen
            "pos": [0.0, None, 0],  # metres along positions, the last [lat, lng], positions seen
            "last_positioned": False,  # whether the last counted sample had a position
            "elevation": _elevation_start(),
            "hr": [0.0, 0, None], "pwr": [0.0, 0, None],  # sum, count, max
            "cad": [0.0, 0, None], "temp": [0.0, 0],  # cadence: sum and count of non-zero values
            "hr_zones": [0.0] * (len(self._hr_bounds) + 1) if self._hr_bounds else None,
            "pwr_zones": [0.0] * (len(self._pwr_bounds) + 1) if self._pwr_bounds else None,
            "zone_values": [None, None],  # the last counted sample's hr and power: its interval weighs them
            "speeds": [[], 0, None],  # the last MAX_SPEED_WINDOW speeds, speeds seen, best median so far
            "bbox": None,  # [south, west, north, east]
            # normalized power's 1 s grid: the next grid second, the held power and its time, the last
            # NP_WINDOW_S grid values, their sum, the sum of fourth powers of the 30 s means, grid seconds
            "np": [None, None, 0, [], 0.0, 0.0, 0],
            "laps_dist": _laps_start(lap_m) if lap_m is not None else None,
            "laps_pos": _laps_start(lap_m) if lap_m is not None else None,
            "lap_m": lap_m,
        }
        self._s = s

    @classmethod
    def restore(cls, state: dict[str, Any], settings: ActivitySettings) -> SummaryFold:
        """Continue a fold from `state()` (made under the same settings); ValueError for anything else
        (a state of another layout, as an older version stored it, is folded again by the caller)."""
        lap_m = state.get("lap_m") if isinstance(state, dict) else None
        fold = cls(settings, lap_m=lap_m if isinstance(lap_m, (int, float)) else None)
        if not isinstance(state, dict) or state.keys() != fold._s.keys():
            raise ValueError("not the state of a summary fold")
        fold._s = copy.deepcopy(state)
        return fold

    def state(self) -> dict[str, Any]:
        return copy.deepcopy(self._s)

    @property
    def samples(self) -> int:
        """How many samples were added (the pending one too)."""
        return int(self._s["samples"]) + (self._s["pending"] is not None)

    @property
    def last_ns(self) -> int | None:
        return self._s["last_ns"]

    @property
    def lap_m(self) -> float | None:
        return self._s["lap_m"]

    def add(self, times: Sequence[int], columns: Columns) -> None:
        count = len(times)
        for key, values in columns.items():
            if len(values) != count:
                raise ValueError(f"column {key} has {len(values)} values for {count} times; each column needs one per time")
        if not count:
            return
        last = self._s["last_ns"]
        if last is not None and times[0] <= last:
            raise ValueError(f"samples must come after the ones folded so far (time {times[0]} <= {last})")
        none: list[None] = [None] * count
        self._count(self._resolved(zip(times, *(columns.get(key) or none for key in _FIELDS))))
        s = self._s
        if s["first_ns"] is None:
            s["first_ns"] = times[0]
        s["last_ns"] = times[-1]

    def _resolved(self, rows: Iterable[tuple[Any, ...]]) -> Iterator[tuple[list[Any], float | None]]:
        """Each sample before the last with its speed, now that the sample after it is known; the last
        one stays pending: [t, spd, lat, lng, dist, alt, hr, pwr, cad, temp, covered_in, dt_in,
        speed_before, haversine_in]."""
        s = self._s
        prev, before = s["pending"], s["radians"]
        sin, cos, asin, sqrt = math.sin, math.cos, math.asin, math.sqrt
        for t, spd, lat, lng, dist, alt, hr, pwr, cad, temp in rows:
            haversine: float | None = None
            if lat is not None and lng is not None:
                # the haversine inlined, each sample's radians and cosine computed once: most of a fold's time
                phi, lam = lat * _RADIANS, lng * _RADIANS
                cos_phi = cos(phi)
                if before is not None:
                    a = sin((phi - before[0]) / 2) ** 2 + before[2] * cos_phi * sin((lam - before[1]) / 2) ** 2
                    haversine = 2 * EARTH_RADIUS_M * asin(sqrt(min(a, 1.0)))
                before = [phi, lam, cos_phi]
            else:
                before = None
            if prev is None:
                prev = [t, spd, lat, lng, dist, alt, hr, pwr, cad, temp, None, None, None, None]
                continue
            dt = (t - prev[0]) * _NS
            covered: float | None = None
            if dt > 0:
                if haversine is not None:
                    covered = haversine / dt * 3.6
                elif prev[4] is not None and dist is not None and dist >= prev[4]:  # a drop is a reset: unknown
                    covered = (dist - prev[4]) * 1000.0 / dt * 3.6
            speed = prev[1] if prev[1] is not None else (prev[10] if prev[10] is not None else covered)
            yield prev, speed
            prev = [t, spd, lat, lng, dist, alt, hr, pwr, cad, temp, covered, dt, speed, haversine]
        s["pending"], s["radians"] = prev, before

    def _count(self, resolved: Iterable[tuple[list[Any], float | None]]) -> None:
        """Add samples whose speed is now known to the totals (each with the interval before it)."""
        s = self._s
        threshold, hr_bounds, pwr_bounds = self._threshold, self._hr_bounds, self._pwr_bounds
        hr_zones, pwr_zones = s["hr_zones"], s["pwr_zones"]
        last_hr, last_pwr = s["zone_values"]
        distance, along, elevation = s["dist"], s["pos"], s["elevation"]
        hr_total, pwr_total, cad_total, temp_total = s["hr"], s["pwr"], s["cad"], s["temp"]
        speeds = s["speeds"]
        recent = speeds[0]
        moving_s, samples, last_positioned, box = s["moving_s"], s["samples"], s["last_positioned"], s["bbox"]
        power_grid = self._power_grid
        for sample, speed in resolved:
            t, _, lat, lng, dist, alt, hr, pwr, cad, temp, covered_in, dt_in, speed_before, haversine_in = sample
            moving_dt = 0.0
            if dt_in is not None:
                moving = _moving(speed_before, speed, dt_in, covered_in, threshold)
                if moving:
                    moving_dt = dt_in
                    moving_s += dt_in
                weight = dt_in if dt_in <= PAUSE_S or moving else PAUSE_S
                if last_hr is not None and hr_zones is not None:
                    hr_zones[bisect_left(hr_bounds, last_hr)] += weight  # type: ignore[arg-type]
                if last_pwr is not None and pwr_zones is not None:
                    pwr_zones[bisect_left(pwr_bounds, last_pwr)] += weight  # type: ignore[arg-type]
            last_hr, last_pwr = hr, pwr
            samples += 1
            if dist is not None:
                if distance[1] is not None and dist > distance[1]:
                    distance[0] += (dist - distance[1]) * 1000.0
                distance[1] = dist
                distance[2] += 1
            if lat is not None and lng is not None:
                if along[1] is not None:
                    # the haversine to the sample before is known already when that one had a position
                    along[0] += haversine_in if haversine_in is not None and last_positioned else haversine_m(along[1][0], along[1][1], lat, lng)
                along[1] = [lat, lng]
                along[2] += 1
                if box is None:
                    box = [lat, lng, lat, lng]
                else:
                    if lat < box[0]:
                        box[0] = lat
                    elif lat > box[2]:
                        box[2] = lat
                    if lng < box[1]:
                        box[1] = lng
                    elif lng > box[3]:
                        box[3] = lng
                last_positioned = True
            else:
                last_positioned = False
            if alt is not None:
                _elevation_add(elevation, alt)
            if hr is not None:
                _total(hr_total, hr, hr)
            if pwr is not None:
                _total(pwr_total, pwr, pwr)
            if cad is not None:
                _total(cad_total, cad if cad != 0 else None, cad)
            if temp is not None:
                temp_total[0] += temp
                temp_total[1] += 1
            if speed is not None:
                recent.append(speed)
                if len(recent) > MAX_SPEED_WINDOW:
                    del recent[0]
                speeds[1] += 1
                best = speeds[2]
                # a median is at most its window's largest value: only a window whose largest beats the best needs sorting
                if speeds[1] >= MAX_SPEED_WINDOW and (best is None or max(recent) > best):
                    median = sorted(recent)[MAX_SPEED_WINDOW // 2]
                    speeds[2] = median if best is None else max(best, median)
            if pwr is not None or s["np"][0] is not None:
                power_grid(t, pwr)
            if s["laps_dist"] is not None:
                _laps_add(s["laps_dist"], t, distance[0], moving_dt, alt, hr, pwr, cad)
                if distance[2] >= 2:
                    s["laps_pos"] = None  # dist_km is the distance from now on: positions' laps are not needed
                elif s["laps_pos"] is not None:
                    _laps_add(s["laps_pos"], t, along[0], moving_dt, alt, hr, pwr, cad)
        s["zone_values"] = [last_hr, last_pwr]
        s["moving_s"], s["samples"], s["last_positioned"], s["bbox"] = moving_s, samples, last_positioned, box

    def _power_grid(self, t: int, pwr: float | None) -> None:
        """Normalized power's grid up to this sample: power held to each second, a pause left out."""
        grid = self._s["np"]
        if grid[0] is None:
            if pwr is None:
                return
            grid[0] = t
        pause_ns = int(PAUSE_S * 1e9)
        # the seconds before this sample hold what came before it; its own second holds it
        while grid[0] < t:
            if grid[1] is not None and grid[0] - grid[2] <= pause_ns:
                self._grid_value(grid[1])
            else:
                # a pause: jump to the last second before this sample instead of walking through the silence
                skip = (t - grid[0]) // 1_000_000_000
                if skip > 1:
                    grid[0] += (skip - 1) * 1_000_000_000
            grid[0] += 1_000_000_000
        if pwr is not None:
            grid[1], grid[2] = pwr, t
        if grid[0] == t:
            if grid[1] is not None and grid[0] - grid[2] <= pause_ns:
                self._grid_value(grid[1])
            grid[0] += 1_000_000_000

    def _grid_value(self, value: float) -> None:
        grid = self._s["np"]
        window = grid[3]
        window.append(value)
        grid[4] += value
        if len(window) > NP_WINDOW_S:
            grid[4] -= window.pop(0)
        grid[6] += 1
        if grid[6] >= NP_WINDOW_S:
            grid[5] += (grid[4] / NP_WINDOW_S) ** 4

    def _finished(self) -> SummaryFold:
        """A copy with the pending sample counted as the last one (nothing follows it)."""
        done = copy.copy(self)
        done._s = copy.deepcopy(self._s)
        pending = done._s["pending"]
        if pending is not None:
            done._count([(pending, pending[1] if pending[1] is not None else pending[10])])
            done._s["pending"] = None
        return done

    def summary(self) -> dict[str, Any]:
        """The summary of the samples so far (keys: SUMMARY_KEYS)."""
        s = self._finished()._s
        if not s["samples"]:
            return {key: (0 if key == "samples" else None) for key in SUMMARY_KEYS}
        distance_m: float | None
        if s["dist"][2] >= 2:
            source: str | None = "dist_km"
            distance_m = s["dist"][0]
        elif s["pos"][2] >= 2:
            source, distance_m = "positions", s["pos"][0]
        else:
            source = distance_m = None
        moving_s = s["moving_s"]
        elevation = _elevation_result(s["elevation"])
        recent, seen, best = s["speeds"]
        speed_max = best if seen > MAX_SPEED_WINDOW else (sorted(recent)[(len(recent) - 1) // 2] if recent else None)
        grid = s["np"]
        hr, pwr, cad, temp = s["hr"], s["pwr"], s["cad"], s["temp"]
        box = s["bbox"]
        out = {
            "samples": s["samples"],
            "elapsed_s": (s["last_ns"] - s["first_ns"]) * _NS,
            "moving_s": moving_s,
            "distance_m": distance_m,
            "distance_source": source,
            "elev_gain_m": elevation[0] if elevation else None,
            "elev_loss_m": elevation[1] if elevation else None,
            "speed_avg_kph": distance_m / moving_s * 3.6 if distance_m is not None and moving_s > 0 else None,
            "speed_max_kph": speed_max,
            "hr_avg_bpm": hr[0] / hr[1] if hr[1] else None, "hr_max_bpm": hr[2],
            "pwr_avg_w": pwr[0] / pwr[1] if pwr[1] else None, "pwr_max_w": pwr[2],
            "np_w": (grid[5] / (grid[6] - NP_WINDOW_S + 1)) ** 0.25 if grid[6] >= NP_WINDOW_S else None,
            "cad_avg_rpm": cad[0] / cad[1] if cad[1] else None, "cad_max_rpm": cad[2],
            "temp_avg_c": temp[0] / temp[1] if temp[1] else None,
            "hr_zones_s": s["hr_zones"] if hr[2] is not None else None,
            "pwr_zones_s": s["pwr_zones"] if pwr[2] is not None else None,
            "bbox": [[box[0], box[1]], [box[2], box[3]]] if box is not None else None,
        }
        return {key: out[key] for key in SUMMARY_KEYS}

    def laps(self) -> list[dict[str, Any]]:
        """Laps of `lap_m` metres over the samples so far (see laps())."""
        s = self._finished()._s
        if s["lap_m"] is None:
            raise ValueError("this fold keeps no laps")
        if s["samples"] < 2:
            return []
        if s["dist"][2] >= 2:
            return _laps_result(s["laps_dist"])
        if s["pos"][2] >= 2:
            return _laps_result(s["laps_pos"])
        return []


def _at_least(value: float | None, threshold: float) -> bool:
    """True when unknown: the distance across an interval can only refute its ends' speeds."""
    return value is None or value >= threshold


