"""Log records -> OpenTelemetry log records (sent to Pharos' ``/v1/logs``).

:class:`OTelLogHandler` is a :class:`logging.Handler` for the root logger;
:class:`pharos.sdk.logs.StructlogProcessor` uses the same :class:`Emitter` for structlog. Both
add trace_id/span_id (the current span), the agent (``gen_ai.agent.name``), the request id and
extra fields as attributes; exceptions as ``exception.type``/``.message``/``.stacktrace``.
Redaction happens in the log processor (:class:`pharos.sdk.export.AdmissionLogProcessor`)
before the record is queued.

Loaded by ``init()`` only.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Mapping
from typing import Any

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, get_current, get_value
from opentelemetry.sdk._logs import LoggerProvider

from pharos.sdk.logs import NOT_EXPORTED, correlation, record_fields
from pharos.sdk.state import internal_error
from pharos.sdk.values import to_attribute

_SEVERITY = (
    (logging.CRITICAL, SeverityNumber.FATAL, "FATAL"),
    (logging.ERROR, SeverityNumber.ERROR, "ERROR"),
    (logging.WARNING, SeverityNumber.WARN, "WARN"),
    (logging.INFO, SeverityNumber.INFO, "INFO"),
    (logging.DEBUG, SeverityNumber.DEBUG, "DEBUG"),
)


def severity(levelno: int) -> tuple[SeverityNumber, str]:
    for floor, number, text in _SEVERITY:
        if levelno >= floor:
            return number, text
    return SeverityNumber.TRACE, "TRACE"


def _attributes(fields: Mapping[str, Any], limit: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key == "agent":
            key = "gen_ai.agent.name"
        converted = to_attribute(value, limit)
        if converted is not None:
            out[str(key)] = converted
    return out


def _exception_attributes(exc: BaseException | None, text: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if exc is not None:
        out["exception.type"] = type(exc).__name__
        try:
            out["exception.message"] = str(exc)
        except Exception:
            out["exception.message"] = f"<unprintable {type(exc).__name__}>"
        if text is None:
            text = "".join(traceback.format_exception(exc))
    if text:
        out["exception.stacktrace"] = text
    return out


class Emitter:
    """Shared by the handler and the structlog processor: build and emit one record."""

    def __init__(self, provider: LoggerProvider, limit: int) -> None:
        self._provider = provider
        self._limit = limit
        self._guard = threading.local()

    def emit(
        self,
        *,
        scope: str,
        levelno: int,
        body: Any,
        fields: Mapping[str, Any],
        timestamp_ns: int,
        exc: BaseException | None = None,
        exc_text: str | None = None,
        code: tuple[str, str, int] | None = None,
    ) -> None:
        if getattr(self._guard, "busy", False) or get_value(_SUPPRESS_INSTRUMENTATION_KEY):
            return  # logging from inside the export path, or from this very call
        self._guard.busy = True
        try:
            attributes = _attributes({**correlation(), **fields}, self._limit)
            attributes.pop("trace_id", None)  # carried as the record's own fields
            attributes.pop("span_id", None)
            attributes.update(_exception_attributes(exc, exc_text))
            if code is not None:
                attributes["code.file.path"], attributes["code.function.name"] = code[:2]
                attributes["code.line.number"] = code[2]
            number, text = severity(levelno)
            record = LogRecord(
                timestamp=timestamp_ns,
                context=get_current(),
                severity_text=text,
                severity_number=number,
                body=body if isinstance(body, str) else to_attribute(body, self._limit),
                attributes=attributes,
            )
            self._provider.get_logger(scope or "root").emit(record)
        except Exception as exc_:
            internal_error("log export", exc_)
        finally:
            self._guard.busy = False


class OTelLogHandler(logging.Handler):
    """Sends standard-library log records to Pharos as OpenTelemetry logs."""

    def __init__(self, provider: LoggerProvider, limit: int = 4000) -> None:
        super().__init__(logging.NOTSET)
        self._emitter = Emitter(provider, limit)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            name = record.name
            if name.startswith(NOT_EXPORTED):
                return
            exc = record.exc_info[1] if record.exc_info else None
            exc_text = None
            if record.exc_info and record.exc_info[0] is not None:
                exc_text = "".join(traceback.format_exception(*record.exc_info))
            self._emitter.emit(
                scope=name,
                levelno=record.levelno,
                body=record.getMessage(),
                fields=record_fields(record),
                timestamp_ns=int(record.created * 1e9),
                exc=exc,
                exc_text=exc_text,
                code=(record.pathname, record.funcName, record.lineno),
            )
        except Exception as exc_:
            internal_error("log handler", exc_)
