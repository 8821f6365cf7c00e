"""Routes of OTLP metrics: ``GET /api/v1/metrics/names`` and ``GET /api/v1/metrics/series``.

(``/api/v1/metrics/summary`` and ``/api/v1/metrics/timeseries`` are the request analytics of
the analytics room; these two paths are distinct literals, so neither shadows the other.)
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import Engine

from pharos.server.analytics.api import parse_window
from pharos.server.analytics.summary import MAX_POINTS, auto_interval
from pharos.server.errors import ApiError
from pharos.server.query.metric_math import SeriesInfo, build_series, label_value
from pharos.server.query.metrics import (
    TooManyPoints,
    metric_names,
    metric_points_of,
    metric_series_infos,
)
from pharos.server.responses import FastJSONResponse
from pharos.server.timeparse import iso_from_ns

router = APIRouter(prefix="/api/v1", tags=["metrics"])
#: How far before the window points are read, so the first bucket's counter increase has a
#: baseline (OTel SDKs export every 60 s by default).
LOOKBACK_S = 300
MAX_ATTR_FILTERS = 16


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(_engine)]


@router.get("/metrics/names", summary="OTLP metric names: type, unit, agents, series, last seen")
async def list_metric_names(
    engine: EngineDep, agent: Annotated[str | None, Query(max_length=512)] = None
) -> FastJSONResponse:
    def run() -> list[dict[str, Any]]:
        with engine.connect() as conn:
            return metric_names(conn, agent)

    return FastJSONResponse({"items": await anyio.to_thread.run_sync(run)})


def _attr_filters(request: Request) -> dict[str, str]:
    filters = {}
    for key, value in request.query_params.multi_items():
        if key.startswith("attr."):
            name = key.removeprefix("attr.")
            if not name:
                raise ApiError(400, "attr.: an attribute name is required", "invalid_parameter")
            filters[name] = value
    if len(filters) > MAX_ATTR_FILTERS:
        raise ApiError(400, f"at most {MAX_ATTR_FILTERS} attr.<key> filters", "invalid_parameter")
    return filters


def _matches(info: SeriesInfo, filters: dict[str, str]) -> bool:
    return all(label_value(info, k) == v for k, v in filters.items())


def _interval(value: str | None, window_s: int) -> int:
    if value is None:
        return auto_interval(window_s)
    interval = parse_window(value, "interval")
    if window_s / interval > MAX_POINTS:
        raise ApiError(
            400,
            f"interval: {value} over {window_s // 60}m gives more than {MAX_POINTS} points",
            "invalid_parameter",
        )
    return interval


@router.get("/metrics/series", summary="One OTLP metric over time, aggregated per type")
async def metric_series_chart(
    request: Request,
    engine: EngineDep,
    name: Annotated[str, Query(min_length=1, max_length=255, description="Metric name")],
    window: Annotated[str, Query(description="A duration: 15m, 1h, 24h, 7d")] = "1h",
    interval: Annotated[str | None, Query(description="Bucket size; automatic if omitted")] = None,
    agent: Annotated[str | None, Query(max_length=512)] = None,
    group_by: Annotated[
        str | None, Query(max_length=260, description="agent or attr.<key>")
    ] = None,
    agg: Annotated[
        Literal["avg", "sum", "min", "max"] | None,
        Query(description="Gauges/up-down sums: how series combine (avg gauges, sum others)"),
    ] = None,
    stat: Annotated[
        Literal["p50", "p95", "p99", "avg", "count", "sum"],
        Query(description="Histograms: the statistic in `values` (all are in `stats`)"),
    ] = "p95",
) -> FastJSONResponse:
    window_s = parse_window(window)
    interval_s = _interval(interval, window_s)
    if group_by is not None and group_by != "agent" and not group_by.startswith("attr."):
        raise ApiError(400, "group_by: must be agent or attr.<key>", "invalid_parameter")
    if group_by == "attr.":
        raise ApiError(400, "group_by: attr.<key> needs a key", "invalid_parameter")
    filters = _attr_filters(request)
    now_end = (int(time.time()) // 60 + 1) * 60
    end_s = -(-now_end // interval_s) * interval_s
    start_s = end_s - -(-window_s // interval_s) * interval_s
    since_ns = (start_s - max(LOOKBACK_S, interval_s)) * 10**9

    def run() -> dict[str, Any] | None:
        with engine.connect() as conn:
            infos = metric_series_infos(conn, name, agent)
            if not infos and agent is None:
                return None
            infos = [i for i in infos if _matches(i, filters)]
            try:
                points = metric_points_of(conn, [i.key for i in infos], since_ns, end_s * 10**9)
            except TooManyPoints as exc:
                raise ApiError(
                    400,
                    f"{name!r} has {exc} in this window: narrow the window, or filter by agent "
                    "or attr.<key>",
                    "invalid_parameter",
                ) from None
        aggregation, groups, truncated = build_series(
            infos,
            points,
            start_s=start_s,
            end_s=end_s,
            interval_s=interval_s,
            since_ns=since_ns,
            group_by=group_by,
            agg=agg,
            stat=stat,
        )
        first = infos[0] if infos else None
        return {
            "name": name,
            "type": first.type if first else None,
            "temporality": (first.temporality or None) if first else None,
            "monotonic": first.monotonic if first else None,
            "unit": first.unit if first else None,
            "description": first.description if first else None,
            "aggregation": aggregation,
            "stat": stat if aggregation == "histogram" else None,
            "agg": (agg or ("avg" if first and first.type == "gauge" else "sum"))
            if aggregation == "last"
            else None,
            "window": window,
            "interval_seconds": interval_s,
            "start": iso_from_ns(start_s * 10**9),
            "end": iso_from_ns(end_s * 10**9),
            "timestamps": [iso_from_ns(t * 10**9) for t in range(start_s, end_s, interval_s)],
            "series": groups,
            "truncated": truncated,
        }

    result = await anyio.to_thread.run_sync(run)
    if result is None:
        raise ApiError(404, f"no metric named {name!r}", "not_found")
    return FastJSONResponse(result)
