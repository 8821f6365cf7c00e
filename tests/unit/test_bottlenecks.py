"""Self time, critical path and top bottlenecks of one trace (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from pharos.server.analytics.bottlenecks import Analysis, SpanTiming, analyze, span_timing
from pharos.server.query.tree import build_tree

MS = 1_000_000


def sp(
    span_id: str, parent: str | None, start_ms: float, end_ms: float, **extra: str
) -> SpanTiming:
    return SpanTiming(span_id, parent, round(start_ms * MS), round(end_ms * MS), **extra)


@dataclass
class Case:
    spans: list[SpanTiming]
    self_ms: dict[str, float]
    path: list[tuple[str, float]]  # (span id, its time on the critical path), in path order
    top: list[str]
    duration_ms: float
    shares: dict[str, float] = field(default_factory=dict)


CASES = {
    "single span": Case(
        spans=[sp("r", None, 0, 100)],
        self_ms={"r": 100},
        path=[("r", 100)],
        top=["r"],
        duration_ms=100,
        shares={"r": 1.0},
    ),
    "sequential children": Case(
        spans=[sp("r", None, 0, 100), sp("a", "r", 0, 40), sp("b", "r", 40, 90)],
        self_ms={"r": 10, "a": 40, "b": 50},
        # Both children are on the path: b made the end, a made b start when it did.
        path=[("r", 10), ("b", 50), ("a", 40)],
        top=["b", "a", "r"],
        duration_ms=100,
        shares={"b": 0.5, "a": 0.4, "r": 0.1},
    ),
    "parallel overlapping children": Case(
        spans=[sp("r", None, 0, 100), sp("a", "r", 10, 60), sp("b", "r", 20, 70)],
        # The union of [10,60] and [20,70] is 60 ms, not 100: r's self time is 40.
        self_ms={"r": 40, "a": 50, "b": 50},
        # Only b, the child r waited for last, is on the path; a ran in its shadow.
        path=[("r", 50), ("b", 50)],
        top=["a", "b", "r"],  # equal self time: the earlier start first
        duration_ms=100,
    ),
    "child fully hidden by a longer sibling": Case(
        spans=[sp("r", None, 0, 100), sp("long", "r", 0, 80), sp("short", "r", 20, 30)],
        self_ms={"r": 20, "long": 80, "short": 10},
        path=[("r", 20), ("long", 80)],
        top=["long", "r", "short"],
        duration_ms=100,
    ),
    "child outlives its parent (fire and forget)": Case(
        spans=[sp("r", None, 0, 100), sp("a", "r", 10, 30), sp("async", "r", 50, 300)],
        # async hides only [50,100] of r; its own self time is all of its 250 ms.
        self_ms={"r": 30, "a": 20, "async": 250},
        # Clipped to r's end, async is the last-finishing child; the path covers r's 100 ms.
        path=[("r", 30), ("async", 50), ("a", 20)],
        top=["async", "r", "a"],
        duration_ms=300,
        shares={"async": 0.8333, "r": 0.1, "a": 0.0667},
    ),
    "child starting before its parent (clock skew) is clipped": Case(
        spans=[sp("r", None, 10, 100), sp("a", "r", 0, 50)],
        self_ms={"r": 50, "a": 50},
        path=[("r", 50), ("a", 40)],
        top=["a", "r"],
        duration_ms=100,
    ),
    "child entirely after its parent is not on the path": Case(
        spans=[sp("r", None, 0, 100), sp("late", "r", 150, 200)],
        self_ms={"r": 100, "late": 50},
        path=[("r", 100)],
        top=["r", "late"],
        duration_ms=200,
    ),
    "nested levels": Case(
        spans=[
            sp("r", None, 0, 1000),
            sp("plan", "r", 0, 200),
            sp("llm1", "plan", 20, 180),
            sp("act", "r", 200, 900),
            sp("tool", "act", 250, 450),
            sp("llm2", "act", 450, 850),
            sp("tok", "llm2", 500, 600),
        ],
        self_ms={
            "r": 100,
            "plan": 40,
            "llm1": 160,
            "act": 100,
            "tool": 200,
            "llm2": 300,
            "tok": 100,
        },
        path=[
            ("r", 100),
            ("act", 100),
            ("llm2", 300),
            ("tok", 100),
            ("tool", 200),
            ("plan", 40),
            ("llm1", 160),
        ],
        top=["llm2", "tool", "llm1", "r", "act"],
        duration_ms=1000,
    ),
    "critical path follows the last-finishing chain": Case(
        spans=[
            sp("r", None, 0, 100),
            sp("fast", "r", 0, 90),  # longer, but finished first
            sp("slow", "r", 50, 99),
            sp("fast_kid", "fast", 0, 90),
            sp("slow_kid", "slow", 60, 95),
        ],
        self_ms={"r": 1, "fast": 0, "slow": 14, "fast_kid": 90, "slow_kid": 35},
        path=[("r", 1 + 0 + 50), ("slow", 14), ("slow_kid", 35)],
        top=["fast_kid", "slow_kid", "slow", "r", "fast"],
        duration_ms=100,
    ),
    "orphans: the root ending last is followed": Case(
        spans=[
            sp("a", None, 0, 100),
            sp("a1", "a", 0, 50),
            sp("b", "missing-parent", 100, 250),
            sp("b1", "b", 120, 240),
        ],
        self_ms={"a": 50, "a1": 50, "b": 30, "b1": 120},
        path=[("b", 30), ("b1", 120)],
        top=["b1", "a", "a1", "b"],
        duration_ms=250,
    ),
    "zero-duration trace": Case(
        spans=[sp("r", None, 5, 5), sp("a", "r", 5, 5), sp("b", "r", 5, 5)],
        self_ms={"r": 0, "a": 0, "b": 0},
        path=[("r", 0)],
        top=["a", "b", "r"],
        duration_ms=0,
        shares={"r": 0.0, "a": 0.0, "b": 0.0},
    ),
    "end before start counts as zero length": Case(
        spans=[sp("r", None, 0, 10), sp("bad", "r", 8, 2)],
        self_ms={"r": 10, "bad": 0},
        path=[("r", 10)],
        top=["r", "bad"],
        duration_ms=10,
    ),
    "parent cycle is broken at its first span": Case(
        spans=[sp("x", "y", 0, 100), sp("y", "x", 10, 50)],
        self_ms={"x": 60, "y": 40},
        path=[("x", 60), ("y", 40)],
        top=["x", "y"],
        duration_ms=100,
    ),
    "self-parent and duplicate ids": Case(
        spans=[sp("r", "r", 0, 100), sp("a", "r", 0, 30), sp("a", "r", 0, 99)],
        self_ms={"r": 70, "a": 30},  # the first copy of a span id wins
        path=[("r", 70), ("a", 30)],
        top=["r", "a"],
        duration_ms=100,
    ),
}


def _ms(ns: int) -> float:
    return round(ns / MS, 3)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_table(case: Case) -> None:
    result = analyze(case.spans)
    assert {sid: _ms(ns) for sid, ns in result.self_ns.items()} == case.self_ms
    assert [(s.span_id, _ms(s.path_ns)) for s in result.critical_path] == case.path
    assert [b.span_id for b in result.top] == case.top
    assert _ms(result.trace_duration_ns) == case.duration_ms
    for b in result.top:
        assert 0.0 <= b.share <= 1.0
        if b.span_id in case.shares:
            assert b.share == case.shares[b.span_id]
    _check_invariants(result, case.spans)


def _check_invariants(result: Analysis, spans: list[SpanTiming]) -> None:
    first = {}
    for s in spans:
        first.setdefault(s.span_id, s)
    for sid, self_ns in result.self_ns.items():
        s = first[sid]
        assert 0 <= self_ns <= max(s.end_ns - s.start_ns, 0)
    # The path explains exactly the chosen root's duration, each span's share of it >= 0.
    if result.critical_path:
        root = first[result.critical_path[0].span_id]
        assert sum(s.path_ns for s in result.critical_path) == max(root.end_ns - root.start_ns, 0)
        assert all(s.path_ns >= 0 for s in result.critical_path)
        assert len({s.span_id for s in result.critical_path}) == len(result.critical_path)


@pytest.mark.parametrize(
    "name",
    [
        "single span",
        "sequential children",
        "nested levels",
        "child outlives its parent (fire and forget)",
        "orphans: the root ending last is followed",
        "zero-duration trace",
    ],
)
def test_shares_sum_at_most_one_without_parallel_work(name: str) -> None:
    result = analyze(CASES[name].spans, top_n=100)
    assert sum(b.share for b in result.top) <= 1.0 + 1e-3  # each share is rounded to 4 places
    if result.trace_duration_ns:
        assert sum(result.self_ns.values()) == result.trace_duration_ns


def test_parallel_work_can_add_up_to_more_than_the_trace() -> None:
    # Two 50 ms children side by side each hold 0.5 of a 100 ms trace alone in their own
    # span: the shares say how long each ran, they do not split wall time between them.
    result = analyze(CASES["parallel overlapping children"].spans)
    assert [b.share for b in result.top] == [0.5, 0.5, 0.4]


def test_top_is_capped_at_five_and_detailed() -> None:
    spans = [sp("r", None, 0, 1000)] + [
        sp(f"c{i}", "r", i * 100, i * 100 + 10 * (i + 1), name=f"call {i}", kind="tool", agent="x")
        for i in range(8)
    ]
    result = analyze(spans)
    assert [b.span_id for b in result.top] == ["r", "c7", "c6", "c5", "c4"]
    assert result.top[1].to_dict() == {
        "span_id": "c7",
        "name": "call 7",
        "kind": "tool",
        "agent": "x",
        "self_ms": 80.0,
        "share": 0.08,
    }
    assert len(analyze(spans, top_n=3).top) == 3


def test_deep_chain_without_recursion() -> None:
    depth = 5000
    spans = [sp(f"s{i}", f"s{i - 1}" if i else None, i, 2 * depth - i) for i in range(depth)]
    result = analyze(reversed(spans))  # children before parents, as exporters send them
    assert len(result.critical_path) == depth
    assert [s.span_id for s in result.critical_path[:3]] == ["s0", "s1", "s2"]
    assert all(result.self_ns[f"s{i}"] == 2 * MS for i in range(depth - 1))
    assert result.self_ns[f"s{depth - 1}"] == 2 * MS
    assert result.top[0].span_id == "s0"
    _check_invariants(result, spans)


def test_wide_fan_out() -> None:
    spans = [sp("r", None, 0, 20_000)] + [
        sp(f"c{i:05d}", "r", i, i + 1) for i in range(0, 20_000, 2)
    ]
    result = analyze(spans)
    assert result.self_ns["r"] == 10_000 * MS
    assert len(result.critical_path) == 1 + 10_000
    _check_invariants(result, spans)


def test_empty_trace() -> None:
    result = analyze([])
    assert result.to_dict() == {
        "critical_path": [],
        "critical_path_steps": [],
        "top": [],
        "trace_duration_ms": 0.0,
    }


def test_output_rounds_to_microseconds() -> None:
    result = analyze([SpanTiming("r", None, 0, 1_234_567), SpanTiming("a", "r", 0, 1_000_001)])
    out = result.to_dict()
    assert out["trace_duration_ms"] == 1.235
    assert out["critical_path_steps"] == [
        {"span_id": "r", "self_ms": 0.235},
        {"span_id": "a", "self_ms": 1.0},
    ]
    assert [b["self_ms"] for b in out["top"]] == [1.0, 0.235]


@pytest.mark.parametrize(
    ("mapping", "end_ns"),
    [
        ({"end_ns": 50}, 50),
        ({"duration_ns": 7}, 17),
        ({"duration_ms": 1.5}, 1_500_010),
        ({}, 10),
    ],
)
def test_span_timing_from_mappings(mapping: dict[str, int | float], end_ns: int) -> None:
    timing = span_timing({"span_id": "a", "parent_span_id": "", "start_ns": 10, **mapping})
    assert timing.end_ns == end_ns and timing.parent_span_id is None


def test_agrees_with_the_tree_builder_on_cycles_and_orphans() -> None:
    raw = [
        {"span_id": "x", "parent_span_id": "y", "start_ns": 0, "end_ns": 100},
        {"span_id": "y", "parent_span_id": "x", "start_ns": 10, "end_ns": 50},
        {"span_id": "z", "parent_span_id": "z", "start_ns": 0, "end_ns": 5},
        {"span_id": "o", "parent_span_id": "gone", "start_ns": 20, "end_ns": 30},
        {"span_id": "k", "parent_span_id": "o", "start_ns": 21, "end_ns": 29},
    ]
    ordered, roots = build_tree(raw)
    # No children link points back up a cycle.
    assert {n["span_id"]: n["children"] for n in ordered} == {
        "o": ["k"],
        "k": [],
        "z": [],
        "x": ["y"],
        "y": [],
    }
    assert set(roots) == {"o", "z", "x"}
    result = analyze(span_timing(n) for n in ordered)
    assert result.self_ns == {"o": 2, "k": 8, "z": 5, "x": 60, "y": 40}
    assert [s.span_id for s in result.critical_path] == ["x", "y"]
