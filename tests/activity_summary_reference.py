"""The array-based from-scratch summary and laps that tracker.activities.summary replaced with a fold,
kept as the oracle of the fold's property test (the same rules, computed another way)."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

from tracker.activities.settings import ActivitySettings

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

EARTH_RADIUS_M = 6371008.8  # the mean Earth radius (IUGG)
PAUSE_S = 10.0  # an interval longer than this without samples is a pause unless its ends say moving
ELEVATION_HYSTERESIS_M = 5.0  # above GPS altitude noise of a few metres
MAX_SPEED_WINDOW = 5  # samples; odd. A position jump spoils two derived speeds, a median of 5 drops both
NP_WINDOW_S = 30
_NS = 1e-9


def summarize(times: Sequence[int], columns: Columns, settings: ActivitySettings) -> dict[str, Any]:
    """The summary of one activity's samples (keys: SUMMARY_KEYS)."""
    if not times:
        return {key: (0 if key == "samples" else None) for key in SUMMARY_KEYS}
    track = _Track(times, columns, settings)
    last = len(times) - 1
    out = track.basics(0, last)
    out["speed_max_kph"] = _max_running_median(track.speeds, MAX_SPEED_WINDOW)
    for key, out_avg, out_max, zeros in (
        ("hr_bpm", "hr_avg_bpm", "hr_max_bpm", True),
        ("pwr_w", "pwr_avg_w", "pwr_max_w", True),
        ("cad_rpm", "cad_avg_rpm", "cad_max_rpm", False),
    ):
        out[out_avg] = track.average(key, 0, last, zeros)
        out[out_max] = max((v for v in track.column(key) if v is not None), default=None)
    out["temp_avg_c"] = track.average("temp_c", 0, last, True)
    out["np_w"] = normalized_power(times, track.column("pwr_w"))
    out["hr_zones_s"] = track.zone_seconds("hr_bpm", settings.heart_rate_bounds())
    out["pwr_zones_s"] = track.zone_seconds("pwr_w", settings.power_bounds())
    out["bbox"] = track.bbox()
    return {key: out[key] for key in SUMMARY_KEYS}


def laps(times: Sequence[int], columns: Columns, every_m: float, settings: ActivitySettings) -> list[dict[str, Any]]:
    """Laps of `every_m` metres along the activity's distance, the last one shorter.

    Each lap: lap (1, 2, ...), start_ns, end_ns, distance_m, elapsed_s, moving_s, speed_avg_kph,
    hr_avg_bpm, pwr_avg_w, cad_avg_rpm, elev_gain_m. A lap ends on the first sample at or past its
    boundary (no interpolation), and the next lap starts on that sample. No distance: no laps.
    """
    if not (isinstance(every_m, (int, float)) and math.isfinite(every_m) and every_m > 0):
        raise ValueError(f"every_m must be a positive number of metres, got {every_m!r}")
    if len(times) < 2:
        return []
    track = _Track(times, columns, settings)
    if track.distance_source is None:
        return []
    cumulative = track.cumulative_m
    ends: list[int] = []
    boundary = every_m
    for index, metres in enumerate(cumulative):
        if metres >= boundary:
            ends.append(index)
            # a sample may cross several boundaries at once (a gap in positions): one lap, not empty ones
            boundary = (math.floor(metres / every_m) + 1) * every_m
    last = len(times) - 1
    if not ends:
        ends = [last]
    elif ends[-1] != last:
        # what follows the last boundary is the last, shorter lap; samples that add no distance join the lap before
        if cumulative[last] > cumulative[ends[-1]]:
            ends.append(last)
        else:
            ends[-1] = last
    out: list[dict[str, Any]] = []
    start = 0
    for number, end in enumerate(ends, 1):
        lap = track.basics(start, end)
        out.append({
            "lap": number, "start_ns": times[start], "end_ns": times[end],
            "distance_m": lap["distance_m"], "elapsed_s": lap["elapsed_s"], "moving_s": lap["moving_s"],
            "speed_avg_kph": lap["speed_avg_kph"],
            "hr_avg_bpm": track.average("hr_bpm", start, end, True),
            "pwr_avg_w": track.average("pwr_w", start, end, True),
            "cad_avg_rpm": track.average("cad_rpm", start, end, False),
            "elev_gain_m": lap["elev_gain_m"],
        })
        start = end
    return out


def normalized_power(times: Sequence[int], power: Sequence[float | None]) -> float | None:
    """Coggan's normalized power: 1 s grid, 30 s rolling mean, fourth-power mean, fourth root."""
    grid: list[float] = []
    held: float | None = None
    held_ns = 0
    pause_ns = int(PAUSE_S * 1e9)
    sample = 0
    count = len(times)
    first = next((i for i in range(count) if power[i] is not None), None)
    if first is None:
        return None
    second_ns = times[first]
    end_ns = times[-1]
    while second_ns <= end_ns:
        while sample < count and times[sample] <= second_ns:
            if power[sample] is not None:
                held, held_ns = power[sample], times[sample]
            sample += 1
        if held is not None and second_ns - held_ns <= pause_ns:
            grid.append(held)
        elif sample < count:
            # a pause: jump to the next sample's second instead of walking through the silence
            skip = (times[sample] - second_ns) // 1_000_000_000
            if skip > 1:
                second_ns += (skip - 1) * 1_000_000_000
        second_ns += 1_000_000_000
    if len(grid) < NP_WINDOW_S:
        return None
    window = sum(grid[:NP_WINDOW_S])
    fourth = (window / NP_WINDOW_S) ** 4
    for i in range(NP_WINDOW_S, len(grid)):
        window += grid[i] - grid[i - NP_WINDOW_S]
        fourth += (window / NP_WINDOW_S) ** 4
    return float((fourth / (len(grid) - NP_WINDOW_S + 1)) ** 0.25)


def elevation_change(altitudes: Sequence[float | None]) -> tuple[float, float]:
    """(gain, loss) in metres with ELEVATION_HYSTERESIS_M hysteresis; samples without altitude skipped.

    A climb counts from its lowest to its highest point once the road has turned down by the threshold
    (or the samples end), a descent likewise; wobbles smaller than the threshold never turn it.
    """
    gain = loss = 0.0
    threshold = ELEVATION_HYSTERESIS_M
    direction = 0  # 0 until the first move of the threshold's size, then +1 climbing or -1 descending
    low = high = math.nan  # before the first turn: the range so far
    turn = extreme = 0.0  # after it: the last turn and the extreme since
    started = False
    for altitude in altitudes:
        if altitude is None:
            continue
        if not started:
            low = high = altitude
            started = True
        elif direction == 0:
            low, high = min(low, altitude), max(high, altitude)
            if altitude - low >= threshold:
                turn, extreme, direction = low, altitude, 1
            elif high - altitude >= threshold:
                turn, extreme, direction = high, altitude, -1
        elif direction > 0:
            if altitude > extreme:
                extreme = altitude
            elif altitude <= extreme - threshold:
                gain += extreme - turn
                turn, extreme, direction = extreme, altitude, -1
        elif altitude < extreme:
            extreme = altitude
        elif altitude >= extreme + threshold:
            loss += turn - extreme
            turn, extreme, direction = extreme, altitude, 1
    if direction > 0:
        gain += extreme - turn
    elif direction < 0:
        loss += turn - extreme
    return gain, loss


class _Track:
    """One activity's samples with what every figure needs computed once: distances, speeds, moving."""

    def __init__(self, times: Sequence[int], columns: Columns, settings: ActivitySettings) -> None:
        self.times = times
        self.columns = columns
        count = len(times)
        for key, values in columns.items():
            if len(values) != count:
                raise ValueError(f"column {key} has {len(values)} values for {count} times; each column needs one per time")
        self._none: list[None] = [None] * count
        # the keys with at least one value: a figure from an empty column is None without a scan
        self.present = frozenset(key for key, values in columns.items() if values.count(None) < len(values))
        self.intervals_s = [(b - a) * _NS for a, b in pairwise(times)]
        self._lats, self._lngs, self._dist_km = self.column("lat"), self.column("lng"), self.column("dist_km")
        self.cumulative_m: list[float]
        cumulative = _cumulative_dist_km(self._dist_km) if "dist_km" in self.present else None
        if cumulative is not None:
            self.distance_source: str | None = "dist_km"
            self.cumulative_m = cumulative
        elif "lat" in self.present and (cumulative := _cumulative_positions(self._lats, self._lngs)) is not None:
            self.distance_source = "positions"
            self.cumulative_m = cumulative
        else:
            self.distance_source = None
            self.cumulative_m = [0.0] * count
        speed = self.column("spd_kph")
        covered = self._covered_kph
        # derived speed (only where spd_kph is missing: the haversine is the costly part)
        self.speeds: list[float | None] = list(speed)
        for i in range(count):
            if speed[i] is None:
                derived = covered(i - 1) if i > 0 else None
                self.speeds[i] = derived if derived is not None else (covered(i) if i < count - 1 else None)
        threshold = settings.moving_kph
        speeds = self.speeds
        self.moving: list[bool] = []
        moving = self.moving.append
        for i, dt in enumerate(self.intervals_s):
            before, after = speeds[i], speeds[i + 1]
            if before is None or after is None:
                known = before if after is None else after
                moving(known is not None and known >= threshold and (dt <= PAUSE_S or _at_least(covered(i), threshold)))
            elif dt <= PAUSE_S:
                moving(before + after >= 2 * threshold)
            else:
                moving(before >= threshold and after >= threshold and _at_least(covered(i), threshold))
        # each interval's weight in zone time: its length, capped at PAUSE_S unless moving
        self.weights_s = [dt if dt <= PAUSE_S or moving else PAUSE_S for dt, moving in zip(self.intervals_s, self.moving)]

    def column(self, key: str) -> Sequence[float | None]:
        return self.columns[key] if key in self.present else self._none

    def _covered_kph(self, interval: int) -> float | None:
        """The speed over one interval from the distance between its ends: positions, else dist_km."""
        dt = self.intervals_s[interval]
        if dt <= 0:
            return None
        lats, lngs = self._lats, self._lngs
        lat1, lng1, lat2, lng2 = lats[interval], lngs[interval], lats[interval + 1], lngs[interval + 1]
        if lat1 is not None and lng1 is not None and lat2 is not None and lng2 is not None:
            if self.distance_source == "positions":  # the haversine is already in the running total
                return (self.cumulative_m[interval + 1] - self.cumulative_m[interval]) / dt * 3.6
            return haversine_m(lat1, lng1, lat2, lng2) / dt * 3.6
        first, second = self._dist_km[interval], self._dist_km[interval + 1]
        if first is not None and second is not None and second >= first:  # a drop is a reset: unknown
            return (second - first) * 1000.0 / dt * 3.6
        return None

    def basics(self, first: int, last: int) -> dict[str, Any]:
        """The figures a lap has too, over samples first..last (inclusive)."""
        moving_s = sum(dt for dt, moving in zip(self.intervals_s[first:last], self.moving[first:last]) if moving)
        distance_m = self.cumulative_m[last] - self.cumulative_m[first] if self.distance_source else None
        altitudes = self.column("alt_m")[first:last + 1]
        has_altitude = "alt_m" in self.present and altitudes.count(None) < len(altitudes)
        gain, loss = elevation_change(altitudes) if has_altitude else (0.0, 0.0)
        return {
            "samples": last - first + 1,
            "elapsed_s": (self.times[last] - self.times[first]) * _NS,
            "moving_s": moving_s,
            "distance_m": distance_m,
            "distance_source": self.distance_source,
            "elev_gain_m": gain if has_altitude else None,
            "elev_loss_m": loss if has_altitude else None,
            "speed_avg_kph": distance_m / moving_s * 3.6 if distance_m is not None and moving_s > 0 else None,
        }

    def average(self, key: str, first: int, last: int, zeros: bool) -> float | None:
        if key not in self.present:
            return None
        values = [v for v in self.column(key)[first:last + 1] if v is not None and (zeros or v != 0)]
        return sum(values) / len(values) if values else None

    def zone_seconds(self, key: str, bounds: Sequence[float] | None) -> list[float] | None:
        """Seconds per zone (zone k holds values <= bounds[k], the last one above every bound)."""
        if bounds is None or key not in self.present:
            return None
        values = self.column(key)
        zones = [0.0] * (len(bounds) + 1)
        for value, weight in zip(values, self.weights_s):
            if value is not None:
                zones[bisect_left(bounds, value)] += weight
        return zones

    def bbox(self) -> list[list[float]] | None:
        lats, lngs = self._lats, self._lngs
        present_lats = [lat for lat, lng in zip(lats, lngs) if lat is not None and lng is not None]
        if not present_lats:
            return None
        present_lngs = [lng for lat, lng in zip(lats, lngs) if lat is not None and lng is not None]
        south, north, west, east = min(present_lats), max(present_lats), min(present_lngs), max(present_lngs)
        return [[south, west], [north, east]]


def haversine_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in metres on the mean Earth sphere."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((phi2 - phi1) / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(math.radians(lng2 - lng1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(a, 1.0)))


def _cumulative_positions(lats: Sequence[float | None], lngs: Sequence[float | None]) -> list[float] | None:
    """Metres along the track at each sample (haversine over consecutive samples with positions; a sample
    without one keeps the total so far); None under two positions."""
    cumulative: list[float] = []
    total = 0.0
    positioned = 0
    # the haversine inlined, each sample's radians and cosine computed once: this loop is most of the time
    to_radians = math.pi / 180
    sin, cos, asin, sqrt = math.sin, math.cos, math.asin, math.sqrt
    previous_phi = previous_lam = previous_cos = 0.0
    for lat, lng in zip(lats, lngs):
        if lat is not None and lng is not None:
            phi, lam = lat * to_radians, lng * to_radians
            cos_phi = cos(phi)
            if positioned:
                a = sin((phi - previous_phi) / 2) ** 2 + previous_cos * cos_phi * sin((lam - previous_lam) / 2) ** 2
                total += 2 * EARTH_RADIUS_M * asin(sqrt(min(a, 1.0)))
            previous_phi, previous_lam, previous_cos = phi, lam, cos_phi
            positioned += 1
        cumulative.append(total)
    return cumulative if positioned >= 2 else None


def _cumulative_dist_km(values: Sequence[float | None]) -> list[float] | None:
    """Metres at each sample from dist_km's positive increments (a reset to 0 is a drop, not negative
    distance); None under two values."""
    cumulative: list[float] = []
    total = 0.0
    previous: float | None = None
    present = 0
    for value in values:
        if value is not None:
            if previous is not None and value > previous:
                total += (value - previous) * 1000.0
            previous = value
            present += 1
        cumulative.append(total)
    return cumulative if present >= 2 else None


def _at_least(value: float | None, threshold: float) -> bool:
    """True when unknown: the distance across an interval can only refute its ends' speeds."""
    return value is None or value >= threshold


def _max_running_median(values: Sequence[float | None], window: int) -> float | None:
    """The largest median of `window` consecutive present values (all of them when fewer)."""
    present = [v for v in values if v is not None]
    if len(present) <= window:
        return sorted(present)[(len(present) - 1) // 2] if present else None
    middle = window // 2
    best = -math.inf
    for i in range(len(present) - window + 1):
        chunk = present[i:i + window]
        # a median is at most its window's largest value: only a window whose largest beats the best needs sorting
        if max(chunk) > best:
            median = sorted(chunk)[middle]
            best = max(best, median)
    return best
