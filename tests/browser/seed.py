"""OTLP requests with *current* timestamps for the browser tests (the dashboard shows windows
ending now), including a trace full of hostile strings."""

from __future__ import annotations

import os
import time
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from tests.otlp_helpers import kv

MS = 1_000_000
XSS_FLAG = "__pharos_xss"
HOSTILE = {
    "script": f"<script>window.{XSS_FLAG}=1</script>",
    "img": f'<img src=x onerror="window.{XSS_FLAG}=1;alert(1)">',
    "svg": f'<svg onload="window.{XSS_FLAG}=1"></svg>',
    "link": f"javascript:window.{XSS_FLAG}=1;alert(1)",
    "rtl": "invoice\u202egnp.exe",
    "long": "W" * 10_000,
}


def new_trace_id() -> bytes:
    return os.urandom(16)


def make_span(
    trace_id: bytes,
    span_id: int,
    parent: int | None,
    name: str,
    start_ns: int,
    duration_ms: float,
    attrs: dict[str, Any] | None = None,
    error: str | None = None,
    exception: tuple[str, str, str] | None = None,
) -> Span:
    span = Span(
        trace_id=trace_id,
        span_id=span_id.to_bytes(8, "big"),
        parent_span_id=parent.to_bytes(8, "big") if parent else b"",
        name=name,
        start_time_unix_nano=start_ns,
        end_time_unix_nano=start_ns + int(duration_ms * MS),
        attributes=[kv(k, v) for k, v in (attrs or {}).items()],
        status=Status(code=Status.STATUS_CODE_ERROR, message=error)
        if error
        else Status(code=Status.STATUS_CODE_OK),
    )
    if exception:
        ev = span.events.add()
        ev.name = "exception"
        ev.time_unix_nano = start_ns + int(duration_ms * MS) - MS
        ev.attributes.extend(
            [
                kv("exception.type", exception[0]),
                kv("exception.message", exception[1]),
                kv("exception.stacktrace", exception[2]),
            ]
        )
    return span


def agent_run(
    agent: str,
    *,
    model: str = "gpt-4o-mini",
    steps: int = 3,
    fail: bool = False,
    ago_s: float = 60,
    name: str | None = None,
    extra_attrs: dict[str, Any] | None = None,
) -> tuple[bytes, list[Span]]:
    """One agent run: a root agent span, LLM and tool children, a nested retriever."""
    trace_id = new_trace_id()
    start = time.time_ns() - int(ago_s * 1e9)
    spans = []
    offset = 5.0
    sid = 2
    children: list[Span] = []
    for i in range(steps):
        llm_ms = 120.0 + 40 * i
        children.append(
            make_span(
                trace_id,
                sid,
                1,
                f"chat {model}",
                start + int(offset * MS),
                llm_ms,
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": model,
                    "gen_ai.usage.input_tokens": 400 + 10 * i,
                    "gen_ai.usage.output_tokens": 50 + i,
                    **(extra_attrs or {}),
                },
            )
        )
        sid += 1
        offset += llm_ms + 2
        tool_fail = fail and i == steps - 1
        tool_id = sid
        children.append(
            make_span(
                trace_id,
                tool_id,
                1,
                f"execute_tool search_{i}",
                start + int(offset * MS),
                60.0,
                {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": f"search_{i}"},
                error="TimeoutError: tool timed out" if tool_fail else None,
                exception=(
                    "TimeoutError",
                    "tool timed out after 30 s",
                    'Traceback (most recent call last):\n  File "agent.py", line 42, in run\n'
                    "    result = tool()\nTimeoutError: tool timed out after 30 s",
                )
                if tool_fail
                else None,
            )
        )
        sid += 1
        children.append(
            make_span(
                trace_id,
                sid,
                tool_id,
                "retrieve documents",
                start + int((offset + 5) * MS),
                30.0,
                {"openinference.span.kind": "RETRIEVER"},
            )
        )
        sid += 1
        offset += 62
    root = make_span(
        trace_id,
        1,
        None,
        name or f"invoke_agent {agent}",
        start,
        offset + 5,
        {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent},
        error="agent run failed" if fail else None,
    )
    spans = [root, *children]
    return trace_id, spans


def request(spans: list[Span], service: str = "browser-test") -> bytes:
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=[kv("service.name", service)]),
                scope_spans=[ScopeSpans(spans=spans)],
            )
        ]
    ).SerializeToString()


def hostile_run() -> tuple[bytes, list[Span]]:
    """Every string a dashboard shows, made hostile."""
    h = HOSTILE
    agent = f"{h['img']}{h['rtl']}"
    attrs = {
        "evil.script": h["script"],
        "evil.img": h["img"],
        "evil.svg": h["svg"],
        "evil.link": h["link"],
        "evil.rtl": h["rtl"],
        "evil.long": h["long"],
        h["script"]: "a hostile attribute key",
        "gen_ai.prompt": h["script"] + h["long"],
    }
    trace_id, spans = agent_run(
        agent,
        model=h["svg"],
        steps=2,
        fail=True,
        ago_s=30,
        name=f"{h['script']} {h['long']}",
        extra_attrs=attrs,
    )
    spans[1].name = h["img"] + h["link"]
    spans[0].status.message = h["script"] + h["long"]
    return trace_id, spans
