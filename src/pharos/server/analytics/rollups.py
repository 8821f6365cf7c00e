"""What each stored span adds to the rollups (pure), and how a time range splits into rollup
blocks of the three resolutions.

Rollup rows are keyed (bucket_start, agent, model, kind) with bucket_start in epoch seconds at
one of three resolutions: a minute, an hour, a day. ``kind`` is ``request`` for an agent run
(a trace's root span, or any span of agent kind: DESIGN §3) and the span kind for model calls
and tools (llm, embedding, tool, retriever, reranker). ``model`` is "" where there is none.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from pharos.server.analytics.histogram import bucket_of
from pharos.server.ingest.normalize import SpanRecord

#: resolution name -> seconds; every span is added at each resolution.
RESOLUTIONS = {"1m": 60, "1h": 3600, "1d": 86400}
REQUEST = "request"
ROLLUP_KINDS = frozenset({"llm", "embedding", "tool", "retriever", "reranker"})
NS = 1_000_000_000

RollupKey = tuple[int, str, str, str]  # bucket_start (s), agent, model, kind


@dataclass(slots=True)
class RollupDelta:
    count: int = 0
    errors: int = 0
    duration_sum_ms: float = 0.0
    duration_max_ms: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_nanousd: int = 0
    histogram: Counter[int] = field(default_factory=Counter)

    def add(self, other: RollupDelta) -> None:
        self.count += other.count
        self.errors += other.errors
        self.duration_sum_ms += other.duration_sum_ms
        self.duration_max_ms = max(self.duration_max_ms, other.duration_max_ms)
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cached_tokens += other.cached_tokens
        self.cost_nanousd += other.cost_nanousd
        self.histogram.update(other.histogram)


def moved_deltas(
    before: Iterable[SpanRecord], after: Iterable[SpanRecord], seconds: int
) -> dict[RollupKey, RollupDelta]:
    """Deltas that move stored spans from the rows ``before`` counted them in to the rows of
    ``after`` (the same spans with another agent). The old rows keep their max duration."""
    deltas = rollup_deltas(after, seconds)
    for key, old in rollup_deltas(before, seconds).items():
        target = deltas.get(key)
        if target is None:
            target = deltas[key] = RollupDelta()
        target.add(
            RollupDelta(
                count=-old.count,
                errors=-old.errors,
                duration_sum_ms=-old.duration_sum_ms,
                input_tokens=-old.input_tokens,
                output_tokens=-old.output_tokens,
                cached_tokens=-old.cached_tokens,
                cost_nanousd=-old.cost_nanousd,
                histogram=Counter({b: -n for b, n in old.histogram.items()}),
            )
        )
    return deltas


def rollup_kinds(record: SpanRecord) -> list[tuple[str, str]]:
    """The (kind, model) rollup rows a span counts in."""
    out: list[tuple[str, str]] = []
    if record.parent_span_id is None or record.kind == "agent":
        out.append((REQUEST, ""))
    if record.kind in ROLLUP_KINDS:
        out.append((record.kind, record.model or ""))
    return out


def rollup_deltas(records: Iterable[SpanRecord], seconds: int) -> dict[RollupKey, RollupDelta]:
    """Fold spans (each stored for the first time) into deltas per rollup row."""
    deltas: dict[RollupKey, RollupDelta] = {}
    for r in records:
        kinds = rollup_kinds(r)
        if not kinds:
            continue
        start = (r.start_ns // NS) // seconds * seconds
        bucket = bucket_of(r.duration_ms)
        failed = r.status == "error"
        for kind, model in kinds:
            key = (start, r.agent, model, kind)
            d = deltas.get(key)
            if d is None:
                d = deltas[key] = RollupDelta()
            d.count += 1
            d.errors += failed
            d.duration_sum_ms += r.duration_ms
            if r.duration_ms > d.duration_max_ms:
                d.duration_max_ms = r.duration_ms
            d.input_tokens += r.input_tokens or 0
            d.output_tokens += r.output_tokens or 0
            d.cached_tokens += r.cached_tokens or 0
            d.cost_nanousd += r.cost_nanousd or 0
            d.histogram[bucket] += 1
    return deltas


def coarsen(deltas: dict[RollupKey, RollupDelta], seconds: int) -> dict[RollupKey, RollupDelta]:
    """Re-key finer deltas to a coarser resolution (their buckets nest exactly)."""
    out: dict[RollupKey, RollupDelta] = {}
    for (start, agent, model, kind), delta in deltas.items():
        key = (start // seconds * seconds, agent, model, kind)
        target = out.get(key)
        if target is None:
            target = out[key] = RollupDelta()
        target.add(delta)
    return out


def cover(start_s: int, end_s: int) -> list[tuple[str, int, int]]:
    """Split the minute-aligned range [start_s, end_s) into the fewest rollup blocks:
    whole days where possible, whole hours at the edges, minutes at the very edges.
    Returns (resolution, first bucket_start, end) triples whose ranges tile the input."""
    if start_s % 60 or end_s % 60:
        raise ValueError("cover() needs minute-aligned bounds")
    if end_s <= start_s:
        return []
    return _cover(start_s, end_s, ("1d", "1h", "1m"))


def _cover(start: int, end: int, levels: tuple[str, ...]) -> list[tuple[str, int, int]]:
    level, rest = levels[0], levels[1:]
    size = RESOLUTIONS[level]
    if not rest:
        return [(level, start, end)] if end > start else []
    first = -(-start // size) * size  # first block boundary at or after start
    last = end // size * size  # last block boundary at or before end
    if first >= last:
        return _cover(start, end, rest)
    out = _cover(start, first, rest)
    out.append((level, first, last))
    out += _cover(last, end, rest)
    return out


# --- packed deltas (computed in ingest workers, merged by the writer) --------------------------

#: A rollup delta as a plain tuple: count, errors, duration_sum_ms, duration_max_ms, input,
#: output and cached tokens, cost (nano-USD), histogram {bucket: count}. Tuples of ints and a
#: dict cross a process boundary ~10x cheaper than :class:`RollupDelta` objects, and the writer
#: merges them with stored rows as they are.
Packed = tuple[int, int, float, float, int, int, int, int, dict[int, int]]
PackedDeltas = dict[RollupKey, Packed]


def pack(deltas: dict[RollupKey, RollupDelta]) -> PackedDeltas:
    return {
        key: (
            d.count,
            d.errors,
            d.duration_sum_ms,
            d.duration_max_ms,
            d.input_tokens,
            d.output_tokens,
            d.cached_tokens,
            d.cost_nanousd,
            dict(d.histogram),
        )
        for key, d in deltas.items()
    }


def packed_deltas(records: Iterable[SpanRecord]) -> dict[str, PackedDeltas]:
    """What spans (each stored for the first time) add to the rollups of every resolution."""
    minute = rollup_deltas(records, RESOLUTIONS["1m"])
    return {
        name: pack(minute if seconds == 60 else coarsen(minute, seconds))
        for name, seconds in RESOLUTIONS.items()
    }


def add_packed(target: PackedDeltas, more: PackedDeltas) -> None:
    """Add ``more`` into ``target`` (new tuples: the values of either are never modified)."""
    for key, p in more.items():
        t = target.get(key)
        if t is None:
            target[key] = p
            continue
        histogram = dict(t[8])
        for bucket, n in p[8].items():
            histogram[bucket] = histogram.get(bucket, 0) + n
        target[key] = (
            t[0] + p[0],
            t[1] + p[1],
            t[2] + p[2],
            max(t[3], p[3]),
            t[4] + p[4],
            t[5] + p[5],
            t[6] + p[6],
            t[7] + p[7],
            histogram,
        )
