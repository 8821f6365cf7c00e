"""Opt-in auto-instrumentation (``instrument=[...]``) and system metrics, using the
OpenInference and OpenTelemetry instrumentation packages when they are installed.

A missing package is a one-time warning naming what to install, never an exception.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any

from pharos.sdk.state import internal_error, log, warn_once


@dataclass(frozen=True)
class Candidate:
    module: str
    cls: str
    package: str


#: For each name, the instrumentations tried in order (OpenInference first).
CANDIDATES: dict[str, tuple[Candidate, ...]] = {
    "openai": (
        Candidate(
            "openinference.instrumentation.openai",
            "OpenAIInstrumentor",
            "openinference-instrumentation-openai",
        ),
        Candidate(
            "opentelemetry.instrumentation.openai_v2",
            "OpenAIInstrumentor",
            "opentelemetry-instrumentation-openai-v2",
        ),
    ),
    "anthropic": (
        Candidate(
            "openinference.instrumentation.anthropic",
            "AnthropicInstrumentor",
            "openinference-instrumentation-anthropic",
        ),
        Candidate(
            "opentelemetry.instrumentation.anthropic",
            "AnthropicInstrumentor",
            "opentelemetry-instrumentation-anthropic",
        ),
    ),
    "langchain": (
        Candidate(
            "openinference.instrumentation.langchain",
            "LangChainInstrumentor",
            "openinference-instrumentation-langchain",
        ),
        Candidate(
            "opentelemetry.instrumentation.langchain",
            "LangchainInstrumentor",
            "opentelemetry-instrumentation-langchain",
        ),
    ),
    "httpx": (
        Candidate(
            "opentelemetry.instrumentation.httpx",
            "HTTPXClientInstrumentor",
            "opentelemetry-instrumentation-httpx",
        ),
    ),
    "requests": (
        Candidate(
            "opentelemetry.instrumentation.requests",
            "RequestsInstrumentor",
            "opentelemetry-instrumentation-requests",
        ),
    ),
}
#: What ``system_metrics=True`` reports (the instrumentation's config format).
SYSTEM_METRICS: dict[str, list[str] | None] = {
    "system.cpu.utilization": ["idle", "user", "system"],
    "system.memory.usage": ["used", "free", "cached"],
    "system.memory.utilization": ["used", "free", "cached"],
    "process.cpu.time": ["user", "system"],
    "process.cpu.utilization": ["user", "system"],
    "process.memory.usage": None,
    "process.memory.virtual": None,
    "process.thread.count": None,
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _load(candidate: Candidate) -> Any | None:
    if not _installed(candidate.module):
        return None
    try:
        return getattr(importlib.import_module(candidate.module), candidate.cls)
    except Exception as exc:
        warn_once(
            f"instrument-import:{candidate.module}",
            "pharos: could not import %s (%s: %s); skipping it",
            candidate.module,
            type(exc).__name__,
            exc,
        )
        return None


def _candidates(name: str) -> tuple[Candidate, ...]:
    if ":" in name:  # "package.module:ClassName" for any other BaseInstrumentor
        module, _, cls = name.partition(":")
        return (Candidate(module.strip(), cls.strip(), module.strip().split(".")[0]),)
    return CANDIDATES.get(name, ())


def start_instrumentations(names: tuple[str, ...], tracer_provider: Any) -> list[Any]:
    """Instrument each named library with the first installed instrumentation; returns the
    instrumentors started (to be stopped at shutdown)."""
    started: list[Any] = []
    for name in names:
        candidates = _candidates(name)
        if not candidates:
            warn_once(
                f"instrument-unknown:{name}",
                "pharos: instrument=%r is not known (known: %s, or 'module:Class' of any "
                "OpenTelemetry instrumentor); skipping it",
                name,
                ", ".join(sorted(CANDIDATES)),
            )
            continue
        for candidate in candidates:
            cls = _load(candidate)
            if cls is None:
                continue
            try:
                instrumentor = cls()
                if getattr(instrumentor, "is_instrumented_by_opentelemetry", False):
                    instrumentor.uninstrument()  # from an earlier init(): re-point it
                instrumentor.instrument(tracer_provider=tracer_provider)
            except Exception as exc:
                warn_once(
                    f"instrument-fail:{name}",
                    "pharos: %s did not start (%s: %s); %s calls are not traced",
                    candidate.package,
                    type(exc).__name__,
                    exc,
                    name,
                )
                break
            if getattr(instrumentor, "is_instrumented_by_opentelemetry", True):
                started.append(instrumentor)
                log.debug("pharos: instrumenting %s with %s", name, candidate.package)
            else:
                warn_once(
                    f"instrument-inactive:{name}",
                    "pharos: %s is installed but did not activate (is %s itself installed, "
                    "in a supported version?); %s calls are not traced",
                    candidate.package,
                    name,
                    name,
                )
            break
        else:
            packages = " or ".join(c.package for c in candidates)
            extra = f" (pip install 'pharos[{name}]')" if name in CANDIDATES else ""
            warn_once(
                f"instrument-missing:{name}",
                "pharos: instrument=[%r] needs %s%s; %s calls are not traced",
                name,
                packages,
                extra,
                name,
            )
    return started


def start_system_metrics(meter_provider: Any) -> Any | None:
    """CPU and memory of the process and the host, via the OpenTelemetry system-metrics
    instrumentation; None (and a one-time warning) when it is not installed."""
    candidate = Candidate(
        "opentelemetry.instrumentation.system_metrics",
        "SystemMetricsInstrumentor",
        "opentelemetry-instrumentation-system-metrics",
    )
    cls = _load(candidate)
    if cls is None:
        warn_once(
            "system-metrics-missing",
            "pharos: system_metrics=True needs opentelemetry-instrumentation-system-metrics "
            "(pip install 'pharos[system-metrics]'); CPU and memory are not reported",
        )
        return None
    try:
        instrumentor = cls(config=dict(SYSTEM_METRICS))
        if getattr(instrumentor, "is_instrumented_by_opentelemetry", False):
            instrumentor.uninstrument()
        instrumentor.instrument(meter_provider=meter_provider)
        return instrumentor
    except Exception as exc:
        warn_once(
            "system-metrics-fail",
            "pharos: system metrics did not start (%s: %s)",
            type(exc).__name__,
            exc,
        )
        return None


def stop(instrumentors: list[Any]) -> None:
    for instrumentor in instrumentors:
        try:
            instrumentor.uninstrument()
        except Exception as exc:
            internal_error("uninstrument", exc)
