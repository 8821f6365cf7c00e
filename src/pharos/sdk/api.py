"""``pharos.init()``, ``pharos.flush()``, ``pharos.shutdown()`` and ``pharos.stats()``.

None of them raises: configuration problems and export failures are logged once.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pharos.sdk.config import resolve
from pharos.sdk.state import forget_warnings, holder, internal_error, log, warn_once

if TYPE_CHECKING:
    from opentelemetry.sdk._logs.export import LogRecordExporter
    from opentelemetry.sdk.metrics.export import MetricExporter
    from opentelemetry.sdk.trace.export import SpanExporter

_lock = threading.RLock()
_hooks_installed = False


def _install_process_hooks() -> None:
    """Once per process: flush at exit (with the configured timeout), and re-arm after fork."""
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_at_exit)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)


def _at_exit() -> None:
    with contextlib.suppress(Exception):  # the interpreter is going away; nothing may escape
        shutdown()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.RLock()  # a parent thread may have held it at fork time
    rt = holder.runtime
    if rt is not None:
        try:
            rt.after_fork()
        except Exception as exc:
            internal_error("after fork", exc)


def init(
    service_name: str | None = None,
    *,
    endpoint: str | None = None,
    api_key: str | None = None,
    environment: str | None = None,
    service_version: str | None = None,
    capture_content: bool | None = None,
    max_content_length: int | None = None,
    redact: bool | None = None,
    redact_pii: bool | None = None,
    redact_keys: Iterable[str] | None = None,
    redact_patterns: Iterable[str] | None = None,
    redact_allow: Iterable[str] | None = None,
    instrument: Iterable[str] | str | None = None,
    system_metrics: bool | None = None,
    metrics_interval: float | None = None,
    logs: bool | None = None,
    json_logs: bool | None = None,
    log_level: str | None = None,
    structlog: bool | None = None,
    headers: Mapping[str, str] | None = None,
    resource_attributes: Mapping[str, Any] | None = None,
    max_queue_size: int | None = None,
    schedule_delay: float | None = None,
    export_timeout: float | None = None,
    shutdown_timeout: float | None = None,
    compression: str | None = None,
    enabled: bool | None = None,
    debug: bool | None = None,
    span_exporter: SpanExporter | None = None,
    log_exporter: LogRecordExporter | None = None,
    metric_exporter: MetricExporter | None = None,
) -> bool:
    """Start sending traces and logs (and, if asked, metrics) to Pharos.

    Every argument left as None is read from the environment (``PHAROS_*``, then ``OTEL_*``),
    else a default: see docs/sdk.md. Calling it again with the same settings does nothing; with
    different settings it flushes and restarts the SDK. It never raises: a bad setting is
    logged once and replaced by its default, an unusable endpoint disables export.

    ``span_exporter``/``log_exporter``/``metric_exporter`` replace the OTLP/HTTP exporters
    (e.g. a console exporter while debugging); redaction and the bounded queues still apply.

    Returns True when telemetry is being recorded.
    """
    try:
        args = {k: v for k, v in locals().items() if not k.endswith("_exporter")}
        config = resolve(args, os.environ)
        with _lock:
            for problem in config.problems:
                warn_once(f"config:{problem}", "pharos: %s", problem)
            current = holder.runtime
            custom = span_exporter or log_exporter or metric_exporter
            if current is not None:
                if current.config == config and not custom:
                    return True
                log.info("pharos: init() called again with other settings; restarting the SDK")
                shutdown()
            if not config.enabled:
                log.debug(
                    "pharos: disabled (enabled=False, PHAROS_SDK_DISABLED or OTEL_SDK_DISABLED)"
                )
                return False
            from pharos.sdk.runtime import Runtime

            if config.debug:
                log.setLevel("DEBUG")
            forget_warnings("drop:")
            holder.runtime = Runtime(
                config,
                span_exporter=span_exporter,
                log_exporter=log_exporter,
                metric_exporter=metric_exporter,
            )
            _install_process_hooks()
            log.debug("pharos: sending to %s as %s", config.endpoint, config.service_name)
            return True
    except Exception as exc:
        internal_error("init", exc)
        return False


def flush(timeout: float | None = None) -> bool:
    """Send what is queued now; waits at most ``timeout`` seconds (default: the shutdown
    timeout). Returns True when everything queued was handed to the server in time."""
    try:
        rt = holder.runtime
        if rt is None:
            return True
        return rt.flush(rt.config.shutdown_timeout if timeout is None else float(timeout))
    except Exception as exc:
        internal_error("flush", exc)
        return False


def shutdown(timeout: float | None = None) -> bool:
    """Flush and stop the SDK, waiting at most ``timeout`` seconds (default
    ``PHAROS_SHUTDOWN_TIMEOUT``, 5 s). Afterwards decorators keep working and record nothing
    until ``init()`` is called again. Runs automatically at interpreter exit."""
    try:
        with _lock:
            rt = holder.runtime
            if rt is None:
                return True
            holder.runtime = None
            holder.last = rt
            limit = rt.config.shutdown_timeout if timeout is None else float(timeout)
        return rt.close(limit)
    except Exception as exc:
        internal_error("shutdown", exc)
        return False


def stats() -> dict[str, dict[str, int]]:
    """Counters per signal since ``init()``: ``queued`` (waiting to be sent), ``exported``,
    ``failed`` (the server refused or could not be reached) and ``dropped`` (the queue was
    full). After ``shutdown()``, the final counts; empty before ``init()``."""
    try:
        rt = holder.runtime or holder.last
        return rt.snapshot() if rt is not None else {}
    except Exception as exc:
        internal_error("stats", exc)
        return {}
