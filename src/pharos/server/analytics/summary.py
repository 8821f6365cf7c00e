"""Turn rollup rows into the figures operators read: counts, rates, percentiles, tokens, cost,
trends (pure: rows and window in, plain dicts out).

With a ``model`` filter the request figures describe the model calls (LLM and embedding spans)
of that model, since an agent run has no single model; the response says so in ``scope``.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pharos.server.analytics import histogram as hist
from pharos.server.analytics.rollups import REQUEST

MODEL_CALL_KINDS = frozenset({"llm", "embedding"})
TREND_BAND_PCT = 5.0


class RollupRow(NamedTuple):  # a tuple: built by the thousand per dashboard call
    bucket_start: int
    agent: str
    model: str
    kind: str
    count: int  # type: ignore[assignment]  # shadows tuple.count, on purpose
    errors: int
    duration_sum_ms: float
    duration_max_ms: float
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_nanousd: int
    histogram: str


class LatencyRow(NamedTuple):
    """The columns of a rollup row a latency percentile needs (a chart reads thousands)."""

    bucket_start: int
    agent: str
    model: str
    kind: str
    count: int  # type: ignore[assignment]  # shadows tuple.count, on purpose
    duration_max_ms: float
    histogram: str


LATENCY_COLUMNS = LatencyRow._fields

#: The latency percentiles a histogram answers, by metric name.
LATENCY_QUANTILES = {"latency_p50": 0.5, "latency_p95": 0.95, "latency_p99": 0.99}


def _is_request(kind: str, model_scope: bool) -> bool:
    """Whether a row of this kind counts as a request: the model calls under a model scope,
    else the agent runs."""
    return kind in MODEL_CALL_KINDS if model_scope else kind == REQUEST


@dataclass(slots=True)
class Aggregate:
    requests: int = 0
    errors: int = 0
    duration_sum_ms: float = 0.0
    duration_max_ms: float = 0.0
    histogram: Counter[int] = field(default_factory=Counter)
    llm_calls: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_nanousd: int = 0


def aggregate(
    rows: Iterable[RollupRow], *, model_scope: bool = False, histograms: bool = True
) -> Aggregate:
    """Add rollup rows up. ``model_scope``: requests are the model calls (a model filter).
    ``histograms=False`` skips parsing the latency histograms (percentiles stay empty)."""
    agg = Aggregate()
    texts: list[str] = []
    for row in rows:
        is_request = _is_request(row.kind, model_scope)
        if is_request:
            agg.requests += row.count
            agg.errors += row.errors
            agg.duration_sum_ms += row.duration_sum_ms
            agg.duration_max_ms = max(agg.duration_max_ms, row.duration_max_ms)
            if histograms:
                texts.append(row.histogram)
        if row.kind == "llm":
            agg.llm_calls += row.count
        elif row.kind == "tool":
            agg.tool_calls += row.count
        if row.kind in MODEL_CALL_KINDS:
            agg.input_tokens += row.input_tokens
            agg.output_tokens += row.output_tokens
            agg.cached_tokens += row.cached_tokens
            agg.cost_nanousd += row.cost_nanousd
    if texts:
        agg.histogram = hist.loads_many(texts)
    return agg


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def figures(agg: Aggregate, window_seconds: float) -> dict[str, Any]:
    """The summary figures of one window."""
    p50, p95, p99 = hist.quantiles(agg.histogram, (0.5, 0.95, 0.99), max_ms=agg.duration_max_ms)
    has = agg.requests > 0
    return {
        "requests": agg.requests,
        "errors": agg.errors,
        "error_rate": round(100.0 * agg.errors / agg.requests, 3) if has else 0.0,
        "throughput": round(agg.requests / window_seconds, 6) if window_seconds > 0 else 0.0,
        "latency_ms": {
            "p50": _round(p50),
            "p95": _round(p95),
            "p99": _round(p99),
            "avg": _round(agg.duration_sum_ms / agg.requests) if has else None,
            "max": _round(agg.duration_max_ms) if has else None,
        },
        "tokens": {
            "input": agg.input_tokens,
            "output": agg.output_tokens,
            "cached": agg.cached_tokens,
            "total": agg.input_tokens + agg.output_tokens,
        },
        "cost_usd": round(agg.cost_nanousd / 1e9, 9),
        "llm_calls": agg.llm_calls,
        "tool_calls": agg.tool_calls,
        "no_data": not has and agg.llm_calls == 0 and agg.tool_calls == 0,
    }


def _trend_values(f: Mapping[str, Any]) -> dict[str, float | None]:
    latency = f["latency_ms"]
    return {
        "requests": f["requests"],
        "errors": f["errors"],
        "error_rate": f["error_rate"],
        "throughput": f["throughput"],
        "latency_p50": latency["p50"],
        "latency_p95": latency["p95"],
        "latency_p99": latency["p99"],
        "tokens": f["tokens"]["total"],
        "cost_usd": f["cost_usd"],
    }


def trend(current: float | None, previous: float | None) -> dict[str, Any]:
    """Percent change and up/down/stable (within ±5 % is stable)."""
    if current is None or previous is None:
        return {"change_pct": None, "direction": None}
    if previous == 0:
        if current == 0:
            return {"change_pct": 0.0, "direction": "stable"}
        return {"change_pct": None, "direction": "up" if current > 0 else "down"}
    change = 100.0 * (current - previous) / abs(previous)
    direction = "stable" if abs(change) <= TREND_BAND_PCT else ("up" if change > 0 else "down")
    return {"change_pct": round(change, 2), "direction": direction}


def trends(current: Mapping[str, Any], previous: Mapping[str, Any]) -> dict[str, Any]:
    cur, prev = _trend_values(current), _trend_values(previous)
    return {name: trend(cur[name], prev[name]) for name in cur}


# --- time series -------------------------------------------------------------------------------

METRICS: dict[str, str] = {
    "requests": "count",
    "errors": "count",
    "error_rate": "percent",
    "throughput": "req/s",
    "latency_p50": "ms",
    "latency_p95": "ms",
    "latency_p99": "ms",
    "latency_avg": "ms",
    "tokens": "tokens",
    "tokens_input": "tokens",
    "tokens_output": "tokens",
    "cost": "usd",
    "llm_calls": "count",
    "tool_calls": "count",
}
NICE_INTERVALS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
MAX_POINTS = 1000
AUTO_POINTS = 300
MAX_SERIES = 20


def kinds_for(metric: str, *, model_scope: bool) -> tuple[str, ...]:
    """The rollup kinds a metric reads (so a chart fetches only those rows)."""
    if metric in ("tokens", "tokens_input", "tokens_output", "cost", "llm_calls") or model_scope:
        return ("llm", "embedding")
    if metric == "tool_calls":
        return ("tool",)
    return (REQUEST,)


def auto_interval(window_seconds: int) -> int:
    """The smallest nice interval giving at most ~300 points."""
    for interval in NICE_INTERVALS:
        if window_seconds / interval <= AUTO_POINTS:
            return interval
    return NICE_INTERVALS[-1]


def metric_value(metric: str, agg: Aggregate, interval_seconds: int) -> float | None:
    f_requests = agg.requests
    if metric == "requests":
        return f_requests
    if metric == "errors":
        return agg.errors
    if metric == "error_rate":
        return round(100.0 * agg.errors / f_requests, 3) if f_requests else None
    if metric == "throughput":
        return round(f_requests / interval_seconds, 6)
    if metric.startswith("latency_"):
        if not f_requests:
            return None
        if metric == "latency_avg":
            return round(agg.duration_sum_ms / f_requests, 3)
        q = LATENCY_QUANTILES[metric]
        return _round(hist.quantile(agg.histogram, q, max_ms=agg.duration_max_ms))
    if metric == "tokens":
        return agg.input_tokens + agg.output_tokens
    if metric == "tokens_input":
        return agg.input_tokens
    if metric == "tokens_output":
        return agg.output_tokens
    if metric == "cost":
        return round(agg.cost_nanousd / 1e9, 9)
    if metric == "llm_calls":
        return agg.llm_calls
    if metric == "tool_calls":
        return agg.tool_calls
    raise ValueError(f"unknown metric {metric!r}")


def series(
    rows: Iterable[RollupRow] | Iterable[LatencyRow],
    metric: str,
    *,
    start_s: int,
    end_s: int,
    interval_s: int,
    group_by: str | None = None,
    model_scope: bool = False,
) -> list[dict[str, Any]]:
    """Aligned buckets from start_s to end_s for each group (gaps: 0 for counts, None for
    ratios and latencies). More than 20 groups: the smallest are merged into "other"."""
    buckets = list(range(start_s, end_s, interval_s))
    needs_histogram = metric in LATENCY_QUANTILES
    grouped: dict[str, dict[int, list[Any]]] = {}
    for row in rows:
        key = "all" if group_by is None else getattr(row, group_by) or "(none)"
        slot = (row.bucket_start - start_s) // interval_s * interval_s + start_s
        grouped.setdefault(key, {}).setdefault(slot, []).append(row)
    if group_by is None and not grouped:
        grouped["all"] = {}
    totals = {
        key: sum(r.count for rs in slots.values() for r in rs) for key, slots in grouped.items()
    }
    ordered = sorted(grouped, key=lambda k: (-totals[k], k))
    if len(ordered) > MAX_SERIES:
        keep, rest = ordered[: MAX_SERIES - 1], ordered[MAX_SERIES - 1 :]
        other: dict[int, list[Any]] = {}
        for key in rest:
            for slot, rs in grouped.pop(key).items():
                other.setdefault(slot, []).extend(rs)
        grouped["other"] = other
        ordered = [*keep, "other"]
    out = []
    for key in ordered:
        slots = grouped[key]
        if needs_histogram:  # the costly case: merge each slot's histograms (memoised)
            values = [_latency_point(metric, slots.get(b), model_scope) for b in buckets]
        else:
            values = [
                metric_value(
                    metric,
                    aggregate(slots.get(b, ()), model_scope=model_scope, histograms=False),
                    interval_s,
                )
                for b in buckets
            ]
        labels = {} if group_by is None else {group_by: key}
        out.append({"name": key, "labels": labels, "values": values})
    return out


#: Latency points kept, keyed by the histograms behind them. A chart's past buckets are the
#: same rows on every refresh (the dashboard re-reads its window every few seconds), so their
#: merged histograms are computed once; a bucket whose rows changed (new data, a late export)
#: has other histogram texts, a new key, so a cached point is never stale. The open buckets'
#: rows change with every ingest commit, so a point is cached only once its key comes again
#: (hist.SeenBefore): otherwise every refresh added a key per series, each holding its texts,
#: and the cache grew the heap for 20 minutes before it was full. 8,192 points hold a 24 h
#: chart at 5 min for 20 series.
SLOT_CACHE_SIZE = 8192
_seen_slot = hist.SeenBefore(4 * SLOT_CACHE_SIZE)


def _latency_point(
    metric: str, rows: list[RollupRow] | list[LatencyRow] | None, model_scope: bool
) -> float | None:
    """A latency percentile over one bucket's rows (``metric``: latency_p50/p95/p99)."""
    if not rows:
        return None
    texts = []
    max_ms = 0.0
    for row in rows:  # the request rows, as aggregate() counts them
        if _is_request(row.kind, model_scope) and row.count:
            texts.append(row.histogram)
            max_ms = max(max_ms, row.duration_max_ms)
    if not texts:
        return None
    key = (metric, tuple(texts), max_ms)
    return _quantile_cached(*key) if _seen_slot(key) else _quantile(*key)


def _quantile(metric: str, texts: tuple[str, ...], max_ms: float) -> float | None:
    return _round(hist.quantile(hist.loads_many(texts), LATENCY_QUANTILES[metric], max_ms=max_ms))


_quantile_cached = functools.lru_cache(maxsize=SLOT_CACHE_SIZE)(_quantile)
