"""Routes of the query room: ``/api/v1/traces``, ``/api/v1/traces/slow`` and
``/api/v1/traces/{trace_id}``."""

from __future__ import annotations

import re
import time
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy import Engine

from pharos.server.errors import ApiError
from pharos.server.links import add_links, templates_from_settings
from pharos.server.query.traces import (
    BadCursor,
    TraceFilter,
    get_trace,
    list_slow_traces,
    list_traces,
)
from pharos.server.responses import FastJSONResponse
from pharos.server.timeparse import iso_from_ns, parse_duration_seconds, parse_instant_ns

router = APIRouter(prefix="/api/v1", tags=["traces"])
_TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(_engine)]


def _instant(name: str, value: str | None, now_ns: int) -> int | None:
    if value is None:
        return None
    try:
        return parse_instant_ns(value, now_ns)
    except ValueError as exc:
        raise ApiError(400, f"{name}: {exc}", "invalid_parameter") from None


@router.get("/traces", summary="List traces, newest first")
async def traces_list(
    engine: EngineDep,
    agent: Annotated[str | None, Query(max_length=512)] = None,
    status: Annotated[Literal["ok", "error"] | None, Query()] = None,
    min_duration_ms: Annotated[float | None, Query(ge=0)] = None,
    since: Annotated[str | None, Query(description="ISO 8601 time or a duration ago (1h)")] = None,
    until: Annotated[str | None, Query(description="ISO 8601 time or a duration ago")] = None,
    q: Annotated[str | None, Query(max_length=256, description="Text in name/agent/error")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> FastJSONResponse:
    now = time.time_ns()
    flt = TraceFilter(
        agent=agent,
        status=status,
        min_duration_ms=min_duration_ms,
        since_ns=_instant("since", since, now),
        until_ns=_instant("until", until, now),
        q=q or None,
    )
    try:
        page = await anyio.to_thread.run_sync(
            lambda: list_traces(engine, flt, limit=limit, cursor=cursor)
        )
    except BadCursor as exc:
        raise ApiError(400, f"cursor: {exc}", "invalid_parameter") from None
    return FastJSONResponse(page)


def _window_ns(value: str) -> int:
    try:
        seconds = parse_duration_seconds(value)
    except ValueError as exc:
        raise ApiError(400, f"window: {exc}", "invalid_parameter") from None
    if seconds <= 0:
        raise ApiError(400, "window: must be longer than zero", "invalid_parameter")
    return int(seconds * 1_000_000_000)


# Declared before /traces/{trace_id}, which would otherwise take "slow" for a trace id.
@router.get("/traces/slow", summary="Slow traces in a window, slowest first, with bottlenecks")
async def traces_slow(
    engine: EngineDep,
    window: Annotated[
        str, Query(max_length=32, description="How far back traces may start: 15m, 1h, 7d")
    ] = "1h",
    threshold_ms: Annotated[float, Query(ge=0, allow_inf_nan=False)] = 2000.0,
    agent: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
) -> FastJSONResponse:
    since_ns = max(0, time.time_ns() - _window_ns(window))
    items = await anyio.to_thread.run_sync(
        lambda: list_slow_traces(
            engine, since_ns=since_ns, threshold_ms=threshold_ms, agent=agent or None, limit=limit
        )
    )
    return FastJSONResponse(
        {
            "items": items,
            "window": window.strip(),
            "since": iso_from_ns(since_ns),
            "threshold_ms": threshold_ms,
        }
    )


@router.get("/traces/{trace_id}", summary="One trace: every span as a tree")
async def trace_detail(
    request: Request,
    engine: EngineDep,
    trace_id: Annotated[str, Path(description="32 hex characters")],
    max_spans: Annotated[int, Query(ge=1, le=100_000)] = 20_000,
) -> FastJSONResponse:
    if not _TRACE_ID.match(trace_id):
        raise ApiError(400, "trace_id: expected 32 hexadecimal characters", "invalid_parameter")
    result = await anyio.to_thread.run_sync(
        lambda: get_trace(engine, trace_id.lower(), max_spans=max_spans)
    )
    if result is None:
        raise ApiError(404, f"trace {trace_id.lower()} not found")
    add_links(result, templates_from_settings(request.app.state.settings))  # deep links
    return FastJSONResponse(result)
