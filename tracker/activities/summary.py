"""An activity's summary and laps, computed from its samples: columns in, numbers out (no I/O).

The columns are the vocabulary's keys (tracker.vocabulary.FIELD_KEYS), each a list as long as `times`
(ns since the epoch, rising), None where a sample has no value for that key.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

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


def summarize(times: Sequence[int], columns: Columns, settings: ActivitySettings) -> dict[str, Any]:
    """The summary of one activity's samples (keys: SUMMARY_KEYS)."""
    raise NotImplementedError


def laps(times: Sequence[int], columns: Columns, every_m: float, settings: ActivitySettings) -> list[dict[str, Any]]:
    """Laps of `every_m` metres along the activity's distance, the last one shorter.

    Each lap: start_ns, end_ns, distance_m, elapsed_s, moving_s, speed_avg_kph, hr_avg_bpm,
    pwr_avg_w, cad_avg_rpm, elev_gain_m.
    """
    raise NotImplementedError
