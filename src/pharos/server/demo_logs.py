"""Seeded OTLP logs from the demo agents (``pharos serve --demo``, ``pharos demo``): what an
agent's ``logging`` would say during its runs, with the run's trace context — a line when a run
starts, debug lines for tool results, warnings for slow calls, and for every failed call an
ERROR record with the exception's type, message and stack trace (the same error as the span's
exception event, so both land in one error group) — plus lines from outside any run, without
trace context: cache refreshes, quota warnings, lost connections.

The log lines of a run are drawn from a generator seeded by its trace id, so the traces stay
exactly those of :mod:`pharos.server.demo` for a given seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from pharos.server.demo import (
    AGENTS,
    MS,
    NS,
    DemoAgent,
    _kv,
    _resource,
    generate_traces,
    pack_requests,
)

SEVERITY = {"debug": 5, "info": 9, "warn": 13, "error": 17}
SLOW_MS = 2_000
#: What each agent logs when a run starts.
START_LINES = {
    "support-bot": "Ticket T-{n} opened by user-{m}: routing to the support flow",
    "research-agent": "Researching '{topic}' for user-{m}",
    "code-reviewer": "Reviewing PR #{n} ({files} files changed)",
    "sql-analyst": "Question from user-{m}: '{question}'",
    "triage-router": "Classifying ticket T-{n}",
}
TOPICS = ("battery recycling", "EU AI Act", "vector databases", "solar subsidies", "RAG evals")
QUESTIONS = ("revenue by region last quarter", "churn by plan", "top 10 customers by spend")
#: Lines outside any run: (level, template, weight), and how often per run.
BACKGROUND = (
    ("info", "Prompt cache refreshed: {n} entries, {m} evicted", 4),
    ("info", "Health check ok ({n} ms)", 4),
    ("warn", "Rate limit at {p}% of the tokens-per-minute quota for {model}", 2),
    ("warn", "Retrying upload of the conversation archive (attempt {a} of 5)", 1),
    ("error", "Lost connection to the vector store at 10.0.3.{n}:6333; reconnecting", 0.5),
    ("error", "Worker heartbeat missed for {a}s", 0.3),
)
BACKGROUND_RATE = 0.25


def _record(
    level: str,
    body: str,
    time_ns: int,
    agent: DemoAgent,
    *,
    trace_id: bytes = b"",
    span_id: bytes = b"",
    attrs: list[KeyValue] | None = None,
) -> LogRecord:
    return LogRecord(
        time_unix_nano=time_ns,
        observed_time_unix_nano=time_ns + 2 * MS,
        severity_number=SEVERITY[level],  # type: ignore[arg-type]
        severity_text=level.upper() if level != "warn" else "WARNING",
        body=AnyValue(string_value=body),
        attributes=[_kv("gen_ai.agent.name", agent.name), *(attrs or [])],
        trace_id=trace_id,
        span_id=span_id,
    )


def _attr(span: Span, key: str) -> Any:
    for kv in span.attributes:
        if kv.key == key:
            return kv.value.string_value
    return None


def run_logs(agent: DemoAgent, spans: list[Span]) -> list[LogRecord]:
    """The log lines of one agent run (spans as built by :mod:`pharos.server.demo`)."""
    if not spans:
        return []
    root = spans[-1]  # the builder appends the root span last
    rng = random.Random(root.trace_id)
    tid = root.trace_id
    out = [
        _record(
            "info",
            START_LINES[agent.name].format(
                n=rng.randrange(1000, 9999),
                m=rng.randrange(500),
                topic=rng.choice(TOPICS),
                question=rng.choice(QUESTIONS),
                files=rng.randint(1, 30),
            ),
            root.start_time_unix_nano + MS,
            agent,
            trace_id=tid,
            span_id=root.span_id,
        )
    ]
    for span in sorted(spans[:-1], key=lambda s: s.start_time_unix_nano):
        duration_ms = (span.end_time_unix_nano - span.start_time_unix_nano) / MS
        tool = _attr(span, "gen_ai.tool.name") or _attr(span, "tool.name")
        exception = next((e for e in span.events if e.name == "exception"), None)
        if exception is not None:
            attrs = {kv.key: kv.value.string_value for kv in exception.attributes}
            what = f"tool {tool}" if tool else span.name
            out.append(
                _record(
                    "error",
                    f"{what} failed",
                    span.end_time_unix_nano + MS,
                    agent,
                    trace_id=tid,
                    span_id=span.span_id,
                    attrs=[_kv(k, v) for k, v in attrs.items()],  # as logger.exception sends
                )
            )
        elif duration_ms > SLOW_MS:
            out.append(
                _record(
                    "warn",
                    f"Slow call: {span.name} took {duration_ms / 1000:.1f} s",
                    span.end_time_unix_nano + MS,
                    agent,
                    trace_id=tid,
                    span_id=span.span_id,
                )
            )
        elif tool and rng.random() < 0.5:
            out.append(
                _record(
                    "debug",
                    f"{tool} returned {rng.randint(0, 40)} results in {duration_ms:.0f} ms",
                    span.end_time_unix_nano,
                    agent,
                    trace_id=tid,
                    span_id=span.span_id,
                )
            )
    if root.status.code == Status.STATUS_CODE_ERROR:
        out.append(
            _record(
                "warn",
                "Run ended with an error; the user was asked to retry",
                root.end_time_unix_nano,
                agent,
                trace_id=tid,
                span_id=root.span_id,
            )
        )
    if rng.random() < BACKGROUND_RATE:  # something outside any run, a little later
        level, template, _ = rng.choices(BACKGROUND, [w for *_, w in BACKGROUND])[0]
        out.append(
            _record(
                level,
                template.format(
                    n=rng.randint(2, 250),
                    m=rng.randint(0, 40),
                    p=rng.choice((80, 85, 90, 95)),
                    model=rng.choice(agent.models),
                    a=rng.randint(2, 4) if level == "warn" else rng.randint(12, 45),
                ),
                root.end_time_unix_nano + int(rng.uniform(1, 30) * NS),
                agent,
            )
        )
    return out


def logs_request(records: list[tuple[DemoAgent, LogRecord]]) -> ExportLogsServiceRequest:
    """One export request, one ResourceLogs per agent service (as a BatchLogRecordProcessor
    in front of several services would send)."""
    by_service: dict[str, tuple[DemoAgent, list[LogRecord]]] = {}
    for agent, record in records:
        by_service.setdefault(agent.service, (agent, []))[1].append(record)
    request = ExportLogsServiceRequest()
    for agent, items in by_service.values():
        request.resource_logs.append(
            ResourceLogs(
                resource=_resource(agent),
                scope_logs=[
                    ScopeLogs(
                        scope=InstrumentationScope(name=f"{agent.name}.agent"), log_records=items
                    )
                ],
            )
        )
    return request


def demo_batches(
    traces: int,
    *,
    seed: int = 7,
    end_ns: int | None = None,
    window_seconds: float = 86_400,
    max_spans: int = 512,
) -> Iterator[tuple[ExportTraceServiceRequest, ExportLogsServiceRequest]]:
    """The demo's trace requests (exactly :func:`pharos.server.demo.demo_requests`), each with
    the logs of the runs it completes."""
    pending: list[tuple[DemoAgent, LogRecord]] = []

    def with_logs() -> Iterator[tuple[DemoAgent, list[Span]]]:
        for agent, spans in generate_traces(
            traces, seed=seed, end_ns=end_ns, window_seconds=window_seconds
        ):
            pending.extend((agent, r) for r in run_logs(agent, spans))
            yield agent, spans

    for request in pack_requests(with_logs(), max_spans):
        batch, pending[:] = list(pending), []
        yield request, logs_request(batch)


__all__ = ["AGENTS", "demo_batches", "logs_request", "run_logs"]
