"""Counter increases with resets, histogram deltas, merging and quantiles, bucketing."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pharos.server.query.metric_math import (
    Hist,
    HistPoint,
    NumberPoint,
    combine,
    counter_increases,
    histogram_deltas,
    histogram_stats,
    last_by_bucket,
    merge_histograms,
    quantile,
    sum_by_bucket,
)

S = 1_000_000_000  # ns per second
T0 = 1_790_000_000  # seconds


def _p(t: int, v: float, start: int | None = T0 - 1000) -> NumberPoint:
    return NumberPoint(start * S if start is not None else None, t * S, v)


# --- counters ----------------------------------------------------------------------------------


def test_counter_increases_are_differences_after_a_baseline() -> None:
    points = [_p(T0, 100), _p(T0 + 10, 130), _p(T0 + 20, 130), _p(T0 + 30, 200)]
    assert counter_increases(points, since_ns=T0 * S) == [
        ((T0 + 10) * S, 30),
        ((T0 + 20) * S, 0),
        ((T0 + 30) * S, 70),
    ]


def test_a_drop_is_a_reset_counted_from_zero() -> None:
    points = [_p(T0, 100), _p(T0 + 10, 150), _p(T0 + 20, 5), _p(T0 + 30, 25)]
    incs = [v for _, v in counter_increases(points, since_ns=T0 * S)]
    assert incs == [50, 5, 20]  # 150 -> 5: the process restarted and counted 5 since


def test_a_new_start_time_is_a_reset_even_without_a_drop() -> None:
    points = [_p(T0, 100), _p(T0 + 10, 150), _p(T0 + 20, 170, start=T0 + 15)]
    incs = [v for _, v in counter_increases(points, since_ns=T0 * S)]
    assert incs == [50, 170]  # restarted at T0+15 and counted 170 since (not 20)


def test_a_series_that_starts_inside_the_range_counts_its_first_value() -> None:
    points = [_p(T0 + 5, 7, start=T0 + 1), _p(T0 + 15, 10, start=T0 + 1)]
    assert [v for _, v in counter_increases(points, since_ns=T0 * S)] == [7, 3]
    # ...but one that started before is only a baseline at first.
    assert [v for _, v in counter_increases(points, since_ns=(T0 + 2) * S)] == [3]


def test_no_start_time_first_point_is_a_baseline() -> None:
    points = [_p(T0, 10, start=None), _p(T0 + 10, 12, start=None)]
    assert [v for _, v in counter_increases(points, since_ns=0)] == [2]


def test_rate_per_bucket_from_increases() -> None:
    # 60 s buckets; points every 15 s adding 30 each; a reset in the second minute.
    values = [0, 30, 60, 90, 120, 150, 10, 40, 70]
    points = [_p(T0 + 15 * i, v) for i, v in enumerate(values)]
    incs = counter_increases(points, since_ns=T0 * S)
    per_bucket = sum_by_bucket(incs, T0, T0 + 180, 60)
    assert per_bucket == [90, 30 + 30 + 10 + 30, 30]  # 150 -> 10 was a reset
    rates = [v / 60 if v is not None else None for v in per_bucket]
    assert rates[0] == pytest.approx(1.5)


@given(
    st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=40),
    st.integers(min_value=0, max_value=39),
)
def test_total_increase_without_resets_is_last_minus_first(steps: list[int], _: int) -> None:
    values, total = [], 0
    for s in steps:
        total += s
        values.append(total)
    points = [_p(T0 + i, float(v)) for i, v in enumerate(values)]
    incs = counter_increases(points, since_ns=T0 * S)
    assert math.isclose(sum(v for _, v in incs), values[-1] - values[0])
    assert all(v >= 0 for _, v in incs)


@given(st.lists(st.floats(min_value=0, max_value=1e9), min_size=1, max_size=40))
def test_increases_are_never_negative(values: list[float]) -> None:
    points = [_p(T0 + i, v) for i, v in enumerate(values)]
    assert all(v >= 0 for _, v in counter_increases(points, since_ns=0))


# --- histograms --------------------------------------------------------------------------------


def test_quantiles_interpolate_inside_the_bucket() -> None:
    # 100 observations: 50 in (0, 10], 40 in (10, 20], 10 in (20, 50].
    h = Hist((0.0, 10.0, 20.0, 50.0), [0, 50, 40, 10, 0], 100)
    assert quantile(h, 0.5) == pytest.approx(10.0)
    assert quantile(h, 0.25) == pytest.approx(5.0)
    assert quantile(h, 0.7) == pytest.approx(15.0)  # 20 of 40 into (10, 20]
    assert quantile(h, 0.95) == pytest.approx(35.0)  # 5 of 10 into (20, 50]
    assert quantile(h, 0.99) == pytest.approx(47.0)


def test_first_bucket_starts_at_min_and_last_ends_at_max() -> None:
    h = Hist((10.0,), [4, 4], 8, sum=80.0, min=2.0, max=30.0)
    assert quantile(h, 0.25) == pytest.approx(6.0)  # halfway through (2, 10]
    assert quantile(h, 0.75) == pytest.approx(20.0)  # halfway through (10, 30]
    unknown = Hist((10.0,), [0, 4], 4)
    assert quantile(unknown, 0.5) == pytest.approx(10.0)  # +inf bucket: its lower bound


def test_quantiles_are_clamped_to_min_max() -> None:
    h = Hist((100.0,), [10, 0], 10, min=90.0, max=95.0)
    assert quantile(h, 0.01) == pytest.approx(90.1)  # from min, not from 0
    assert quantile(h, 0.99) == pytest.approx(95.0)  # 99.9 clamped to max


def test_histogram_without_buckets_has_count_sum_avg_only() -> None:
    stats = histogram_stats(Hist((), [], 4, sum=10.0))
    assert stats == {"count": 4, "sum": 10.0, "avg": 2.5, "p50": None, "p95": None, "p99": None}
    assert histogram_stats(None)["count"] == 0


def _hp(t: int, counts: list[int], total: float, start: int = T0 - 100) -> HistPoint:
    return HistPoint(
        start * S, t * S, Hist((10.0, 20.0), counts, sum(counts), sum=total, min=1.0, max=25.0)
    )


def test_cumulative_histograms_are_differenced_and_resets_taken_whole() -> None:
    points = [
        _hp(T0, [1, 1, 0], 16.0),
        _hp(T0 + 10, [3, 2, 1], 60.0),
        _hp(T0 + 20, [1, 0, 0], 4.0),  # count dropped: a reset
    ]
    deltas = histogram_deltas(points, since_ns=T0 * S, cumulative=True)
    assert [(t // S, list(h.counts), h.count, h.sum) for t, h in deltas] == [
        (T0 + 10, [2, 1, 1], 4, 44.0),
        (T0 + 20, [1, 0, 0], 1, 4.0),
    ]
    assert deltas[0][1].min is None  # unknown for a difference
    assert deltas[1][1].min == 1.0  # a reset point is taken whole


def test_delta_histograms_are_taken_as_they_are() -> None:
    points = [_hp(T0, [1, 1, 0], 16.0), _hp(T0 + 10, [1, 0, 0], 4.0)]
    deltas = histogram_deltas(points, since_ns=0, cumulative=False)
    assert [h.count for _, h in deltas] == [2, 1]


def test_merge_same_bounds_adds_counts() -> None:
    a = Hist((10.0, 20.0), [1, 2, 3], 6, sum=60.0, min=1.0, max=30.0)
    b = Hist((10.0, 20.0), [4, 0, 1], 5, sum=40.0, min=0.5, max=22.0)
    m = merge_histograms([a, b])
    assert m is not None
    assert list(m.counts) == [5, 2, 4] and m.count == 11 and m.sum == 100.0
    assert (m.min, m.max) == (0.5, 30.0)


def test_merge_different_bounds_spreads_counts_over_the_union() -> None:
    a = Hist((0.0, 10.0), [0, 10, 0], 10)  # 10 in (0, 10]
    b = Hist((0.0, 5.0, 10.0), [0, 0, 10, 0], 10)  # 10 in (5, 10]
    m = merge_histograms([a, b])
    assert m is not None and m.bounds == (0.0, 5.0, 10.0)
    assert list(m.counts) == [0, 5, 15, 0]
    assert quantile(m, 0.25) == pytest.approx(5.0)


def test_merge_nothing_is_none() -> None:
    assert merge_histograms([]) is None
    assert merge_histograms([Hist((1.0,), [0, 0], 0)]) is None


@given(
    st.lists(st.integers(min_value=0, max_value=1000), min_size=2, max_size=12),
    st.floats(min_value=0.0, max_value=1.0),
    st.floats(min_value=0.0, max_value=1.0),
)
def test_quantile_is_monotone_and_inside_the_bounds(
    counts: list[int], q1: float, q2: float
) -> None:
    bounds = tuple(float(10 * (i + 1)) for i in range(len(counts) - 1))
    h = Hist(bounds, counts, sum(counts))
    a, b = quantile(h, min(q1, q2)), quantile(h, max(q1, q2))
    if sum(counts) == 0:
        assert a is None and b is None
        return
    assert a is not None and b is not None
    assert a <= b + 1e-9
    assert a >= 0.0 and b <= bounds[-1]


# --- buckets -----------------------------------------------------------------------------------


def test_last_value_per_bucket_and_gaps() -> None:
    values = [(T0 * S, 1.0), ((T0 + 30) * S, 2.0), ((T0 + 130) * S, 5.0)]
    assert last_by_bucket(values, T0, T0 + 180, 60) == [2.0, None, 5.0]


def test_points_outside_the_range_are_ignored() -> None:
    values = [((T0 - 1) * S, 1.0), ((T0 + 180) * S, 2.0)]
    assert sum_by_bucket(values, T0, T0 + 180, 60) == [None, None, None]


def test_combine_series() -> None:
    cols = [[1.0, None, 3.0], [3.0, None, None]]
    assert combine(cols, "sum") == [4.0, None, 3.0]
    assert combine(cols, "avg") == [2.0, None, 3.0]
    assert combine(cols, "min") == [1.0, None, 3.0]
    assert combine(cols, "max") == [3.0, None, 3.0]
