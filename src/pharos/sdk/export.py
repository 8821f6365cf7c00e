"""The export path around the OpenTelemetry SDK's batch processors and OTLP exporters.

* :class:`QueueAccount` — admission control in front of a batch processor: at most
  ``max_queue_size`` items wait for export; beyond that new items are dropped and *counted*
  (one log line when dropping starts, the total at shutdown), so memory stays bounded and the
  app thread never waits.
* :class:`AdmissionSpanProcessor` / :class:`AdmissionLogProcessor` — that check, plus (for logs)
  redaction of the record in place.
* :class:`RedactingSpanExporter` / :class:`GuardedLogExporter` — run on the batch processor's
  worker thread: redact spans (attributes, event attributes, names, status messages), rebuild
  the HTTP exporter after ``os.fork()`` (a child must not share its parent's connection pool),
  count exported/failed items, and report failures once per outage instead of per batch.
* :class:`ExportLogFilter` — keeps the OTel exporters' per-batch warnings out of the app's logs
  and hands their text to the reporter.

Imported by :mod:`pharos.sdk.runtime` only (inside ``init()``), never at ``import pharos``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk._logs import LogRecordProcessor, ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status

from pharos.sdk.redact import Redactor
from pharos.sdk.state import internal_error, log, warn_once

#: Loggers of the OpenTelemetry export path whose warnings the reporter replaces.
EXPORT_LOGGERS = (
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.exporter.otlp.proto.http",
    "opentelemetry.exporter.otlp.proto.http._common",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http._log_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.sdk._shared_internal",
    "opentelemetry.sdk.trace.export",
    "opentelemetry.sdk._logs._internal.export",
    "opentelemetry.sdk.metrics._internal.export",
)


class ExportLogFilter(logging.Filter):
    """Swallows the export path's WARNING+ records (remembering the last one per thread as the
    reason of a failure); lets everything through when ``verbose``."""

    def __init__(self, verbose: bool = False) -> None:
        super().__init__()
        self.verbose = verbose
        self._local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or self.verbose:
            return True
        try:
            self._local.last = record.getMessage()
        except Exception:
            self._local.last = str(record.msg)
        return False

    def take_reason(self) -> str | None:
        reason: str | None = getattr(self._local, "last", None)
        self._local.last = None
        return reason

    def install(self) -> None:
        for name in EXPORT_LOGGERS:
            logger = logging.getLogger(name)
            if self not in logger.filters:  # first, before OTel's own duplicate filter
                logger.filters.insert(0, self)

    def uninstall(self) -> None:
        for name in EXPORT_LOGGERS:
            logging.getLogger(name).removeFilter(self)


@dataclass
class SignalStats:
    """Counters for one signal. Updated under ``lock``; read with :meth:`snapshot`."""

    name: str  # "spans", "logs", "metrics"
    capacity: int
    queued: int = 0
    dropped: int = 0
    exported: int = 0
    failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return {
                "queued": self.queued,
                "dropped": self.dropped,
                "exported": self.exported,
                "failed": self.failed,
            }


class QueueAccount:
    """How many items of a signal wait in its batch processor's queue."""

    def __init__(self, stats: SignalStats, url: str) -> None:
        self.stats = stats
        self.url = url
        self._warned_drop = False

    def admit(self) -> bool:
        stats = self.stats
        with stats.lock:
            if stats.queued >= stats.capacity:
                stats.dropped += 1
                first = not self._warned_drop
                self._warned_drop = True
            else:
                stats.queued += 1
                return True
        if first:
            warn_once(
                f"drop:{stats.name}:{id(self)}",
                "pharos: %d %s are waiting to be sent to %s (the limit): new %s are dropped "
                "until it catches up. Your code is not slowed down; the count is in "
                "pharos.stats() and is logged at shutdown.",
                stats.capacity,
                stats.name,
                self.url,
                stats.name,
            )
        return False

    def taken(self, count: int) -> None:
        with self.stats.lock:
            self.stats.queued = max(0, self.stats.queued - count)

    def after_fork(self) -> None:
        """The batch processor empties its queue in a forked child; so do the counters."""
        self.stats.lock = threading.Lock()
        self.stats.queued = 0


class Reporter:
    """Turns export outcomes into at most one warning per outage per signal."""

    def __init__(self, log_filter: ExportLogFilter) -> None:
        self.filter = log_filter
        self._failing: dict[str, bool] = {}
        self._lock = threading.Lock()

    def outcome(self, signal: str, url: str, ok: bool, error: BaseException | None = None) -> None:
        reason = self.filter.take_reason()
        with self._lock:
            was_failing = self._failing.get(signal, False)
            self._failing[signal] = not ok
        if ok and was_failing:
            log.info("pharos: sending %s to %s works again", signal, url)
        elif not ok and not was_failing:
            why = (
                f"{type(error).__name__}: {error}" if error is not None else reason or "no details"
            )
            log.warning(
                "pharos: could not send %s to %s (%s). Your code is not affected; the SDK keeps "
                "trying in the background and logs a line when it recovers.",
                signal,
                url,
                why,
            )


class _ForkSafe:
    """Holds an exporter and rebuilds it in a forked child (fresh HTTP connection pool)."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._pid = os.getpid()
        self._inner = factory()

    def get(self) -> Any:
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._inner = self._factory()  # the parent's one is left alone, not closed
        return self._inner

    def shutdown(self) -> None:
        try:
            self._inner.shutdown()
        except Exception as exc:
            internal_error("exporter shutdown", exc)


def redact_span(span: ReadableSpan, redactor: Redactor) -> ReadableSpan:
    """``span`` with secrets removed (the same object when it holds none)."""
    attributes = redactor.redact_mapping(span.attributes)
    name = redactor.redact_text(span.name)
    status = span.status
    description = status.description
    new_description = redactor.redact_text(description) if description else description
    events = span.events
    new_events: list[Event] | None = None
    for i, event in enumerate(events):
        event_attrs = redactor.redact_mapping(event.attributes)
        event_name = redactor.redact_text(event.name)
        if event_attrs is not None or event_name is not event.name:
            if new_events is None:
                new_events = list(events)
            new_events[i] = Event(
                event_name,
                event_attrs if event_attrs is not None else event.attributes,
                event.timestamp,
            )
    if (
        attributes is None
        and name is span.name
        and new_description is description
        and new_events is None
    ):
        return span
    return ReadableSpan(
        name=name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes if attributes is not None else span.attributes,
        events=new_events if new_events is not None else events,
        links=span.links,
        kind=span.kind,
        status=Status(status.status_code, new_description)
        if new_description is not description
        else status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class RedactingSpanExporter(SpanExporter):
    """Wraps the real span exporter on the batch processor's worker thread."""

    def __init__(
        self,
        factory: Callable[[], SpanExporter],
        redactor: Redactor,
        account: QueueAccount,
        reporter: Reporter,
    ) -> None:
        self._inner = _ForkSafe(factory)
        self._redactor = redactor
        self._account = account
        self._reporter = reporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        stats = self._account.stats
        self._account.taken(len(spans))
        batch: list[ReadableSpan] = []
        for span in spans:
            try:
                batch.append(redact_span(span, self._redactor))
            except Exception as exc:  # never send what could not be redacted
                internal_error("redact span", exc)
                with stats.lock:
                    stats.failed += 1
        error: BaseException | None = None
        try:
            result = self._inner.get().export(batch) if batch else SpanExportResult.SUCCESS
        except Exception as exc:
            error, result = exc, SpanExportResult.FAILURE
        ok = result == SpanExportResult.SUCCESS
        with stats.lock:
            if ok:
                stats.exported += len(batch)
            else:
                stats.failed += len(batch)
        self._reporter.outcome("spans", self._account.url, ok, error)
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class AdmissionSpanProcessor(SpanProcessor):
    """Forwards ended, sampled spans to the batch processor while its queue has room."""

    def __init__(self, batch: SpanProcessor, account: QueueAccount) -> None:
        self._batch = batch
        self._account = account

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        try:
            context = span.context
            if context is None or not context.trace_flags.sampled:
                return
            if self._account.admit():
                self._batch.on_end(span)
        except Exception as exc:
            internal_error("span processor", exc)

    def shutdown(self) -> None:
        self._batch.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self._batch.force_flush(timeout_millis))


class GuardedLogExporter(LogRecordExporter):
    """Wraps the real log exporter on the batch processor's worker thread (logs were redacted
    when emitted, by :class:`AdmissionLogProcessor`)."""

    def __init__(
        self,
        factory: Callable[[], LogRecordExporter],
        account: QueueAccount,
        reporter: Reporter,
    ) -> None:
        self._inner = _ForkSafe(factory)
        self._account = account
        self._reporter = reporter

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        stats = self._account.stats
        self._account.taken(len(batch))
        error: BaseException | None = None
        try:
            result = self._inner.get().export(batch)
        except Exception as exc:
            error, result = exc, LogRecordExportResult.FAILURE
        ok = result == LogRecordExportResult.SUCCESS
        with stats.lock:
            if ok:
                stats.exported += len(batch)
            else:
                stats.failed += len(batch)
        self._reporter.outcome("logs", self._account.url, ok, error)
        return result  # type: ignore[no-any-return]

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class AdmissionLogProcessor(LogRecordProcessor):
    """Redacts each log record in place, then forwards it while the queue has room."""

    def __init__(self, batch: LogRecordProcessor, account: QueueAccount, redactor: Redactor):
        self._batch = batch
        self._account = account
        self._redactor = redactor

    def on_emit(self, log_record: Any) -> None:
        try:
            record = getattr(log_record, "log_record", log_record)
            body = record.body
            if isinstance(body, str):
                record.body = self._redactor.redact_text(body)
            elif body is not None:
                record.body = self._redactor.redact_structure(body)
            attributes = self._redactor.redact_mapping(record.attributes)
            if attributes is not None:
                record.attributes = attributes
            if self._account.admit():
                self._batch.on_emit(log_record)
        except Exception as exc:
            internal_error("log processor", exc)

    def shutdown(self) -> None:
        self._batch.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self._batch.force_flush(timeout_millis))


class GuardedMetricExporter(MetricExporter):
    """Wraps the OTLP metric exporter: fork-safe, failures reported once per outage."""

    def __init__(self, factory: Callable[[], MetricExporter], url: str, reporter: Reporter):
        self._inner = _ForkSafe(factory)
        probe = self._inner.get()
        super().__init__(
            preferred_temporality=probe._preferred_temporality,
            preferred_aggregation=probe._preferred_aggregation,
        )
        self._url = url
        self._reporter = reporter

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        error: BaseException | None = None
        try:
            result = self._inner.get().export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as exc:
            error, result = exc, MetricExportResult.FAILURE
        self._reporter.outcome("metrics", self._url, result == MetricExportResult.SUCCESS, error)
        return result  # type: ignore[no-any-return]

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._inner.shutdown()
