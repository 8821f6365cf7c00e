"""Builders for OTLP log requests in tests: real protobuf messages and OTLP JSON documents."""

from __future__ import annotations

import base64
import time
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from tests.otlp_helpers import kv

#: OTLP severity numbers of each level's first step.
SEVERITY = {"trace": 1, "debug": 5, "info": 9, "warn": 13, "error": 17, "fatal": 21}


def log_record(
    body: str | dict[str, Any] | None,
    *,
    level: str = "info",
    time_ns: int | None = None,
    trace: int | None = None,
    span_id: int | None = None,
    attrs: dict[str, Any] | None = None,
) -> LogRecord:
    record = LogRecord(
        time_unix_nano=time_ns if time_ns is not None else time.time_ns(),
        severity_number=SEVERITY[level],  # type: ignore[arg-type]
        severity_text=level.upper(),
        attributes=[kv(k, v) for k, v in (attrs or {}).items()],
        trace_id=trace.to_bytes(16, "big") if trace else b"",
        span_id=span_id.to_bytes(8, "big") if span_id else b"",
    )
    if isinstance(body, str):
        record.body.CopyFrom(AnyValue(string_value=body))
    elif isinstance(body, dict):
        record.body.CopyFrom(
            AnyValue(kvlist_value=KeyValueList(values=[kv(k, v) for k, v in body.items()]))
        )
    return record


def logs_request(
    records: list[LogRecord], service: str = "log-service"
) -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(attributes=[kv("service.name", service)]),
                scope_logs=[ScopeLogs(log_records=records)],
            )
        ]
    )


def logs_to_otlp_json(message: ExportLogsServiceRequest) -> dict[str, Any]:
    """OTLP JSON as the spec writes it: hex ids, camelCase keys."""
    doc = json_format.MessageToDict(message)
    for rl in doc.get("resourceLogs", []):
        for sl in rl.get("scopeLogs", []):
            for record in sl.get("logRecords", []):
                for key in ("traceId", "spanId"):
                    if key in record:
                        record[key] = base64.b64decode(record[key]).hex()
    return doc
