"""Store metric points in the writer's transaction: upsert their series, insert the points not
stored yet (a resent export is idempotent: ``(series_key, time_ns)`` is the primary key)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from sqlalchemy import Connection, func
from sqlalchemy.dialects import postgresql, sqlite

from pharos.server.db.schema import metric_points, metric_series
from pharos.server.ingest.metrics import MetricBatch, MetricPoint

#: The writer's store step name for metric points (``GroupCommitWriter.stores``).
METRIC_POINTS = "metric_points"


def metrics_response(batch: MetricBatch) -> ExportMetricsServiceResponse:
    """The OTLP answer once ``batch``'s points are committed (partial_success if any were
    rejected)."""
    response = ExportMetricsServiceResponse()
    if batch.rejected:
        response.partial_success.rejected_data_points = batch.rejected
        response.partial_success.error_message = batch.error_message
    return response


def store_metric_points(conn: Connection, points: Sequence[MetricPoint]) -> int:
    """Write ``points`` (series rows upserted first); return how many points were new."""
    if not points:
        return 0
    is_sqlite = conn.dialect.name == "sqlite"
    insert: Any = sqlite.insert if is_sqlite else postgresql.insert
    greatest: Any = func.max if is_sqlite else func.greatest
    least: Any = func.min if is_sqlite else func.least

    series: dict[str, dict[str, Any]] = {}
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for p in points:
        s = series.get(p.series_key)
        if s is None:
            series[p.series_key] = {
                "series_key": p.series_key,
                "name": p.name,
                "type": p.type,
                "temporality": p.temporality,
                "monotonic": p.monotonic,
                "unit": p.unit,
                "description": p.description,
                "agent": p.agent,
                "attributes": p.attributes,
                "resource": p.resource,
                "first_seen_ns": p.time_ns,
                "last_seen_ns": p.time_ns,
            }
        else:
            s["first_seen_ns"] = min(s["first_seen_ns"], p.time_ns)
            if p.time_ns >= s["last_seen_ns"]:
                s["last_seen_ns"] = p.time_ns
                s["unit"], s["description"] = p.unit, p.description
        rows.setdefault(
            (p.series_key, p.time_ns),
            {
                "series_key": p.series_key,
                "time_ns": p.time_ns,
                "start_ns": p.start_ns,
                "value": p.value,
                "count": p.count,
                "sum": p.sum,
                "min": p.min,
                "max": p.max,
                "bounds": p.bounds,
                "counts": p.counts,
            },
        )
    stmt = insert(metric_series)
    ex, t = stmt.excluded, metric_series.c
    upsert = stmt.on_conflict_do_update(
        index_elements=["series_key"],
        set_={
            "first_seen_ns": least(t.first_seen_ns, ex.first_seen_ns),
            "last_seen_ns": greatest(t.last_seen_ns, ex.last_seen_ns),
            "unit": ex.unit,
            "description": ex.description,
        },
    )
    # Key order: several instances upserting the same series lock them in the same order.
    conn.execute(upsert, [series[k] for k in sorted(series)])
    new = conn.execute(
        insert(metric_points)
        .on_conflict_do_nothing(index_elements=["series_key", "time_ns"])
        .returning(metric_points.c.series_key),
        [rows[k] for k in sorted(rows)],
    ).all()
    return len(new)
