"""The shared evaluation of a cycle gives what evaluating each rule alone gives (pure):

- :func:`compile_columns` (every group of a rule at once) equals :func:`evaluate` per group;
- :class:`Figures`, whose rules share cells, aggregates, histograms and columns, equals adding up
  each series' own rows with ``summary.aggregate`` (the engine before sharing), for random rows,
  series, filters and ``by`` clauses;
- histograms carried between cycles by :class:`HistogramCache` equal merging afresh, whatever
  rows enter, leave or change;
- the rows cut from :func:`read_plan`'s blocks are the rows of each window's own cover."""

from __future__ import annotations

import gc
import itertools
import weakref
from collections import Counter
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pharos.server.alerting.figures import (
    Figures,
    HistogramCache,
    _metric,
    cut_windows,
    histogram_scopes,
    read_plan,
)
from pharos.server.alerting.language import (
    SLO_FUNCS,
    BinOp,
    Budget,
    Compare,
    Func,
    Logic,
    Neg,
    Node,
    Not,
    Num,
    Series,
    Value,
    compile_columns,
    compile_node,
    evaluate,
)
from pharos.server.analytics import histogram as hist
from pharos.server.analytics.rollups import RESOLUTIONS, cover
from pharos.server.analytics.summary import RollupRow, aggregate
from pharos.server.slo import core as slo_core

AGENTS = ("a", "b", "c")
MODELS = ("", "m1", "m2")
KINDS = ("request", "llm", "embedding", "tool")
WINDOWS = (300, 3600)
METRICS = (
    "error_rate",
    "requests",
    "errors",
    "throughput",
    "latency_p50",
    "latency_p90",
    "latency_p95",
    "latency_p99",
    "latency_avg",
    "tokens",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost",
    "slo_burn",
    "slo_attainment",
)
SLOS = [
    slo_core.SloDef(1, "a-success", "a", "success", 99.0, None, 30),
    slo_core.SloDef(2, "a-fast", "a", "latency", 95.0, 300.0, 30),
    slo_core.SloDef(3, "b-fast", "b", "latency", 90.0, 50.0, 30),
]


# -- strategies -----------------------------------------------------------------------------------

histograms = st.dictionaries(st.integers(0, 900), st.integers(1, 5), max_size=4).map(
    lambda d: hist.dumps(Counter(d))
)


@st.composite
def rollup_rows(draw: st.DrawFn) -> RollupRow:
    count = draw(st.integers(0, 20))
    return RollupRow(
        draw(st.sampled_from((0, 60, 120))),
        draw(st.sampled_from(AGENTS)),
        draw(st.sampled_from(MODELS)),
        draw(st.sampled_from(KINDS)),
        count,
        draw(st.integers(0, count)),
        # whole milliseconds: any order of adding them up gives the same float
        float(draw(st.integers(0, 10_000))),
        draw(st.sampled_from((0.0, 50.0, 999.5))),
        draw(st.integers(0, 1000)),
        draw(st.integers(0, 1000)),
        draw(st.integers(0, 100)),
        draw(st.integers(0, 10**9)),
        draw(histograms),
    )


@st.composite
def series(draw: st.DrawFn) -> Series:
    metric = draw(st.sampled_from(METRICS))
    window = draw(st.sampled_from(WINDOWS))
    agent = draw(st.sampled_from((None, None, *AGENTS, "nobody")))
    if metric in SLO_FUNCS:
        slo = draw(st.sampled_from((None, None, "a-fast", "b-fast", "gone")))
        return Series(metric, window, agent, None, slo=slo)
    return Series(metric, window, agent, draw(st.sampled_from((None, None, *MODELS))))


def numbers(leaf: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    return st.recursive(
        leaf,
        lambda sub: st.one_of(
            st.builds(BinOp, st.sampled_from(["+", "-", "*", "/", "%"]), sub, sub),
            st.builds(BinOp, st.just("^"), sub, st.sampled_from([-2.0, 0.5, 2.0, 3.0]).map(Num)),
            st.builds(Neg, sub),
            st.builds(lambda a: Func("abs", (a,)), sub),
            st.builds(
                Func, st.sampled_from(["min", "max"]), st.lists(sub, min_size=2, max_size=3)
            ).map(lambda f: Func(f.name, tuple(f.args))),
        ),
        max_leaves=6,
    )


def conditions(leaf: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    compare = st.builds(
        Compare, st.sampled_from([">", "<", ">=", "<=", "==", "!="]), numbers(leaf), numbers(leaf)
    )
    return st.recursive(
        compare,
        lambda sub: st.one_of(
            st.builds(Logic, st.sampled_from(["and", "or"]), sub, sub), st.builds(Not, sub)
        ),
        max_leaves=4,
    )


def _collect(node: Node, out: list[Series | Budget]) -> None:
    if isinstance(node, Series | Budget):
        out.append(node)
    for name in ("left", "right", "operand"):
        child = getattr(node, name, None)
        if child is not None:
            _collect(child, out)
    for arg in getattr(node, "args", ()):
        _collect(arg, out)


def same(a: object, b: object) -> bool:
    return (a is None and b is None) or (type(a) is type(b) and a == b)


# -- the columnar interpreter ---------------------------------------------------------------------

LEAVES: st.SearchStrategy[Node] = st.one_of(
    st.sampled_from([0.0, 1.0, -2.5, 3.0, 7.0, 1e308]).map(Num),
    st.sampled_from([Series("requests", 300), Series("latency_p95", 3600, agent="a")]),
    st.sampled_from([Budget(None), Budget("x")]),
)
CELL_VALUES = st.sampled_from([None, 0.0, -1.5, 2.0, 3.0, 7.25, 1e308, -1e308, 0.1])


@settings(max_examples=400, deadline=None)
@given(conditions(LEAVES), st.integers(0, 6), st.data())
def test_columns_give_each_groups_value(node: Node, n: int, data: st.DataObject) -> None:
    leaves: list[Series | Budget] = []
    _collect(node, leaves)
    columns: dict[Series | Budget, list[Value]] = {
        leaf: data.draw(st.lists(CELL_VALUES, min_size=n, max_size=n)) for leaf in leaves
    }
    got = compile_columns(node)(columns.__getitem__, columns.__getitem__, n)
    assert len(got) == n
    for i in range(n):

        def one(leaf: Series | Budget, i: int = i) -> Value:
            return columns[leaf][i]

        assert same(got[i], evaluate(node, one, one))
        assert same(got[i], compile_node(node)(one, one))
    for part in (node.left, node.right) if isinstance(node, Compare) else ():
        got_number = compile_columns(part)(columns.__getitem__, columns.__getitem__, n)
        for i in range(n):

            def at(leaf: Series | Budget, i: int = i) -> Value:
                return columns[leaf][i]

            assert same(got_number[i], evaluate(part, at, at))


# -- shared figures against each series alone -----------------------------------------------------


def _scope_rows(rows: Sequence[RollupRow], agent: str | None, model: str | None) -> list[RollupRow]:
    return [
        r
        for r in rows
        if (agent is None or r.agent == agent) and (model is None or r.model == model)
    ]


def alone(rows: Mapping[int, list[RollupRow]], s: Series, group: Mapping[str, str]) -> Value:
    """One series for one group from its own rows, as the engine computed it before sharing."""
    agent = s.agent if s.agent is not None else group.get("agent")
    model = s.model if s.model is not None else group.get("model")
    window = rows.get(s.window_s, [])
    if s.metric in SLO_FUNCS:
        if s.slo is not None:
            chosen = [d for d in SLOS if d.name == s.slo]
        else:
            chosen = [d for d in SLOS if agent is None or d.agent == agent]
        values = []
        for d in chosen:
            agg = aggregate(_scope_rows(window, d.agent, None), histograms=d.kind == "latency")
            t = slo_core.tally(agg, d)
            if s.metric == "slo_burn":
                value = slo_core.burn_rate(t, d.objective)
            else:
                value = slo_core.attainment(t)
            if value is not None:
                values.append(value)
        if not values:
            return None
        return max(values) if s.metric == "slo_burn" else min(values)
    agg = aggregate(_scope_rows(window, agent, model), model_scope=model is not None)
    return _metric(s.metric, agg, s.window_s)


def groups_alone(
    rows: Mapping[int, list[RollupRow]], by: tuple[str, ...], windows: set[int], agents: list[str]
) -> list[dict[str, str]]:
    if not by:
        return [{}]
    keys: set[tuple[str, ...]] = set()
    for w in windows:
        for r in rows.get(w, []):
            if by == ("agent",):
                keys.add((r.agent,))
            elif r.model:
                keys.add(tuple(getattr(r, label) for label in by))
    if by == ("agent",):
        keys.update((a,) for a in agents)
    return [dict(zip(by, k, strict=True)) for k in sorted(keys)]


BUDGETS = [Budget(None), Budget(None, forecast=True), Budget("a"), Budget("b", forecast=True)]
BY = st.sampled_from([(), ("agent",), ("model",), ("agent", "model"), ("model", "agent")])
WINDOW_ROWS = st.fixed_dictionaries({w: st.lists(rollup_rows(), max_size=14) for w in WINDOWS})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    WINDOW_ROWS,
    st.lists(
        st.tuples(conditions(series() | st.sampled_from(BUDGETS)), BY), min_size=1, max_size=6
    ),
    st.lists(st.sampled_from(("a", "d")), max_size=2, unique=True),
)
def test_shared_figures_equal_each_rule_alone(
    rows: dict[int, list[RollupRow]],
    rules: list[tuple[Node, tuple[str, ...]]],
    agents: list[str],
) -> None:
    budgets = {(None, False): 0.5, ("a", False): 0.9, ("a", True): 1.2, ("b", True): 0.3}

    def burn(agent: str | None, forecast: bool) -> Value:
        return budgets.get((agent, forecast))

    figures = Figures(rows, slos=SLOS, cache=HistogramCache(), budget=burn)
    for node, by in rules:
        leaves: list[Series | Budget] = []
        _collect(node, leaves)
        windows = {leaf.window_s for leaf in leaves if isinstance(leaf, Series)} or {300}
        columns = figures.columns(by, windows, agents)
        expected_groups = groups_alone(rows, by, windows, agents)
        assert columns.groups == expected_groups
        got = compile_columns(node)(columns.series, columns.budget, len(columns))
        for i, group in enumerate(expected_groups):

            def value(s: Series, g: Mapping[str, str] = group) -> Value:
                return alone(rows, s, g)

            def budget(b: Budget, g: Mapping[str, str] = group) -> Value:
                return burn(b.agent if b.agent is not None else g.get("agent"), b.forecast)

            assert same(got[i], evaluate(node, value, budget))
            for leaf in leaves:
                if isinstance(leaf, Series):
                    assert same(columns.series(leaf)[i], alone(rows, leaf, group))


def test_figures_read_each_scope_once_and_histograms_only_for_percentiles() -> None:
    rows = [
        RollupRow(0, "a", "", "request", 4, 1, 400.0, 300.0, 0, 0, 0, 0, '{"500": 4}'),
        RollupRow(60, "a", "", "request", 2, 0, 100.0, 60.0, 0, 0, 0, 0, '{"400": 2}'),
        RollupRow(0, "a", "m1", "llm", 3, 0, 90.0, 40.0, 10, 20, 0, 7, '{"300": 3}'),
    ]
    figures = Figures({300: rows})
    assert figures.value(Series("requests", 300), {"agent": "a"}) == 6.0
    assert figures._with_histogram == set()  # no percentile asked: no histogram merged
    assert figures.value(Series("latency_p50", 300), {"agent": "a"}) == pytest.approx(
        hist.value_of(500), rel=1e-9
    )
    assert figures._with_histogram == {(300, "a", None)}
    assert figures.value(Series("tokens", 300, model="m1"), {}) == 30.0
    assert len(figures._aggs) == 2  # (a, any model) and (any agent, m1)


# -- histograms carried between cycles ------------------------------------------------------------


@st.composite
def cycles(draw: st.DrawFn) -> list[dict[int, list[RollupRow]]]:
    """A few cycles' windows: each changes a few rows of the last (enter, leave, rewritten)."""
    base = draw(st.lists(rollup_rows(), min_size=8, max_size=20))
    out = [{300: base[:6], 3600: list(base)}]
    for _ in range(draw(st.integers(1, 4))):
        last = out[-1]
        now: dict[int, list[RollupRow]] = {}
        for w, window_rows in last.items():
            kept = list(window_rows)
            for _ in range(draw(st.integers(0, 2))):
                if kept:
                    kept.pop(draw(st.integers(0, len(kept) - 1)))
            for _ in range(draw(st.integers(0, 2))):
                if kept:
                    i = draw(st.integers(0, len(kept) - 1))
                    kept[i] = kept[i]._replace(histogram=draw(histograms), count=kept[i].count + 1)
            kept += draw(st.lists(rollup_rows(), max_size=2))
            if draw(st.booleans()) and kept:
                kept.append(kept[0])  # a repeated row: a set cannot diff it
            now[w] = kept
        out.append(now)
    return out


def _hist(figures: Figures, w: int, agent: str | None, model: str | None) -> dict[int, int]:
    return {k: v for k, v in figures._aggregate(w, agent, model, True).histogram.items() if v}


SCOPES = [(None, None), *((a, None) for a in AGENTS), *((None, m) for m in MODELS)]
SCOPES += [(a, m) for a in AGENTS for m in MODELS]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cycles(), st.data())
def test_carried_histograms_equal_merging_afresh(
    sequence: list[dict[int, list[RollupRow]]], data: st.DataObject
) -> None:
    cache = HistogramCache()
    for rows in sequence:
        carried = Figures(rows, cache=cache)
        fresh = Figures(rows)
        asked = data.draw(st.lists(st.sampled_from(SCOPES), min_size=1, max_size=8))
        for w in WINDOWS:
            for agent, model in asked:
                assert _hist(carried, w, agent, model) == _hist(fresh, w, agent, model)
                for metric in ("latency_p50", "latency_p99"):
                    s = Series(metric, w, agent, model)
                    assert carried.value(s, {}) == fresh.value(s, {})
        carried.keep()


def test_a_cycle_merges_only_the_rows_that_changed() -> None:
    def row(minute: int, ms: int, count: int = 1) -> RollupRow:
        text = hist.dumps(Counter({hist.bucket_of(ms): count}))
        return RollupRow(minute * 60, "a", "", "request", count, 0, 0.0, ms, 0, 0, 0, 0, text)

    cache = HistogramCache()
    first = Figures({3600: [row(m, 100) for m in range(60)]}, cache=cache)
    assert first.value(Series("latency_p99", 3600), {"agent": "a"}) == pytest.approx(100, rel=0.01)
    first.keep()
    assert len(cache) == 1
    # A minute later: minute 0 left, minute 60 came in slow, and minute 30 was rewritten.
    rows = [row(m, 100) for m in range(1, 61) if m not in (30, 60)]
    rows += [row(60, 9000, 5), row(30, 100, 3)]
    second = Figures({3600: rows}, cache=cache)
    assert second.value(Series("latency_p99", 3600), {"agent": "a"}) == pytest.approx(
        9000, rel=0.01
    )
    entered, left = second._changes[3600][("a", None)]
    assert sorted(entered) == sorted([row(60, 9000, 5), row(30, 100, 3)])
    assert sorted(left) == sorted([row(0, 100), row(30, 100)])
    assert _hist(second, 3600, "a", None) == _hist(Figures({3600: rows}), 3600, "a", None)
    second.keep()
    # A cycle that stops before keep() leaves the cache to start afresh.
    third = Figures({3600: rows}, cache=cache)
    third.value(Series("latency_p50", 3600), {"agent": "a"})
    fourth = Figures({3600: rows}, cache=cache)
    assert fourth._carried_for(3600) is None
    assert _hist(fourth, 3600, "a", None) == _hist(Figures({3600: rows}), 3600, "a", None)


def test_histogram_scopes_follow_what_counts_as_a_request() -> None:
    def row(model: str, kind: str) -> RollupRow:
        return RollupRow(0, "a", model, kind, 1, 0, 0.0, 0.0, 0, 0, 0, 0, "{}")

    assert histogram_scopes(row("", "request")) == (("a", None), (None, None))
    assert histogram_scopes(row("m", "llm")) == (("a", "m"), (None, "m"))
    assert histogram_scopes(row("m", "embedding")) == (("a", "m"), (None, "m"))
    assert histogram_scopes(row("", "tool")) == ()


# -- one read per table ---------------------------------------------------------------------------

WINDOW_CHOICES = [60, 300, 600, 900, 3600, 5400, 7200, 86400, 90000, 172800]


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 3 * 86400 // 60).map(lambda m: 1_790_000_000 // 86400 * 86400 + m * 60),
    st.lists(st.sampled_from(WINDOW_CHOICES), min_size=1, max_size=6, unique=True),
)
def test_cut_windows_equal_each_windows_own_cover(end_s: int, windows: list[int]) -> None:
    def table(name: str) -> list[RollupRow]:
        size = RESOLUTIONS[name]
        start = (end_s - 3 * 86400) // size * size
        return [
            RollupRow(b, name, "", "request", 1, 0, 0.0, 0.0, 0, 0, 0, 0, "{}")
            for b in range(start, end_s + size, size)
        ]

    tables = {name: table(name) for name in ("1m", "1h", "1d")}

    def fetch(name: str, lo: int, hi: int) -> list[RollupRow]:
        return [r for r in tables[name] if lo <= r.bucket_start < hi][::-1]  # any order

    plan = read_plan(windows, end_s)
    covers = [block for w in windows for block in cover(end_s - w, end_s)]
    assert len(plan) <= len(covers)
    for name in ("1m", "1h", "1d"):  # per table: blocks that neither overlap nor touch
        spans = sorted((lo, hi) for n, lo, hi in plan if n == name)
        assert all(a[1] < b[0] for a, b in itertools.pairwise(spans))
    cut = cut_windows({b: fetch(*b) for b in plan}, windows, end_s)
    for w in windows:
        own = [r for block in cover(end_s - w, end_s) for r in fetch(*block)]
        assert sorted(cut[w]) == sorted(own)


def test_a_cycles_figures_go_as_soon_as_dropped() -> None:
    """No reference cycle: the rows, cells and columns of a cycle are freed when it ends, not
    left for the next full garbage collection (which then walks them all)."""
    rows = [RollupRow(0, "a", "", "request", 4, 1, 400.0, 300.0, 0, 0, 0, 0, '{"500": 4}')]
    gc.disable()
    try:
        figures = Figures({300: rows}, cache=HistogramCache())
        columns = figures.columns(("agent",), {300})
        assert columns.series(Series("latency_p95", 300)) == [hist.value_of(500)]
        gone = weakref.ref(figures)
        del figures
        assert gone() is None
        with pytest.raises(ReferenceError):
            columns.series(Series("requests", 300))
    finally:
        gc.enable()
