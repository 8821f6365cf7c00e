"""What a request's spans will add to the trace summaries and rollups, computed where the
request is parsed (an ingest worker process) instead of in the writer (pure).

The writer is the one serial stage of ingest (one thread, one SQLite write lock), so every
microsecond moved out of it is throughput: pricing the model calls, folding the spans into
per-trace summary rows and into rollup deltas at the three resolutions happen here, on the
other core. The writer uses these only for a request whose spans were all stored as they were
parsed — none a resend, none given another agent at store time (ingest/writer.py
``_inherit_agents``); otherwise it computes them from what it stored, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pharos.server.analytics.rollups import PackedDeltas, packed_deltas
from pharos.server.ingest.normalize import NormalizedBatch, SpanRecord, TraceDelta, trace_deltas

#: A trace summary delta as the writer's upsert row, without its last column (``updated_ns``).
TraceRow = tuple[Any, ...]


def trace_row(d: TraceDelta) -> TraceRow:
    return (
        d.trace_id,
        d.root_span_id,
        d.name,
        d.agent,
        d.agent_rank,
        d.start_ns,
        d.end_ns,
        (d.end_ns - d.start_ns) / 1_000_000,
        d.span_count,
        d.error_count,
        d.llm_calls,
        d.tool_calls,
        d.input_tokens,
        d.output_tokens,
        d.cached_tokens,
        d.cost_nanousd,
        "error" if d.error_count else "ok",
        d.error_message,
    )


def trace_rows(records: Iterable[SpanRecord]) -> list[TraceRow]:
    """One summary row per trace of the records, sorted by trace id (one lock order)."""
    return sorted((trace_row(d) for d in trace_deltas(records)), key=lambda r: str(r[0]))


@dataclass(slots=True)
class Derived:
    #: Summary rows per trace, sorted by trace id.
    traces: list[TraceRow]
    #: Rollup deltas by resolution name (``1m``, ``1h``, ``1d``).
    rollups: dict[str, PackedDeltas]
    #: The price table version the model calls were priced with (cost/book.py).
    price_version: int

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (Derived, (self.traces, self.rollups, self.price_version))


def derive(
    batch: NormalizedBatch, price: Callable[[Iterable[SpanRecord]], None], price_version: int
) -> None:
    """Price the batch's model calls (``price`` sets ``cost_nanousd`` where the client sent
    none), then attach what its spans add to the summaries and rollups."""
    if not batch.spans:
        return
    price(batch.spans)
    batch.derived = Derived(trace_rows(batch.spans), packed_deltas(batch.spans), price_version)
