"""Error tracking, pure: which messages group together, occurrences from spans and logs, and how
a group's row changes (counts, latest stack, agents, recent traces, regression)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from pharos.server.ingest.exceptions import (
    MAX_AGENTS,
    MAX_RECENT_TRACES,
    OPEN,
    RESOLVED,
    ErrorOccurrence,
    log_occurrences,
    log_share,
    merge_group,
    minute_counts,
    new_group,
    occurrence,
    occurrence_key,
    reopen,
    resolve,
    span_occurrences,
    stood_for_by_spans,
)
from pharos.server.ingest.fingerprint import fingerprint, normalize_message
from pharos.server.ingest.logs import error_fields, normalize_logs
from pharos.server.ingest.normalize import Limits, normalize_traces
from tests.log_helpers import log_record, logs_request

# (type, message) pairs that are the same error, differing only in what varies per occurrence.
SAME = [
    (("TimeoutError", "timed out after 30s"), ("TimeoutError", "timed out after 45s")),
    (("KeyError", "'user_id'"), ("KeyError", "'session'")),
    (
        ("ValueError", 'invalid literal for int() with base 10: "abc"'),
        ("ValueError", 'invalid literal for int() with base 10: "x1"'),
    ),
    (
        ("RateLimitError", "Error code: 429 - Rate limit reached for gpt-4o in org-abc12"),
        ("RateLimitError", "Error code: 429 - Rate limit reached for gpt-4o in org-zz981"),
    ),
    (
        ("HTTPError", "GET https://api.example.com/v1/users/42 failed"),
        ("HTTPError", "GET https://api.example.com/v1/users/7?x=1 failed"),
    ),
    (("NotFound", "user alice@example.com not found"), ("NotFound", "user bob@x.org not found")),
    (
        ("LookupError", "conversation 123e4567-e89b-12d3-a456-426614174000 missing"),
        ("LookupError", "conversation 00000000-0000-4000-8000-000000000001 missing"),
    ),
    (
        ("ConnectionError", "connect to 10.0.0.12:5432 refused"),
        ("ConnectionError", "connect to 192.168.1.7:6379 refused"),
    ),
    (
        ("ConnectionError", "connect to [2001:db8::1]:5432 refused"),
        ("ConnectionError", "connect to [fe80::7]:6379 refused"),
    ),
    (
        ("FileNotFoundError", "No such file: /var/lib/pharos/run-1/out.json"),
        ("FileNotFoundError", "No such file: /tmp/x/y.json"),
    ),
    (
        ("FileNotFoundError", r"No such file: C:\Users\bob\out.json"),
        ("FileNotFoundError", r"No such file: D:\data\out.json"),
    ),
    (
        ("TypeError", "object at 0x7f3a2b1c0d90 is not callable"),
        ("TypeError", "object at 0x55d0aa12 is not callable"),
    ),
    (
        ("ToolError", "trace 4bf92f3577b34da6a3ce929d0e0e4736 step failed"),
        ("ToolError", "trace 00f067aa0ba902b7aaaa0000bbbb1111 step failed"),
    ),
    (("ToolError", "request req_8f3k2 failed"), ("ToolError", "request req_19dd0 failed")),
    (("QuotaError", "used 93.5% of 2.5GB"), ("QuotaError", "used 12% of 512MB")),
    (
        ("JobError", "job failed at 2026-11-22T10:00:00.123Z"),
        ("JobError", "job failed at 2027-01-03T23:59:59Z"),
    ),
    (("JobError", "took 1,234ms at 12:03:04"), ("JobError", "took 87ms at 09:00:00")),
    (("ValueError", "ratio -3.5e-9 too small"), ("ValueError", "ratio 1e-6 too small")),
    (("TimeoutError", "  timed   out\tafter 5s "), ("TimeoutError", "timed out after 6s")),
    (  # only the first line counts: a dump or a traceback after it does not split the group
        ("RuntimeError", "step failed\nstate={'a': 1}"),
        ("RuntimeError", "step failed\nstate={'b': 2}\nmore"),
    ),
    (("RuntimeError", "x" * 600 + " tail 1"), ("RuntimeError", "x" * 600 + " tail 2")),
]

DIFFERENT = [
    (("TimeoutError", "timed out after 30s"), ("ConnectionError", "timed out after 30s")),
    (("KeyError", "'user_id'"), ("KeyError", "missing key")),
    (("ValueError", "cannot parse date"), ("ValueError", "cannot parse number")),
    (("ToolError", "search failed"), ("ToolError", "fetch failed")),
    (("HTTPError", "status 404"), ("HTTPError", "status 404 from proxy")),
    (("ValueError", "can't connect"), ("ValueError", "can't disconnect")),  # not quotes
    (("ValueError", "user's session expired"), ("ValueError", "user's token expired")),
    (("Exception", "Connection refused"), ("Exception", "connection refused")),  # case counts
    (("ValueError", "bad input"), (None, "bad input")),
    (("ValueError", ""), ("ValueError", "bad input")),
]


@pytest.mark.parametrize(("a", "b"), SAME, ids=[a[1][:40] for a, _ in SAME])
def test_same_error_groups_together(a: tuple[str | None, str], b: tuple[str | None, str]) -> None:
    assert fingerprint(*a) == fingerprint(*b), (normalize_message(a[1]), normalize_message(b[1]))


@pytest.mark.parametrize(
    ("a", "b"), DIFFERENT, ids=[f"{a[1][:20]}|{b[1][:20]}" for a, b in DIFFERENT]
)
def test_different_errors_stay_apart(a: tuple[str | None, str], b: tuple[str | None, str]) -> None:
    assert fingerprint(*a) != fingerprint(*b), (normalize_message(a[1]), normalize_message(b[1]))


@pytest.mark.parametrize(
    ("message", "normalized"),
    [
        ("timed out after 30s", "timed out after <n>"),
        ("can't open 'a.txt'", "can't open <str>"),
        ("GET https://x.io/a?b=1 failed", "GET <url> failed"),
        ("connect to 10.0.0.1:80", "connect to <ip>"),
        ("file /a/b/c.py line 3", "file <path> line <n>"),
        ("at 0xdeadbeef", "at <hex>"),
        ("id 123e4567-e89b-12d3-a456-426614174000", "id <uuid>"),
        ("user42 not found", "<id> not found"),
        ("mail a.b@c.io", "mail <email>"),
        ("", ""),
        (None, ""),
    ],
)
def test_normalize_message(message: str | None, normalized: str) -> None:
    assert normalize_message(message) == normalized


def test_fingerprint_shape() -> None:
    fp = fingerprint("E", "m")
    assert len(fp) == 16 and int(fp, 16) >= 0
    assert fingerprint(" E ", "m") == fp


T = 1_790_000_000_000_000_000
MIN = 60 * 1_000_000_000


def _occ(
    t: int,
    *,
    agent: str = "a",
    trace: str | None = "t1",
    stack: str | None = None,
    message: str = "timed out after 3s",
) -> ErrorOccurrence:
    return occurrence(
        "TimeoutError", message, stack, source="span", time_ns=t, agent=agent, trace_id=trace
    )


def test_merge_counts_latest_message_stack_agents_and_traces() -> None:
    first = _occ(T + 5 * MIN, stack="stack A", message="timed out after 1s")
    state = new_group(first)
    assert state.count == 0 and state.first_seen_ns == T + 5 * MIN
    state = merge_group(
        state,
        [
            first,
            _occ(T + 2 * MIN, agent="b", trace="t2", message="timed out after 2s"),
            _occ(T + 9 * MIN, agent="a", trace="t3", stack=None, message="timed out after 9s"),
        ],
    )
    assert state.count == 3
    assert (state.first_seen_ns, state.last_seen_ns) == (T + 2 * MIN, T + 9 * MIN)
    assert state.sample_message == "timed out after 9s"  # the latest occurrence's
    assert state.stacktrace == "stack A"  # the latest that had one
    assert state.agents == ["b", "a"]
    assert [t[0] for t in state.recent_traces] == ["t3", "t1", "t2"]  # newest first
    assert state.sample_trace_id == "t3"

    # An older batch arriving late does not replace the latest sample, but counts.
    state = merge_group(state, [_occ(T, trace="t0", stack="old stack", message="after 0s")])
    assert state.count == 4 and state.first_seen_ns == T
    assert state.sample_message == "timed out after 9s" and state.stacktrace == "stack A"
    # A newer one with a stack replaces it.
    state = merge_group(state, [_occ(T + 20 * MIN, trace="t3", stack="stack B")])
    assert state.stacktrace == "stack B"
    assert [t[0] for t in state.recent_traces][:2] == ["t3", "t1"]  # t3 moved, not repeated
    assert len({t[0] for t in state.recent_traces}) == len(state.recent_traces)


def test_merge_caps_agents_and_traces() -> None:
    occs = [_occ(T + i, agent=f"agent{i}", trace=f"trace{i}") for i in range(80)]
    state = merge_group(new_group(occs[0]), occs)
    assert len(state.agents) == MAX_AGENTS and state.agents[0] == "agent0"
    assert len(state.recent_traces) == MAX_RECENT_TRACES
    assert state.recent_traces[0][0] == "trace79"


def test_regression_only_after_the_resolution() -> None:
    state = merge_group(new_group(_occ(T)), [_occ(T)])
    resolved = resolve(state, T + 10 * MIN)
    assert resolved.status == RESOLVED and resolved.resolved_at_ns == T + 10 * MIN
    late = merge_group(resolved, [_occ(T + 5 * MIN)])  # from before the resolution
    assert late.status == RESOLVED and late.regressed_at_ns is None and late.count == 2
    again = merge_group(late, [_occ(T + 12 * MIN), _occ(T + 11 * MIN)])
    assert again.status == OPEN and again.regressed_at_ns == T + 11 * MIN
    manual = reopen(resolve(again, T + 20 * MIN))
    assert manual.status == OPEN and manual.resolved_at_ns is None
    assert manual.regressed_at_ns is None


def test_row_roundtrip_is_json() -> None:
    state = merge_group(new_group(_occ(T)), [_occ(T)])
    row = state.as_row()
    assert orjson.loads(row["recent_traces"]) == [["t1", T, "a"]]
    assert orjson.loads(row["agents"]) == ["a"]


def test_minute_counts() -> None:
    counts = minute_counts(
        [_occ(T), _occ(T + 1), _occ(T + MIN, agent="b"), _occ(T + MIN + 5, agent="b")]
    )
    base = T // 1_000_000_000 // 60 * 60
    fp = _occ(T).fingerprint
    assert counts == {(base, fp, "a"): 2, (base + 60, fp, "b"): 2}


def test_span_exception_events_become_occurrences() -> None:
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    from tests.otlp_helpers import kv, request, span

    failing = span(0xE1, 1, name="tool", error="boom", attrs={"gen_ai.agent.name": "planner"})
    failing.events.append(
        Span.Event(
            name="exception",
            time_unix_nano=T + 7,
            attributes=[
                kv("exception.type", "ToolError"),
                kv("exception.message", "search failed for 'cats'"),
                kv("exception.stacktrace", "Traceback ..."),
            ],
        )
    )
    failing.events.append(Span.Event(name="retry", time_unix_nano=T + 8))
    no_time = span(0xE1, 2, parent=1, name="llm")
    no_time.events.append(Span.Event(name="exception", attributes=[kv("exception.type", "E")]))
    quiet = span(0xE1, 3, parent=1, name="quiet")
    batch = normalize_traces(request([failing, no_time, quiet]), Limits())
    occs = span_occurrences(batch.spans)
    assert len(occs) == 2
    tool, llm = occs
    assert (tool.exc_type, tool.sample_message, tool.stacktrace) == (
        "ToolError",
        "search failed for 'cats'",
        "Traceback ...",
    )
    assert tool.message == "search failed for <str>" and tool.source == "span"
    assert (tool.time_ns, tool.agent, tool.trace_id) == (T + 7, "planner", f"{0xE1:032x}")
    assert llm.exc_type == "E" and llm.sample_message is None
    assert llm.time_ns == batch.spans[1].end_ns  # no event time: the span's end


def test_error_logs_become_occurrences_grouped_by_level_without_a_type() -> None:
    records = [
        log_record("disk full on /var/a/b", level="error", time_ns=T),
        log_record("disk full on /srv/c/d", level="error", time_ns=T + 1),
        log_record("disk full on /var/a/b", level="fatal", time_ns=T + 2),
        log_record("just info", level="info", time_ns=T + 3),
        log_record(
            "charge failed",
            level="error",
            time_ns=T + 4,
            trace=5,
            attrs={"exception.type": "TimeoutError", "exception.message": "after 30s"},
        ),
    ]
    logs = normalize_logs(logs_request(records, service="svc"), Limits()).logs
    occs = log_occurrences(logs)
    assert len(occs) == 4
    err1, err2, fatal, exc = occs
    assert err1.fingerprint == err2.fingerprint != fatal.fingerprint
    assert err1.exc_type is None and err1.source == "log"
    assert exc.exc_type == "TimeoutError" and exc.sample_message == "after 30s"
    assert exc.fingerprint == fingerprint("TimeoutError", "after 45s")
    assert exc.trace_id == f"{5:032x}" and exc.agent == "svc"
    # The log's own fingerprint (computed at normalization) names the same group.
    assert [r.fingerprint for r in logs if r.fingerprint] == [o.fingerprint for o in occs]


# --- one failure reported on its span and by a log counts once -------------------------------


def _reported(source: str, span_id: str | None, t: int = T, trace: str | None = "t1") -> Any:
    return occurrence(
        "TimeoutError",
        "timed out after 3s",
        None,
        source=source,
        time_ns=t,
        agent=source,
        trace_id=trace,
        span_id=span_id,
    )


@pytest.mark.parametrize(
    ("events", "logs", "expected"), [(1, 1, 1), (2, 1, 2), (1, 2, 2), (2, 2, 2), (0, 3, 3)]
)
def test_each_identity_counts_max_of_events_and_logs_in_either_order(
    events: int, logs: int, expected: int
) -> None:
    span_side = [_reported("span", "s1", T + i) for i in range(events)]
    log_side = [_reported("log", "s1", T + 10 + i) for i in range(logs)]
    key = occurrence_key(span_side[0] if span_side else log_side[0])
    assert key is not None
    # The span first: its events count, then the logs count only beyond them.
    late_logs = log_share(log_side, {}, {key: events})
    assert events + len(late_logs) == expected
    # The logs first (they all count), then the span: its events count and take logs back.
    taken = stood_for_by_spans(span_side, {key: log_side})
    assert logs + events - len(taken) == expected
    assert all(o.source == "log" for o in taken)
    # Logs split over two requests after the span: the same total.
    first = log_share(log_side[:1], {}, {key: events})
    rest = log_share(log_side[1:], {key: 1}, {key: events})
    assert events + len(first) + len(rest) == expected


def test_occurrences_without_span_context_or_of_other_spans_always_count() -> None:
    no_span = _reported("log", None)
    no_trace = _reported("log", "s1", trace=None)
    other_span = _reported("log", "s2")
    span_event = _reported("span", "s1")
    key = occurrence_key(span_event)
    assert key == ("t1", "s1", span_event.fingerprint)
    assert occurrence_key(no_span) is None and occurrence_key(no_trace) is None
    assert log_share([no_span, no_trace, other_span], {}, {key: 5}) == [
        no_span,
        no_trace,
        other_span,
    ]
    assert stood_for_by_spans([span_event], {occurrence_key(other_span): [other_span]}) == []


def test_a_stored_error_log_gets_the_fingerprint_it_had_at_ingest() -> None:
    record = log_record(
        "charging failed",
        level="error",
        trace=5,
        span_id=6,
        attrs={"exception.type": "TimeoutError", "exception.message": "timed out after 3s"},
    )
    plain = log_record({"event": "db down", "code": 7}, level="fatal")
    for r in normalize_logs(logs_request([record, plain]), Limits()).logs:
        assert r.fingerprint is not None
        stored = error_fields(orjson.loads(r.attributes), r.body, r.level)
        assert stored == (r.exc_type, r.exc_message, r.stacktrace, r.fingerprint)
        (found,) = log_occurrences([r])
        assert (
            found.span_id == r.span_id
            and found.fingerprint
            == occurrence(
                stored[0],
                stored[1],
                stored[2],
                source="log",
                time_ns=r.time_ns,
                agent=r.agent,
                trace_id=r.trace_id,
                group_key=f"log:{r.level}",
            ).fingerprint
        )
