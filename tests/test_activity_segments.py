"""Where a track's samples split into activities: gaps, the owner's cuts and joins (pure)."""

from __future__ import annotations

import random

from tracker.activities.segments import split_points

S = 1_000_000_000


def test_empty_and_single() -> None:
    assert split_points([], 10 * S) == []
    assert split_points([5], 10 * S) == [(0, 1)]


def test_a_pause_longer_than_the_gap_splits_and_one_of_exactly_the_gap_does_not() -> None:
    times = [0, 1 * S, 11 * S, 22 * S, 23 * S]
    # 1 -> 11 is exactly 10 s (kept together); 11 -> 22 is 11 s (split).
    assert split_points(times, 10 * S) == [(0, 3), (3, 5)]


def test_repeated_times_never_split() -> None:
    assert split_points([0, 0, 100 * S, 100 * S], 10 * S) == [(0, 2), (2, 4)]


def test_a_cut_splits_between_the_samples_around_it() -> None:
    times = [0, 1 * S, 2 * S, 3 * S]
    assert split_points(times, 10 * S, cuts=[2 * S]) == [(0, 2), (2, 4)]
    assert split_points(times, 10 * S, cuts=[1 * S + 1]) == [(0, 2), (2, 4)]
    # A cut at the first sample or after the last one splits nothing.
    assert split_points(times, 10 * S, cuts=[0, 9 * S]) == [(0, 4)]


def test_a_join_spans_a_pause_and_the_pauses_inside_it() -> None:
    times = [0, 100 * S, 150 * S, 300 * S]
    assert split_points(times, 10 * S) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert split_points(times, 10 * S, joins=[(0, 150 * S)]) == [(0, 3), (3, 4)]
    # A pause reaching outside the join still splits.
    assert split_points(times, 10 * S, joins=[(0, 120 * S)]) == [(0, 2), (2, 3), (3, 4)]


def test_against_a_plain_reading_of_the_rule() -> None:
    rng = random.Random(7)
    for _ in range(200):
        times = sorted(rng.randrange(0, 1000) for _ in range(rng.randrange(1, 40)))
        gap = rng.randrange(1, 60)
        cuts = [rng.randrange(0, 1000) for _ in range(rng.randrange(0, 3))]
        expected = []
        start = 0
        for i in range(1, len(times)):
            a, b = times[i - 1], times[i]
            if a != b and (b - a > gap or any(a < c <= b for c in cuts)):
                expected.append((start, i))
                start = i
        expected.append((start, len(times)))
        assert split_points(times, gap, cuts) == expected
