"""The summary fold: any split of the samples into chunks, with the state serialised to JSON between
them, gives what one fold gives and what the former from-scratch computation gave (the reference)."""

from __future__ import annotations

import json
import math
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests import activity_summary_reference as reference
from tracker.activities.settings import ActivitySettings
from tracker.activities.summary import SUMMARY_KEYS, SummaryFold, laps, summarize

S = 1_000_000_000
T0 = 1_764_900_000 * S
STEPS_S = (1.0, 1.0, 1.0, 1.0, 2.0, 0.5, 3.0, 12.0, 45.0, 400.0)


@st.composite
def activities(draw: st.DrawFn) -> tuple[list[int], dict[str, list[float | None]], ActivitySettings]:
    count = draw(st.integers(0, 90))
    rng = draw(st.randoms(use_true_random=False))
    keys = [key for key in ("spd_kph", "lat", "dist_km", "alt_m", "hr_bpm", "pwr_w", "cad_rpm", "temp_c") if draw(st.booleans())]
    missing = draw(st.sampled_from((0.0, 0.1, 0.4)))
    times: list[int] = []
    columns: dict[str, list[float | None]] = {key: [] for key in keys}
    if "lat" in keys:
        columns["lng"] = []
    t, lat, lng, dist, alt = T0, 45.0, 7.0, 0.0, 500.0
    for _ in range(count):
        t += round(rng.choice(STEPS_S) * S)
        stopped = rng.random() < 0.2
        step = 0.0 if stopped else rng.uniform(0, 12)  # metres this interval
        lat += step / 111_000 * rng.choice((1, -1, 0.5))
        lng += step / 78_000 * rng.choice((1, -1, 0.3))
        dist = 0.0 if rng.random() < 0.03 else dist + step / 1000  # a device reset now and then
        alt += rng.uniform(-4, 4)
        times.append(t)
        values = {
            "spd_kph": rng.uniform(0, 40), "lat": lat, "lng": lng, "dist_km": dist, "alt_m": alt,
            "hr_bpm": rng.uniform(60, 190), "pwr_w": rng.choice((0.0, rng.uniform(0, 600))),
            "cad_rpm": rng.choice((0.0, rng.uniform(40, 110))), "temp_c": rng.uniform(-5, 35),
        }
        gone = rng.random() < missing
        for key in keys:
            columns[key].append(None if gone or rng.random() < missing else values[key])
        if "lat" in keys:
            columns["lng"].append(None if columns["lat"][-1] is None else lng)
    settings = ActivitySettings(
        moving_kph=draw(st.sampled_from((1.0, 3.0, 8.0))),
        hr_max_bpm=draw(st.sampled_from((None, 190.0))),
        ftp_w=draw(st.sampled_from((None, 250.0))),
    )
    return times, columns, settings


def close(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    return a == b


def chunked(times: list[int], columns: dict[str, list[float | None]], cuts: list[int], settings: ActivitySettings, lap_m: float) -> SummaryFold:
    """Fold in chunks, each time through the JSON state, as the cache does."""
    fold = SummaryFold(settings, lap_m=lap_m)
    bounds = [0, *sorted({cut % (len(times) + 1) for cut in cuts}), len(times)]
    for low, high in pairwise(bounds):
        fold = SummaryFold.restore(json.loads(json.dumps(fold.state())), settings)
        fold.add(times[low:high], {key: values[low:high] for key, values in columns.items()})
        assert fold.samples == high and fold.last_ns == (times[high - 1] if high else None)
        # the answers at any point are the answers for the samples so far
        assert close(fold.summary(), reference.summarize(times[:high], {k: v[:high] for k, v in columns.items()}, settings))
    return fold


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(activities(), st.lists(st.integers(0, 10_000), max_size=6), st.sampled_from((50.0, 200.0, 1000.0)))
def test_chunks_one_fold_and_the_reference_agree(activity: Any, cuts: list[int], lap_m: float) -> None:
    times, columns, settings = activity
    expected = reference.summarize(times, columns, settings)
    expected_laps = reference.laps(times, columns, lap_m, settings)
    assert close(summarize(times, columns, settings), expected)
    assert close(laps(times, columns, lap_m, settings), expected_laps)
    fold = chunked(times, columns, cuts, settings, lap_m)
    assert close(fold.summary(), expected)
    assert close(fold.laps(), expected_laps)


def test_the_state_stays_small_on_a_long_ride() -> None:
    """12 hours at 1 Hz: the state holds running totals and a few recent values, plus one record a lap."""
    count = 43_200
    times = [T0 + i * S for i in range(count)]
    columns: dict[str, list[float | None]] = {
        "lat": [45 + i * 5e-5 for i in range(count)], "lng": [7.0] * count, "alt_m": [500 + 30 * math.sin(i / 600) for i in range(count)],
        "hr_bpm": [140.0] * count, "pwr_w": [200.0 + i % 7 for i in range(count)],
    }
    fold = SummaryFold(ActivitySettings(ftp_w=250, hr_max_bpm=190))
    fold.add(times, columns)
    laps_kept = len(fold.laps())
    state = json.dumps(fold.state())
    assert laps_kept == pytest.approx(count * 5e-5 * 111.2, rel=0.01)  # ~240 km in 1 km laps
    assert len(state) < 2_000 + 400 * laps_kept
    assert tuple(fold.summary()) == SUMMARY_KEYS


def test_samples_must_come_after_the_folded_ones() -> None:
    fold = SummaryFold(ActivitySettings())
    fold.add([T0, T0 + S], {"hr_bpm": [100.0, 110.0]})
    with pytest.raises(ValueError, match="after the ones folded"):
        fold.add([T0 + S], {"hr_bpm": [120.0]})
