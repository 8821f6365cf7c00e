"""Map OTLP spans onto Pharos' model: agent, model, kind, tokens, cost, status (DESIGN §3).

Pure: an ``ExportTraceServiceRequest`` and limits in, :class:`SpanRecord` rows plus the spans
rejected (and why) out. No I/O, no clock. The writer turns the records into table rows and the
per-trace summary deltas computed here by :func:`trace_deltas`.
"""

from __future__ import annotations

import base64
import math
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from pharos.server.cost.usage import prompt_hash

if TYPE_CHECKING:
    from pharos.server.ingest.derive import Derived

# --- conventions -------------------------------------------------------------------------------

AGENT_KEYS = ("gen_ai.agent.name", "agent.name")
MODEL_KEYS = (
    "gen_ai.response.model",
    "gen_ai.request.model",
    "llm.model_name",
    "embedding.model_name",
)
INVOCATION_PARAMETER_KEYS = ("llm.invocation_parameters", "embedding.invocation_parameters")
INPUT_TOKEN_KEYS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
)
OUTPUT_TOKEN_KEYS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
)
CACHED_TOKEN_KEYS = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "gen_ai.usage.input_tokens.cached",
    "llm.token_count.prompt_details.cache_read",
)
TOTAL_TOKEN_KEYS = ("gen_ai.usage.total_tokens", "llm.token_count.total")
COST_KEYS = ("gen_ai.usage.cost", "llm.cost.total")

GEN_AI_OPERATION_KINDS = {
    "invoke_agent": "agent",
    "create_agent": "agent",
    "invoke_workflow": "chain",
    "chat": "llm",
    "text_completion": "llm",
    "generate_content": "llm",
    "embeddings": "embedding",
    "execute_tool": "tool",
}
OPENINFERENCE_KINDS = {
    "AGENT": "agent",
    "CHAIN": "chain",
    "LLM": "llm",
    "TOOL": "tool",
    "RETRIEVER": "retriever",
    "EMBEDDING": "embedding",
    "RERANKER": "reranker",
    "GUARDRAIL": "guardrail",
    "EVALUATOR": "evaluator",
    "PROMPT": "prompt",
}
#: Kinds whose tokens and cost count towards a trace's totals (model calls).
MODEL_CALL_KINDS = frozenset({"llm", "embedding"})
#: The attributes the conventions read: kept even past ``Limits.max_attributes``, because
#: OpenInference writes ``llm.model_name`` and the token counts after every message of the
#: conversation, and a long one would otherwise lose its model, tokens and cost.
CONVENTION_KEYS = frozenset(
    (
        *AGENT_KEYS,
        *MODEL_KEYS,
        *INVOCATION_PARAMETER_KEYS,
        *INPUT_TOKEN_KEYS,
        *OUTPUT_TOKEN_KEYS,
        *CACHED_TOKEN_KEYS,
        *TOTAL_TOKEN_KEYS,
        *COST_KEYS,
        "gen_ai.operation.name",
        "openinference.span.kind",
        "service.name",
    )
)
#: Largest token count believed for one span; above it the value is garbage, and summing a
#: few such values would overflow the 64-bit columns (and fail the whole request's insert).
MAX_COUNT = 2**32 - 1
#: Largest cost believed for one span (a million dollars), for the same reason.
MAX_NANOUSD = 10**15
#: Times are stored as signed 64-bit nanoseconds (until 2262); later ones cannot be stored.
MAX_TIME_NS = 2**63 - 1
STATUS_NAMES = {0: "unset", 1: "ok", 2: "error"}
UNKNOWN_AGENT = "unknown"

# agent_rank: how sure we are of a span's agent (the traces summary keeps the highest).
RANK_EXPLICIT_ROOT = 3
RANK_EXPLICIT = 2
RANK_SERVICE_ROOT = 1
RANK_SERVICE = 0


@dataclass(frozen=True, slots=True)
class Limits:
    max_attributes: int = 256
    max_attribute_length: int = 32 * 1024


@dataclass(slots=True)
class SpanRecord:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    span_kind: int
    agent: str
    agent_rank: int
    model: str | None
    service: str | None
    start_ns: int
    end_ns: int
    duration_ms: float
    status: str
    status_message: str | None
    input_tokens: int | None
    output_tokens: int | None
    cached_tokens: int | None
    cost_nanousd: int | None
    attributes: str
    events: str
    links: str
    resource: str
    scope: str | None
    #: Hash of the prompt attributes of a model call (cost/usage.py), not a ``spans`` column.
    prompt_hash: str | None = None

    def as_row(self) -> dict[str, Any]:
        """The ``spans`` table row for this record."""
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "name": self.name,
            "kind": self.kind,
            "span_kind": self.span_kind,
            "agent": self.agent,
            "model": self.model,
            "service": self.service,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "duration_ms": self.duration_ms,
            "status": self.status,
            "status_message": self.status_message,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_tokens": self.cached_tokens,
            "cost_nanousd": self.cost_nanousd,
            "attributes": self.attributes,
            "events": self.events,
            "links": self.links,
            "resource": self.resource,
            "scope": self.scope,
        }


@dataclass(slots=True)
class NormalizedBatch:
    spans: list[SpanRecord] = field(default_factory=list)
    rejected: int = 0
    #: Why spans were rejected (a few examples, for OTLP ``partial_success.error_message``).
    reasons: list[str] = field(default_factory=list)
    #: What the spans add to trace summaries and rollups (ingest/derive.py), when computed.
    derived: Derived | None = None

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if len(self.reasons) < 5:
            self.reasons.append(reason)

    @property
    def error_message(self) -> str:
        if not self.rejected:
            return ""
        more = self.rejected - len(self.reasons)
        tail = f" (and {more} more)" if more > 0 else ""
        return f"{self.rejected} span(s) rejected: " + "; ".join(self.reasons) + tail

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Batches cross a process boundary (ingest workers): plain tuples pickle and unpickle
        # about twice as fast as slotted dataclasses, and unpickling runs in the server process.
        return (
            _rebuild_batch,
            (
                [_record_values(r) for r in self.spans],
                self.rejected,
                self.reasons,
                self.derived,
            ),
        )


_record_values = operator.attrgetter(*(f.name for f in fields(SpanRecord)))


def _rebuild_batch(
    rows: list[tuple[Any, ...]], rejected: int, reasons: list[str], derived: Derived | None = None
) -> NormalizedBatch:
    return NormalizedBatch([SpanRecord(*row) for row in rows], rejected, reasons, derived)


# --- attribute values --------------------------------------------------------------------------


def _text(value: str) -> str:
    """PostgreSQL text cannot hold NUL; replace it so both dialects store the same string."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def any_value(value: AnyValue, max_len: int) -> Any:
    """Convert an OTLP ``AnyValue`` into a JSON-able Python value (strings and keys truncated)."""
    which = value.WhichOneof("value")
    if which == "string_value":
        s: str = value.string_value
        return s if len(s) <= max_len else s[:max_len]
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        d: float = value.double_value
        return d if math.isfinite(d) else str(d)
    if which == "bool_value":
        return value.bool_value
    if which == "array_value":
        return [any_value(v, max_len) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key[:max_len]: any_value(kv.value, max_len) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None


def attributes_dict(kvs: Iterable[KeyValue], limits: Limits) -> dict[str, Any]:
    out: dict[str, Any] = {}
    max_len = limits.max_attribute_length
    for kv in kvs:
        key = kv.key[:max_len]
        if len(out) >= limits.max_attributes and key not in CONVENTION_KEYS:
            continue
        out[key] = any_value(kv.value, max_len)
    return out


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")


# --- convention lookups ------------------------------------------------------------------------


def _first_str(attrs: Mapping[str, Any], keys: Iterable[str]) -> str | None:
    for key in keys:
        value = attrs.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _as_count(value: Any) -> int | None:
    """A token count from an attribute value (int, integral float or numeric string)."""
    count: int | None = None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        count = value
    elif isinstance(value, float) and math.isfinite(value) and value >= 0:
        count = int(value)
    elif isinstance(value, str):
        text = value.strip()
        # ASCII only: str.isdigit() is also true for "²", which int() refuses.
        if text.isascii() and text.isdigit() and len(text) <= 20:
            count = int(text)
    return count if count is not None and 0 <= count <= MAX_COUNT else None


def _first_count(attrs: Mapping[str, Any], keys: Iterable[str]) -> int | None:
    for key in keys:
        if key in attrs:
            count = _as_count(attrs[key])
            if count is not None:
                return count
    return None


def _cost_nanousd(attrs: Mapping[str, Any]) -> int | None:
    for key in COST_KEYS:
        value = attrs.get(key)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                continue
        if isinstance(value, int | float):
            nanousd = value * 1_000_000_000
            if math.isfinite(nanousd) and 0 <= nanousd <= MAX_NANOUSD:
                return round(nanousd)
    return None


def model_of(attrs: Mapping[str, Any]) -> str | None:
    model = _first_str(attrs, MODEL_KEYS)
    if model is not None:
        return model
    # OpenInference puts the requested model only inside the invocation parameters JSON
    # when the call failed before a response named one.
    for key in INVOCATION_PARAMETER_KEYS:
        raw = attrs.get(key)
        if isinstance(raw, str) and '"model"' in raw:
            try:
                params = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(params, dict) and isinstance(params.get("model"), str):
                return str(params["model"])
    return None


def kind_of(attrs: Mapping[str, Any], model: str | None, has_tokens: bool) -> str:
    operation = attrs.get("gen_ai.operation.name")
    if isinstance(operation, str) and operation:
        kind = GEN_AI_OPERATION_KINDS.get(operation.lower())
        if kind is not None:
            return kind
    oi_kind = attrs.get("openinference.span.kind")
    if isinstance(oi_kind, str) and oi_kind:
        kind = OPENINFERENCE_KINDS.get(oi_kind.upper())
        if kind is not None:
            return kind
    if model is not None or has_tokens:
        return "llm"
    return "span"


# --- the mapping -------------------------------------------------------------------------------


def normalize_traces(request: ExportTraceServiceRequest, limits: Limits) -> NormalizedBatch:
    """Turn an OTLP trace export into span records; invalid spans are rejected, not fatal."""
    batch = NormalizedBatch()
    explicit: dict[tuple[str, str], str] = {}
    parents: dict[tuple[str, str], str | None] = {}
    for resource_spans in request.resource_spans:
        resource_attrs = attributes_dict(resource_spans.resource.attributes, limits)
        resource_json = _dumps(resource_attrs)
        service = resource_attrs.get("service.name")
        service_name = _text(service) if isinstance(service, str) and service else None
        for scope_spans in resource_spans.scope_spans:
            scope_name = _text(scope_spans.scope.name) or None
            for span in scope_spans.spans:
                record = _normalize_span(
                    span, resource_json, service_name, scope_name, limits, batch, explicit
                )
                if record is not None:
                    batch.spans.append(record)
                    parents[(record.trace_id, record.span_id)] = record.parent_span_id
    if explicit:
        _inherit_agents(batch.spans, explicit, parents)
    return batch


def _normalize_span(
    span: Any,
    resource_json: str,
    service: str | None,
    scope: str | None,
    limits: Limits,
    batch: NormalizedBatch,
    explicit: dict[tuple[str, str], str],
) -> SpanRecord | None:
    raw_trace, raw_span, raw_parent = span.trace_id, span.span_id, span.parent_span_id
    name = _text(span.name)[: limits.max_attribute_length]
    if len(raw_trace) != 16 or not any(raw_trace):
        batch.reject(f"span {name!r}: trace_id must be 16 non-zero bytes")
        return None
    if len(raw_span) != 8 or not any(raw_span):
        batch.reject(f"span {name!r}: span_id must be 8 non-zero bytes")
        return None
    if raw_parent and len(raw_parent) != 8:
        batch.reject(f"span {name!r}: parent_span_id must be 8 bytes or empty")
        return None
    start = span.start_time_unix_nano
    if start <= 0:
        batch.reject(f"span {name!r}: start_time_unix_nano is missing")
        return None
    if start > MAX_TIME_NS or span.end_time_unix_nano > MAX_TIME_NS:
        batch.reject(f"span {name!r}: start/end_time_unix_nano is after the year 2262")
        return None
    end = max(span.end_time_unix_nano, start)
    trace_id, span_id = raw_trace.hex(), raw_span.hex()
    parent = raw_parent.hex() if raw_parent and any(raw_parent) else None

    attrs = attributes_dict(span.attributes, limits)
    model = model_of(attrs)
    input_tokens = _first_count(attrs, INPUT_TOKEN_KEYS)
    output_tokens = _first_count(attrs, OUTPUT_TOKEN_KEYS)
    cached_tokens = _first_count(attrs, CACHED_TOKEN_KEYS)
    if input_tokens is None and output_tokens is None:
        total = _first_count(attrs, TOTAL_TOKEN_KEYS)
        input_tokens = total  # only a total is known: count it as input rather than lose it
    kind = kind_of(attrs, model, input_tokens is not None or output_tokens is not None)

    agent_attr = _first_str(attrs, AGENT_KEYS)
    if agent_attr is not None:
        agent = _text(agent_attr)
        rank = RANK_EXPLICIT_ROOT if parent is None else RANK_EXPLICIT
        explicit[(trace_id, span_id)] = agent
    else:
        agent = service or UNKNOWN_AGENT
        rank = RANK_SERVICE_ROOT if parent is None else RANK_SERVICE

    events = [
        {
            "name": _text(ev.name),
            "time_unix_nano": ev.time_unix_nano,
            "attributes": attributes_dict(ev.attributes, limits),
        }
        for ev in span.events
    ]
    links = [
        {
            "trace_id": link.trace_id.hex(),
            "span_id": link.span_id.hex(),
            "attributes": attributes_dict(link.attributes, limits),
        }
        for link in span.links
    ]
    status_code = int(span.status.code)
    message = span.status.message
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        kind=kind,
        span_kind=int(span.kind),
        agent=agent,
        agent_rank=rank,
        model=_text(model) if model else None,
        service=service,
        start_ns=start,
        end_ns=end,
        duration_ms=(end - start) / 1_000_000,
        status=STATUS_NAMES.get(status_code, "unset"),
        status_message=_text(message)[: limits.max_attribute_length] if message else None,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_tokens=cached_tokens,
        cost_nanousd=_cost_nanousd(attrs),
        attributes=_dumps(attrs),
        events=_dumps(events) if events else "[]",
        links=_dumps(links) if links else "[]",
        resource=resource_json,
        scope=scope,
        prompt_hash=prompt_hash(attrs) if kind in MODEL_CALL_KINDS else None,
    )


def _inherit_agents(
    records: list[SpanRecord],
    explicit: dict[tuple[str, str], str],
    parents: dict[tuple[str, str], str | None],
) -> None:
    """A span without its own agent attribute belongs to the nearest ancestor that has one
    (among the spans of this request; ancestors sent later are resolved at read time)."""
    for record in records:
        if record.agent_rank >= RANK_EXPLICIT:
            continue
        parent = record.parent_span_id
        seen = 0
        while parent is not None and seen < 256:
            key = (record.trace_id, parent)
            if key in explicit:
                record.agent = explicit[key]
                record.agent_rank = RANK_EXPLICIT
                break
            parent = parents.get(key)
            seen += 1


# --- per-trace summary deltas ------------------------------------------------------------------


@dataclass(slots=True)
class TraceDelta:
    """What a group of newly stored spans adds to their trace's summary row."""

    trace_id: str
    root_span_id: str | None
    name: str
    agent: str
    agent_rank: int
    start_ns: int
    end_ns: int
    span_count: int = 0
    error_count: int = 0
    llm_calls: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_nanousd: int = 0
    error_message: str | None = None


def trace_deltas(records: Iterable[SpanRecord]) -> list[TraceDelta]:
    """Fold span records (each stored for the first time) into one delta per trace."""
    deltas: dict[str, TraceDelta] = {}
    for r in records:
        d = deltas.get(r.trace_id)
        if d is None:
            d = deltas[r.trace_id] = TraceDelta(
                trace_id=r.trace_id,
                root_span_id=None,
                name=r.name,
                agent=r.agent,
                agent_rank=r.agent_rank,
                start_ns=r.start_ns,
                end_ns=r.end_ns,
            )
        else:
            if r.start_ns < d.start_ns:
                d.start_ns = r.start_ns
                if d.root_span_id is None:
                    d.name = r.name
            d.end_ns = max(d.end_ns, r.end_ns)
            if r.agent_rank > d.agent_rank:
                d.agent, d.agent_rank = r.agent, r.agent_rank
        if r.parent_span_id is None:
            d.root_span_id, d.name = r.span_id, r.name
        d.span_count += 1
        if r.status == "error":
            d.error_count += 1
            if d.error_message is None:
                d.error_message = r.status_message or r.name
        if r.kind == "llm":
            d.llm_calls += 1
        elif r.kind == "tool":
            d.tool_calls += 1
        if r.kind in MODEL_CALL_KINDS:
            d.input_tokens += r.input_tokens or 0
            d.output_tokens += r.output_tokens or 0
            d.cached_tokens += r.cached_tokens or 0
            d.cost_nanousd += r.cost_nanousd or 0
    return list(deltas.values())
