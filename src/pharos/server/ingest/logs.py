"""OTLP logs: decode (protobuf or JSON) and normalize into :class:`LogRecord` (pure).

A log's **agent** follows the span rule (``gen_ai.agent.name``/``agent.name`` attribute, else
resource ``service.name``). OTLP gives a log record no identity, so the id is a hash of what
the record says (times, trace context, severity, body, attributes, resource, scope): an exporter
that resends a request stores each record once, and two genuinely identical records (same
nanosecond, same everything) are one record.
"""

from __future__ import annotations

import hashlib
import operator
from dataclasses import dataclass, field, fields
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError as _ProtobufDecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from pharos.server.ingest.decode import PROTOBUF, DecodeError, _fix_ids, _load_json
from pharos.server.ingest.fingerprint import fingerprint
from pharos.server.ingest.normalize import (
    AGENT_KEYS,
    MAX_TIME_NS,
    UNKNOWN_AGENT,
    Limits,
    _dumps,
    _first_str,
    _text,
    any_value,
    attributes_dict,
)

#: OTLP severity numbers 1-24 in six bands of four.
LEVELS = ("trace", "debug", "info", "warn", "error", "fatal")
LEVEL_FLOOR = {name: 1 + 4 * i for i, name in enumerate(LEVELS)}
ERROR_SEVERITY = LEVEL_FLOOR["error"]
_TEXT_LEVELS = {
    "trace": "trace",
    "debug": "debug",
    "info": "info",
    "information": "info",
    "notice": "info",
    "warn": "warn",
    "warning": "warn",
    "error": "error",
    "err": "error",
    "critical": "fatal",
    "crit": "fatal",
    "fatal": "fatal",
    "alert": "fatal",
    "emergency": "fatal",
    "panic": "fatal",
}


def level_of(severity_number: int, severity_text: str) -> str:
    """The level name from the severity number (or, when it is unset, the text; else info)."""
    if 1 <= severity_number <= 24:
        return LEVELS[(severity_number - 1) // 4]
    return _TEXT_LEVELS.get(severity_text.strip().lower(), "info")


def severity_of(severity_number: int, severity_text: str) -> int:
    """The severity number; when the sender left it unset, the floor of the level its text
    names, or INFO (9) — so level filters treat an unlabelled log as info."""
    if 1 <= severity_number <= 24:
        return severity_number
    return LEVEL_FLOOR[level_of(0, severity_text)]


@dataclass(slots=True)
class LogRecord:
    log_id: str  # 32 hex: a hash of the record's content (resends are stored once)
    time_ns: int
    observed_ns: int
    severity_number: int
    level: str
    severity_text: str | None
    body: str  # a string body as is; a structured body as JSON
    body_json: bool
    attributes: str
    resource: str
    scope: str | None
    agent: str
    service: str | None
    trace_id: str | None
    span_id: str | None
    #: For error tracking (ERROR and worse): exception type, message, stack trace and the
    #: group's fingerprint. Not columns of ``logs``.
    exc_type: str | None = None
    exc_message: str | None = None
    stacktrace: str | None = None
    fingerprint: str | None = None


@dataclass(slots=True)
class NormalizedLogs:
    logs: list[LogRecord] = field(default_factory=list)
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)

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
        return f"{self.rejected} log record(s) rejected: " + "; ".join(self.reasons) + tail

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:  # cheap to cross the worker pipe
        return (_rebuild, ([_values(r) for r in self.logs], self.rejected, self.reasons))


_values = operator.attrgetter(*(f.name for f in fields(LogRecord)))


def _rebuild(rows: list[tuple[Any, ...]], rejected: int, reasons: list[str]) -> NormalizedLogs:
    return NormalizedLogs([LogRecord(*row) for row in rows], rejected, reasons)


# --- decoding ---------------------------------------------------------------------------------


def decode_logs(body: bytes, content_type: str) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    if content_type == PROTOBUF:
        try:
            request.ParseFromString(body)
        except _ProtobufDecodeError as exc:
            raise DecodeError(f"invalid protobuf ExportLogsServiceRequest: {exc}") from None
        except Exception as exc:  # upb raises a few other types on hostile input
            raise DecodeError(f"invalid protobuf ExportLogsServiceRequest: {exc}") from None
        return request
    document = _load_json(body)
    _log_ids_to_base64(document)
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise DecodeError(f"invalid OTLP JSON: {exc}") from None
    except Exception as exc:
        raise DecodeError(f"invalid OTLP JSON: {exc}") from None
    return request


def _array(obj: dict[str, Any], camel: str, snake: str, path: str) -> list[Any]:
    value = obj.get(camel, obj.get(snake, []))
    if not isinstance(value, list):
        raise DecodeError(f"{path}{camel}: expected an array")
    return value


def _log_ids_to_base64(document: dict[str, Any]) -> None:
    for ri, rl in enumerate(_array(document, "resourceLogs", "resource_logs", "")):
        if not isinstance(rl, dict):
            raise DecodeError(f"resourceLogs[{ri}]: expected an object")
        for si, sl in enumerate(_array(rl, "scopeLogs", "scope_logs", f"resourceLogs[{ri}].")):
            path = f"resourceLogs[{ri}].scopeLogs[{si}]"
            if not isinstance(sl, dict):
                raise DecodeError(f"{path}: expected an object")
            for li, record in enumerate(_array(sl, "logRecords", "log_records", f"{path}.")):
                if not isinstance(record, dict):
                    raise DecodeError(f"{path}.logRecords[{li}]: expected an object")
                _fix_ids(record, f"{path}.logRecords[{li}]")


# --- normalizing ------------------------------------------------------------------------------


def normalize_logs(request: ExportLogsServiceRequest, limits: Limits) -> NormalizedLogs:
    out = NormalizedLogs()
    for resource_logs in request.resource_logs:
        resource_attrs = attributes_dict(resource_logs.resource.attributes, limits)
        resource_json = _dumps(resource_attrs)
        service = resource_attrs.get("service.name")
        service_name = _text(service) if isinstance(service, str) and service else None
        for scope_logs in resource_logs.scope_logs:
            scope = _text(scope_logs.scope.name) or None
            for record in scope_logs.log_records:
                log = _normalize(record, resource_json, service_name, scope, limits, out)
                if log is not None:
                    out.logs.append(log)
    return out


def _normalize(
    record: Any,
    resource_json: str,
    service: str | None,
    scope: str | None,
    limits: Limits,
    out: NormalizedLogs,
) -> LogRecord | None:
    raw_trace, raw_span = record.trace_id, record.span_id
    if raw_trace and len(raw_trace) != 16:
        out.reject("trace_id must be 16 bytes or empty")
        return None
    if raw_span and len(raw_span) != 8:
        out.reject("span_id must be 8 bytes or empty")
        return None
    time_ns = record.time_unix_nano or record.observed_time_unix_nano
    if time_ns <= 0:
        out.reject("time_unix_nano and observed_time_unix_nano are both missing")
        return None
    if time_ns > MAX_TIME_NS or record.observed_time_unix_nano > MAX_TIME_NS:
        out.reject("time_unix_nano is after the year 2262")
        return None
    trace_id = raw_trace.hex() if raw_trace and any(raw_trace) else None
    span_id = raw_span.hex() if raw_span and any(raw_span) else None

    max_len = limits.max_attribute_length
    attrs = attributes_dict(record.attributes, limits)
    body_value = any_value(record.body, max_len) if record.HasField("body") else None
    body_json = not isinstance(body_value, str) and body_value is not None
    body = _text(body_value) if isinstance(body_value, str) else _dumps(body_value)
    if body_value is None:
        body, body_json = "", False
    severity_text = _text(record.severity_text)[:32] or None
    number = severity_of(int(record.severity_number), record.severity_text)
    level = level_of(number, record.severity_text)

    agent_attr = _first_str(attrs, AGENT_KEYS)
    agent = _text(agent_attr) if agent_attr else service or UNKNOWN_AGENT
    attributes = _dumps(attrs)

    digest = hashlib.blake2b(digest_size=16)
    for part in (
        str(record.time_unix_nano),
        str(record.observed_time_unix_nano),
        trace_id or "",
        span_id or "",
        str(number),
        severity_text or "",
        body,
        attributes,
        resource_json,
        scope or "",
    ):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")

    log = LogRecord(
        log_id=digest.hexdigest(),
        time_ns=time_ns,
        observed_ns=record.observed_time_unix_nano or time_ns,
        severity_number=number,
        level=level,
        severity_text=severity_text,
        body=body,
        body_json=body_json,
        attributes=attributes,
        resource=resource_json,
        scope=scope,
        agent=agent,
        service=service,
        trace_id=trace_id,
        span_id=span_id,
    )
    if number >= ERROR_SEVERITY:
        log.exc_type, log.exc_message, log.stacktrace, log.fingerprint = error_fields(
            attrs, body, level
        )
    return log


def error_fields(
    attrs: dict[str, Any], body: str, level: str
) -> tuple[str | None, str | None, str | None, str]:
    """An error log's exception type, message (``exception.message``, else the body), stack
    trace and fingerprint. Also applied to stored rows (their ``attributes`` JSON, ``body`` and
    ``level``), which gives the same answer as at ingest."""
    exc_type = attrs.get("exception.type")
    exc_message = attrs.get("exception.message")
    stack = attrs.get("exception.stacktrace")
    kind = (_text(str(exc_type)).strip()[:256] or None) if exc_type else None
    message = _text(str(exc_message)) if exc_message else (body or None)
    stacktrace = _text(str(stack)) if stack else None
    return kind, message, stacktrace, fingerprint(kind or f"log:{level}", message)
