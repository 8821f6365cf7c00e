"""Routes of the analytics room: summary, time series, health, agents, overview.

Every figure comes from the rollup tables (never from scanning spans); trace lists in the
overview read the ``traces`` summary table.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import Engine

from pharos.server.alerting import store as alert_store
from pharos.server.alerting.engine import FiringIndex
from pharos.server.analytics import store
from pharos.server.analytics.health import HealthThresholds, health
from pharos.server.analytics.rollups import REQUEST, RESOLUTIONS
from pharos.server.analytics.summary import (
    LATENCY_QUANTILES,
    MAX_POINTS,
    METRICS,
    MODEL_CALL_KINDS,
    NICE_INTERVALS,
    RollupRow,
    aggregate,
    auto_interval,
    figures,
    kinds_for,
    series,
    trends,
)
from pharos.server.errors import ApiError
from pharos.server.query.errors import list_errors, top_error_groups
from pharos.server.query.traces import trace_summary
from pharos.server.responses import FastJSONResponse
from pharos.server.settings import Settings
from pharos.server.timeparse import iso_from_ns, parse_duration_seconds

router = APIRouter(prefix="/api/v1", tags=["analytics"])
MAX_WINDOW = 400 * 86400


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(_engine)]
Window = Annotated[str, Query(description="A duration: 15m, 1h, 24h, 7d (whole minutes)")]


def parse_window(value: str, name: str = "window") -> int:
    try:
        seconds = parse_duration_seconds(value)
    except ValueError as exc:
        raise ApiError(400, f"{name}: {exc}", "invalid_parameter") from None
    if seconds < 60 or seconds % 60:
        raise ApiError(400, f"{name}: must be whole minutes, at least 1m", "invalid_parameter")
    if seconds > MAX_WINDOW:
        raise ApiError(400, f"{name}: at most 400d", "invalid_parameter")
    return int(seconds)


def _window_end(now_s: float) -> int:
    """Windows end at the end of the current minute (so the newest data is included)."""
    return (int(now_s) // 60 + 1) * 60


def _thresholds(request: Request) -> HealthThresholds:
    s: Settings = request.app.state.settings
    return HealthThresholds.from_settings(s)


def _counter(request: Request) -> Any:
    """The alerting room's firing-alert index (None until alerting is wired)."""
    return getattr(request.app.state, "firing_alerts", None)


def _firing(request: Request, agent: str | None = None, *, for_health: bool = True) -> int:
    """Firing alerts, from the alerting room once it is wired (0 until then). For the health
    score only those above ``info`` count."""
    counter = _counter(request)
    if for_health:
        counter = getattr(counter, "for_health", counter)
    return int(counter(agent)) if callable(counter) else 0


FiringByAgent = Callable[[str], int]


def _firing_by_agent(request: Request) -> FiringByAgent:
    """Per agent, the firing alerts its health score counts (the same figure for /agents,
    /health and /overview)."""
    return lambda agent: _firing(request, agent)


@dataclass(frozen=True, slots=True)
class FiringView:
    """The firing alerts of one scope: count, the count the health score uses, per agent,
    and the most severe ones (at most 20) to list."""

    total: int
    serious: int
    serious_by_agent: dict[str, int]
    items: list[dict[str, Any]]

    def for_agent(self, agent: str) -> int:
        return self.serious_by_agent.get(agent, 0)


def _firing_view(request: Request, agent: str | None, model: str | None) -> FiringView:
    """Firing alerts, all of them or those labelled with ``agent`` and/or ``model``.

    Unscoped it is the alerting room's in-memory index; scoped, the firing alerts are read
    from the database and matched on their ``agent``/``model`` labels (an alert without the
    label is not about that agent or model)."""
    counter = _counter(request)
    if counter is None:
        return FiringView(0, 0, {}, [])
    if agent is None and model is None:
        return FiringView(
            total=_firing(request, for_health=False),
            serious=_firing(request),
            serious_by_agent=dict(getattr(counter, "serious_by_agent", {})),
            items=list(getattr(counter, "items", [])),
        )
    engine: Engine = request.app.state.engine
    with engine.connect() as conn:
        rows = alert_store.firing_snapshot(conn)
    wanted = {k: v for k, v in (("agent", agent), ("model", model)) if v is not None}
    index = FiringIndex()
    index.load(
        [
            r
            for r in rows
            if all(alert_store.loads(r.labels, {}).get(k) == v for k, v in wanted.items())
        ]
    )
    return FiringView(index.total, index.serious, dict(index.serious_by_agent), index.items)


def summary_for(
    engine: Engine, end_s: int, window_s: int, agent: str | None, model: str | None
) -> dict[str, Any]:
    start_s = end_s - window_s
    scope = model is not None
    with engine.connect() as conn:
        cur_rows = store.fetch_rollups(conn, start_s, end_s, agent=agent, model=model)
        prev_rows = store.fetch_rollups(conn, start_s - window_s, start_s, agent=agent, model=model)
    current = figures(aggregate(cur_rows, model_scope=scope), window_s)
    previous = figures(aggregate(prev_rows, model_scope=scope), window_s)
    return {
        "window_seconds": window_s,
        "start": iso_from_ns(start_s * 10**9),
        "end": iso_from_ns(end_s * 10**9),
        "agent": agent,
        "model": model,
        "scope": "model_calls" if scope else "requests",
        **current,
        "previous": previous,
        "trend": trends(current, previous),
    }


@router.get("/metrics/summary", summary="Requests, errors, latency, tokens, cost, with trends")
async def metrics_summary(
    engine: EngineDep,
    window: Window = "1h",
    agent: Annotated[str | None, Query(max_length=512)] = None,
    model: Annotated[str | None, Query(max_length=512)] = None,
) -> FastJSONResponse:
    window_s = parse_window(window)
    end_s = _window_end(time.time())
    result = await anyio.to_thread.run_sync(
        lambda: summary_for(engine, end_s, window_s, agent, model)
    )
    return FastJSONResponse({"window": window, **result})


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


@router.get("/metrics/timeseries", summary="A metric over time, aligned buckets for a chart")
async def metrics_timeseries(
    engine: EngineDep,
    metric: Annotated[str, Query(description=", ".join(METRICS))] = "requests",
    window: Window = "24h",
    interval: Annotated[str | None, Query(description="Bucket size; automatic if omitted")] = None,
    agent: Annotated[str | None, Query(max_length=512)] = None,
    model: Annotated[str | None, Query(max_length=512)] = None,
    group_by: Annotated[Literal["agent", "model"] | None, Query()] = None,
) -> FastJSONResponse:
    if metric not in METRICS:
        raise ApiError(400, f"metric: must be one of {', '.join(METRICS)}", "invalid_parameter")
    window_s = parse_window(window)
    interval_s = _interval(interval, window_s)
    resolution = next(name for name in ("1d", "1h", "1m") if interval_s % RESOLUTIONS[name] == 0)
    # Agent runs have no model: by-model or for-a-model figures describe the model calls.
    model_scope = model is not None or group_by == "model"
    end_s = -(-_window_end(time.time()) // interval_s) * interval_s
    start_s = end_s - -(-window_s // interval_s) * interval_s

    def run() -> list[dict[str, Any]]:  # off the event loop: the bucketing is CPU work too
        fetch = store.fetch_latency_rows if metric in LATENCY_QUANTILES else store.fetch_rollups
        with engine.connect() as conn:
            rows = fetch(
                conn,
                start_s,
                end_s,
                agent=agent,
                model=model,
                resolution=resolution,
                kinds=kinds_for(metric, model_scope=model_scope),
            )
        return series(
            rows,
            metric,
            start_s=start_s,
            end_s=end_s,
            interval_s=interval_s,
            group_by=group_by,
            model_scope=model_scope,
        )

    data = await anyio.to_thread.run_sync(run)
    return FastJSONResponse(
        {
            "metric": metric,
            "unit": METRICS[metric],
            "window": window,
            "interval_seconds": interval_s,
            "start": iso_from_ns(start_s * 10**9),
            "end": iso_from_ns(end_s * 10**9),
            "timestamps": [iso_from_ns(t * 10**9) for t in range(start_s, end_s, interval_s)],
            "series": data,
        }
    )


#: Sparklines of the agents table: at most this many points over the window.
SPARK_POINTS = 60


def _spark_interval(window_s: int) -> int:
    return next((i for i in NICE_INTERVALS if window_s / i <= SPARK_POINTS), NICE_INTERVALS[-1])


def _sparklines(engine: Engine, end_s: int, window_s: int) -> dict[str, Any]:
    """Requests per interval for every agent (not only the top 20 a grouped time series
    keeps), aligned like /metrics/timeseries."""
    interval_s = _spark_interval(window_s)
    resolution = next(name for name in ("1d", "1h", "1m") if interval_s % RESOLUTIONS[name] == 0)
    end = -(-end_s // interval_s) * interval_s
    start = end - -(-window_s // interval_s) * interval_s
    points = (end - start) // interval_s
    with engine.connect() as conn:
        rows = store.fetch_rollups(conn, start, end, resolution=resolution, kinds=(REQUEST,))
    values: dict[str, list[int]] = {}
    for r in rows:
        slot = (r.bucket_start - start) // interval_s
        if 0 <= slot < points:
            values.setdefault(r.agent, [0] * points)[slot] += r.count
    return {
        "interval_seconds": interval_s,
        "start": iso_from_ns(start * 10**9),
        "points": points,
        "values": values,
    }


def _agent_table(
    engine: Engine,
    end_s: int,
    window_s: int,
    thresholds: HealthThresholds,
    firing: FiringByAgent,
    window: str,
    *,
    agent: str | None = None,
    model: str | None = None,
) -> list[dict[str, Any]]:
    """Every agent's figures, trend and health (``firing``: each agent's firing alerts for
    its health score). ``agent``: only that one. ``model``: the agents that called that
    model, with figures describing those model calls (as /metrics/summary does)."""
    start_s = end_s - window_s
    scope = model is not None
    with engine.connect() as conn:
        cur = store.fetch_rollups(conn, start_s, end_s, agent=agent, model=model)
        prev = store.fetch_rollups(conn, start_s - window_s, start_s, agent=agent, model=model)
        if scope:
            names = {r.agent for r in cur if r.kind in MODEL_CALL_KINDS}
        else:
            names = set(store.known_agents(conn, end_s - 30 * 86400))
            names |= {r.agent for r in cur if r.kind == REQUEST}
        if agent is not None:
            names &= {agent}
        seen = store.last_seen_ns(conn, names)
    by_agent: dict[str, list[RollupRow]] = defaultdict(list)
    prev_by_agent: dict[str, list[RollupRow]] = defaultdict(list)
    for r in cur:
        by_agent[r.agent].append(r)
    for r in prev:
        prev_by_agent[r.agent].append(r)
    table = []
    for name in names:
        f = figures(aggregate(by_agent.get(name, ()), model_scope=scope), window_s)
        p = figures(aggregate(prev_by_agent.get(name, ()), model_scope=scope), window_s)
        h = health(
            requests=f["requests"],
            error_rate=f["error_rate"],
            p99_ms=f["latency_ms"]["p99"],
            firing_alerts=firing(name),
            thresholds=thresholds,
            window=window,
        )
        last = seen.get(name)
        table.append(
            {
                "agent": name,
                **f,
                "trend": trends(f, p),
                "health": h,
                "last_seen": iso_from_ns(last) if last is not None else None,
            }
        )
    table.sort(key=lambda a: (-a["requests"], a["agent"]))
    return table


@router.get("/agents", summary="Every agent with its figures, trend, health and last seen")
async def agents(
    request: Request,
    engine: EngineDep,
    window: Window = "1h",
    sparkline: Annotated[
        bool, Query(description="Add each agent's requests over the window (<= 60 points)")
    ] = False,
) -> FastJSONResponse:
    window_s = parse_window(window)
    end_s = _window_end(time.time())
    thresholds = _thresholds(request)
    firing = _firing_by_agent(request)

    def run() -> dict[str, Any]:
        table = _agent_table(engine, end_s, window_s, thresholds, firing, window)
        out: dict[str, Any] = {"window": window, "items": table}
        if sparkline:
            spark = _sparklines(engine, end_s, window_s)
            values = spark.pop("values")
            for row in table:
                row["sparkline"] = values.get(row["agent"], [0] * spark["points"])
            out["sparkline"] = spark
        return out

    return FastJSONResponse(await anyio.to_thread.run_sync(run))


def _scoped_health(
    summary: dict[str, Any], firing: int, t: HealthThresholds, window: str
) -> dict[str, Any]:
    result: dict[str, Any] = health(
        requests=summary["requests"],
        error_rate=summary["error_rate"],
        p99_ms=summary["latency_ms"]["p99"],
        firing_alerts=firing,
        thresholds=t,
        window=window,
    )
    return result


@router.get("/health", summary="Health score 0-100 with status and reasons, global and per agent")
async def health_endpoint(
    request: Request, engine: EngineDep, window: Window = "15m"
) -> FastJSONResponse:
    window_s = parse_window(window)
    end_s = _window_end(time.time())
    t = _thresholds(request)
    firing = _firing_by_agent(request)

    def run() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        summary = summary_for(engine, end_s, window_s, None, None)
        return summary, _agent_table(engine, end_s, window_s, t, firing, window)

    summary, table = await anyio.to_thread.run_sync(run)
    return FastJSONResponse(
        {
            "window": window,
            **_scoped_health(summary, _firing(request), t, window),
            "agents": [{"agent": a["agent"], **a["health"]} for a in table],
        }
    )


Filter = Annotated[str | None, Query(max_length=512)]


@router.get("/overview", summary="Everything the dashboard's first screen needs, in one call")
async def overview(
    request: Request,
    engine: EngineDep,
    window: Window = "1h",
    agent: Filter = None,
    model: Filter = None,
) -> FastJSONResponse:
    window_s = parse_window(window)
    end_s = _window_end(time.time())
    start_s = end_s - window_s
    t = _thresholds(request)
    agent = agent or None
    model = model or None

    def run() -> dict[str, Any]:
        alerts = _firing_view(request, agent, model)
        if model is None:
            # The counts /agents and /health use (the in-memory index), so all three agree.
            per_agent = _firing_by_agent(request)
            serious = _firing(request, agent)
        else:
            per_agent, serious = alerts.for_agent, alerts.serious
        summary = summary_for(engine, end_s, window_s, agent, model)
        table = _agent_table(
            engine, end_s, window_s, t, per_agent, window, agent=agent, model=model
        )
        since_ns = start_s * 10**9
        with engine.connect() as conn:
            errors = store.recent_error_traces(conn, since_ns, 10, agent=agent, model=model)
            slow = store.slowest_traces(conn, since_ns, 5, agent=agent, model=model)
            if agent is None:
                top_errors = top_error_groups(conn, start_s, end_s, 5)
        if agent is not None:
            listed = list_errors(
                engine, window_s=window_s, agent=agent, status=None, limit=5, now_s=end_s - 1
            )
            top_errors = [
                {k: v for k, v in g.items() if k not in ("stacktrace", "sparkline")}
                for g in listed["items"]
            ]
        return {
            "summary": summary,
            "health": _scoped_health(summary, serious, t, window),
            "top_agents": table[:5],
            "recent_errors": [trace_summary(r) for r in errors],
            "top_errors": top_errors,
            # Error groups are counted per agent, not per model (docs/analytics.md).
            "top_errors_scope": {"agent": agent, "model": None},
            "slow_traces": [trace_summary(r) for r in slow],
            "alerts": {"firing": alerts.total, "items": alerts.items},
        }

    data = await anyio.to_thread.run_sync(run)
    writer = request.app.state.writer
    return FastJSONResponse(
        {
            "window": window,
            "agent": agent,
            "model": model,
            **data,
            "ingest": {
                "writer": "running" if writer.running else "stopped",
                "queue_depth": writer.queue_depth,
                "queue_capacity": writer.queue_capacity,
                "spans_stored": writer.stats.spans_stored,
                "spans_duplicate": writer.stats.spans_duplicate,
                "rejected_overloaded": writer.stats.rejected_overloaded,
                "last_error": writer.stats.last_error,
            },
        }
    )
