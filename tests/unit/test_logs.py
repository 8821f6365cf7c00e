"""OTLP log decoding and normalization, and the pure helpers of the log queries."""

from __future__ import annotations

import pickle

import orjson
import pytest

from pharos.server.errors import ApiError
from pharos.server.ingest.decode import JSON, PROTOBUF, DecodeError
from pharos.server.ingest.logs import decode_logs, level_of, normalize_logs, severity_of
from pharos.server.ingest.normalize import Limits
from pharos.server.query.logs import (
    BadCursor,
    decode_cursor,
    encode_cursor,
    fts_phrase,
    like_pattern,
)
from pharos.server.query.logs_api import min_severity
from tests.log_helpers import log_record, logs_request, logs_to_otlp_json

T = 1_790_000_000_000_000_000


@pytest.mark.parametrize(
    ("number", "text", "level", "severity"),
    [
        (1, "", "trace", 1),
        (8, "", "debug", 8),
        (9, "", "info", 9),
        (13, "WARN", "warn", 13),
        (16, "", "warn", 16),
        (17, "", "error", 17),
        (21, "", "fatal", 21),
        (24, "", "fatal", 24),
        (0, "WARNING", "warn", 13),
        (0, " err ", "error", 17),
        (0, "Critical", "fatal", 21),
        (0, "verbose", "info", 9),
        (0, "", "info", 9),
        (99, "error", "error", 17),  # out of range: the text decides
    ],
)
def test_levels(number: int, text: str, level: str, severity: int) -> None:
    assert level_of(severity_of(number, text), text) == level
    assert severity_of(number, text) == severity


def test_normalize_fields_agent_and_structured_body() -> None:
    records = [
        log_record("plain", time_ns=T, trace=5, span_id=6, attrs={"k": "v"}),
        log_record({"a": 1, "b": "two"}, time_ns=T + 1, attrs={"gen_ai.agent.name": "planner"}),
        log_record(None, time_ns=T + 2),
    ]
    out = normalize_logs(logs_request(records, service="svc"), Limits())
    assert out.rejected == 0
    plain, structured, empty = out.logs
    assert (plain.body, plain.body_json, plain.agent, plain.service) == (
        "plain",
        False,
        "svc",
        "svc",
    )
    assert plain.trace_id == f"{5:032x}" and plain.span_id == f"{6:016x}"
    assert orjson.loads(plain.attributes) == {"k": "v"}
    assert orjson.loads(plain.resource) == {"service.name": "svc"}
    assert structured.body_json and orjson.loads(structured.body) == {"a": 1, "b": "two"}
    assert structured.agent == "planner"
    assert (empty.body, empty.body_json, empty.trace_id) == ("", False, None)
    assert plain.fingerprint is None  # only ERROR and worse are error occurrences


def test_log_id_is_stable_and_content_sensitive() -> None:
    def ids(body: str, **kw: object) -> str:
        req = logs_request([log_record(body, time_ns=T, **kw)])  # type: ignore[arg-type]
        return normalize_logs(req, Limits()).logs[0].log_id

    assert ids("a") == ids("a")
    assert len(ids("a")) == 32
    assert ids("a") != ids("b")
    assert ids("a") != ids("a", level="warn")
    assert ids("a") != ids("a", trace=1)
    assert ids("a") != ids("a", attrs={"x": 1})


def test_rejections_name_the_problem() -> None:
    short = log_record("short", time_ns=T)
    short.trace_id = b"\x01"
    bad_span = log_record("span", time_ns=T)
    bad_span.span_id = b"\x01\x02"
    no_time = log_record("none", time_ns=0)
    future = log_record("future", time_ns=2**63 + 5)
    zero_ids = log_record("zero ids", time_ns=T)
    zero_ids.trace_id, zero_ids.span_id = b"\x00" * 16, b"\x00" * 8
    observed_only = log_record("observed", time_ns=0)
    observed_only.observed_time_unix_nano = T
    out = normalize_logs(
        logs_request([short, bad_span, no_time, future, zero_ids, observed_only]), Limits()
    )
    assert out.rejected == 4
    assert out.error_message == (
        "4 log record(s) rejected: trace_id must be 16 bytes or empty; span_id must be 8 bytes "
        "or empty; time_unix_nano and observed_time_unix_nano are both missing; time_unix_nano "
        "is after the year 2262"
    )
    kept = {r.body: r for r in out.logs}
    assert kept["zero ids"].trace_id is None and kept["zero ids"].span_id is None
    assert kept["observed"].time_ns == T


def test_error_logs_carry_a_fingerprint() -> None:
    exc = log_record(
        "charge failed",
        level="error",
        time_ns=T,
        attrs={
            "exception.type": "TimeoutError",
            "exception.message": "gateway timed out after 30s",
            "exception.stacktrace": "Traceback ...",
        },
    )
    plain = log_record("disk 93% full on /var/lib/x", level="fatal", time_ns=T)
    out = normalize_logs(logs_request([exc, plain]), Limits())
    e, p = out.logs
    assert (e.exc_type, e.exc_message, e.stacktrace) == (
        "TimeoutError",
        "gateway timed out after 30s",
        "Traceback ...",
    )
    assert e.fingerprint is not None and len(e.fingerprint) == 16
    assert p.exc_type is None and p.exc_message == "disk 93% full on /var/lib/x"
    assert p.fingerprint is not None


def test_batches_pickle_for_the_worker_pipe() -> None:
    out = normalize_logs(logs_request([log_record("x", time_ns=T, level="error")]), Limits())
    again = pickle.loads(pickle.dumps(out))
    assert again.logs == out.logs and again.rejected == out.rejected


def test_decode_json_and_protobuf_agree() -> None:
    req = logs_request([log_record("same", time_ns=T, trace=9, span_id=4)])
    from_json = decode_logs(orjson.dumps(logs_to_otlp_json(req)), JSON)
    from_proto = decode_logs(req.SerializeToString(), PROTOBUF)
    assert from_json == from_proto == req


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"[]", "the body must be a JSON object"),
        (b'{"resourceLogs": {}}', "resourceLogs: expected an array"),
        (b'{"resourceLogs": [1]}', "resourceLogs[0]: expected an object"),
        (b'{"resourceLogs": [{"scopeLogs": [7]}]}', "resourceLogs[0].scopeLogs[0]: expected"),
        (
            b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "xyz"}]}]}]}',
            "logRecords[0].traceId: 'xyz' is not a hex string",
        ),
    ],
)
def test_decode_json_errors(body: bytes, says: str) -> None:
    with pytest.raises(DecodeError, match=None) as info:
        decode_logs(body, JSON)
    assert says in str(info.value)


def test_query_helpers() -> None:
    assert like_pattern("100%_a\\b") == "%100\\%\\_a\\\\b%"
    assert fts_phrase('say "hi"') == '"say ""hi"""'
    cursor = encode_cursor(T, 42)
    assert decode_cursor(cursor) == (T, 42)
    for bad in ("", "!!!", encode_cursor(T, 42)[:-3] + "xyz", "WyJhIiwxXQ"):
        with pytest.raises(BadCursor):
            decode_cursor(bad)
    assert min_severity(None) is None
    assert min_severity("warning") == 13 and min_severity("ERROR") == 17
    with pytest.raises(ApiError, match="level: 'loud' is not one of"):
        min_severity("loud")
