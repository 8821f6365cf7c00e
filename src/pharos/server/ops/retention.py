"""Retention per signal (DESIGN §5): what is old enough to go, as plain data (no I/O).

:func:`plan` turns the retention settings and the clock into :class:`Target` rows: a table, the
time column it is pruned by, and the cutoff in that column's unit. ``ops/prune.py`` runs them in
small batches. Rollups outlive raw data (hours, days) so long-range charts keep working after
the spans they were computed from are gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

NS = 1_000_000_000
HOUR_NS = 3600 * NS
DAY_NS = 24 * HOUR_NS


class RetentionSettings(Protocol):
    retention_spans_hours: float
    retention_logs_hours: float
    retention_metrics_days: float
    retention_rollups_1m_days: float
    retention_rollups_days: float
    retention_errors_days: float
    retention_alerts_days: float


@dataclass(frozen=True, slots=True)
class Target:
    """Rows of ``table`` whose ``column`` is below ``cutoff`` (and that match ``only``) go."""

    signal: str  # the setting that governs it: spans, logs, metrics, rollups_1m, ...
    table: str
    column: str
    cutoff: int  # in the column's unit (ns, or epoch seconds for bucket/day columns)
    cutoff_ns: int  # the same instant in ns, for display
    #: Extra condition by name (``ops/prune.py`` knows its SQL): e.g. only sent notifications.
    only: str | None = None


def plan(settings: RetentionSettings, now_ns: int) -> list[Target]:
    """Every prune target, in the order they run (raw data first, summaries last)."""

    def ns_ago(hours: float) -> int:
        return now_ns - int(hours * HOUR_NS)

    spans = ns_ago(settings.retention_spans_hours)
    logs = ns_ago(settings.retention_logs_hours)
    metrics = ns_ago(settings.retention_metrics_days * 24)
    minute = ns_ago(settings.retention_rollups_1m_days * 24)
    rollups = ns_ago(settings.retention_rollups_days * 24)
    errors = ns_ago(settings.retention_errors_days * 24)
    alerts = ns_ago(settings.retention_alerts_days * 24)
    return [
        # Whole traces: a trace's spans and its summary row go together.
        Target("spans", "traces", "start_ns", spans, spans),
        Target("logs", "logs", "time_ns", logs, logs),
        Target("metrics", "metric_points", "time_ns", metrics, metrics),
        Target("metrics", "metric_series", "last_seen_ns", metrics, metrics),
        Target("rollups_1m", "rollups_1m", "bucket_start", minute // NS, minute),
        Target("rollups", "rollups_1h", "bucket_start", rollups // NS, rollups),
        Target("rollups", "rollups_1d", "bucket_start", rollups // NS, rollups),
        Target("rollups", "llm_usage_daily", "day", rollups // NS, rollups),
        Target("errors", "error_occurrences", "bucket_start", errors // NS, errors),
        Target("alerts", "alert_events", "at_ns", alerts, alerts),
        Target("alerts", "alerts", "updated_ns", alerts, alerts, only="settled"),
        Target("alerts", "outbox", "created_ns", alerts, alerts, only="delivered"),
    ]


def check_order(settings: RetentionSettings) -> list[str]:
    """Warnings for settings that would break charts: summaries kept shorter than raw data."""
    out = []
    raw_days = max(settings.retention_spans_hours, settings.retention_logs_hours) / 24
    if settings.retention_rollups_days < raw_days:
        out.append(
            "retention_rollups_days is shorter than the raw data's retention: long-range "
            "charts would lose data that the raw tables still have"
        )
    if settings.retention_rollups_1m_days > settings.retention_rollups_days:
        out.append("retention_rollups_1m_days is longer than retention_rollups_days")
    return out
