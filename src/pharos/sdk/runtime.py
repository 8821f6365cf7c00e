"""What ``pharos.init()`` builds: OpenTelemetry providers, batch processors and OTLP/HTTP
exporters for traces, logs and (optionally) metrics, the logging handlers, the
instrumentations — and how they are flushed and stopped.

Imported by ``init()`` only: this is where the OpenTelemetry SDK and exporters get loaded.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from pharos.sdk import instrument as instrumentation
from pharos.sdk.config import Config
from pharos.sdk.export import (
    AdmissionLogProcessor,
    AdmissionSpanProcessor,
    ExportLogFilter,
    GuardedLogExporter,
    GuardedMetricExporter,
    QueueAccount,
    RedactingSpanExporter,
    Reporter,
    SignalStats,
)
from pharos.sdk.global_provider import SwitchTracerProvider
from pharos.sdk.log_bridge import Emitter, OTelLogHandler
from pharos.sdk.logs import JsonFormatter, StructlogProcessor
from pharos.sdk.redact import Redactor
from pharos.sdk.state import internal_error, log, warn_once


def _version() -> str:
    from pharos import __version__

    return __version__


def _run_with_deadline(name: str, work: Callable[[], Any], timeout: float) -> bool:
    """Run ``work`` on a daemon thread and wait at most ``timeout`` seconds: flushing must not
    hang the app (or its exit) when the server accepts connections and never answers."""
    done = threading.Event()

    def target() -> None:
        try:
            work()
        except Exception as exc:
            internal_error(name, exc)
        finally:
            done.set()

    thread = threading.Thread(target=target, name=f"pharos-{name}", daemon=True)
    thread.start()
    return done.wait(max(0.0, timeout))


class Runtime:
    """The live SDK between ``init()`` and ``shutdown()``."""

    def __init__(
        self,
        config: Config,
        *,
        span_exporter: SpanExporter | None = None,
        log_exporter: LogRecordExporter | None = None,
        metric_exporter: MetricExporter | None = None,
    ) -> None:
        self.config = config
        self.redactor = Redactor(
            enabled=config.redact,
            pii=config.redact_pii,
            keys=config.redact_keys,
            patterns=config.redact_patterns,
            allow=config.redact_allow,
        )
        self.log_filter = ExportLogFilter(verbose=config.debug)
        self.log_filter.install()
        self.reporter = Reporter(self.log_filter)
        self.stats = {
            "spans": SignalStats("spans", config.max_queue_size),
            "logs": SignalStats("logs", config.max_queue_size),
        }
        self.accounts: list[QueueAccount] = []
        self.instrumentors: list[Any] = []
        self.system_metrics: Any | None = None
        self.log_emitter: Emitter | None = None
        self.logger_provider: LoggerProvider | None = None
        self.meter_provider: MeterProvider | None = None
        self._root_handlers: list[logging.Handler] = []
        self._root_level: int | None = None
        self._structlog = False
        self.resource = self._resource()

        self.tracer_provider, self.owns_tracer_provider = self._tracer_provider()
        self.span_processor = self._span_pipeline(span_exporter)
        if self.span_processor is not None:
            self.tracer_provider.add_span_processor(self.span_processor)
        self.tracer = self.tracer_provider.get_tracer("pharos", _version())
        if config.logs:
            self._log_pipeline(log_exporter)
        if config.system_metrics or metric_exporter is not None:
            self._metric_pipeline(metric_exporter)
        if config.instrument:
            self.instrumentors = instrumentation.start_instrumentations(
                config.instrument, self.tracer_provider
            )

    # --- building -------------------------------------------------------------------------

    def _resource(self) -> Resource:
        cfg = self.config
        attributes: dict[str, Any] = dict(cfg.resource_attributes)
        attributes["service.name"] = cfg.service_name
        if cfg.service_version:
            attributes["service.version"] = cfg.service_version
        if cfg.environment:
            attributes["deployment.environment.name"] = cfg.environment
            attributes["deployment.environment"] = cfg.environment
        attributes["pharos.sdk.version"] = _version()
        resource = Resource.create(attributes)
        redacted = self.redactor.redact_mapping(resource.attributes)
        return Resource(redacted, resource.schema_url) if redacted is not None else resource

    def _tracer_provider(self) -> tuple[TracerProvider, bool]:
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            # The app set up OpenTelemetry itself: add Pharos' pipeline to its provider.
            log.info("pharos: adding the Pharos exporter to the app's own TracerProvider")
            return current, False
        provider = TracerProvider(resource=self.resource, shutdown_on_exit=False)
        if isinstance(current, trace.ProxyTracerProvider):
            trace.set_tracer_provider(SwitchTracerProvider())
        return provider, True

    def _headers(self) -> dict[str, str]:
        return self.config.auth_headers

    def _compression(self) -> Compression:
        return Compression.Gzip if self.config.compression == "gzip" else Compression.NoCompression

    def _account(self, signal: str, url: str) -> QueueAccount:
        account = QueueAccount(self.stats[signal], url)
        self.accounts.append(account)
        return account

    def _span_pipeline(self, exporter: SpanExporter | None) -> AdmissionSpanProcessor | None:
        cfg = self.config
        url = cfg.traces_url
        if exporter is None and url is None:
            return None
        factory: Callable[[], SpanExporter]
        if exporter is not None:
            given = exporter
            factory = lambda: given  # noqa: E731
            where = type(exporter).__name__
        else:
            assert url is not None
            target = url

            def factory() -> SpanExporter:
                return OTLPSpanExporter(
                    endpoint=target,
                    headers=self._headers(),
                    timeout=cfg.export_timeout,
                    compression=self._compression(),
                )

            where = url
        account = self._account("spans", where)
        wrapped = RedactingSpanExporter(factory, self.redactor, account, self.reporter)
        batch = BatchSpanProcessor(
            wrapped,
            max_queue_size=cfg.max_queue_size,
            schedule_delay_millis=cfg.schedule_delay * 1000,
            max_export_batch_size=min(512, cfg.max_queue_size),
        )
        return AdmissionSpanProcessor(batch, account)

    def _log_pipeline(self, exporter: LogRecordExporter | None) -> None:
        cfg = self.config
        url = cfg.logs_url
        if exporter is not None or url is not None:
            factory: Callable[[], LogRecordExporter]
            if exporter is not None:
                given = exporter
                factory = lambda: given  # noqa: E731
                where = type(exporter).__name__
            else:
                assert url is not None
                target = url

                def factory() -> LogRecordExporter:
                    return OTLPLogExporter(
                        endpoint=target,
                        headers=self._headers(),
                        timeout=cfg.export_timeout,
                        compression=self._compression(),
                    )

                where = url
            account = self._account("logs", where)
            provider = LoggerProvider(resource=self.resource, shutdown_on_exit=False)
            batch = BatchLogRecordProcessor(
                GuardedLogExporter(factory, account, self.reporter),
                max_queue_size=cfg.max_queue_size,
                schedule_delay_millis=cfg.schedule_delay * 1000,
                max_export_batch_size=min(512, cfg.max_queue_size),
            )
            provider.add_log_record_processor(AdmissionLogProcessor(batch, account, self.redactor))
            self.logger_provider = provider
            self.log_emitter = Emitter(provider, cfg.max_content_length)
        self._install_logging()

    def _install_logging(self) -> None:
        cfg = self.config
        root = logging.getLogger()
        unconfigured = not [h for h in root.handlers if not getattr(h, "_pharos", False)]
        if self.logger_provider is not None:
            handler: logging.Handler = OTelLogHandler(self.logger_provider, cfg.max_content_length)
            handler._pharos = True  # type: ignore[attr-defined]
            root.addHandler(handler)
            self._root_handlers.append(handler)
        if cfg.json_logs or (cfg.json_logs is None and unconfigured):
            stream = logging.StreamHandler(sys.stdout)
            stream.setFormatter(JsonFormatter())
            stream._pharos = True  # type: ignore[attr-defined]
            root.addHandler(stream)
            self._root_handlers.append(stream)
        level = cfg.log_level or (
            "INFO" if unconfigured and root.level == logging.WARNING else None
        )
        if level is not None:
            self._root_level = root.level
            root.setLevel(level)
        if cfg.structlog is not False:
            self._configure_structlog(explicit=cfg.structlog is True)

    def _configure_structlog(self, explicit: bool) -> None:
        try:
            if not explicit and importlib.util.find_spec("structlog") is None:
                return
            import structlog

            if not explicit and structlog.is_configured():
                log.debug(
                    "pharos: structlog is configured by the app; add "
                    "pharos.structlog_processor() to its processors to send its logs"
                )
                return
            level = logging.getLevelName(self.config.log_level or "INFO")
            structlog.configure(
                processors=[
                    structlog.contextvars.merge_contextvars,
                    structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True),
                    structlog.processors.StackInfoRenderer(),
                    StructlogProcessor(),
                    structlog.processors.format_exc_info,
                    structlog.processors.JSONRenderer(default=str),
                ],
                wrapper_class=structlog.make_filtering_bound_logger(level),
                logger_factory=structlog.PrintLoggerFactory(sys.stdout),
                cache_logger_on_first_use=False,
            )
            self._structlog = True
        except Exception as exc:
            internal_error("structlog setup", exc)

    def _metric_pipeline(self, exporter: MetricExporter | None) -> None:
        cfg = self.config
        url = cfg.metrics_url
        if exporter is None and url is None:
            return
        factory: Callable[[], MetricExporter]
        if exporter is not None:
            given = exporter
            factory = lambda: given  # noqa: E731
            where = type(exporter).__name__
        else:
            assert url is not None
            target = url

            def factory() -> MetricExporter:
                return OTLPMetricExporter(
                    endpoint=target,
                    headers=self._headers(),
                    timeout=cfg.export_timeout,
                    compression=self._compression(),
                )

            where = url
        reader = PeriodicExportingMetricReader(
            GuardedMetricExporter(factory, where, self.reporter),
            export_interval_millis=cfg.metrics_interval * 1000,
            export_timeout_millis=cfg.export_timeout * 1000,
        )
        provider = MeterProvider(
            resource=self.resource, metric_readers=[reader], shutdown_on_exit=False
        )
        self.meter_provider = provider
        if isinstance(metrics.get_meter_provider(), metrics._internal._ProxyMeterProvider):
            metrics.set_meter_provider(provider)
        if cfg.system_metrics:
            self.system_metrics = instrumentation.start_system_metrics(provider)

    # --- running --------------------------------------------------------------------------

    def after_fork(self) -> None:
        for account in self.accounts:
            account.after_fork()

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {name: stats.snapshot() for name, stats in self.stats.items()}

    def flush(self, timeout: float) -> bool:
        def work() -> None:
            self.tracer_provider.force_flush(int(timeout * 1000))
            if self.logger_provider is not None:
                self.logger_provider.force_flush(int(timeout * 1000))
            if self.meter_provider is not None:
                self.meter_provider.force_flush(int(timeout * 1000))

        return _run_with_deadline("flush", work, timeout)

    def close(self, timeout: float) -> bool:
        """Stop instrumentations and logging hooks, then flush and shut the providers down
        within ``timeout`` seconds. Returns False when the deadline passed."""
        instrumentation.stop(self.instrumentors)
        if self.system_metrics is not None:
            instrumentation.stop([self.system_metrics])
        root = logging.getLogger()
        for handler in self._root_handlers:
            root.removeHandler(handler)
        if self._root_level is not None:
            root.setLevel(self._root_level)
        if self._structlog:
            try:
                import structlog

                structlog.reset_defaults()
            except Exception as exc:
                internal_error("structlog reset", exc)

        millis = int(timeout * 1000)

        def work() -> None:
            if self.span_processor is not None:
                if self.owns_tracer_provider:
                    self.tracer_provider.shutdown()
                else:
                    self.span_processor.shutdown()
            if self.logger_provider is not None:
                self.logger_provider.shutdown()
            if self.meter_provider is not None:
                self.meter_provider.shutdown(timeout_millis=millis)

        finished = _run_with_deadline("shutdown", work, timeout)
        if finished:
            self.log_filter.uninstall()
        else:
            warn_once(
                f"shutdown-timeout:{id(self)}",
                "pharos: stopped waiting for the export after %.1fs (the server at %s is slow "
                "or not answering); what was still queued is not sent",
                timeout,
                self.config.endpoint,
            )
        snap = self.snapshot()
        dropped = {name: s["dropped"] for name, s in snap.items() if s["dropped"]}
        if dropped:
            log.warning(
                "pharos: dropped %s because the export queue was full (limit %d)",
                " and ".join(f"{n} {name}" for name, n in dropped.items()),
                self.config.max_queue_size,
            )
        return finished
