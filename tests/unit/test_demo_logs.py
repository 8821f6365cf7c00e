"""The demo's logs: the traces are unchanged, the logs are seeded, levels are mixed, some carry
trace context and some do not, and every failed call logs the span's exception."""

from __future__ import annotations

from collections import Counter

from pharos.server.demo import demo_requests
from pharos.server.demo_logs import demo_batches
from pharos.server.ingest.exceptions import log_occurrences, span_occurrences
from pharos.server.ingest.logs import normalize_logs
from pharos.server.ingest.normalize import Limits, normalize_traces

END = 1_790_000_000_000_000_000


def test_demo_logs() -> None:
    batches = list(demo_batches(400, seed=3, end_ns=END, window_seconds=3600, max_spans=256))
    assert [t for t, _ in batches] == list(
        demo_requests(400, seed=3, end_ns=END, window_seconds=3600, max_spans=256)
    )
    again = list(demo_batches(400, seed=3, end_ns=END, window_seconds=3600, max_spans=256))
    assert [lg for _, lg in again] == [lg for _, lg in batches]  # seeded

    spans = [s for t, _ in batches for s in normalize_traces(t, Limits()).spans]
    logs = [r for _, lg in batches for r in normalize_logs(lg, Limits()).logs]
    assert len(logs) > 400
    levels = Counter(r.level for r in logs)
    assert set(levels) == {"debug", "info", "warn", "error"}
    assert levels["info"] >= 400  # one line per run at least
    with_trace = [r for r in logs if r.trace_id]
    assert 0 < len(logs) - len(with_trace) < len(logs) // 5  # some lines outside any run
    assert {r.trace_id for r in with_trace} <= {s.trace_id for s in spans}
    assert {r.agent for r in logs} == {s.agent for s in spans if s.parent_span_id is None}

    # Each failed call's exception is logged too: the same error group, the same traces.
    from_spans = Counter(o.fingerprint for o in span_occurrences(spans))
    from_logs = Counter(o.fingerprint for o in log_occurrences(logs) if o.exc_type)
    assert from_spans and from_spans == from_logs
