"""SDK test fixtures: an SDK initialised with OpenTelemetry's in-memory exporters (the spans
and logs as they would leave the process, after redaction), and clean SDK state per test."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import pharos
from pharos.sdk import state


@pytest.fixture(autouse=True)
def _clean_sdk() -> Iterator[None]:
    """Every test starts and ends without a running SDK, with warn-once state reset and the
    root logger as it was."""
    pharos.shutdown(timeout=5)
    state.forget_warnings()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    pharos.shutdown(timeout=5)
    state.holder.last = None
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@dataclass
class MemorySDK:
    span_exporter: InMemorySpanExporter
    log_exporter: InMemoryLogRecordExporter

    def spans(self) -> list[ReadableSpan]:
        assert pharos.flush(10)
        return list(self.span_exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        found = [s for s in self.spans() if s.name == name]
        assert len(found) == 1, f"{name!r} among {[s.name for s in self.spans()]}"
        return found[0]

    def logs(self) -> list[Any]:
        assert pharos.flush(10)
        return [r.log_record for r in self.log_exporter.get_finished_logs()]


@pytest.fixture
def make_sdk() -> Any:
    def factory(**kwargs: Any) -> MemorySDK:
        sdk = MemorySDK(InMemorySpanExporter(), InMemoryLogRecordExporter())
        kwargs.setdefault("service_name", "sdk-test")
        assert pharos.init(span_exporter=sdk.span_exporter, log_exporter=sdk.log_exporter, **kwargs)
        return sdk

    return factory


@pytest.fixture
def sdk(make_sdk: Any) -> MemorySDK:
    return make_sdk()  # type: ignore[no-any-return]
