"""Decode OTLP/HTTP request bodies (protobuf or JSON) into OTLP request messages.

Pure: bytes in, a protobuf message or a :class:`DecodeError` with a message naming what is
wrong out. The JSON form follows the OTLP spec's JSON mapping: ids are hex strings (not base64),
enums may be integers, keys are lowerCamelCase.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError as _ProtobufDecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
SUPPORTED_CONTENT_TYPES = (PROTOBUF, JSON)


class DecodeError(ValueError):
    """The body is not a valid OTLP request; the message says what and where."""


class UnsupportedContentType(ValueError):
    """The Content-Type is neither OTLP protobuf nor OTLP JSON."""


def media_type(content_type: str | None) -> str:
    """``application/json; charset=utf-8`` -> ``application/json``; raise for anything else."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    if base in SUPPORTED_CONTENT_TYPES:
        return base
    raise UnsupportedContentType(
        f"unsupported content type {content_type or '(none)'!r}: send {PROTOBUF} or {JSON}"
    )


def decode_traces(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    """Decode an ``ExportTraceServiceRequest`` from ``body`` in the given media type."""
    request = ExportTraceServiceRequest()
    if content_type == PROTOBUF:
        try:
            request.ParseFromString(body)
        except _ProtobufDecodeError as exc:
            raise DecodeError(f"invalid protobuf ExportTraceServiceRequest: {exc}") from None
        except Exception as exc:  # upb raises a few other types on hostile input
            raise DecodeError(f"invalid protobuf ExportTraceServiceRequest: {exc}") from None
        return request
    document = _load_json(body)
    _hex_ids_to_base64(document)
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise DecodeError(f"invalid OTLP JSON: {exc}") from None
    except Exception as exc:  # e.g. a lone surrogate refused by the protobuf runtime
        raise DecodeError(f"invalid OTLP JSON: {exc}") from None
    return request


def _load_json(body: bytes) -> dict[str, Any]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"invalid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise DecodeError("invalid OTLP JSON: the body must be a JSON object")
    return document


_ID_FIELDS = {"traceId": 16, "spanId": 8, "parentSpanId": 8}


def _hex_ids_to_base64(document: dict[str, Any]) -> None:
    """Rewrite the hex ids of OTLP JSON in place into the base64 protobuf's JSON mapping wants."""
    resource_spans = document.get("resourceSpans", document.get("resource_spans", []))
    if not isinstance(resource_spans, list):
        raise DecodeError("resourceSpans: expected an array")
    for ri, rs in enumerate(resource_spans):
        if not isinstance(rs, dict):
            raise DecodeError(f"resourceSpans[{ri}]: expected an object")
        scope_spans = rs.get("scopeSpans", rs.get("scope_spans", []))
        if not isinstance(scope_spans, list):
            raise DecodeError(f"resourceSpans[{ri}].scopeSpans: expected an array")
        for si, ss in enumerate(scope_spans):
            if not isinstance(ss, dict):
                raise DecodeError(f"resourceSpans[{ri}].scopeSpans[{si}]: expected an object")
            spans = ss.get("spans", [])
            if not isinstance(spans, list):
                raise DecodeError(f"resourceSpans[{ri}].scopeSpans[{si}].spans: expected an array")
            for pi, span in enumerate(spans):
                path = f"resourceSpans[{ri}].scopeSpans[{si}].spans[{pi}]"
                if not isinstance(span, dict):
                    raise DecodeError(f"{path}: expected an object")
                _fix_ids(span, path)
                links = span.get("links", [])
                if isinstance(links, list):
                    for li, link in enumerate(links):
                        if isinstance(link, dict):
                            _fix_ids(link, f"{path}.links[{li}]")


def _fix_ids(obj: dict[str, Any], path: str) -> None:
    for camel, size in _ID_FIELDS.items():
        snake = _snake(camel)
        key = camel if camel in obj else snake if snake in obj else None
        if key is None:
            continue
        value = obj[key]
        if value is None or value == "":
            obj[key] = ""
            continue
        if not isinstance(value, str):
            raise DecodeError(f"{path}.{camel}: expected a hex string, got {type(value).__name__}")
        try:
            raw = binascii.unhexlify(value)
        except (binascii.Error, ValueError):
            raise DecodeError(
                f"{path}.{camel}: {value[:64]!r} is not a hex string of {size} bytes"
            ) from None
        obj[key] = base64.b64encode(raw).decode("ascii")


def _snake(camel: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in camel)
