"""Convention mapping (DESIGN §3): GenAI, OpenInference and plain OTel spans onto SpanRecord,
span validation, attribute limits, agent inheritance and per-trace deltas (pure, no I/O)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from pharos.server.ingest.decode import PROTOBUF, decode_traces
from pharos.server.ingest.normalize import (
    GEN_AI_OPERATION_KINDS,
    MAX_COUNT,
    MODEL_CALL_KINDS,
    OPENINFERENCE_KINDS,
    RANK_EXPLICIT,
    RANK_EXPLICIT_ROOT,
    RANK_SERVICE,
    RANK_SERVICE_ROOT,
    Limits,
    SpanRecord,
    kind_of,
    model_of,
    normalize_traces,
    trace_deltas,
)
from pharos.server.ingest.normalize import any_value as convert
from tests.unit.helpers import (
    FIXTURE_FILES,
    MS,
    SERVICE,
    T0,
    TRACE,
    fixture_requests,
    is_finite_json,
    kv,
    make_request,
    make_span,
    normalize,
    one,
    requests,
    sid,
    tid,
)
from tests.unit.helpers import any_value as av

OK = Status.STATUS_CODE_OK
ERROR = Status.STATUS_CODE_ERROR

# --- the captured OpenInference fixtures (fixtures/otlp/README.md) ------------------------------

FIXTURE_TABLE = [
    # name, kind, model, input, output, cached, status, message
    ("ChatCompletion", "llm", "gpt-4o-2024-08-06", 57, 9, 32, "ok", None),
    ("ChatCompletion", "llm", "gpt-4o-mini-2024-07-18", 21, 2, None, "ok", None),
    ("CreateEmbeddings", "embedding", "text-embedding-3-small", 5, None, None, "ok", None),
    (
        "ChatCompletion",
        "llm",
        "gpt-4o",
        None,
        None,
        None,
        "error",
        "RateLimitError: Error code: 429 - Rate limit reached",
    ),
    ("support-agent run", "agent", None, None, None, None, "unset", None),
]
FIXTURE_TRACE = "d752926ceaed0a490d0923caefbfa22c"
AGENT_SPAN = "2d2965f035b627d3"


def test_there_are_five_fixtures() -> None:
    assert [p.name for p in FIXTURE_FILES] == [f"openinference-0{i}.pb" for i in range(5)]


@pytest.mark.parametrize("index", range(5))
def test_each_fixture_maps_to_the_readme_table(index: int) -> None:
    name, kind, model, input_tokens, output_tokens, cached, status, message = FIXTURE_TABLE[index]
    body = FIXTURE_FILES[index].read_bytes()
    batch = normalize_traces(decode_traces(body, PROTOBUF), Limits())
    assert batch.rejected == 0
    [record] = batch.spans
    assert (record.name, record.kind, record.model) == (name, kind, model)
    assert (record.input_tokens, record.output_tokens, record.cached_tokens) == (
        input_tokens,
        output_tokens,
        cached,
    )
    assert (record.status, record.status_message) == (status, message)
    assert record.trace_id == FIXTURE_TRACE
    assert record.service == "openinference-demo-agent"
    assert record.scope in ("openinference.instrumentation.openai", "demo")
    assert record.end_ns >= record.start_ns > 0
    assert record.duration_ms == (record.end_ns - record.start_ns) / MS
    if index == 4:  # the agent span, exported last, is the root and names its agent
        assert record.parent_span_id is None
        assert record.span_id == AGENT_SPAN
        assert (record.agent, record.agent_rank) == ("support-agent", RANK_EXPLICIT_ROOT)
    else:  # sent alone, before their parent: the resource's service is all that is known
        assert record.parent_span_id == AGENT_SPAN
        assert (record.agent, record.agent_rank) == ("openinference-demo-agent", RANK_SERVICE)


def test_dated_model_names_are_kept_as_sent() -> None:
    models = [r.spans[0].model for r in map(_normalize_default, fixture_requests())]
    assert models[:3] == ["gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "text-embedding-3-small"]


def test_the_429_fixture_keeps_its_exception_event() -> None:
    record = _normalize_default(fixture_requests()[3]).spans[0]
    [event] = orjson.loads(record.events)
    assert event["name"] == "exception"
    assert event["attributes"]["exception.type"].endswith("RateLimitError")
    assert record.start_ns <= event["time_unix_nano"] <= record.end_ns


def test_fixtures_in_one_request_all_belong_to_the_agent_span() -> None:
    # Concatenated protobuf messages merge: one request holding all five spans, children first.
    body = b"".join(p.read_bytes() for p in FIXTURE_FILES)
    batch = normalize_traces(decode_traces(body, PROTOBUF), Limits())
    assert batch.rejected == 0
    assert [r.name for r in batch.spans] == [row[0] for row in FIXTURE_TABLE]
    assert {r.agent for r in batch.spans} == {"support-agent"}
    assert [r.agent_rank for r in batch.spans] == [RANK_EXPLICIT] * 4 + [RANK_EXPLICIT_ROOT]

    [delta] = trace_deltas(batch.spans)
    agent = batch.spans[4]
    assert delta.trace_id == FIXTURE_TRACE
    assert (delta.root_span_id, delta.name) == (AGENT_SPAN, "support-agent run")
    assert (delta.agent, delta.agent_rank) == ("support-agent", RANK_EXPLICIT_ROOT)
    assert (delta.start_ns, delta.end_ns) == (agent.start_ns, agent.end_ns)
    assert (delta.span_count, delta.error_count) == (5, 1)
    assert delta.error_message == "RateLimitError: Error code: 429 - Rate limit reached"
    assert (delta.llm_calls, delta.tool_calls) == (3, 0)
    assert (delta.input_tokens, delta.output_tokens, delta.cached_tokens) == (57 + 21 + 5, 11, 32)


def _normalize_default(request: ExportTraceServiceRequest) -> Any:
    return normalize_traces(request, Limits())


# --- GenAI semantic conventions (gen_ai.*) -------------------------------------------------------


def test_genai_chat_span_with_current_token_attributes() -> None:
    record = one(
        make_span(
            1,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.usage.input_tokens": 120,
                "gen_ai.usage.output_tokens": 30,
                "gen_ai.usage.cache_read.input_tokens": 100,
                "gen_ai.agent.name": "planner",
            },
            status=OK,
        )
    )
    assert record.kind == "llm"
    assert record.model == "gpt-4o-2024-08-06"  # the response model first, dated name as sent
    assert (record.input_tokens, record.output_tokens, record.cached_tokens) == (120, 30, 100)
    assert (record.agent, record.agent_rank) == ("planner", RANK_EXPLICIT_ROOT)
    assert record.service == SERVICE
    assert record.status == "ok"


def test_genai_older_prompt_and_completion_token_attributes() -> None:
    record = one(
        make_span(
            1,
            attributes={
                "gen_ai.operation.name": "text_completion",
                "gen_ai.request.model": "gpt-3.5-turbo-instruct",
                "gen_ai.usage.prompt_tokens": 11,
                "gen_ai.usage.completion_tokens": 7,
            },
        )
    )
    assert (record.kind, record.model) == ("llm", "gpt-3.5-turbo-instruct")
    assert (record.input_tokens, record.output_tokens, record.cached_tokens) == (11, 7, None)


def test_genai_current_token_names_win_over_the_older_ones() -> None:
    record = one(
        make_span(
            1,
            attributes={
                "gen_ai.usage.prompt_tokens": 1,
                "gen_ai.usage.input_tokens": 10,
                "gen_ai.usage.completion_tokens": 2,
                "gen_ai.usage.output_tokens": 20,
            },
        )
    )
    assert (record.input_tokens, record.output_tokens) == (10, 20)
    assert record.kind == "llm"  # tokens alone make it a model call


@pytest.mark.parametrize(
    "key",
    [
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_read_input_tokens",
        "gen_ai.usage.input_tokens.cached",
        "llm.token_count.prompt_details.cache_read",
    ],
)
def test_cached_input_tokens_from_every_convention(key: str) -> None:
    record = one(make_span(1, attributes={"gen_ai.usage.input_tokens": 50, key: 40}))
    assert record.cached_tokens == 40


@pytest.mark.parametrize(
    ("attributes", "model"),
    [
        ({"gen_ai.request.model": "claude-3-5-sonnet-20241022"}, "claude-3-5-sonnet-20241022"),
        ({"gen_ai.request.model": "req", "gen_ai.response.model": "resp"}, "resp"),
        ({"gen_ai.request.model": "req", "llm.model_name": "oi"}, "req"),
        ({"llm.model_name": "oi", "embedding.model_name": "emb"}, "oi"),
        ({"embedding.model_name": "text-embedding-3-small"}, "text-embedding-3-small"),
        ({"gen_ai.response.model": "", "gen_ai.request.model": "req"}, "req"),  # empty skipped
        ({"gen_ai.response.model": 5, "llm.model_name": "oi"}, "oi"),  # not a string: skipped
        ({"llm.invocation_parameters": '{"model": "gpt-4o", "temperature": 0}'}, "gpt-4o"),
        ({"embedding.invocation_parameters": '{"model": "e5"}'}, "e5"),
        ({"llm.invocation_parameters": '{"model": "x"'}, None),  # invalid JSON
        ({"llm.invocation_parameters": '["model"]'}, None),  # not an object
        ({"llm.invocation_parameters": '{"model": 4}'}, None),  # not a string
        ({"llm.invocation_parameters": '{"temperature": 1}'}, None),
        ({"llm.model_name": "named", "llm.invocation_parameters": '{"model": "p"}'}, "named"),
        ({}, None),
    ],
)
def test_model_of(attributes: dict[str, Any], model: str | None) -> None:
    assert model_of(attributes) == model


@pytest.mark.parametrize(("operation", "kind"), sorted(GEN_AI_OPERATION_KINDS.items()))
def test_kind_from_gen_ai_operation_name(operation: str, kind: str) -> None:
    assert kind_of({"gen_ai.operation.name": operation}, None, False) == kind
    assert kind_of({"gen_ai.operation.name": operation.upper()}, None, False) == kind
    assert one(make_span(1, attributes={"gen_ai.operation.name": operation})).kind == kind


def test_the_documented_gen_ai_operations_are_mapped() -> None:
    assert GEN_AI_OPERATION_KINDS["invoke_agent"] == "agent"
    assert GEN_AI_OPERATION_KINDS["chat"] == "llm"
    assert GEN_AI_OPERATION_KINDS["text_completion"] == "llm"
    assert GEN_AI_OPERATION_KINDS["execute_tool"] == "tool"
    assert GEN_AI_OPERATION_KINDS["embeddings"] == "embedding"


@pytest.mark.parametrize(("oi_kind", "kind"), sorted(OPENINFERENCE_KINDS.items()))
def test_kind_from_openinference_span_kind(oi_kind: str, kind: str) -> None:
    assert kind_of({"openinference.span.kind": oi_kind}, None, False) == kind
    assert kind_of({"openinference.span.kind": oi_kind.lower()}, None, False) == kind
    assert one(make_span(1, attributes={"openinference.span.kind": oi_kind})).kind == kind


@pytest.mark.parametrize(
    ("oi_kind", "kind"),
    [
        ("AGENT", "agent"),
        ("CHAIN", "chain"),
        ("LLM", "llm"),
        ("TOOL", "tool"),
        ("RETRIEVER", "retriever"),
        ("EMBEDDING", "embedding"),
    ],
)
def test_the_documented_openinference_kinds_are_mapped(oi_kind: str, kind: str) -> None:
    assert OPENINFERENCE_KINDS[oi_kind] == kind


@pytest.mark.parametrize(
    ("attributes", "model", "has_tokens", "kind"),
    [
        # gen_ai.operation.name is asked first, then openinference.span.kind
        (
            {"gen_ai.operation.name": "execute_tool", "openinference.span.kind": "LLM"},
            None,
            0,
            "tool",
        ),
        # an operation we do not know falls through to the next convention
        ({"gen_ai.operation.name": "ponder", "openinference.span.kind": "CHAIN"}, None, 0, "chain"),
        ({"gen_ai.operation.name": "ponder"}, "gpt-4o", False, "llm"),
        ({"openinference.span.kind": "UNKNOWN"}, None, True, "llm"),
        ({"openinference.span.kind": ""}, None, False, "span"),
        ({"gen_ai.operation.name": 3}, None, False, "span"),
        ({}, "some-model", False, "llm"),
        ({}, None, True, "llm"),
        ({}, None, False, "span"),
    ],
)
def test_kind_precedence_and_fallbacks(
    attributes: dict[str, Any], model: str | None, has_tokens: bool, kind: str
) -> None:
    assert kind_of(attributes, model, bool(has_tokens)) == kind


# --- OpenInference (llm.*) -----------------------------------------------------------------------


def test_openinference_llm_span() -> None:
    record = one(
        make_span(
            1,
            attributes={
                "openinference.span.kind": "LLM",
                "llm.model_name": "gpt-4o-mini-2024-07-18",
                "llm.token_count.prompt": 21,
                "llm.token_count.completion": 2,
                "llm.token_count.total": 23,
            },
        )
    )
    assert (record.kind, record.model) == ("llm", "gpt-4o-mini-2024-07-18")
    assert (record.input_tokens, record.output_tokens) == (21, 2)
    assert (record.agent, record.agent_rank) == (SERVICE, RANK_SERVICE_ROOT)


def test_only_a_total_is_counted_as_input() -> None:
    record = one(make_span(1, attributes={"llm.token_count.total": 99}))
    assert (record.input_tokens, record.output_tokens, record.kind) == (99, None, "llm")
    record = one(make_span(1, attributes={"gen_ai.usage.total_tokens": 12}))
    assert record.input_tokens == 12
    # with an input or output count, the total is not added on top
    record = one(
        make_span(1, attributes={"llm.token_count.total": 99, "llm.token_count.completion": 9})
    )
    assert (record.input_tokens, record.output_tokens) == (None, 9)


@pytest.mark.parametrize(
    ("value", "count"),
    [
        (12, 12),
        (0, 0),
        (12.0, 12),
        (12.9, 12),
        ("12", 12),
        (" 12 ", 12),
        (-1, None),
        (-0.5, None),
        (True, None),
        ("abc", None),
        ("", None),
        ("1.5", None),
        ("-3", None),
        ("²", None),  # str.isdigit() says yes, int() says no
        ("١٢", None),  # Arabic-Indic digits: not what any SDK sends
        ("1" * 5000, None),  # over int()'s digit limit
        (float("nan"), None),
        (float("inf"), None),
        (1e300, None),  # would overflow the BIGINT columns
        (2**62, None),
        (MAX_COUNT, MAX_COUNT),
        (MAX_COUNT + 1, None),
        ([1], None),
        (b"12", None),
    ],
)
def test_token_count_values(value: Any, count: int | None) -> None:
    record = one(make_span(1, attributes={"gen_ai.usage.input_tokens": value}))
    assert record.input_tokens == count


def test_an_unusable_token_value_falls_through_to_the_next_convention() -> None:
    record = one(
        make_span(1, attributes={"gen_ai.usage.input_tokens": "n/a", "llm.token_count.prompt": 8})
    )
    assert record.input_tokens == 8


@pytest.mark.parametrize(
    ("attributes", "nanousd"),
    [
        ({"gen_ai.usage.cost": 0.0123}, 12_300_000),
        ({"llm.cost.total": 2}, 2_000_000_000),
        ({"gen_ai.usage.cost": "0.5"}, 500_000_000),
        ({"gen_ai.usage.cost": 0}, 0),
        ({"gen_ai.usage.cost": -1.0}, None),
        ({"gen_ai.usage.cost": True}, None),
        ({"gen_ai.usage.cost": "cheap"}, None),
        ({"gen_ai.usage.cost": float("nan")}, None),
        ({"gen_ai.usage.cost": float("inf")}, None),
        ({"gen_ai.usage.cost": "1e400"}, None),
        ({"gen_ai.usage.cost": 1e300}, None),  # 1e309 nano-dollars is inf: must not raise
        ({"gen_ai.usage.cost": 2**62}, None),  # would overflow the BIGINT column
        ({"gen_ai.usage.cost": "x", "llm.cost.total": 1.5}, 1_500_000_000),
        ({}, None),
    ],
)
def test_cost_attribute(attributes: dict[str, Any], nanousd: int | None) -> None:
    assert one(make_span(1, attributes=attributes)).cost_nanousd == nanousd


# --- plain OTel spans ----------------------------------------------------------------------------


def test_plain_otel_span_belongs_to_its_service() -> None:
    parent = make_span(1, name="GET /orders", kind=Span.SPAN_KIND_SERVER, status=OK)
    child = make_span(2, 1, name="SELECT orders", kind=Span.SPAN_KIND_CLIENT, start_ms=1)
    batch = normalize([parent, child], service="orders-api")
    root, db = batch.spans
    assert (root.agent, root.agent_rank) == ("orders-api", RANK_SERVICE_ROOT)
    assert (db.agent, db.agent_rank) == ("orders-api", RANK_SERVICE)
    for record in (root, db):
        assert (record.kind, record.model, record.service) == ("span", None, "orders-api")
        assert (record.input_tokens, record.output_tokens, record.cached_tokens) == (None,) * 3
        assert record.cost_nanousd is None
    assert (root.span_kind, db.span_kind) == (Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CLIENT)
    assert (root.status, db.status) == ("ok", "unset")
    assert db.parent_span_id == root.span_id == "0000000000000001"
    assert root.trace_id == f"{TRACE:032x}"


def test_without_service_name_the_agent_is_unknown() -> None:
    record = one(make_span(1), service=None)
    assert (record.agent, record.service) == ("unknown", None)
    assert one(make_span(1), service="").agent == "unknown"


@pytest.mark.parametrize(
    ("attributes", "agent"),
    [
        ({"gen_ai.agent.name": "a", "agent.name": "b"}, "a"),
        ({"agent.name": "b"}, "b"),
        ({"gen_ai.agent.name": "", "agent.name": "b"}, "b"),
        ({"gen_ai.agent.name": 7}, SERVICE),
        ({"gen_ai.agent.name": ""}, SERVICE),
    ],
)
def test_agent_attribute_precedence(attributes: dict[str, Any], agent: str) -> None:
    assert one(make_span(1, attributes=attributes)).agent == agent


def test_status_codes_and_messages() -> None:
    unset, ok, error, unknown = normalize(
        [
            make_span(1),
            make_span(2, status=OK),
            make_span(3, status=ERROR, message="boom"),
            make_span(4, status=7),  # a code from the future
        ]
    ).spans
    assert (unset.status, unset.status_message) == ("unset", None)
    assert (ok.status, ok.status_message) == ("ok", None)
    assert (error.status, error.status_message) == ("error", "boom")
    assert unknown.status == "unset"


def test_record_as_row_has_every_column_but_the_rank() -> None:
    record = one(make_span(1, attributes={"k": "v"}))
    row = record.as_row()
    names = {f.name for f in dataclasses.fields(SpanRecord)}
    assert set(row) == names - {"agent_rank", "prompt_hash"}  # not columns
    assert all(row[k] == getattr(record, k) for k in row)
    assert orjson.loads(row["attributes"]) == {"k": "v"}
    assert orjson.loads(row["resource"]) == {"service.name": SERVICE}
    assert (row["events"], row["links"], row["scope"]) == ("[]", "[]", "test-scope")


def test_events_and_links_are_kept() -> None:
    span = make_span(1)
    span.events.add(name="exception", time_unix_nano=T0 + 5, attributes=[kv("exception.type", "E")])
    span.links.add(trace_id=tid(9), span_id=sid(8), attributes=[kv("why", "retry")])
    record = one(span)
    assert orjson.loads(record.events) == [
        {"name": "exception", "time_unix_nano": T0 + 5, "attributes": {"exception.type": "E"}}
    ]
    assert orjson.loads(record.links) == [
        {"trace_id": f"{9:032x}", "span_id": f"{8:016x}", "attributes": {"why": "retry"}}
    ]


# --- validation: ids and times -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("span", "reason"),
    [
        (make_span(1, trace=b"\x01" * 15, name="short-trace"), "trace_id"),
        (make_span(1, trace=b"\x01" * 17, name="long-trace"), "trace_id"),
        (make_span(1, trace=b"", name="no-trace"), "trace_id"),
        (make_span(1, trace=bytes(16), name="zero-trace"), "trace_id"),
        (make_span(b"\x01" * 7, name="short-span"), "span_id"),
        (make_span(b"\x01" * 9, name="long-span"), "span_id"),
        (make_span(bytes(8), name="zero-span"), "span_id"),
        (make_span(1, b"\x01" * 4, name="bad-parent"), "parent_span_id"),
        (make_span(1, start_ns=0, end_ns=5, name="no-start"), "start_time_unix_nano"),
        (make_span(1, start_ns=2**63, end_ns=2**63 + 1, name="far-future"), "2262"),
        (make_span(1, start_ns=T0, end_ns=2**64 - 1, name="end-far-future"), "2262"),
    ],
    ids=lambda v: v.name if isinstance(v, Span) else v,
)
def test_an_invalid_span_is_rejected_and_the_others_survive(span: Span, reason: str) -> None:
    good_before = make_span(11, name="good-before")
    good_after = make_span(12, name="good-after")
    batch = normalize([good_before, span, good_after])
    assert [r.name for r in batch.spans] == ["good-before", "good-after"]
    assert batch.rejected == 1
    assert batch.error_message.startswith("1 span(s) rejected: ")
    assert repr(span.name) in batch.error_message
    assert reason in batch.error_message


def test_an_all_zero_parent_means_a_root() -> None:
    record = one(make_span(1, bytes(8)))
    assert (record.parent_span_id, record.agent_rank) == (None, RANK_SERVICE_ROOT)


def test_the_error_message_lists_five_reasons_and_counts_the_rest() -> None:
    bad = [make_span(bytes(8), name=f"bad{i}") for i in range(8)]
    batch = normalize([*bad, make_span(1, name="good")])
    assert [r.name for r in batch.spans] == ["good"]
    assert batch.rejected == 8
    assert len(batch.reasons) == 5
    message = batch.error_message
    assert message.startswith("8 span(s) rejected: ")
    assert message.endswith(" (and 3 more)")
    assert all(f"'bad{i}'" in message for i in range(5))
    assert normalize([make_span(1)]).error_message == ""


def test_end_before_start_is_clamped_to_a_zero_duration() -> None:
    record = one(make_span(1, start_ns=T0, end_ns=T0 - 5 * MS))
    assert (record.start_ns, record.end_ns, record.duration_ms) == (T0, T0, 0.0)
    record = one(make_span(1, start_ns=T0, end_ns=0))  # never ended
    assert (record.end_ns, record.duration_ms) == (T0, 0.0)


def test_duration_in_milliseconds() -> None:
    record = one(make_span(1, start_ns=T0, end_ns=T0 + 1_500_000))
    assert record.duration_ms == 1.5


# --- attribute values and limits -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (av("text"), "text"),
        (av(""), ""),
        (av(True), True),
        (av(False), False),
        (av(-(2**63)), -(2**63)),
        (av(2**63 - 1), 2**63 - 1),
        (av(1.25), 1.25),
        (av(-0.0), -0.0),
        (av(float("nan")), "nan"),
        (av(float("inf")), "inf"),
        (av(float("-inf")), "-inf"),
        (av(b"\x00\xffbin"), "AP9iaW4="),
        (av(b""), ""),
        (AnyValue(), None),
        (av([1, "two", [3.5, [False]]]), [1, "two", [3.5, [False]]]),
        (av({"a": {"b": [1, {"c": b"\x01"}]}}), {"a": {"b": [1, {"c": "AQ=="}]}}),
        (AnyValue(array_value=ArrayValue()), []),
        (AnyValue(kvlist_value=KeyValueList()), {}),
        (av([None, {"k": None}]), [None, {"k": None}]),
    ],
)
def test_any_value_types(value: AnyValue, expected: Any) -> None:
    got = convert(value, 100)
    assert got == expected
    assert type(got) is type(expected)
    orjson.dumps(got)  # always storable as JSON


def test_non_finite_doubles_stay_valid_json_text() -> None:
    record = one(
        make_span(1, attributes={"nan": float("nan"), "inf": float("inf"), "x": [float("-inf")]})
    )
    stored = orjson.loads(record.attributes)
    assert stored == {"nan": "nan", "inf": "inf", "x": ["-inf"]}
    assert "NaN" not in record.attributes and "Infinity" not in record.attributes


def test_strings_are_truncated_at_every_depth() -> None:
    limits = Limits(max_attribute_length=4)
    span = make_span(
        1,
        name="a-long-span-name",
        status=ERROR,
        message="a long error message",
        attributes={"long-key": "abcdefgh", "list": ["abcdefgh", {"kkkkkk": "vvvvvv"}]},
    )
    span.events.add(name="evt", time_unix_nano=T0, attributes=[kv("e", "123456")])
    record = one(span, limits=limits)
    assert record.name == "a-lo"
    assert record.status_message == "a lo"
    assert orjson.loads(record.attributes) == {"long": "abcd", "list": ["abcd", {"kkkk": "vvvv"}]}
    assert orjson.loads(record.events)[0]["attributes"] == {"e": "1234"}
    assert convert(av("x" * 10), 10) == "x" * 10


def test_max_attributes_keeps_the_first_ones() -> None:
    attributes = [(f"k{i}", i) for i in range(10)]
    record = one(make_span(1, attributes=attributes), limits=Limits(max_attributes=3))
    assert orjson.loads(record.attributes) == {"k0": 0, "k1": 1, "k2": 2}


def test_max_attributes_also_limits_the_resource() -> None:
    request = make_request([make_span(1)], resource={f"r{i}": i for i in range(5)})
    record = normalize_traces(request, Limits(max_attributes=2)).spans[0]
    assert orjson.loads(record.resource) == {"r0": 0, "r1": 1, "service.name": SERVICE}
    assert record.agent == SERVICE  # service.name was the last resource attribute


def test_a_long_conversation_past_max_attributes_keeps_model_and_tokens() -> None:
    # OpenInference writes every message before llm.model_name and the token counts.
    messages = [(f"llm.input_messages.{i}.message.content", "hi") for i in range(300)]
    conventions = [
        ("llm.model_name", "gpt-4o-2024-08-06"),
        ("llm.token_count.prompt", 4000),
        ("llm.token_count.completion", 20),
        ("openinference.span.kind", "LLM"),
        ("agent.name", "chatty"),
    ]
    record = one(make_span(1, attributes=[*messages, *conventions]))  # default: 256 kept
    assert (record.kind, record.model, record.agent) == ("llm", "gpt-4o-2024-08-06", "chatty")
    assert (record.input_tokens, record.output_tokens) == (4000, 20)
    stored = orjson.loads(record.attributes)
    assert len(stored) == Limits().max_attributes + len(conventions)
    assert "llm.input_messages.256.message.content" not in stored


def test_nul_characters_are_replaced_everywhere_text_is_stored() -> None:
    span = make_span(
        1,
        name="na\x00me",
        status=ERROR,
        message="bo\x00om",
        attributes={"gen_ai.agent.name": "age\x00nt", "llm.model_name": "mo\x00del", "k": "v\x00"},
    )
    span.events.add(name="ev\x00", time_unix_nano=T0)
    request = make_request([span], service="ser\x00vice", scope="sco\x00pe")
    record = normalize_traces(request, Limits()).spans[0]
    assert record.name == "na\ufffdme"
    assert record.status_message == "bo\ufffdom"
    assert record.agent == "age\ufffdnt"
    assert record.model == "mo\ufffddel"
    assert record.service == "ser\ufffdvice"
    assert record.scope == "sco\ufffdpe"
    for value in record.as_row().values():
        assert not (isinstance(value, str) and "\x00" in value)
    # JSON documents keep the NUL as an escape (valid text for both databases)
    assert orjson.loads(record.attributes)["k"] == "v\x00"


def test_nul_in_a_rejected_span_name_does_not_leak_into_the_reason() -> None:
    batch = normalize([make_span(bytes(8), name="x\x00y")])
    assert "\x00" not in batch.error_message


# --- agent inheritance within a request ----------------------------------------------------------


def test_children_sent_before_their_agent_span_inherit_its_agent() -> None:
    llm = make_span(2, 1, name="chat", attributes={"gen_ai.operation.name": "chat"})
    tool = make_span(3, 2, name="tool", attributes={"gen_ai.operation.name": "execute_tool"})
    agent = make_span(1, name="run", attributes={"gen_ai.agent.name": "support-agent"})
    batch = normalize([tool, llm, agent])
    by_name = {r.name: r for r in batch.spans}
    assert by_name["run"].agent_rank == RANK_EXPLICIT_ROOT
    for name in ("chat", "tool"):  # grandchildren inherit through a span without an agent
        assert (by_name[name].agent, by_name[name].agent_rank) == ("support-agent", RANK_EXPLICIT)


def test_the_nearest_agent_ancestor_wins() -> None:
    outer = make_span(1, attributes={"gen_ai.agent.name": "outer"})
    inner = make_span(2, 1, attributes={"agent.name": "inner"})
    step = make_span(3, 2)
    sibling = make_span(4, 1)
    records = {r.span_id[-1]: r for r in normalize([step, sibling, inner, outer]).spans}
    assert records["3"].agent == "inner"
    assert records["4"].agent == "outer"
    assert (records["2"].agent, records["2"].agent_rank) == ("inner", RANK_EXPLICIT)


def test_a_child_with_its_own_agent_keeps_it() -> None:
    parent = make_span(1, attributes={"gen_ai.agent.name": "boss"})
    child = make_span(2, 1, attributes={"gen_ai.agent.name": "worker"})
    assert [r.agent for r in normalize([child, parent]).spans] == ["worker", "boss"]


def test_inheritance_stays_within_a_trace() -> None:
    agent = make_span(1, trace=1, attributes={"gen_ai.agent.name": "a"})
    other = make_span(2, 1, trace=2)  # same parent span id, another trace
    batch = normalize([agent, other])
    assert (batch.spans[1].agent, batch.spans[1].agent_rank) == (SERVICE, RANK_SERVICE)


def test_inheritance_crosses_resources_of_one_request() -> None:
    agent = make_request([make_span(1, attributes={"gen_ai.agent.name": "a"})], "svc-a")
    child = make_request([make_span(2, 1)], "svc-b")
    merged = ExportTraceServiceRequest(
        resource_spans=[*child.resource_spans, *agent.resource_spans]
    )
    record = normalize_traces(merged, Limits()).spans[0]
    assert (record.agent, record.service) == ("a", "svc-b")


def test_a_parent_cycle_does_not_loop_forever() -> None:
    a = make_span(1, 2)
    b = make_span(2, 1)
    agent = make_span(3, attributes={"gen_ai.agent.name": "x"})
    batch = normalize([a, b, agent])
    assert [r.agent for r in batch.spans] == [SERVICE, SERVICE, "x"]


def test_an_ancestor_chain_longer_than_the_walk_limit_terminates() -> None:
    chain = [make_span(i + 1, i or None) for i in range(400)]
    chain[0].attributes.append(kv("gen_ai.agent.name", "root-agent"))
    records = normalize(chain).spans
    assert records[1].agent == "root-agent"
    assert records[200].agent == "root-agent"
    assert len(records) == 400


# --- trace_deltas --------------------------------------------------------------------------------


def record(
    span_id: str,
    parent: str | None = None,
    *,
    trace: str = "t1",
    name: str = "",
    kind: str = "span",
    agent: str = SERVICE,
    rank: int | None = None,
    start: int = 0,
    end: int | None = None,
    status: str = "ok",
    message: str | None = None,
    tokens: tuple[int | None, int | None, int | None] = (None, None, None),
    cost: int | None = None,
) -> SpanRecord:
    end = start + 10 if end is None else end
    if rank is None:
        rank = RANK_SERVICE_ROOT if parent is None else RANK_SERVICE
    return SpanRecord(
        trace_id=trace,
        span_id=span_id,
        parent_span_id=parent,
        name=name or span_id,
        kind=kind,
        span_kind=1,
        agent=agent,
        agent_rank=rank,
        model=None,
        service=SERVICE,
        start_ns=start,
        end_ns=end,
        duration_ms=(end - start) / MS,
        status=status,
        status_message=message,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        cached_tokens=tokens[2],
        cost_nanousd=cost,
        attributes="{}",
        events="[]",
        links="[]",
        resource="{}",
        scope=None,
    )


def test_trace_deltas_of_nothing() -> None:
    assert trace_deltas([]) == []


def test_trace_deltas_sum_counts_tokens_and_cost() -> None:
    records = [
        record("llm1", "root", kind="llm", start=5, tokens=(100, 10, 40), cost=7),
        record("emb", "root", kind="embedding", start=6, tokens=(5, None, None), cost=1),
        record("tool", "root", kind="tool", start=7, tokens=(1000, 1000, 1000), cost=1000),
        record("agent", "root", kind="agent", start=8, tokens=(2000, 2000, 0), cost=1000),
        record("llm2", "root", kind="llm", start=9, tokens=(None, None, None)),
        record("root", None, kind="chain", start=0, end=50),
    ]
    [d] = trace_deltas(records)
    assert (d.span_count, d.error_count, d.error_message) == (6, 0, None)
    assert (d.llm_calls, d.tool_calls) == (2, 1)
    # tokens and cost only from model calls (llm, embedding): never from tool or agent spans
    assert (d.input_tokens, d.output_tokens, d.cached_tokens, d.cost_nanousd) == (105, 10, 40, 8)
    assert (d.root_span_id, d.name, d.start_ns, d.end_ns) == ("root", "root", 0, 50)
    assert {"llm", "embedding"} == MODEL_CALL_KINDS


def test_trace_deltas_errors_keep_the_first_message() -> None:
    [d] = trace_deltas(
        [
            record("a", status="ok"),
            record("b", "a", status="error", message=None, name="step-b"),
            record("c", "a", status="error", message="later"),
            record("d", "a", status="unset"),
        ]
    )
    assert (d.error_count, d.error_message) == (2, "step-b")  # no message: the span's name
    [d] = trace_deltas([record("x", status="error", message="boom"), record("y", status="error")])
    assert d.error_message == "boom"


def test_trace_deltas_name_is_the_roots_even_if_a_child_started_earlier() -> None:
    [d] = trace_deltas(
        [record("late-child", "r", start=1), record("r", start=5), record("earliest", "r", start=0)]
    )
    assert (d.root_span_id, d.name, d.start_ns) == ("r", "r", 0)


def test_trace_deltas_without_a_root_name_the_earliest_span() -> None:
    [d] = trace_deltas(
        [record("b", "p", start=20), record("a", "p", start=10), record("c", "p", start=30)]
    )
    assert (d.root_span_id, d.name, d.start_ns, d.end_ns) == (None, "a", 10, 40)


def test_trace_deltas_agent_of_the_highest_rank_first_seen() -> None:
    [d] = trace_deltas(
        [
            record("c1", "r", agent="svc", rank=RANK_SERVICE),
            record("c2", "r", agent="inherited", rank=RANK_EXPLICIT),
            record("c3", "r", agent="other", rank=RANK_EXPLICIT),  # a tie keeps the first
            record("c4", "r", agent="svc2", rank=RANK_SERVICE_ROOT),
        ]
    )
    assert (d.agent, d.agent_rank) == ("inherited", RANK_EXPLICIT)
    [d] = trace_deltas(
        [
            record("c", "r", agent="inherited", rank=RANK_EXPLICIT),
            record("r", agent="root-agent", rank=RANK_EXPLICIT_ROOT),
        ]
    )
    assert (d.agent, d.agent_rank) == ("root-agent", RANK_EXPLICIT_ROOT)


def test_trace_deltas_one_per_trace_in_first_seen_order() -> None:
    deltas = trace_deltas(
        [record("a", trace="t2"), record("b", trace="t1"), record("c", "a", trace="t2")]
    )
    assert [(d.trace_id, d.span_count) for d in deltas] == [("t2", 2), ("t1", 1)]


span_records = st.builds(
    record,
    st.sampled_from("abcdef"),
    st.one_of(st.none(), st.sampled_from("abcdef")),
    trace=st.sampled_from(["t1", "t2"]),
    kind=st.sampled_from(["llm", "embedding", "tool", "agent", "span"]),
    rank=st.integers(0, 3),
    start=st.integers(0, 10**6),
    status=st.sampled_from(["ok", "error", "unset"]),
    tokens=st.tuples(*[st.one_of(st.none(), st.integers(0, 10**6))] * 3),
    cost=st.one_of(st.none(), st.integers(0, 10**9)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(span_records, max_size=12))
def test_trace_deltas_agree_with_the_records(records: list[SpanRecord]) -> None:
    deltas = {d.trace_id: d for d in trace_deltas(records)}
    assert set(deltas) == {r.trace_id for r in records}
    for trace_id, d in deltas.items():
        mine = [r for r in records if r.trace_id == trace_id]
        calls = [r for r in mine if r.kind in MODEL_CALL_KINDS]
        assert d.span_count == len(mine)
        assert d.error_count == sum(r.status == "error" for r in mine)
        assert d.llm_calls == sum(r.kind == "llm" for r in mine)
        assert d.tool_calls == sum(r.kind == "tool" for r in mine)
        assert d.input_tokens == sum(r.input_tokens or 0 for r in calls)
        assert d.output_tokens == sum(r.output_tokens or 0 for r in calls)
        assert d.cached_tokens == sum(r.cached_tokens or 0 for r in calls)
        assert d.cost_nanousd == sum(r.cost_nanousd or 0 for r in calls)
        assert d.start_ns == min(r.start_ns for r in mine)
        assert d.end_ns == max(r.end_ns for r in mine)
        assert d.agent_rank == max(r.agent_rank for r in mine)
        assert d.agent == next(r.agent for r in mine if r.agent_rank == d.agent_rank)
        roots = [r for r in mine if r.parent_span_id is None]
        if roots:
            assert (d.root_span_id, d.name) == (roots[-1].span_id, roots[-1].name)
        else:
            assert d.root_span_id is None
            assert d.name in {r.name for r in mine if r.start_ns == d.start_ns}


# --- property: normalize never raises on a decoded message ---------------------------------------


def _check_batch(request: ExportTraceServiceRequest) -> None:
    batch = normalize_traces(request, Limits(max_attributes=6, max_attribute_length=16))
    sent = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    assert len(batch.spans) + batch.rejected == sent
    assert len(batch.reasons) == min(batch.rejected, 5)
    for r in batch.spans:
        assert len(r.trace_id) == 32 and int(r.trace_id, 16) != 0
        assert len(r.span_id) == 16 and int(r.span_id, 16) != 0
        assert r.parent_span_id is None or len(r.parent_span_id) == 16
        assert 0 < r.start_ns <= r.end_ns < 2**63
        assert r.duration_ms >= 0 and math.isfinite(r.duration_ms)
        assert r.status in ("unset", "ok", "error")
        assert r.agent and len(r.name) <= 16
        for count in (r.input_tokens, r.output_tokens, r.cached_tokens):
            assert count is None or 0 <= count <= MAX_COUNT
        assert r.cost_nanousd is None or 0 <= r.cost_nanousd < 2**63
        for value in r.as_row().values():
            assert not (isinstance(value, str) and "\x00" in value)
        attributes = orjson.loads(r.attributes)
        assert is_finite_json(attributes)
        orjson.loads(r.events), orjson.loads(r.links), orjson.loads(r.resource)
    trace_deltas(batch.spans)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_normalize_never_raises_on_a_built_message(request: ExportTraceServiceRequest) -> None:
    # Through the wire format: what normalize sees is always a parsed message.
    _check_batch(decode_traces(request.SerializeToString(), PROTOBUF))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_normalize_never_raises_on_whatever_bytes_parse(body: bytes) -> None:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except Exception:
        return
    _check_batch(request)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=5), st.randoms(use_true_random=False))
def test_inheritance_does_not_depend_on_the_order_spans_arrive(
    parents: list[int], rng: Any
) -> None:
    # span i+1 has parent parents[i] (0 = root; a forward reference makes a cycle or orphan)
    spans = [make_span(i + 1, p or None) for i, p in enumerate(parents)]
    spans[0].attributes.append(kv("gen_ai.agent.name", "boss"))
    first = {r.span_id: r.agent for r in normalize(spans).spans}
    rng.shuffle(spans)
    second = {r.span_id: r.agent for r in normalize(spans).spans}
    assert first == second


def test_batches_survive_the_trip_to_and_from_an_ingest_worker() -> None:
    import pickle

    from pharos.server.ingest.normalize import Limits, normalize_traces
    from tests.otlp_helpers import request, span

    good, bad = span(7, 1, attrs={"gen_ai.agent.name": "a"}), span(7, 2, 1)
    bad.span_id = b""
    batch = normalize_traces(request([good, bad]), Limits())
    again = pickle.loads(pickle.dumps(batch))
    assert again.spans == batch.spans and again.spans[0].agent == "a"
    assert (again.rejected, again.reasons) == (1, batch.reasons)
