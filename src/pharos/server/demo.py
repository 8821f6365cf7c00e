"""Realistic, seeded agent traffic as OTLP requests: several agents and models, LLM, tool and
retrieval spans, both GenAI and OpenInference conventions, errors with stack traces, a long
latency tail, and one agent that degrades over the last hours. The runs' logs (with and
without trace context) are in :mod:`pharos.server.demo_logs`.

Used by ``pharos serve --demo``, ``pharos demo``, the benchmarks and the tests.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

if TYPE_CHECKING:
    from pharos.server.ingest.writer import GroupCommitWriter
    from pharos.server.settings import Settings

log = logging.getLogger("pharos.demo")
NS = 1_000_000_000
MS = 1_000_000


@dataclass(frozen=True)
class DemoAgent:
    name: str
    service: str
    models: tuple[str, ...]
    tools: tuple[str, ...]
    weight: float
    openinference: bool = False  # emit OpenInference (llm.*) instead of GenAI (gen_ai.*)
    degrading: bool = False  # slower and failing more over the last hours


AGENTS = (
    DemoAgent(
        "support-bot",
        "support-service",
        ("gpt-4o-mini", "gpt-4o-2024-08-06"),
        ("search_kb", "create_ticket", "lookup_order"),
        0.35,
    ),
    DemoAgent(
        "research-agent",
        "research-service",
        ("claude-3-5-sonnet-20241022", "claude-3-5-haiku-20241022"),
        ("web_search", "fetch_url", "summarize_pdf"),
        0.2,
        openinference=True,
    ),
    DemoAgent(
        "code-reviewer",
        "review-service",
        ("gpt-4o-2024-08-06", "o3-mini"),
        ("read_file", "run_tests", "post_comment"),
        0.15,
    ),
    DemoAgent(
        "sql-analyst",
        "analytics-service",
        ("gemini-1.5-pro", "gpt-4o-mini"),
        ("run_sql", "describe_table", "plot_chart"),
        0.2,
        degrading=True,
    ),
    DemoAgent(
        "triage-router", "router-service", ("llama-3.1-70b-instruct",), ("classify", "route"), 0.1
    ),
)

#: triage-router classifies a handful of recurring questions: identical prompts, so the savings
#: suggestions have repeats to find (docs/costs.md).
TRIAGE_PROMPTS = (
    "Classify this ticket: 'I was charged twice for my order'",
    "Classify this ticket: 'How do I reset my password?'",
    "Classify this ticket: 'Where is my package?'",
)

TOOL_ERRORS = (
    ("TimeoutError", "Tool {tool} timed out after 30 s"),
    ("ConnectionError", "HTTPSConnectionPool(host='api.internal', port=443): Max retries exceeded"),
    ("ValueError", "Invalid argument for {tool}: expected a non-empty query"),
)
LLM_ERRORS = (
    ("RateLimitError", "Error code: 429 - Rate limit reached for requests"),
    ("APITimeoutError", "Request timed out."),
    ("BadRequestError", "Error code: 400 - context_length_exceeded"),
)


def _kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def _stacktrace(exc_type: str, message: str, tool: str) -> str:
    return (
        "Traceback (most recent call last):\n"
        '  File "/app/agent/loop.py", line 88, in run_step\n'
        "    result = await tools.call(name, args)\n"
        f'  File "/app/agent/tools/{tool}.py", line 41, in call\n'
        "    return await self._client.request(payload)\n"
        f"{exc_type}: {message}"
    )


class _TraceBuilder:
    """Builds the spans of one agent run."""

    def __init__(self, rng: random.Random, agent: DemoAgent, start_ns: int, stress: float):
        self.rng = rng
        self.agent = agent
        self.trace_id = rng.getrandbits(128).to_bytes(16, "big")
        self.spans: list[Span] = []
        self.start_ns = start_ns
        self.stress = stress  # 1.0 normal; > 1 slower and more errors

    def _span_id(self) -> bytes:
        return (self.rng.getrandbits(63) | 1).to_bytes(8, "big")

    def build(self) -> list[Span]:
        rng, agent = self.rng, self.agent
        root_id = self._span_id()
        cursor = self.start_ns + int(rng.uniform(1, 5) * MS)
        failed = False
        for _step in range(rng.randint(1, 3)):
            cursor, llm_failed = self._llm_call(root_id, cursor)
            if llm_failed:
                failed = failed or rng.random() < 0.6
                continue
            if rng.random() < 0.75:
                cursor, tool_failed = self._tool_call(root_id, cursor)
                failed = failed or (tool_failed and rng.random() < 0.5)
            if agent.openinference and rng.random() < 0.3:
                cursor = self._retrieval(root_id, cursor)
        cursor, _ = self._llm_call(root_id, cursor, final=True)
        end = cursor + int(rng.uniform(1, 10) * MS)
        attrs = [
            _kv("gen_ai.operation.name", "invoke_agent"),
            _kv("gen_ai.agent.name", agent.name),
            _kv("session.id", f"sess-{rng.randrange(10_000):04d}"),
            _kv("user.id", f"user-{rng.randrange(500)}"),
        ]
        if agent.openinference:
            attrs.append(_kv("openinference.span.kind", "AGENT"))
        status = (
            Status(code=Status.STATUS_CODE_ERROR, message="agent run failed")
            if failed
            else Status(code=Status.STATUS_CODE_OK)
        )
        self.spans.append(
            Span(
                trace_id=self.trace_id,
                span_id=root_id,
                name=f"invoke_agent {agent.name}",
                kind=Span.SPAN_KIND_SERVER,
                start_time_unix_nano=self.start_ns,
                end_time_unix_nano=end,
                attributes=attrs,
                status=status,
            )
        )
        return self.spans

    def _llm_call(self, parent: bytes, start: int, final: bool = False) -> tuple[int, bool]:
        rng, agent = self.rng, self.agent
        model = agent.models[0] if rng.random() < 0.7 else rng.choice(agent.models)
        input_tokens = int(rng.lognormvariate(6.6 if not final else 7.0, 0.7))
        output_tokens = max(1, int(rng.lognormvariate(4.0, 0.7)))
        ms_per_token = 3 if "mini" in model or "haiku" in model else 6
        duration_ms = (rng.lognormvariate(5.3, 0.4) + output_tokens * ms_per_token) * self.stress
        if rng.random() < 0.004:  # the long tail: an overloaded provider
            duration_ms *= rng.uniform(3, 10)
        failed = rng.random() < 0.01 * self.stress
        end = start + int(duration_ms * MS)
        attrs: list[KeyValue]
        if agent.openinference:
            attrs = [
                _kv("openinference.span.kind", "LLM"),
                _kv("llm.system", model.split("-")[0]),
                _kv("llm.model_name", model),
                _kv("llm.invocation_parameters", f'{{"model": "{model}", "temperature": 0.2}}'),
            ]
            if not failed:
                attrs += [
                    _kv("llm.token_count.prompt", input_tokens),
                    _kv("llm.token_count.completion", output_tokens),
                    _kv("llm.token_count.total", input_tokens + output_tokens),
                ]
        else:
            attrs = [
                _kv("gen_ai.operation.name", "chat"),
                _kv("gen_ai.system", "openai" if model.startswith(("gpt", "o3")) else "vertex_ai"),
                _kv("gen_ai.request.model", model.split("-20")[0]),
                _kv("gen_ai.request.temperature", 0.2),
            ]
            if agent.name == "triage-router":
                prompt = TRIAGE_PROMPTS[input_tokens % len(TRIAGE_PROMPTS)]
                attrs += [
                    _kv("gen_ai.prompt.0.role", "user"),
                    _kv("gen_ai.prompt.0.content", prompt),
                ]
            if not failed:
                attrs += [
                    _kv("gen_ai.response.model", model),
                    _kv("gen_ai.usage.input_tokens", input_tokens),
                    _kv("gen_ai.usage.output_tokens", output_tokens),
                    _kv("gen_ai.response.finish_reasons", "stop"),
                ]
        events = []
        status = Status(code=Status.STATUS_CODE_OK)
        if failed:
            exc_type, message = rng.choice(LLM_ERRORS)
            status = Status(code=Status.STATUS_CODE_ERROR, message=f"{exc_type}: {message}")
            events.append(
                Span.Event(
                    name="exception",
                    time_unix_nano=end,
                    attributes=[
                        _kv("exception.type", exc_type),
                        _kv("exception.message", message),
                        _kv("exception.stacktrace", _stacktrace(exc_type, message, "llm")),
                    ],
                )
            )
        self.spans.append(
            Span(
                trace_id=self.trace_id,
                span_id=self._span_id(),
                parent_span_id=parent,
                name=f"chat {model}",
                kind=Span.SPAN_KIND_CLIENT,
                start_time_unix_nano=start,
                end_time_unix_nano=end,
                attributes=attrs,
                events=events,
                status=status,
            )
        )
        return end + int(rng.uniform(0.5, 3) * MS), failed

    def _tool_call(self, parent: bytes, start: int) -> tuple[int, bool]:
        rng, agent = self.rng, self.agent
        tool = rng.choice(agent.tools)
        duration_ms = rng.lognormvariate(4.0, 0.8) * self.stress
        if rng.random() < 0.003:
            duration_ms = rng.uniform(4_000, 12_000)  # a tool stuck on a slow backend
        failed = rng.random() < 0.02 * self.stress
        end = start + int(duration_ms * MS)
        if agent.openinference:
            attrs = [_kv("openinference.span.kind", "TOOL"), _kv("tool.name", tool)]
        else:
            attrs = [_kv("gen_ai.operation.name", "execute_tool"), _kv("gen_ai.tool.name", tool)]
        attrs.append(_kv("tool.arguments", f'{{"query": "q{rng.randrange(1000)}"}}'))
        events = []
        status = Status(code=Status.STATUS_CODE_OK)
        if failed:
            exc_type, template = rng.choice(TOOL_ERRORS)
            message = template.format(tool=tool)
            status = Status(code=Status.STATUS_CODE_ERROR, message=f"{exc_type}: {message}")
            events.append(
                Span.Event(
                    name="exception",
                    time_unix_nano=end,
                    attributes=[
                        _kv("exception.type", exc_type),
                        _kv("exception.message", message),
                        _kv("exception.stacktrace", _stacktrace(exc_type, message, tool)),
                    ],
                )
            )
        self.spans.append(
            Span(
                trace_id=self.trace_id,
                span_id=self._span_id(),
                parent_span_id=parent,
                name=f"execute_tool {tool}",
                kind=Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=start,
                end_time_unix_nano=end,
                attributes=attrs,
                events=events,
                status=status,
            )
        )
        return end + int(rng.uniform(0.2, 2) * MS), failed

    def _retrieval(self, parent: bytes, start: int) -> int:
        rng = self.rng
        retrieve_id = self._span_id()
        embed_end = start + int(rng.lognormvariate(3.5, 0.4) * MS)
        self.spans.append(
            Span(
                trace_id=self.trace_id,
                span_id=self._span_id(),
                parent_span_id=retrieve_id,
                name="CreateEmbeddings",
                kind=Span.SPAN_KIND_CLIENT,
                start_time_unix_nano=start + MS,
                end_time_unix_nano=embed_end,
                attributes=[
                    _kv("openinference.span.kind", "EMBEDDING"),
                    _kv("embedding.model_name", "text-embedding-3-small"),
                    _kv("llm.token_count.prompt", rng.randint(5, 60)),
                ],
                status=Status(code=Status.STATUS_CODE_OK),
            )
        )
        end = embed_end + int(rng.lognormvariate(3.0, 0.6) * MS)
        self.spans.append(
            Span(
                trace_id=self.trace_id,
                span_id=retrieve_id,
                parent_span_id=parent,
                name="retrieve documents",
                kind=Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=start,
                end_time_unix_nano=end,
                attributes=[
                    _kv("openinference.span.kind", "RETRIEVER"),
                    _kv("retrieval.documents.count", rng.randint(3, 8)),
                ],
                status=Status(code=Status.STATUS_CODE_OK),
            )
        )
        return end


def generate_traces(
    count: int, *, seed: int = 7, end_ns: int | None = None, window_seconds: float = 86_400
) -> Iterator[tuple[DemoAgent, list[Span]]]:
    """``count`` agent runs spread over the ``window_seconds`` before ``end_ns``, oldest first."""
    rng = random.Random(seed)
    end_ns = end_ns if end_ns is not None else time.time_ns()
    window_ns = int(window_seconds * NS)
    offsets = sorted(rng.random() for _ in range(count))
    weights = [a.weight for a in AGENTS]
    for offset in offsets:
        agent = rng.choices(AGENTS, weights)[0]
        start = end_ns - window_ns + int(offset * window_ns) - 60 * NS
        age_hours = (end_ns - start) / NS / 3600
        stress = 1.0
        if agent.degrading and age_hours < 3:
            stress = 1.0 + 3.0 * (3 - age_hours) / 3  # up to 4x slower, more errors
        yield agent, _TraceBuilder(rng, agent, start, stress).build()


def _resource(agent: DemoAgent) -> Resource:
    return Resource(
        attributes=[
            _kv("service.name", agent.service),
            _kv("service.version", "1.4.2"),
            _kv("deployment.environment", "production"),
            _kv("telemetry.sdk.language", "python"),
        ]
    )


def pack_requests(
    traces: Iterator[tuple[DemoAgent, list[Span]]], max_spans: int = 512
) -> Iterator[ExportTraceServiceRequest]:
    """Group spans into export requests of at most ``max_spans`` spans, one ResourceSpans per
    agent service, as a BatchSpanProcessor in front of several services would."""
    pending: dict[str, tuple[DemoAgent, list[Span]]] = {}
    size = 0

    def flush() -> ExportTraceServiceRequest:
        request = ExportTraceServiceRequest()
        for agent, spans in pending.values():
            request.resource_spans.append(
                ResourceSpans(
                    resource=_resource(agent),
                    scope_spans=[
                        ScopeSpans(
                            scope=InstrumentationScope(name="pharos.demo", version="0.1"),
                            spans=spans,
                        )
                    ],
                )
            )
        pending.clear()
        return request

    for agent, spans in traces:
        for span in spans:
            pending.setdefault(agent.service, (agent, []))[1].append(span)
            size += 1
            if size >= max_spans:
                yield flush()
                size = 0
    if size:
        yield flush()


def demo_requests(
    traces: int,
    *,
    seed: int = 7,
    end_ns: int | None = None,
    window_seconds: float = 86_400,
    max_spans: int = 512,
) -> Iterator[ExportTraceServiceRequest]:
    return pack_requests(
        generate_traces(traces, seed=seed, end_ns=end_ns, window_seconds=window_seconds),
        max_spans,
    )


async def load_demo(
    writer: GroupCommitWriter,
    settings: Settings,
    *,
    backfill: int = 6000,
    live_interval: float = 2.0,
) -> None:
    """Backfill a day of traffic (traces and their logs) through the normal ingest path, then
    keep a trickle going."""
    from pharos.server.demo_logs import demo_batches
    from pharos.server.demo_metrics import demo_metrics_loop
    from pharos.server.ingest.log_store import LOGS
    from pharos.server.ingest.logs import normalize_logs
    from pharos.server.ingest.normalize import Limits, normalize_traces

    limits = Limits(settings.max_attributes, settings.max_attribute_length)
    stored = logs = 0

    async def write(traces: ExportTraceServiceRequest, records: Any) -> None:
        nonlocal stored, logs
        stored += (await writer.write(normalize_traces(traces, limits).spans)).stored
        if LOGS in writer.stores:
            result = await writer.write(extras={LOGS: normalize_logs(records, limits).logs})
            logs += result.extra_stored.get(LOGS, 0)

    metrics = asyncio.create_task(demo_metrics_loop(writer, limits))  # CPU, memory, tool calls
    try:
        for traces, records in demo_batches(backfill, seed=7):
            await write(traces, records)
            await asyncio.sleep(0)
        log.info(
            "demo: %d spans and %d logs loaded (a day of traffic from %d agents)",
            stored,
            logs,
            len(AGENTS),
        )
        seed = time.time_ns()
        while True:
            await asyncio.sleep(live_interval)
            seed += 1
            now = time.time_ns()
            for traces, records in demo_batches(1, seed=seed, end_ns=now, window_seconds=1):
                await write(traces, records)
    except asyncio.CancelledError:
        raise
    except Exception:  # the demo must never take the server down
        log.exception("demo traffic stopped")
    finally:
        metrics.cancel()
