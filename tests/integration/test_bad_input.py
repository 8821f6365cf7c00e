"""Bad input gets a clear 4xx, never a 500; nothing accepted before is lost; the server goes on."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import orjson
import pytest
from google.rpc import status_pb2

from tests.conftest import RunningServer, ServerFactory
from tests.otlp_helpers import JSON, PROTOBUF, request, span, to_otlp_json

GOOD_TRACE = 0xD00D


def _good_body() -> bytes:
    return request([span(GOOD_TRACE, 1, name="accepted before")]).SerializeToString()


def _json_doc() -> dict:
    return to_otlp_json(request([span(0xE1, 1, name="json span")]))


def _json_with(mutate: Callable[[dict], None]) -> bytes:
    doc = _json_doc()
    mutate(doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0])
    return orjson.dumps(doc)


def _chunks(total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b"\x00" * 65536
        sent += 65536


@dataclass
class Case:
    body: bytes | Callable[[], Iterator[bytes]]
    headers: dict[str, str]
    status: int
    says: str  # a fragment the error message must contain


VALID_PROTO = request([span(0xE2, 1, name="x" * 200)]).SerializeToString()
CASES = {
    "truncated protobuf": Case(
        VALID_PROTO[: len(VALID_PROTO) // 2], PROTOBUF, 400, "invalid protobuf"
    ),
    "garbage protobuf": Case(b"\xff\xff\xff\xff\xff\xff", PROTOBUF, 400, "invalid protobuf"),
    "invalid utf-8 in protobuf string": Case(
        VALID_PROTO.replace(b"x" * 200, b"\xff" * 200), PROTOBUF, 400, "invalid protobuf"
    ),
    "invalid json": Case(b'{"resourceSpans": [', JSON, 400, "invalid JSON"),
    "json not an object": Case(b"[1, 2]", JSON, 400, "JSON object"),
    "json invalid utf-8": Case(
        b'{"resourceSpans": [], "x": "\xff\xfe"}', JSON, 400, "invalid JSON"
    ),
    "json lone surrogate": Case(
        _json_with(lambda s: s.update(name="\\ud800")).replace(b"\\\\ud800", b"\\ud800"),
        JSON,
        400,
        "invalid",
    ),
    "json wrong type": Case(
        _json_with(lambda s: s.update(startTimeUnixNano="soon")), JSON, 400, "startTimeUnixNano"
    ),
    "json bad hex id": Case(
        _json_with(lambda s: s.update(traceId="zz" * 16)),
        JSON,
        400,
        "resourceSpans[0].scopeSpans[0].spans[0].traceId",
    ),
    "json id not a string": Case(
        _json_with(lambda s: s.update(spanId=12)), JSON, 400, "spans[0].spanId"
    ),
    "json spans not a list": Case(
        orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": {"a": 1}}]}]}),
        JSON,
        400,
        "spans: expected an array",
    ),
    "unsupported content type": Case(
        b"hello", {"content-type": "text/plain"}, 415, "unsupported content type"
    ),
    "missing content type": Case(b"hello", {}, 415, "unsupported content type"),
    "unsupported encoding": Case(
        b"hello", {**PROTOBUF, "content-encoding": "br"}, 415, "Content-Encoding"
    ),
    "corrupt gzip": Case(
        b"\x1f\x8b\x08\x00garbage", {**PROTOBUF, "content-encoding": "gzip"}, 400, "invalid gzip"
    ),
    "truncated gzip": Case(
        gzip.compress(VALID_PROTO)[:-12], {**PROTOBUF, "content-encoding": "gzip"}, 400, "gzip"
    ),
    "gzip bomb": Case(
        gzip.compress(b"\x00" * (8 * 1024 * 1024)),
        {**PROTOBUF, "content-encoding": "gzip"},
        413,
        "decompressed body",
    ),
    "body over limit": Case(b"\x00" * (2 * 1024 * 1024), PROTOBUF, 413, "over the limit"),
    "chunked body over limit": Case(
        lambda: _chunks(3 * 1024 * 1024), PROTOBUF, 413, "over the limit"
    ),
}


@pytest.fixture
def limited_server(make_server: ServerFactory) -> RunningServer:
    srv = make_server(max_body_bytes=1024 * 1024, max_decompressed_bytes=4 * 1024 * 1024)
    assert srv.post("/v1/traces", content=_good_body(), headers=PROTOBUF).status_code == 200
    return srv


@pytest.mark.parametrize("case_name", list(CASES))
def test_bad_input_is_refused_clearly_and_loses_nothing(
    limited_server: RunningServer, case_name: str
) -> None:
    case = CASES[case_name]
    body = case.body() if callable(case.body) else case.body
    resp = limited_server.post("/v1/traces", content=body, headers=case.headers)
    assert resp.status_code == case.status, resp.text
    if resp.headers.get("content-type") == "application/x-protobuf":
        message = status_pb2.Status.FromString(resp.content).message
    else:
        message = resp.json()["error"]["message"]
    assert case.says in message, message

    # Everything accepted before is still there, and the server still takes data.
    assert limited_server.get(f"/api/v1/traces/{GOOD_TRACE:032x}").status_code == 200
    after = request([span(0xAF7E, 1, name="accepted after")]).SerializeToString()
    assert limited_server.post("/v1/traces", content=after, headers=PROTOBUF).status_code == 200
    assert limited_server.get(f"/api/v1/traces/{0xAF7E:032x}").status_code == 200


def test_hostile_json_never_500(limited_server: RunningServer) -> None:
    """A spread of odd but well-formed documents: 200 or 400, never a server error."""
    docs = [
        {},
        {"resourceSpans": None},
        {"resourceSpans": [None]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [None]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{}]}]}]},
        {
            "resourceSpans": [
                {"resource": {"attributes": [{"key": "a", "value": {"intValue": "1e999"}}]}}
            ]
        },
        {
            "resourceSpans": [
                {
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "traceId": "00" * 16,
                                    "spanId": "00" * 8,
                                    "startTimeUnixNano": "-5",
                                }
                            ]
                        }
                    ]
                }
            ]
        },
        {
            "resourceSpans": [
                {
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "traceId": "ab" * 16,
                                    "spanId": "cd" * 8,
                                    "startTimeUnixNano": "1",
                                    "kind": 99,
                                    "status": {"code": 7},
                                }
                            ]
                        }
                    ]
                }
            ]
        },
        {
            "resourceSpans": [
                {
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "traceId": "ab" * 16,
                                    "spanId": "cd" * 8,
                                    "startTimeUnixNano": 1e30,
                                }
                            ]
                        }
                    ]
                }
            ]
        },
    ]
    for doc in docs:
        resp = limited_server.post("/v1/traces", content=orjson.dumps(doc), headers=JSON)
        assert resp.status_code in (200, 400), (doc, resp.status_code, resp.text)
    assert limited_server.get(f"/api/v1/traces/{GOOD_TRACE:032x}").status_code == 200


def test_query_parameters_are_validated(server: RunningServer) -> None:
    cases = {
        "/api/v1/traces?min_duration_ms=fast": "min_duration_ms",
        "/api/v1/traces?min_duration_ms=-1": "min_duration_ms",
        "/api/v1/traces?status=bogus": "status",
        "/api/v1/traces?limit=0": "limit",
        "/api/v1/traces?limit=100000": "limit",
        "/api/v1/traces?since=yesterday": "since",
        "/api/v1/traces?until=2026-13-45": "until",
        "/api/v1/traces?cursor=not-a-cursor": "cursor",
        "/api/v1/traces/xyz": "trace_id",
    }
    for path, name in cases.items():
        resp = server.get(path)
        assert resp.status_code == 400, (path, resp.text)
        err = resp.json()["error"]
        assert err["code"] == "invalid_parameter"
        assert name in err["message"], (path, err)
    missing = server.get(f"/api/v1/traces/{'ab' * 16}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
