"""Forwarding targets from settings (pure).

``PHAROS_FORWARD_OTLP`` names base URLs, each one target receiving the signals of
``PHAROS_FORWARD_SIGNALS`` at ``/v1/traces``, ``/v1/metrics`` and ``/v1/logs``. A per-signal list
(``PHAROS_FORWARD_OTLP_TRACES`` ...) replaces the base URLs for that signal, with full URLs used
as given, as the OpenTelemetry exporters' ``OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`` does.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

SIGNALS = ("traces", "metrics", "logs")
PATHS = {"traces": "/v1/traces", "metrics": "/v1/metrics", "logs": "/v1/logs"}


@dataclass(frozen=True, slots=True)
class Target:
    name: str  # stable identity of the queue rows: the base URL, or the full signal URL
    urls: Mapping[str, str]  # signal -> URL the signal is posted to
    headers: Mapping[str, str] = field(default_factory=dict)
    agents: tuple[str, ...] = ()  # shell patterns; empty = every agent


def build_targets(
    base_urls: Sequence[str],
    per_signal: Mapping[str, Sequence[str]],
    *,
    signals: Iterable[str] = SIGNALS,
    headers: Mapping[str, str] | None = None,
    agents: Sequence[str] = (),
) -> list[Target]:
    wanted = [s for s in SIGNALS if s in set(signals)]
    urls: dict[str, dict[str, str]] = {}
    for base in base_urls:
        name = base.rstrip("/")
        for signal in wanted:
            if not per_signal.get(signal):
                urls.setdefault(name, {})[signal] = name + PATHS[signal]
    for signal in SIGNALS:
        for url in per_signal.get(signal) or ():
            urls.setdefault(url, {})[signal] = url
    return [
        Target(name, dict(by_signal), dict(headers or {}), tuple(agents))
        for name, by_signal in urls.items()
        if by_signal
    ]


def agent_matches(agent: str, patterns: Sequence[str]) -> bool:
    """True if ``agent`` matches one of ``patterns`` (exact names or ``*``/``?`` patterns)."""
    return not patterns or any(fnmatch.fnmatchcase(agent, p) for p in patterns)
