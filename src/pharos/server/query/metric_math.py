"""Pure arithmetic of the metrics read API: counter increases with resets, histogram deltas,
merging and quantiles, and aligning points into time buckets. No I/O, no clock.

Per type, a bucket's value is:

- **cumulative monotonic sum** (a counter): the increase inside the bucket, and the rate per
  second (increase / bucket seconds). A value lower than the previous one, or a new start time,
  is a reset: the new value is counted from zero.
- **delta sum**: the sum of the deltas in the bucket (and, when monotonic, the rate).
- **gauge** and **cumulative non-monotonic sum** (an up-down counter): the last value.
- **histogram**: the distribution of the observations made inside the bucket (cumulative
  histograms are differenced point to point, with the same reset rule) — count, sum, average
  and p50/p95/p99 by linear interpolation inside the bucket holding the quantile.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class NumberPoint:
    start_ns: int | None
    time_ns: int
    value: float


@dataclass(slots=True)
class Hist:
    """An explicit-bucket histogram: ``counts[i]`` holds values in ``(bounds[i-1], bounds[i]]``
    (the first bucket from -inf, the last to +inf). ``bounds`` empty: count and sum only."""

    bounds: tuple[float, ...]
    counts: Sequence[float]
    count: int
    sum: float | None = None
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True, slots=True)
class HistPoint:
    start_ns: int | None
    time_ns: int
    hist: Hist


# --- counters ----------------------------------------------------------------------------------


def _restarted(prev_start: int | None, start: int | None) -> bool:
    return prev_start is not None and start is not None and start != prev_start


def counter_increases(points: Sequence[NumberPoint], since_ns: int) -> list[tuple[int, float]]:
    """``(time_ns, increase)`` for each point of one cumulative counter series (sorted by time).

    The first point is only a baseline, unless the series started at or after ``since_ns`` (the
    start of the data fetched): then all of its value was counted since. A value lower than the
    previous one, or a different start time, is a reset: the new value counts from zero.
    """
    out: list[tuple[int, float]] = []
    prev: NumberPoint | None = None
    for p in points:
        if prev is None:
            if p.start_ns is not None and p.start_ns >= since_ns:
                out.append((p.time_ns, p.value))
        elif p.value < prev.value or _restarted(prev.start_ns, p.start_ns):
            out.append((p.time_ns, p.value))
        else:
            out.append((p.time_ns, p.value - prev.value))
        prev = p
    return out


# --- histograms --------------------------------------------------------------------------------


def histogram_deltas(
    points: Sequence[HistPoint], since_ns: int, cumulative: bool
) -> list[tuple[int, Hist]]:
    """The observations made at each point: delta histograms as they are, cumulative ones
    differenced from the previous point (a lower count, other bounds or a new start time is a
    reset: the point is taken whole; the first point is a baseline unless it started at or after
    ``since_ns``). The min/max of a difference are unknown (None)."""
    if not cumulative:
        return [(p.time_ns, p.hist) for p in points]
    out: list[tuple[int, Hist]] = []
    prev: HistPoint | None = None
    for p in points:
        h = p.hist
        if prev is None:
            if p.start_ns is not None and p.start_ns >= since_ns:
                out.append((p.time_ns, h))
        elif (
            h.count < prev.hist.count
            or h.bounds != prev.hist.bounds
            or _restarted(prev.start_ns, p.start_ns)
            or any(c < pc for c, pc in zip(h.counts, prev.hist.counts, strict=False))
        ):
            out.append((p.time_ns, h))
        else:
            ph = prev.hist
            s = h.sum - ph.sum if h.sum is not None and ph.sum is not None else None
            out.append(
                (
                    p.time_ns,
                    Hist(
                        h.bounds,
                        [c - pc for c, pc in zip(h.counts, ph.counts, strict=True)],
                        h.count - ph.count,
                        s,
                    ),
                )
            )
        prev = p
    return out


def merge_histograms(hists: Iterable[Hist]) -> Hist | None:
    """One histogram holding all observations. Same bounds: counts are added. Different bounds:
    each bucket's count is spread over the union of the bounds in proportion to the overlap
    (values assumed uniform inside a bucket, as the quantile interpolation assumes anyway)."""
    by_bounds: dict[tuple[float, ...], Hist] = {}
    total, total_sum, has_sum = 0, 0.0, True
    lo: float | None = None
    hi: float | None = None
    for h in hists:
        if h.count <= 0:
            continue
        total += h.count
        if h.sum is None:
            has_sum = False
        else:
            total_sum += h.sum
        if h.min is not None:
            lo = h.min if lo is None else min(lo, h.min)
        if h.max is not None:
            hi = h.max if hi is None else max(hi, h.max)
        if not h.bounds:
            continue
        acc = by_bounds.get(h.bounds)
        if acc is None:
            by_bounds[h.bounds] = Hist(h.bounds, list(h.counts), h.count)
        else:
            acc.counts = [a + b for a, b in zip(acc.counts, h.counts, strict=True)]
            acc.count += h.count
    if total == 0:
        return None
    summed = total_sum if has_sum else None
    if not by_bounds:
        return Hist((), [], total, summed, lo, hi)
    if len(by_bounds) == 1:
        (only,) = by_bounds.values()
        return Hist(only.bounds, only.counts, total, summed, lo, hi)
    union = tuple(sorted({b for bounds in by_bounds for b in bounds}))
    counts = [0.0] * (len(union) + 1)
    for bounds, h in by_bounds.items():
        for i, c in enumerate(h.counts):
            if not c:
                continue
            if i == 0:  # (-inf, bounds[0]]: all of it at or below bounds[0]
                counts[bisect.bisect_left(union, bounds[0])] += c
                continue
            if i == len(bounds):  # (bounds[-1], +inf)
                counts[len(union)] += c
                continue
            a, b = bounds[i - 1], bounds[i]
            j = bisect.bisect_right(union, a)  # first union segment starting at a
            while j < len(union) and union[j] <= b:
                left = union[j - 1]
                counts[j] += c * (union[j] - left) / (b - a)
                j += 1
    return Hist(union, counts, total, summed, lo, hi)


def quantile(h: Hist, q: float) -> float | None:
    """The ``q`` quantile (0..1) by linear interpolation inside the bucket that holds it.

    The first bucket starts at the minimum when known (else at 0 when its bound is positive,
    like Prometheus); the last (+inf) bucket ends at the maximum when known, else its lower
    bound is the answer. The result is clamped to [min, max] when they are known."""
    if not h.bounds or not h.counts:
        return None
    total = sum(h.counts)
    if total <= 0:
        return None
    rank = q * total
    cum = 0.0
    for i, c in enumerate(h.counts):
        if c <= 0:
            continue
        if cum + c >= rank:
            if i == 0:
                upper = h.bounds[0]
                lower = h.min if h.min is not None else (0.0 if upper > 0 else upper)
            elif i == len(h.bounds):
                lower = h.bounds[-1]
                upper = h.max if h.max is not None else lower
            else:
                lower, upper = h.bounds[i - 1], h.bounds[i]
            value = lower + (upper - lower) * max(0.0, rank - cum) / c
            if h.min is not None:
                value = max(value, h.min)
            if h.max is not None:
                value = min(value, h.max)
            return value
        cum += c
    return h.bounds[-1] if h.max is None else h.max


def histogram_stats(h: Hist | None) -> dict[str, float | int | None]:
    if h is None or h.count <= 0:
        return {"count": 0, "sum": None, "avg": None, "p50": None, "p95": None, "p99": None}
    return {
        "count": h.count,
        "sum": _round(h.sum),
        "avg": _round(h.sum / h.count) if h.sum is not None else None,
        "p50": _round(quantile(h, 0.5)),
        "p95": _round(quantile(h, 0.95)),
        "p99": _round(quantile(h, 0.99)),
    }


# --- time buckets ------------------------------------------------------------------------------


def bucket_index(time_ns: int, start_s: int, end_s: int, interval_s: int) -> int | None:
    """The bucket a point falls in: ``[start + k*interval, start + (k+1)*interval)``."""
    seconds = time_ns / 1e9
    if seconds < start_s or seconds >= end_s:
        return None
    return int((seconds - start_s) // interval_s)


def sum_by_bucket(
    values: Iterable[tuple[int, float]], start_s: int, end_s: int, interval_s: int
) -> list[float | None]:
    """Add values per bucket (None where no point fell)."""
    out: list[float | None] = [None] * ((end_s - start_s) // interval_s)
    for t, v in values:
        k = bucket_index(t, start_s, end_s, interval_s)
        if k is not None:
            out[k] = (out[k] or 0.0) + v
    return out


def last_by_bucket(
    values: Iterable[tuple[int, float]], start_s: int, end_s: int, interval_s: int
) -> list[float | None]:
    """The latest value per bucket (None where no point fell)."""
    n = (end_s - start_s) // interval_s
    out: list[float | None] = [None] * n
    latest = [-1] * n
    for t, v in values:
        k = bucket_index(t, start_s, end_s, interval_s)
        if k is not None and t >= latest[k]:
            out[k], latest[k] = v, t
    return out


def combine(columns: Sequence[Sequence[float | None]], how: str) -> list[float | None]:
    """Combine several series' aligned values bucket by bucket (sum, avg, min, max); a bucket
    where no series has a value stays None."""
    if not columns:
        return []
    out: list[float | None] = []
    for values in zip(*columns, strict=True):
        present = [v for v in values if v is not None]
        if not present:
            out.append(None)
        elif how == "sum":
            out.append(math.fsum(present))
        elif how == "avg":
            out.append(math.fsum(present) / len(present))
        elif how == "min":
            out.append(min(present))
        else:
            out.append(max(present))
    return out


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def rounded(values: Iterable[float | None], digits: int = 6) -> list[float | None]:
    return [_round(v, digits) for v in values]


# --- assembling a chart ------------------------------------------------------------------------

MAX_GROUPS = 50
GAUGE_AGGS = ("avg", "sum", "min", "max")
HIST_STATS = ("p50", "p95", "p99", "avg", "count", "sum")


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    key: str
    type: str  # gauge | sum | histogram
    temporality: str  # "" | cumulative | delta
    monotonic: bool
    agent: str
    attributes: dict[str, object]
    resource: dict[str, object]
    unit: str = ""
    description: str = ""


@dataclass(frozen=True, slots=True)
class PointRow:
    time_ns: int
    start_ns: int | None
    value: float | None
    count: int | None
    sum: float | None
    min: float | None
    max: float | None
    bounds: tuple[float, ...]
    counts: tuple[int, ...]


def aggregation_of(type_: str, temporality: str, monotonic: bool) -> str:
    """How a bucket is computed: rate (counters), sum (delta up-down sums), last (gauges and
    cumulative up-down sums) or histogram."""
    if type_ == "histogram":
        return "histogram"
    if type_ == "sum" and monotonic:
        return "rate"
    if type_ == "sum" and temporality == "delta":
        return "sum"
    return "last"


def label_value(info: SeriesInfo, key: str) -> str | None:
    """An attribute of the point, else of the resource, as text (None when absent)."""
    for source in (info.attributes, info.resource):
        if key in source:
            value = source[key]
            if isinstance(value, bool):
                return "true" if value else "false"
            return value if isinstance(value, str) else str(value)
    return None


def group_label(info: SeriesInfo, group_by: str | None) -> str:
    if group_by is None:
        return "all"
    if group_by == "agent":
        return info.agent
    return label_value(info, group_by.removeprefix("attr.")) or "(none)"


def build_series(
    infos: Sequence[SeriesInfo],
    points: dict[str, list[PointRow]],
    *,
    start_s: int,
    end_s: int,
    interval_s: int,
    since_ns: int,
    group_by: str | None,
    agg: str | None,
    stat: str,
) -> tuple[str, list[dict[str, object]], bool]:
    """Aligned buckets per group. Returns (aggregation, groups, truncated)."""
    if not infos:
        return "last", [], False
    first = infos[0]
    aggregation = aggregation_of(first.type, first.temporality, first.monotonic)
    groups: dict[str, list[SeriesInfo]] = {}
    for info in infos:
        groups.setdefault(group_label(info, group_by), []).append(info)
    labels = sorted(groups)
    truncated = len(labels) > MAX_GROUPS
    out: list[dict[str, object]] = []
    n = (end_s - start_s) // interval_s
    for label in labels[:MAX_GROUPS]:
        members = groups[label]
        entry: dict[str, object] = {
            "name": label,
            "labels": {} if group_by is None else {group_by: label},
            "series_count": len(members),
        }
        if aggregation == "histogram":
            per_bucket: list[list[Hist]] = [[] for _ in range(n)]
            for info in members:
                rows = points.get(info.key, [])
                hps = [
                    HistPoint(
                        r.start_ns,
                        r.time_ns,
                        Hist(r.bounds, list(r.counts), r.count or 0, r.sum, r.min, r.max),
                    )
                    for r in rows
                ]
                cumulative = info.temporality == "cumulative"
                for t, h in histogram_deltas(hps, since_ns, cumulative):
                    k = bucket_index(t, start_s, end_s, interval_s)
                    if k is not None:
                        per_bucket[k].append(h)
            stats = [histogram_stats(merge_histograms(hs)) if hs else None for hs in per_bucket]
            columns = {name: [None if s is None else s[name] for s in stats] for name in HIST_STATS}
            entry["values"] = columns[stat]
            entry["stats"] = columns
        else:
            series_values: list[list[float | None]] = []
            increases: list[list[float | None]] = []
            for info in members:
                rows = [r for r in points.get(info.key, []) if r.value is not None]
                if aggregation == "rate":
                    if info.temporality == "delta":
                        incs = [(r.time_ns, r.value or 0.0) for r in rows]
                    else:
                        nps = [NumberPoint(r.start_ns, r.time_ns, r.value or 0.0) for r in rows]
                        incs = counter_increases(nps, since_ns)
                    increases.append(sum_by_bucket(incs, start_s, end_s, interval_s))
                elif aggregation == "sum":
                    vals = [(r.time_ns, r.value or 0.0) for r in rows]
                    series_values.append(sum_by_bucket(vals, start_s, end_s, interval_s))
                else:
                    vals = [(r.time_ns, r.value or 0.0) for r in rows]
                    series_values.append(last_by_bucket(vals, start_s, end_s, interval_s))
            if aggregation == "rate":
                total = combine(increases, "sum") if increases else [None] * n
                entry["values"] = rounded(None if v is None else v / interval_s for v in total)
                entry["increase"] = rounded(total)
            elif aggregation == "sum":
                entry["values"] = rounded(combine(series_values, "sum") or [None] * n)
            else:
                how = agg or ("avg" if first.type == "gauge" else "sum")
                entry["values"] = rounded(combine(series_values, how) or [None] * n)
        out.append(entry)
    return aggregation, out, truncated
