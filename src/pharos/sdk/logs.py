"""Structured logging: ``pharos.get_logger(name)`` (keyword fields), JSON lines for stdout, and
the fields every record carries — trace_id, span_id, the agent, the request id and the fields
bound with ``pharos.bind()``.

The bridge that turns records into OpenTelemetry log records lives in
:mod:`pharos.sdk.log_bridge` (loaded by ``init()``); this module imports only the standard
library and the OpenTelemetry API.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping, MutableMapping
from typing import Any

from opentelemetry import trace

from pharos.sdk import context as ctx
from pharos.sdk.state import holder, internal_error
from pharos.sdk.values import to_jsonable

#: Attributes every ``logging.LogRecord`` has; anything else on a record is an extra field.
RESERVED = frozenset(
    {
        "args",
        "asctime",
        "created",
        "exc_info",
        "exc_text",
        "filename",
        "funcName",
        "levelname",
        "levelno",
        "lineno",
        "module",
        "msecs",
        "message",
        "msg",
        "name",
        "pathname",
        "process",
        "processName",
        "relativeCreated",
        "stack_info",
        "thread",
        "threadName",
        "taskName",
        "pharos_fields",
        "color_message",  # uvicorn
    }
)
#: Loggers never sent to Pharos as logs: the SDK's own and the export path's (no feedback loop).
NOT_EXPORTED = ("pharos.sdk", "opentelemetry", "urllib3.connectionpool")


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The extra fields of a record: ``extra={...}`` attributes, then pharos keyword fields."""
    fields: dict[str, Any] = {}
    for key, value in record.__dict__.items():
        if key not in RESERVED and not key.startswith("_"):
            fields[key] = value
    extra = getattr(record, "pharos_fields", None)
    if isinstance(extra, Mapping):
        fields.update(extra)
    return fields


def correlation() -> dict[str, Any]:
    """trace_id, span_id, agent, request_id and bound fields of the current context."""
    out: dict[str, Any] = {}
    sc = trace.get_current_span().get_span_context()
    if sc.is_valid:
        out["trace_id"] = format(sc.trace_id, "032x")
        out["span_id"] = format(sc.span_id, "016x")
    agent = ctx.current_agent.get()
    if agent is not None:
        out["agent"] = agent
    rid = ctx.current_request_id.get()
    if rid is not None:
        out["request_id"] = rid
    bound = ctx.bound_fields.get()
    if bound:
        out.update(bound)
    return out


_LEVEL_NAMES = {"WARNING": "warn", "CRITICAL": "fatal"}


def _iso(created: float) -> str:
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, correlation, fields, exception.
    Secrets are redacted with the SDK's redactor (when ``init()`` has run)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": _iso(record.created),
            "level": _LEVEL_NAMES.get(record.levelname, record.levelname.lower()),
            "logger": record.name,
            "message": record.getMessage(),
        }
        doc.update(correlation())
        doc.update(record_fields(record))
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exception"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        rt = holder.runtime
        if rt is not None:
            doc = rt.redactor.redact_structure(doc)
        return json.dumps(to_jsonable(doc), ensure_ascii=False, default=str)


class Logger:
    """A logger that takes keyword fields: ``log.info("ticket answered", ticket_id=7)``.

    A thin layer over the standard :class:`logging.Logger` of the same name, so levels,
    handlers and filters configured with :mod:`logging` apply. ``bind(**fields)`` returns a
    logger that adds those fields to every line."""

    __slots__ = ("_fields", "stdlib")

    def __init__(self, logger: logging.Logger, fields: Mapping[str, Any] | None = None) -> None:
        self.stdlib = logger
        self._fields = dict(fields or {})

    @property
    def name(self) -> str:
        return self.stdlib.name

    def bind(self, **fields: Any) -> Logger:
        return Logger(self.stdlib, {**self._fields, **fields})

    def isEnabledFor(self, level: int) -> bool:  # the logging module's name
        return self.stdlib.isEnabledFor(level)

    def log(
        self,
        level: int,
        msg: object,
        *args: object,
        exc_info: Any = None,
        stack_info: bool = False,
        stacklevel: int = 1,
        **fields: Any,
    ) -> None:
        if not self.stdlib.isEnabledFor(level):
            return
        merged = {**self._fields, **fields} if self._fields else fields
        self.stdlib.log(
            level,
            msg,
            *args,
            exc_info=exc_info,
            stack_info=stack_info,
            stacklevel=stacklevel + 1,
            extra={"pharos_fields": merged},
        )

    def debug(self, msg: object, *args: object, **fields: Any) -> None:
        self._at(logging.DEBUG, msg, args, fields)

    def info(self, msg: object, *args: object, **fields: Any) -> None:
        self._at(logging.INFO, msg, args, fields)

    def warning(self, msg: object, *args: object, **fields: Any) -> None:
        self._at(logging.WARNING, msg, args, fields)

    warn = warning

    def error(self, msg: object, *args: object, **fields: Any) -> None:
        self._at(logging.ERROR, msg, args, fields)

    def exception(self, msg: object, *args: object, **fields: Any) -> None:
        fields.setdefault("exc_info", True)
        self._at(logging.ERROR, msg, args, fields)

    def critical(self, msg: object, *args: object, **fields: Any) -> None:
        self._at(logging.CRITICAL, msg, args, fields)

    def _at(
        self, level: int, msg: object, args: tuple[object, ...], fields: dict[str, Any]
    ) -> None:
        if not self.stdlib.isEnabledFor(level):
            return
        exc_info = fields.pop("exc_info", None)
        stack_info = bool(fields.pop("stack_info", False))
        stacklevel = int(fields.pop("stacklevel", 1))
        merged = {**self._fields, **fields} if self._fields else fields
        self.stdlib.log(
            level,
            msg,
            *args,
            exc_info=exc_info,
            stack_info=stack_info,
            stacklevel=stacklevel + 2,
            extra={"pharos_fields": merged},
        )


def get_logger(name: str | None = None) -> Logger:
    """A structured logger. Its records go wherever :mod:`logging` sends them; after
    ``pharos.init()`` that includes Pharos (as OpenTelemetry logs with trace_id/span_id) and,
    unless your app configured logging itself, JSON lines on stdout."""
    return Logger(logging.getLogger(name))


_STRUCTLOG_LEVELS = {
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
    "exception": logging.ERROR,
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}


class StructlogProcessor:
    """A structlog processor: adds trace_id, span_id, agent and request_id to the event dict,
    redacts it and (after ``pharos.init()``) sends it to Pharos as an OpenTelemetry log. Put it
    just before the renderer::

        structlog.configure(processors=[..., pharos.structlog_processor(), JSONRenderer()])

    ``pharos.init()`` configures structlog this way itself when structlog is installed and the
    app has not configured it.
    """

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        try:
            for key, value in correlation().items():
                event_dict.setdefault(key, value)
            rt = holder.runtime
            if rt is None:
                return event_dict
            redacted: MutableMapping[str, Any] = rt.redactor.redact_structure(event_dict)
            emitter = rt.log_emitter
            if emitter is not None:
                fields = dict(redacted)
                body = fields.pop("event", "")
                level = str(fields.pop("level", method_name)).lower()
                exc_info = fields.pop("exc_info", None)
                exc: BaseException | None = None
                if isinstance(exc_info, BaseException):
                    exc = exc_info
                elif isinstance(exc_info, tuple) and len(exc_info) == 3:
                    exc = exc_info[1]
                elif exc_info is True:
                    exc = sys.exc_info()[1]
                exc_text = fields.pop("exception", None)
                fields.pop("timestamp", None)
                scope = str(fields.pop("logger", "") or getattr(logger, "name", "") or "structlog")
                emitter.emit(
                    scope=scope,
                    levelno=_STRUCTLOG_LEVELS.get(level, logging.INFO),
                    body=body,
                    fields=fields,
                    timestamp_ns=time.time_ns(),
                    exc=exc,
                    exc_text=exc_text if isinstance(exc_text, str) else None,
                )
            return redacted
        except Exception as exc_:
            internal_error("structlog processor", exc_)
            return event_dict


def structlog_processor() -> StructlogProcessor:
    """The processor to add to your own structlog configuration (see
    :class:`StructlogProcessor`)."""
    return StructlogProcessor()
