"""The tracer provider Pharos installs as OpenTelemetry's global one.

OpenTelemetry lets the global provider be set once per process; Pharos' SDK can be started,
stopped and restarted (``init()``/``shutdown()``). So the global provider is this thin switch:
its tracers forward to the provider of the running SDK, and are no-ops when none runs. Code that
uses the OpenTelemetry API directly (libraries, auto-instrumentation) therefore follows
``init()`` and ``shutdown()`` like Pharos' own decorators do.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.util._decorator import _agnosticcontextmanager
from opentelemetry.util.types import Attributes

from pharos.sdk.state import holder

_NOOP = trace.NoOpTracer()


class SwitchTracer(trace.Tracer):
    __slots__ = ("_args", "_for", "_tracer")

    def __init__(self, *args: Any) -> None:
        self._args = args
        self._for: object | None = None
        self._tracer: trace.Tracer = _NOOP

    def _delegate(self) -> trace.Tracer:
        rt = holder.runtime
        if rt is None:
            return _NOOP
        if self._for is not rt:
            self._tracer = rt.tracer_provider.get_tracer(*self._args)
            self._for = rt
        return self._tracer

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> Span:
        return self._delegate().start_span(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
        )

    @_agnosticcontextmanager
    def start_as_current_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[Span]:
        with self._delegate().start_as_current_span(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
            end_on_exit,
        ) as span:
            yield span


class SwitchTracerProvider(trace.TracerProvider):
    """Installed once as the global provider by the first ``pharos.init()``."""

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> trace.Tracer:
        return SwitchTracer(
            instrumenting_module_name, instrumenting_library_version, schema_url, attributes
        )

    def add_span_processor(self, processor: Any) -> None:
        """Adds ``processor`` to the running SDK's provider (for code that expects the global
        provider to be an SDK one)."""
        rt = holder.runtime
        if rt is not None:
            rt.tracer_provider.add_span_processor(processor)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        rt = holder.runtime
        return bool(rt.tracer_provider.force_flush(timeout_millis)) if rt is not None else True
