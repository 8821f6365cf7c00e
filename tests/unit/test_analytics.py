"""Pure analytics: histogram accuracy, rollup blocks, trends, health scoring."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pharos.server.analytics import histogram as hist
from pharos.server.analytics.health import HealthThresholds, health, linear_score
from pharos.server.analytics.rollups import RESOLUTIONS, coarsen, cover, rollup_deltas
from pharos.server.analytics.summary import auto_interval, trend
from pharos.server.ingest.normalize import Limits, normalize_traces
from tests.otlp_helpers import request, span

latencies = st.lists(
    st.floats(min_value=0.01, max_value=3_600_000, allow_nan=False), min_size=1, max_size=400
)


def exact_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


@settings(max_examples=300, deadline=None)
@given(values=latencies, q=st.sampled_from([0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0]))
def test_quantiles_within_one_percent_of_exact(values: list[float], q: float) -> None:
    estimate = hist.quantile(hist.from_values(values), q, max_ms=max(values))
    exact = exact_rank(values, q)
    assert estimate is not None
    assert abs(estimate - exact) <= 0.01 * exact + 1e-9


@settings(max_examples=200, deadline=None)
@given(values=latencies, cut=st.integers(min_value=0, max_value=400))
def test_merged_histograms_equal_the_whole(values: list[float], cut: int) -> None:
    a, b = values[:cut], values[cut:]
    merged = hist.merge(hist.from_values(a), hist.from_values(b))
    assert merged == hist.from_values(values)
    assert hist.loads(hist.dumps(merged)) == merged


def test_histogram_edges() -> None:
    assert hist.quantile({}, 0.5) is None
    assert hist.bucket_of(0) == 0 and hist.bucket_of(-3) == 0 and hist.bucket_of(math.nan) == 0
    assert hist.quantile(Counter({0: 5}), 0.99) == 0.0
    # The representative of a bucket is within 1 % of both its edges.
    for b in (1, 50, 500, 1200):
        lo = hist.MIN_MS * hist.GAMMA ** (b - 1)
        hi = hist.MIN_MS * hist.GAMMA**b
        rep = hist.value_of(b)
        assert abs(rep - lo) / lo <= 0.01 + 1e-12 and abs(rep - hi) / hi <= 0.01 + 1e-12


minutes = st.integers(min_value=0, max_value=200 * 24 * 60).map(lambda m: m * 60)


@settings(max_examples=300, deadline=None)
@given(a=minutes, b=minutes)
def test_cover_tiles_the_range_with_aligned_blocks(a: int, b: int) -> None:
    start, end = min(a, b), max(a, b)
    blocks = cover(start, end)
    position = start
    for name, lo, hi in blocks:
        size = RESOLUTIONS[name]
        assert lo == position and hi > lo
        assert lo % size == 0 and hi % size == 0
        position = hi
    assert position == end or (not blocks and start == end)
    # Few blocks: at most 2 x (59 minutes + 23 hours) plus the days.
    assert len(blocks) <= 5


def test_cover_rejects_unaligned_and_uses_days() -> None:
    with pytest.raises(ValueError):
        cover(30, 120)
    day = 86400
    assert cover(3 * day, 10 * day) == [("1d", 3 * day, 10 * day)]
    assert cover(day - 120, day + 3600) == [("1m", day - 120, day), ("1h", day, day + 3600)]


def test_rollup_deltas_and_coarsen() -> None:
    req = request(
        [
            span(
                1,
                1,
                name="run",
                duration_ms=1000,
                attrs={"gen_ai.agent.name": "bot", "gen_ai.operation.name": "invoke_agent"},
            ),
            span(
                1,
                2,
                1,
                duration_ms=400,
                attrs={
                    "gen_ai.request.model": "m",
                    "gen_ai.usage.input_tokens": 7,
                    "gen_ai.usage.output_tokens": 3,
                },
            ),
            span(
                1,
                3,
                1,
                duration_ms=50,
                error="boom",
                attrs={"gen_ai.operation.name": "execute_tool"},
            ),
            span(1, 4, 1, duration_ms=5),  # a plain span: in no rollup
        ]
    )
    records = normalize_traces(req, Limits()).spans
    minute = rollup_deltas(records, 60)
    kinds = {(k[1], k[2], k[3]): d for k, d in minute.items()}
    assert set(kinds) == {("bot", "", "request"), ("bot", "m", "llm"), ("bot", "", "tool")}
    assert kinds[("bot", "m", "llm")].input_tokens == 7
    assert kinds[("bot", "", "tool")].errors == 1
    assert kinds[("bot", "", "request")].duration_max_ms == 1000
    day = coarsen(minute, 86400)
    assert sum(d.count for d in day.values()) == sum(d.count for d in minute.values()) == 3
    assert all(k[0] % 86400 == 0 for k in day)


@pytest.mark.parametrize(
    ("current", "previous", "change", "direction"),
    [
        (105, 100, 5.0, "stable"),
        (106, 100, 6.0, "up"),
        (90, 100, -10.0, "down"),
        (0, 0, 0.0, "stable"),
        (5, 0, None, "up"),
        (None, 3, None, None),
    ],
)
def test_trend_band(
    current: float | None, previous: float | None, change: float | None, direction: str | None
) -> None:
    assert trend(current, previous) == {"change_pct": change, "direction": direction}


def test_auto_interval_keeps_points_bounded() -> None:
    for window in (60, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400, 400 * 86400):
        interval = auto_interval(window)
        assert window / interval <= 1000
    assert auto_interval(3600) == 60
    assert auto_interval(86400) == 300


def test_health_scoring() -> None:
    t = HealthThresholds()
    assert linear_score(3.0, 1.0, 5.0) == 0.5
    perfect = health(
        requests=100, error_rate=0.0, p99_ms=500, firing_alerts=0, thresholds=t, window="15m"
    )
    assert perfect["score"] == 100 and perfect["status"] == "healthy" and perfect["reasons"] == []
    slow = health(
        requests=100, error_rate=0.5, p99_ms=4200, firing_alerts=0, thresholds=t, window="15m"
    )
    assert slow["status"] == "degraded"
    assert slow["score"] == round(40 + 40 * (10000 - 4200) / 8000 + 20)
    assert slow["reasons"] == ["High latency: 4200 ms (p99, degraded above 2000 ms)"]
    failing = health(
        requests=100, error_rate=7.0, p99_ms=100, firing_alerts=0, thresholds=t, window="15m"
    )
    assert failing["score"] == 60 and failing["status"] == "critical"  # a critical component
    assert failing["reasons"][0].startswith("High error rate: 7.0%")
    paged = health(
        requests=10, error_rate=0, p99_ms=10, firing_alerts=3, thresholds=t, window="15m"
    )
    assert paged["score"] == 80 and paged["status"] == "critical"
    empty = health(
        requests=0, error_rate=0, p99_ms=None, firing_alerts=0, thresholds=t, window="15m"
    )
    assert empty["status"] == "unknown" and empty["score"] is None and empty["no_data"]
    custom = health(
        requests=10,
        error_rate=2.0,
        p99_ms=10,
        firing_alerts=0,
        thresholds=HealthThresholds(error_rate_warning=2.5),
        window="1h",
    )
    assert custom["status"] == "healthy"


def test_firing_alerts_degrade_health_only_past_the_warning_threshold() -> None:
    def alerts(firing: int, t: HealthThresholds) -> dict[str, object]:
        out = health(
            requests=10, error_rate=0, p99_ms=10, firing_alerts=firing, thresholds=t, window="1h"
        )
        component: dict[str, object] = out["components"]["alerts"]
        return {**component, "health": out["status"], "reasons": out["reasons"]}

    default = HealthThresholds()  # warning 0: the first firing alert already degrades
    assert alerts(1, default)["score"] == round(2 / 3, 3)
    assert alerts(1, default)["health"] == "degraded"
    tolerant = HealthThresholds(alerts_warning=2, alerts_critical=6)
    two = alerts(2, tolerant)
    assert (two["score"], two["status"], two["health"]) == (1.0, "healthy", "healthy")
    assert two["reasons"] == [] and two["warning"] == 2
    four = alerts(4, tolerant)
    assert four["score"] == 0.5 and four["status"] == "degraded"  # halfway from 2 to 6
    assert four["reasons"] == ["4 alert(s) firing"]
    six = alerts(6, tolerant)
    assert six["score"] == 0.0 and six["status"] == "critical" and six["health"] == "critical"


def test_stored_histograms_merge_from_the_parse_cache_within_a_memory_bound() -> None:
    """Dashboards re-read rollup rows whose texts change with every commit (the current hour
    and day), so the parse cache fills up: what it holds per entry must stay small."""
    import random
    import tracemalloc

    import orjson

    rng = random.Random(3)
    texts = [
        orjson.dumps(
            {str(b): rng.randint(1, 50) for b in rng.sample(range(900, 1300), 200)}
        ).decode()
        for _ in range(1000)
    ]
    expected: Counter[int] = Counter()
    for text in texts:
        expected.update(hist.loads(text))
    hist._parsed.cache_clear()
    tracemalloc.start()
    try:
        merged = hist.loads_many(texts)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        hist._parsed.cache_clear()
    assert merged == expected
    # 1,000 histograms of 200 buckets: packed arrays take ~3 kB each (tuples took ~22 kB)
    assert held < 6 * 1024 * 1024, held
    assert hist._parsed.cache_info().maxsize == hist.PARSED_CACHE_SIZE


_KINDS = st.sampled_from(["request", "llm", "tool", "embedding"])
_ROWS = st.lists(
    st.tuples(
        st.integers(0, 11),  # minute
        st.sampled_from(["a", "b", "c"]),  # agent
        st.sampled_from(["m1", "m2", ""]),  # model
        _KINDS,
        st.lists(st.floats(0.5, 60_000, allow_nan=False), min_size=0, max_size=6),  # durations
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(
    _ROWS,
    st.sampled_from(["latency_p50", "latency_p95", "latency_p99"]),
    st.sampled_from([None, "agent", "model"]),
    st.booleans(),
)
def test_latency_charts_from_lean_rows_equal_full_rows(
    spec: list[tuple[int, str, str, str, list[float]]],
    metric: str,
    group_by: str | None,
    model_scope: bool,
) -> None:
    """The timeseries API reads only the columns a percentile needs (store.fetch_latency_rows):
    its points must equal those of whole rollup rows, aggregated as everywhere else."""
    from pharos.server.analytics.summary import LatencyRow, RollupRow, series

    full: dict[tuple[int, str, str, str], list[float]] = {}
    for minute, agent, model, kind, durations in spec:  # one row per key, as stored
        full.setdefault((1_700_000_000 + 60 * minute, agent, model, kind), []).extend(durations)
    rows = [
        RollupRow(
            b,
            a,
            m,
            k,
            len(d),
            0,
            sum(d),
            max(d, default=0.0),
            0,
            0,
            0,
            0,
            hist.dumps(hist.from_values(d)),
        )
        for (b, a, m, k), d in full.items()
    ]
    lean = [
        LatencyRow(
            r.bucket_start, r.agent, r.model, r.kind, r.count, r.duration_max_ms, r.histogram
        )
        for r in rows
    ]
    kwargs = {
        "start_s": 1_700_000_000,
        "end_s": 1_700_000_720,
        "interval_s": 180,
        "group_by": group_by,
        "model_scope": model_scope,
    }
    got = series(lean, metric, **kwargs)
    assert series(rows, metric, **kwargs) == got
    # ... and each point is the percentile of an aggregate of that slot's whole rows
    from pharos.server.analytics.summary import aggregate, metric_value

    for line in got:
        for i, value in enumerate(line["values"]):
            lo = 1_700_000_000 + 180 * i
            slot = [
                r
                for r in rows
                if lo <= r.bucket_start < lo + 180
                and (group_by is None or (getattr(r, group_by) or "(none)") == line["name"])
            ]
            expected = metric_value(metric, aggregate(slot, model_scope=model_scope), 60)
            assert value == expected


def test_histogram_texts_are_cached_on_their_second_sight() -> None:
    # An open minute's row has a new text after every ingest commit: one read never fills the
    # cache; a text read again (a past minute, on the next refresh) is parsed once from then on.
    hist._parsed.cache_clear()
    once = [hist.dumps(Counter({1000 + i: 1})) for i in range(500)]
    assert sum(hist.loads_many(once).values()) == 500
    assert hist._parsed.cache_info().currsize == 0
    again = [hist.dumps(Counter({2000: 2, 2001: 3}))]
    for _ in range(3):
        assert hist.loads_many(again) == Counter({2000: 2, 2001: 3})
    info = hist._parsed.cache_info()
    assert info.currsize == 1 and info.hits == 1
    hist._parsed.cache_clear()


def test_seen_before_is_bounded() -> None:
    seen = hist.SeenBefore(limit=3)
    assert [seen(k) for k in ("a", "b", "a")] == [False, False, True]
    seen("c")
    seen("d")  # the limit: forgets everything, then remembers "d"
    assert seen("a") is False and seen("d") is True
    assert len(seen._seen) <= 3


def test_latency_points_are_cached_once_their_rows_come_again() -> None:
    from pharos.server.analytics import summary

    summary._quantile_cached.cache_clear()
    row = summary.LatencyRow(0, "a", "", "request", 3, 90.0, hist.dumps(Counter({1100: 3})))
    first = summary._latency_point("latency_p95", [row], False)
    assert summary._quantile_cached.cache_info().currsize == 0
    assert summary._latency_point("latency_p95", [row], False) == first
    assert summary._latency_point("latency_p95", [row], False) == first
    info = summary._quantile_cached.cache_info()
    assert info.currsize == 1 and info.hits == 1
    summary._quantile_cached.cache_clear()
