"""Activity summaries and laps against values computed by hand or by an independent formula in the test."""

from __future__ import annotations

import math
import random
import time
from itertools import pairwise

import pytest

from tracker.activities.settings import ActivitySettings
from tracker.activities.summary import LAP_KEYS, SUMMARY_KEYS, laps, summarize

S = 1_000_000_000
T0 = 1_764_900_000 * S
DEFAULT = ActivitySettings()


def at(seconds: list[float]) -> list[int]:
    return [T0 + round(s * S) for s in seconds]


def meridian_arc_m(degrees: float) -> float:
    """Length of an arc along a meridian: the radius times the angle (no haversine involved)."""
    return 6371008.8 * degrees * math.pi / 180


def law_of_cosines_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """The great-circle distance by the spherical law of cosines, a different formula from the code's."""
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lng2 - lng1)
    return 6371008.8 * math.acos(min(1.0, math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl)))


def test_every_key_is_present_and_an_empty_activity_says_nothing() -> None:
    empty = summarize([], {}, DEFAULT)
    assert tuple(empty) == SUMMARY_KEYS
    assert empty["samples"] == 0 and all(empty[k] is None for k in SUMMARY_KEYS if k != "samples")
    one = summarize(at([0]), {"hr_bpm": [120.0]}, DEFAULT)
    assert one["samples"] == 1 and one["elapsed_s"] == 0 and one["moving_s"] == 0
    assert one["hr_avg_bpm"] == 120 and one["distance_m"] is None and one["distance_source"] is None
    assert one["np_w"] is None and one["bbox"] is None and one["speed_avg_kph"] is None


def test_a_straight_line_north_from_positions() -> None:
    # 101 samples a second apart, 0.00005 degrees north each: 0.005 degrees in 100 s
    times = at(list(range(101)))
    lats = [i * 0.00005 for i in range(101)]
    summary = summarize(times, {"lat": lats, "lng": [0.0] * 101}, DEFAULT)
    expected_m = meridian_arc_m(0.005)  # 555.97 m
    assert summary["distance_source"] == "positions"
    assert summary["distance_m"] == pytest.approx(expected_m, rel=1e-9)
    assert summary["elapsed_s"] == 100 and summary["moving_s"] == 100
    assert summary["speed_avg_kph"] == pytest.approx(expected_m / 100 * 3.6, rel=1e-9)
    assert summary["speed_max_kph"] == pytest.approx(expected_m / 100 * 3.6, rel=1e-6)
    assert summary["bbox"] == [[0.0, 0.0], [pytest.approx(0.005), 0.0]]


def test_positions_skip_samples_without_them_and_agree_with_the_law_of_cosines() -> None:
    points = [(45.0, 7.0), (45.01, 7.02), None, (45.03, 7.01), (44.99, 6.98)]
    lats = [p[0] if p else None for p in points]
    lngs = [p[1] if p else None for p in points]
    summary = summarize(at([0, 60, 120, 180, 240]), {"lat": lats, "lng": lngs}, DEFAULT)
    present = [p for p in points if p]
    expected = sum(law_of_cosines_m(*a, *b) for a, b in pairwise(present))
    assert summary["distance_m"] == pytest.approx(expected, rel=1e-7)
    assert summary["bbox"] == [[44.99, 6.98], [45.03, 7.02]]


def test_dist_km_wins_over_positions_and_a_reset_to_zero_is_ignored() -> None:
    dist = [0.0, 1.0, 2.0, 3.0, 0.0, 0.5, 1.5]  # the device restarted its counter after 3 km
    lats = [i * 0.1 for i in range(7)]  # positions saying something else entirely
    summary = summarize(at([i * 60 for i in range(7)]), {"dist_km": dist, "lat": lats, "lng": [0.0] * 7}, DEFAULT)
    assert summary["distance_source"] == "dist_km"
    assert summary["distance_m"] == pytest.approx(4500.0)  # 1 + 1 + 1 + 0.5 + 1 km


def test_a_stop_without_samples_is_not_moving_but_a_sparse_ride_is() -> None:
    # 60 s riding at 20 km/h, 300 s with no samples, 60 s riding again
    seconds = list(range(61)) + list(range(360, 421))
    speed = [20.0] * len(seconds)
    metres_per_s = 20 / 3.6
    # the rider stood still through the silence: the position after it is where it was before
    north = [s * metres_per_s if s <= 60 else (60 + s - 360) * metres_per_s for s in seconds]
    lats = [m / meridian_arc_m(1.0) for m in north]
    stopped = summarize(at(seconds), {"spd_kph": speed, "lat": lats, "lng": [0.0] * len(seconds)}, DEFAULT)
    assert stopped["elapsed_s"] == 420
    assert stopped["moving_s"] == pytest.approx(120)
    # the same speeds without positions: both ends of the silence say moving, so it counts
    sparse = summarize(at(seconds), {"spd_kph": speed}, DEFAULT)
    assert sparse["moving_s"] == pytest.approx(420)
    # a phone sending every 60 s while riding steadily: every interval moving
    steady = [i * 60 for i in range(11)]
    lats = [s * metres_per_s / meridian_arc_m(1.0) for s in steady]
    ride = summarize(at(steady), {"lat": lats, "lng": [0.0] * 11}, DEFAULT)
    assert ride["moving_s"] == pytest.approx(600)
    assert ride["speed_avg_kph"] == pytest.approx(20, rel=1e-6)


def test_moving_time_follows_the_threshold_at_both_ends_of_each_interval() -> None:
    # 1 Hz: 10 s at 0, 10 s at 12 km/h, 10 s at 0.5 km/h (walking the bike under the 1 km/h threshold)
    speed = [0.0] * 10 + [12.0] * 10 + [0.5] * 11
    summary = summarize(at(list(range(31))), {"spd_kph": speed}, DEFAULT)
    # intervals 9-10 (0 -> 12, mean 6) and 19-20 (12 -> 0.5, mean 6.25) count; 10..19 count: 11 s
    assert summary["moving_s"] == pytest.approx(11)
    assert summary["speed_max_kph"] == 12
    slow = summarize(at(list(range(31))), {"spd_kph": speed}, ActivitySettings(moving_kph=0.4))
    assert slow["moving_s"] == pytest.approx(21)


def test_elevation_noise_on_a_flat_road_is_not_climbing() -> None:
    rng = random.Random(7)
    altitude = [300 + rng.uniform(-2, 2) for _ in range(2000)]
    summary = summarize(at(list(range(2000))), {"alt_m": altitude}, DEFAULT)
    assert summary["elev_gain_m"] == 0 and summary["elev_loss_m"] == 0


def test_a_clean_climb_and_descent_count_in_full() -> None:
    up = [100 + i * 0.5 for i in range(201)]  # 100 -> 200 m
    down = [200 - i * 0.5 for i in range(1, 121)]  # 200 -> 140 m
    summary = summarize(at(list(range(321))), {"alt_m": up + down}, DEFAULT)
    assert summary["elev_gain_m"] == pytest.approx(100)
    assert summary["elev_loss_m"] == pytest.approx(60)


def test_a_noisy_climb_counts_about_its_height() -> None:
    rng = random.Random(3)
    altitude = [50 + i * 0.1 + rng.uniform(-2, 2) for i in range(1001)]  # 100 m over 1000 samples
    summary = summarize(at(list(range(1001))), {"alt_m": altitude}, DEFAULT)
    assert 95 <= summary["elev_gain_m"] <= 105
    assert summary["elev_loss_m"] <= 5


def test_a_dip_before_the_climb_starts_counts_from_its_bottom() -> None:
    altitude = [10.0, 8.0, 6.0, 7.0, 20.0, 30.0]  # 4 m down (under the threshold), then 24 m up
    summary = summarize(at(list(range(6))), {"alt_m": altitude}, DEFAULT)
    assert summary["elev_gain_m"] == pytest.approx(24)
    assert summary["elev_loss_m"] == 0


def test_one_speed_spike_is_not_the_maximum() -> None:
    speed = [20.0] * 30
    speed[12] = 200.0
    assert summarize(at(list(range(30))), {"spd_kph": speed}, DEFAULT)["speed_max_kph"] == 20
    # a GPS jump: one position 1 km off a line ridden at 5 m/s makes two derived speeds huge
    lats = [i * 5 / meridian_arc_m(1.0) for i in range(30)]
    lngs = [0.0] * 30
    lngs[15] = 0.01
    summary = summarize(at(list(range(30))), {"lat": lats, "lng": lngs}, DEFAULT)
    assert summary["speed_max_kph"] == pytest.approx(18, rel=1e-6)


def test_heart_rate_power_cadence_and_temperature_averages() -> None:
    hr = [100.0, 120.0, None, 140.0, 160.0]
    power = [0.0, 200.0, 300.0, None, 0.0]
    cadence = [0.0, 80.0, 90.0, 0.0, None]
    temp = [20.0, None, 22.0, None, 24.0]
    summary = summarize(at(list(range(5))), {"hr_bpm": hr, "pwr_w": power, "cad_rpm": cadence, "temp_c": temp}, DEFAULT)
    assert summary["hr_avg_bpm"] == pytest.approx(130) and summary["hr_max_bpm"] == 160
    assert summary["pwr_avg_w"] == pytest.approx(125) and summary["pwr_max_w"] == 300  # zeros count
    assert summary["cad_avg_rpm"] == pytest.approx(85) and summary["cad_max_rpm"] == 90  # zeros do not
    assert summary["temp_avg_c"] == pytest.approx(22)


def np_by_hand(one_hz: list[float]) -> float:
    rolling = [sum(one_hz[i - 29:i + 1]) / 30 for i in range(29, len(one_hz))]
    return (sum(r ** 4 for r in rolling) / len(rolling)) ** 0.25


def test_normalized_power_of_steady_and_changing_efforts() -> None:
    steady = summarize(at(list(range(120))), {"pwr_w": [200.0] * 120}, DEFAULT)
    assert steady["np_w"] == pytest.approx(200)
    efforts = [100.0] * 60 + [300.0] * 60 + [0.0] * 20 + [250.0] * 45
    summary = summarize(at(list(range(len(efforts)))), {"pwr_w": efforts}, DEFAULT)
    assert summary["np_w"] == pytest.approx(np_by_hand(efforts), rel=1e-9)
    assert summary["np_w"] > summary["pwr_avg_w"]
    # samples every 2 s: each value holds for two seconds of the 1 s grid
    two_s = [150.0, 250.0, 350.0, 120.0] * 15
    summary = summarize(at([2 * i for i in range(len(two_s))]), {"pwr_w": two_s}, DEFAULT)
    held = [w for w in two_s for _ in range(2)][:-1]  # the grid ends on the last sample's second
    assert summary["np_w"] == pytest.approx(np_by_hand(held), rel=1e-9)


def test_normalized_power_leaves_pauses_out_and_needs_30_seconds() -> None:
    assert summarize(at(list(range(29))), {"pwr_w": [200.0] * 29}, DEFAULT)["np_w"] is None
    # 40 s at 100 W, 10 minutes without samples, 40 s at 300 W: the silence is not 10 minutes of 300 W
    seconds = list(range(40)) + list(range(640, 680))
    power = [100.0] * 40 + [300.0] * 40
    summary = summarize(at(seconds), {"pwr_w": power}, DEFAULT)
    # the last 100 W holds for PAUSE_S (10 s) into the silence, then the grid resumes at 640 s
    assert summary["np_w"] == pytest.approx(np_by_hand([100.0] * 50 + [300.0] * 40), rel=1e-9)


def test_time_in_heart_rate_zones_counted_by_hand() -> None:
    hr = [110.0] * 10 + [130.0] * 10 + [150.0] * 10 + [170.0] * 11
    settings = ActivitySettings(hr_zones_bpm=(120.0, 140.0, 160.0))
    summary = summarize(at(list(range(41))), {"hr_bpm": hr}, settings)
    assert summary["hr_zones_s"] == [10, 10, 10, 10]  # the last sample has no interval after it
    assert summary["pwr_zones_s"] is None  # no power bounds
    # a value on a bound is in the zone below it
    on_bounds = summarize(at([0, 1, 2, 3]), {"hr_bpm": [120.0, 140.0, 160.0, 161.0]}, settings)
    assert on_bounds["hr_zones_s"] == [1, 1, 1, 0]
    assert summarize(at([0, 1]), {"pwr_w": [100.0, 100.0]}, settings)["hr_zones_s"] is None  # no heart rate


def test_time_in_power_zones_from_ftp_with_a_stop_capped() -> None:
    # FTP 200 W: Coggan's bounds 110, 150, 180, 210, 240, 300
    settings = ActivitySettings(ftp_w=200.0)
    seconds = [0, 1, 2, 3, 4, 100, 101, 102]
    power = [100.0, 160.0, 220.0, 400.0, 0.0, 200.0, 250.0, 250.0]
    speed = [25.0, 25.0, 25.0, 25.0, 0.0, 0.0, 25.0, 25.0]
    summary = summarize(at(seconds), {"pwr_w": power, "spd_kph": speed}, settings)
    # zones by value: 100 and 0 -> 1, 160 -> 3, 200 -> 4, 220 -> 5, 250 -> 6, 400 -> 7; the 96 s stop
    # (4 -> 100) is not moving, so the 0 W before it weighs PAUSE_S = 10 s; the last 250 weighs nothing
    assert summary["pwr_zones_s"] == [1 + 10, 0, 1, 1, 1, 1, 1]
    # moving: 0-1, 1-2, 2-3 (25 at both ends), 3-4 and 100-101 (means 12.5), 101-102; not 4-100
    assert summary["moving_s"] == pytest.approx(6)


def test_laps_every_kilometre_from_dist_km() -> None:
    # 15.625 m a second (exact in binary), 161 samples: 160 s, 2500 m
    count = 161
    dist = [i * 15.625 / 1000 for i in range(count)]
    hr = [100.0 + (i // 64) * 20 for i in range(count)]  # 100 in the first 64 s, 120, then 140
    result = laps(at(list(range(count))), {"dist_km": dist, "hr_bpm": hr, "alt_m": [0.0] * count}, 1000, DEFAULT)
    assert [tuple(lap) for lap in result] == [LAP_KEYS] * 3
    assert [lap["distance_m"] for lap in result] == [1000, 1000, 500]
    assert [lap["start_ns"] for lap in result] == at([0, 64, 128])
    assert [lap["end_ns"] for lap in result] == at([64, 128, 160])
    assert [lap["elapsed_s"] for lap in result] == [64, 64, 32]
    assert [lap["speed_avg_kph"] for lap in result] == [pytest.approx(56.25)] * 3
    # lap 1 holds samples 0..64: 64 at 100 and sample 64 at 120
    assert result[0]["hr_avg_bpm"] == pytest.approx((64 * 100 + 120) / 65)
    assert [lap["lap"] for lap in result] == [1, 2, 3]
    assert [lap["elev_gain_m"] for lap in result] == [0, 0, 0]


def test_laps_from_positions_end_on_the_sample_past_the_boundary() -> None:
    # 7 m a second north for 300 s: 2100 m; laps of 500 m end on the first sample at or past it
    lats = [i * 7 / meridian_arc_m(1.0) for i in range(301)]
    result = laps(at(list(range(301))), {"lat": lats, "lng": [0.0] * 301}, 500, DEFAULT)
    # 500 / 7 = 71.4: samples 72 (504 m), 143 (1001 m), 215 (1505 m), 286 (2002 m), then the rest
    assert [lap["end_ns"] for lap in result] == at([72, 143, 215, 286, 300])
    assert [round(lap["distance_m"]) for lap in result] == [504, 497, 504, 497, 98]
    assert sum(lap["distance_m"] for lap in result) == pytest.approx(2100, rel=1e-6)


def test_a_jump_over_several_boundaries_is_one_lap_not_empty_ones() -> None:
    # 0.4 km, then the distance jumps to 2.6 km (a tunnel without signal), then 0.6 km more
    dist = [0.0, 0.4, 2.6, 3.1, 3.2]
    result = laps(at([0, 60, 300, 360, 400]), {"dist_km": dist}, 1000, DEFAULT)
    assert [lap["end_ns"] for lap in result] == at([300, 360, 400])
    assert [lap["distance_m"] for lap in result] == [pytest.approx(2600), pytest.approx(500), pytest.approx(100)]


def test_columns_must_match_the_times() -> None:
    with pytest.raises(ValueError, match="column hr_bpm has 2 values for 3 times"):
        summarize(at([0, 1, 2]), {"hr_bpm": [1.0, 2.0]}, DEFAULT)


def test_laps_without_distance_or_with_a_bad_length() -> None:
    assert laps(at([0, 1, 2]), {"hr_bpm": [1.0, 2.0, 3.0]}, 1000, DEFAULT) == []
    assert laps([], {}, 1000, DEFAULT) == []
    one = laps(at([0, 60]), {"dist_km": [0.0, 0.3]}, 1000, DEFAULT)
    assert len(one) == 1 and one[0]["distance_m"] == pytest.approx(300)
    for bad in (0, -5, math.nan, math.inf):
        with pytest.raises(ValueError, match="every_m"):
            laps(at([0, 1]), {"dist_km": [0.0, 1.0]}, bad, DEFAULT)


def test_twelve_hours_at_one_hertz_is_fast() -> None:
    count = 43_200
    rng = random.Random(1)
    columns = {
        "lat": [45 + i * 0.00005 for i in range(count)], "lng": [7 + i * 0.00001 for i in range(count)],
        "alt_m": [200 + 50 * math.sin(i / 600) + rng.uniform(-2, 2) for i in range(count)],
        "hr_bpm": [140 + rng.uniform(-20, 20) for _ in range(count)],
        "pwr_w": [200 + rng.uniform(-100, 100) for _ in range(count)],
        "cad_rpm": [85 + rng.uniform(-5, 5) for _ in range(count)], "temp_c": [20.0] * count,
    }
    times = at(list(range(count)))
    settings = ActivitySettings(hr_max_bpm=190, ftp_w=250)
    best = math.inf
    for _ in range(3):
        started = time.perf_counter()
        summary = summarize(times, columns, settings)
        best = min(best, time.perf_counter() - started)
    assert summary["samples"] == count and summary["elapsed_s"] == count - 1
    assert sum(summary["hr_zones_s"]) == pytest.approx(count - 1)
    # well under 100 ms on a quiet machine; the bound leaves room for a busy test run
    assert best < 0.5
