"""Decoding OTLP/HTTP trace bodies: protobuf and OTLP JSON (hex ids), errors that name the field,
content types, and property tests over arbitrary input and generated spans."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from pharos.server.ingest.decode import (
    JSON,
    PROTOBUF,
    DecodeError,
    UnsupportedContentType,
    decode_traces,
    media_type,
)
from pharos.server.ingest.normalize import Limits, normalize_traces
from tests.unit.helpers import (
    FIXTURE_FILES,
    T0,
    fixture_requests,
    json_body,
    kv,
    make_request,
    make_span,
    requests,
    sid,
    tid,
    to_otlp_json,
)

SPAN_PATH = "resourceSpans[0].scopeSpans[0].spans[0]"


def sample_request() -> ExportTraceServiceRequest:
    root = make_span(
        1,
        name="agent run",
        attributes={"gen_ai.agent.name": "a", "n": 3, "x": 1.5, "ok": True, "b": b"\x00\x01"},
        status=Status.STATUS_CODE_ERROR,
        message="boom",
        kind=Span.SPAN_KIND_SERVER,
    )
    child = make_span(2, 1, name="chat", attributes={"list": [1, "a"], "map": {"k": [None]}})
    child.events.add(
        name="exception", time_unix_nano=T0 + 1, attributes=[kv("exception.type", "E")]
    )
    child.links.add(trace_id=tid(7), span_id=sid(9), attributes=[kv("rel", "follows")])
    return make_request([root, child], service="svc")


# --- protobuf ------------------------------------------------------------------------------------


def test_protobuf_round_trip() -> None:
    request = sample_request()
    assert decode_traces(request.SerializeToString(), PROTOBUF) == request


def test_an_empty_protobuf_body_is_an_empty_request() -> None:
    assert decode_traces(b"", PROTOBUF) == ExportTraceServiceRequest()


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_the_captured_fixtures_decode(path: Any) -> None:
    request = decode_traces(path.read_bytes(), PROTOBUF)
    [rs] = request.resource_spans
    [ss] = rs.scope_spans
    [span] = ss.spans
    assert len(span.trace_id) == 16 and len(span.span_id) == 8
    assert request.SerializeToString() == path.read_bytes()


def test_every_truncation_of_a_protobuf_body_is_a_decode_error() -> None:
    # One top-level field: cutting anywhere inside it leaves a length-delimited field unfinished.
    body = FIXTURE_FILES[0].read_bytes()
    assert len(decode_traces(body, PROTOBUF).resource_spans) == 1
    for cut in range(1, len(body)):
        with pytest.raises(DecodeError, match="invalid protobuf"):
            decode_traces(body[:cut], PROTOBUF)


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xff\xff\xff",
        b"\x0a\xff\xff\xff\xff\x0f",  # a length far past the end
        b"\x0a\x05abc",
        b"{}",  # JSON sent as protobuf
        b"\x0b",  # a group start with no end
    ],
)
def test_garbage_protobuf_is_a_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_traces(body, PROTOBUF)


def test_decode_error_is_a_value_error() -> None:
    assert issubclass(DecodeError, ValueError)
    assert issubclass(UnsupportedContentType, ValueError)


# --- OTLP JSON -----------------------------------------------------------------------------------

#: A span as the OTel JS exporter (and the Collector's otlpjson) writes it.
JS_EXPORTER_JSON = b"""{
  "resourceSpans": [{
    "resource": {"attributes": [
      {"key": "service.name", "value": {"stringValue": "js-agent"}}
    ], "droppedAttributesCount": 0},
    "scopeSpans": [{
      "scope": {"name": "@opentelemetry/instrumentation-openai", "version": "0.1.0"},
      "spans": [{
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "parentSpanId": "eee19b7ec3c1b173",
        "name": "chat gpt-4o",
        "kind": 3,
        "startTimeUnixNano": "1790000000000000000",
        "endTimeUnixNano": "1790000000250000000",
        "attributes": [
          {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
          {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
          {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "42"}},
          {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 7}},
          {"key": "temperature", "value": {"doubleValue": 0.5}},
          {"key": "stream", "value": {"boolValue": false}},
          {"key": "stop", "value": {"arrayValue": {"values": [{"stringValue": "\\n"}]}}},
          {"key": "raw", "value": {"bytesValue": "AAE="}}
        ],
        "droppedAttributesCount": 0,
        "events": [{"timeUnixNano": "1790000000100000000", "name": "first token"}],
        "links": [{"traceId": "5B8EFFF798038103D269B633813FC60D", "spanId": "0000000000000001"}],
        "status": {"code": 2, "message": "upstream 500"}
      }]
    }]
  }]
}"""


def test_otlp_json_from_the_js_exporter() -> None:
    request = decode_traces(JS_EXPORTER_JSON, JSON)
    [rs] = request.resource_spans
    [span] = rs.scope_spans[0].spans
    assert span.trace_id == bytes.fromhex("5b8efff798038103d269b633813fc60c")
    assert span.span_id == bytes.fromhex("eee19b7ec3c1b174")
    assert span.parent_span_id == bytes.fromhex("eee19b7ec3c1b173")
    assert span.kind == Span.SPAN_KIND_CLIENT
    assert span.status.code == Status.STATUS_CODE_ERROR
    assert span.start_time_unix_nano == 1_790_000_000_000_000_000
    assert span.links[0].trace_id == bytes.fromhex("5b8efff798038103d269b633813fc60d")
    assert span.links[0].span_id == sid(1)
    values = {a.key: a.value for a in span.attributes}
    assert values["gen_ai.usage.input_tokens"].int_value == 42
    assert values["gen_ai.usage.output_tokens"].int_value == 7
    assert values["raw"].bytes_value == b"\x00\x01"

    [record] = normalize_traces(request, Limits()).spans
    assert (record.trace_id, record.span_id) == (
        "5b8efff798038103d269b633813fc60c",
        "eee19b7ec3c1b174",
    )
    assert (record.kind, record.model, record.agent) == ("llm", "gpt-4o", "js-agent")
    assert (record.input_tokens, record.output_tokens) == (42, 7)
    assert (record.status, record.status_message, record.duration_ms) == (
        "error",
        "upstream 500",
        250.0,
    )


def test_otlp_json_decodes_equal_to_the_protobuf_path() -> None:
    request = sample_request()
    assert decode_traces(json_body(request), JSON) == request


@pytest.mark.parametrize("index", range(5))
def test_the_fixtures_as_otlp_json_map_to_the_same_records(index: int) -> None:
    request = fixture_requests()[index]
    body = json_body(request)
    assert b'"traceId":"d752926ceaed0a490d0923caefbfa22c"' in body  # hex, as the spec says
    from_json = decode_traces(body, JSON)
    assert from_json == request
    assert normalize_traces(from_json, Limits()) == normalize_traces(request, Limits())


def test_enum_names_and_snake_case_keys_are_accepted_too() -> None:
    doc = {
        "resource_spans": [
            {
                "scope_spans": [
                    {
                        "spans": [
                            {
                                "trace_id": "0af7651916cd43dd8448eb211c80319c",
                                "span_id": "b7ad6b7169203331",
                                "parent_span_id": "",
                                "name": "x",
                                "kind": "SPAN_KIND_SERVER",
                                "start_time_unix_nano": 5,
                                "status": {"code": "STATUS_CODE_OK"},
                            }
                        ]
                    }
                ]
            }
        ]
    }
    span = decode_traces(orjson.dumps(doc), JSON).resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id.hex() == "0af7651916cd43dd8448eb211c80319c"
    assert span.span_id.hex() == "b7ad6b7169203331"
    assert (span.parent_span_id, span.kind, span.status.code) == (b"", 2, 1)
    assert span.start_time_unix_nano == 5


def test_unknown_json_fields_are_ignored_and_empty_documents_are_empty() -> None:
    assert decode_traces(b"{}", JSON) == ExportTraceServiceRequest()
    assert decode_traces(b'{"resourceSpans": []}', JSON) == ExportTraceServiceRequest()
    doc = to_otlp_json(sample_request())
    doc["futureField"] = {"x": 1}
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["futureSpanField"] = [1, 2]
    assert decode_traces(orjson.dumps(doc), JSON) == sample_request()


def test_null_or_empty_ids_mean_no_id() -> None:
    doc = to_otlp_json(sample_request())
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    span["parentSpanId"] = None
    decoded = decode_traces(orjson.dumps(doc), JSON)
    assert decoded.resource_spans[0].scope_spans[0].spans[1].parent_span_id == b""


def test_hex_ids_of_the_wrong_length_decode_and_are_rejected_per_span() -> None:
    doc = to_otlp_json(sample_request())
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[0]["traceId"] = "abcd"  # valid hex, but 2 bytes
    batch = normalize_traces(decode_traces(orjson.dumps(doc), JSON), Limits())
    assert [r.name for r in batch.spans] == ["chat"]
    assert batch.rejected == 1
    assert "trace_id must be 16 non-zero bytes" in batch.error_message


def _doc_with(path: str, value: Any) -> bytes:
    """The sample request as OTLP JSON with the value at a dotted path replaced."""
    doc = to_otlp_json(sample_request())
    node: Any = doc
    *parents, last = path.replace("[", ".").replace("]", "").split(".")
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = value
    return orjson.dumps(doc)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (f"{SPAN_PATH}.traceId", "not-hex-at-all-not-hex-at-all-xx"),
        (f"{SPAN_PATH}.traceId", "0af7651916cd43dd8448eb211c80319"),  # odd length
        (f"{SPAN_PATH}.spanId", "zz" * 8),
        (f"{SPAN_PATH}.spanId", base64.b64encode(b"12345678").decode()),  # base64, not hex
        (f"{SPAN_PATH}.parentSpanId", "é" * 16),
        ("resourceSpans[0].scopeSpans[0].spans[1].parentSpanId", "0x00000000000001"),
        ("resourceSpans[0].scopeSpans[0].spans[1].links[0].traceId", "g" * 32),
        ("resourceSpans[0].scopeSpans[0].spans[1].links[0].spanId", 12),
        (f"{SPAN_PATH}.traceId", 123),
        (f"{SPAN_PATH}.spanId", ["aa"]),
    ],
)
def test_a_bad_id_names_its_json_path(path: str, value: Any) -> None:
    with pytest.raises(DecodeError) as raised:
        decode_traces(_doc_with(path, value), JSON)
    assert path in str(raised.value)


@pytest.mark.parametrize("value", ["abc", "1.5", 1.5, -1, True, {}, [], "", "1 2"])
def test_a_wrong_start_time_names_the_field(value: Any) -> None:
    with pytest.raises(DecodeError, match="startTimeUnixNano"):
        decode_traces(_doc_with(f"{SPAN_PATH}.startTimeUnixNano", value), JSON)


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (f"{SPAN_PATH}.name", 5, "name"),
        (f"{SPAN_PATH}.kind", [1], "kind"),
        (f"{SPAN_PATH}.attributes", {"k": "v"}, "attributes"),
        (f"{SPAN_PATH}.status", 2, "status"),
        (f"{SPAN_PATH}.endTimeUnixNano", "soon", "endTimeUnixNano"),
        ("resourceSpans[0].resource", 7, "resource"),
    ],
)
def test_other_wrong_types_name_the_field(path: str, value: Any, field: str) -> None:
    with pytest.raises(DecodeError, match=field):
        decode_traces(_doc_with(path, value), JSON)


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        ({"resourceSpans": {}}, "resourceSpans"),
        ({"resourceSpans": [5]}, "resourceSpans[0]"),
        ({"resourceSpans": [{"scopeSpans": "x"}]}, "resourceSpans[0].scopeSpans"),
        ({"resourceSpans": [{"scopeSpans": [None]}]}, "resourceSpans[0].scopeSpans[0]"),
        (
            {"resourceSpans": [{"scopeSpans": [{"spans": 1}]}]},
            "resourceSpans[0].scopeSpans[0].spans",
        ),
        ({"resourceSpans": [{"scopeSpans": [{"spans": [[]]}]}]}, SPAN_PATH),
        ({"resourceSpans": [{}, {"scopeSpans": [{}, {"spans": [{}, 1]}]}]}, "resourceSpans[1]"),
    ],
)
def test_a_wrong_structure_names_where(doc: dict[str, Any], where: str) -> None:
    with pytest.raises(DecodeError) as raised:
        decode_traces(orjson.dumps(doc), JSON)
    assert where in str(raised.value)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b'{"resourceSpans": [}',
        b"{'single': 'quotes'}",
        b"\xef\xbb\xbf{}",  # a byte order mark
        b'{"a": NaN}',
        b'{"a": "\\ud800"}',  # a lone surrogate
    ],
)
def test_invalid_json_is_a_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_traces(body, JSON)


@pytest.mark.parametrize("body", [b"[]", b"[{}]", b'"text"', b"1", b"null", b"true"])
def test_json_that_is_not_an_object_is_a_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError, match="JSON object"):
        decode_traces(body, JSON)


@pytest.mark.parametrize(
    "body",
    [
        b'{"resourceSpans": [{"resource": {"attributes": [{"key": "\xff"}]}}]}',
        b'{"resourceSpans": "\xc3\x28"}',
        b"\xff\xfe{\x00}\x00",  # UTF-16
    ],
)
def test_invalid_utf8_in_json_is_a_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_traces(body, JSON)


def test_an_unpaired_surrogate_in_a_json_string_is_a_decode_error() -> None:
    doc = to_otlp_json(sample_request())
    body = orjson.dumps(doc).replace(b'"name":"chat"', b'"name":"\\udc00"')
    with pytest.raises(DecodeError):
        decode_traces(body, JSON)


# --- content types -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("application/json", JSON),
        ("application/json; charset=utf-8", JSON),
        ("Application/JSON;charset=UTF-8", JSON),
        (" application/json ", JSON),
        ("application/x-protobuf", PROTOBUF),
        ("application/x-protobuf; proto=opentelemetry", PROTOBUF),
    ],
)
def test_media_type_accepts_otlp_types(header: str, expected: str) -> None:
    assert media_type(header) == expected


@pytest.mark.parametrize(
    "header",
    [None, "", "text/plain", "application/protobuf", "application/jsonl", "json", "*/*"],
)
def test_media_type_rejects_anything_else(header: str | None) -> None:
    with pytest.raises(UnsupportedContentType) as raised:
        media_type(header)
    assert "application/x-protobuf" in str(raised.value)


# --- properties ----------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_decode_or_raise_decode_error(body: bytes) -> None:
    for content_type in (PROTOBUF, JSON):
        try:
            result = decode_traces(body, content_type)
        except DecodeError:
            continue
        assert isinstance(result, ExportTraceServiceRequest)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)
otlp_keys = st.sampled_from(
    [
        "resourceSpans",
        "scopeSpans",
        "spans",
        "traceId",
        "spanId",
        "parentSpanId",
        "links",
        "attributes",
        "startTimeUnixNano",
        "value",
        "intValue",
        "arrayValue",
        "kvlistValue",
        "status",
        "code",
        "kind",
    ]
)
otlp_shaped = st.recursive(
    json_values,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(otlp_keys, children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(otlp_keys, otlp_shaped, max_size=3))
def test_arbitrary_json_documents_decode_or_raise_decode_error(doc: dict[str, Any]) -> None:
    body = orjson.dumps(doc)
    try:
        result = decode_traces(body, JSON)
    except DecodeError:
        return
    assert isinstance(result, ExportTraceServiceRequest)
    normalize_traces(result, Limits())


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(valid_ids=True))
def test_protobuf_and_otlp_json_give_identical_records(request: ExportTraceServiceRequest) -> None:
    limits = Limits(max_attributes=6, max_attribute_length=12)
    from_protobuf = normalize_traces(decode_traces(request.SerializeToString(), PROTOBUF), limits)
    doc = to_otlp_json(request)
    from_json = normalize_traces(decode_traces(orjson.dumps(doc), JSON), limits)
    assert from_json.spans == from_protobuf.spans
    assert (from_json.rejected, from_json.reasons) == (
        from_protobuf.rejected,
        from_protobuf.reasons,
    )


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_ids_of_any_length_survive_the_json_path(request: ExportTraceServiceRequest) -> None:
    # Hex of a wrong-length id is still hex: the JSON path rejects the same spans, per span.
    limits = Limits()
    from_protobuf = normalize_traces(decode_traces(request.SerializeToString(), PROTOBUF), limits)
    from_json = normalize_traces(decode_traces(json_body(request), JSON), limits)
    assert from_json == from_protobuf
