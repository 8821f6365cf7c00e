"""Routes of error tracking: ``GET /api/v1/errors``, ``GET /api/v1/errors/{fingerprint}``,
``POST /api/v1/errors/{fingerprint}/resolve`` and ``.../reopen``."""

from __future__ import annotations

import re
import time
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy import Engine

from pharos.server.analytics.api import parse_window
from pharos.server.analytics.summary import MAX_POINTS, NICE_INTERVALS
from pharos.server.errors import ApiError
from pharos.server.ingest.exceptions import OPEN, RESOLVED
from pharos.server.query.errors import error_detail, list_errors, set_status
from pharos.server.responses import FastJSONResponse

router = APIRouter(prefix="/api/v1", tags=["errors"])
_FINGERPRINT = re.compile(r"^[0-9a-fA-F]{16}$")
#: Buckets of the occurrences chart when no interval is given.
CHART_POINTS = 60

Fingerprint = Annotated[str, Path(description="16 hex characters")]
Window = Annotated[str, Query(max_length=16, description="15m, 1h, 24h, 7d (whole minutes)")]


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(_engine)]


def _fingerprint(value: str) -> str:
    if not _FINGERPRINT.match(value):
        raise ApiError(400, "fingerprint: expected 16 hexadecimal characters", "invalid_parameter")
    return value.lower()


def chart_interval(value: str | None, window_s: int) -> int:
    if value is None:
        return next((i for i in NICE_INTERVALS if window_s / i <= CHART_POINTS), NICE_INTERVALS[-1])
    interval = parse_window(value, "interval")
    if window_s / interval > MAX_POINTS:
        raise ApiError(
            400,
            f"interval: {value} over {window_s // 60}m gives more than {MAX_POINTS} points",
            "invalid_parameter",
        )
    return interval


@router.get("/errors", summary="Error groups with counts in a window, trend, agents, stack")
async def errors_list(
    engine: EngineDep,
    window: Window = "24h",
    agent: Annotated[str | None, Query(max_length=512)] = None,
    status: Annotated[Literal["open", "resolved"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> FastJSONResponse:
    window_s = parse_window(window)
    page = await anyio.to_thread.run_sync(
        lambda: list_errors(
            engine, window_s=window_s, agent=agent or None, status=status, limit=limit
        )
    )
    return FastJSONResponse({"window": window.strip(), **page})


@router.get("/errors/{fingerprint}", summary="One error group: occurrences over time, traces")
async def errors_detail(
    engine: EngineDep,
    fingerprint: Fingerprint,
    window: Window = "24h",
    interval: Annotated[str | None, Query(description="Bucket size; automatic if omitted")] = None,
    agent: Annotated[str | None, Query(max_length=512)] = None,
) -> FastJSONResponse:
    fp = _fingerprint(fingerprint)
    window_s = parse_window(window)
    interval_s = chart_interval(interval, window_s)
    result = await anyio.to_thread.run_sync(
        lambda: error_detail(
            engine, fp, window_s=window_s, interval_s=interval_s, agent=agent or None
        )
    )
    if result is None:
        raise ApiError(404, f"error group {fp} not found")
    return FastJSONResponse({"window": window.strip(), **result})


async def _set(engine: Engine, fingerprint: str, status: str) -> dict[str, Any]:
    fp = _fingerprint(fingerprint)
    found = await anyio.to_thread.run_sync(lambda: set_status(engine, fp, status, time.time_ns()))
    if not found:
        raise ApiError(404, f"error group {fp} not found")
    result = await anyio.to_thread.run_sync(
        lambda: error_detail(engine, fp, window_s=86400, interval_s=1800, agent=None)
    )
    assert result is not None
    return result


@router.post("/errors/{fingerprint}/resolve", summary="Mark an error group resolved")
async def errors_resolve(engine: EngineDep, fingerprint: Fingerprint) -> FastJSONResponse:
    return FastJSONResponse(await _set(engine, fingerprint, RESOLVED))


@router.post("/errors/{fingerprint}/reopen", summary="Re-open a resolved error group")
async def errors_reopen(engine: EngineDep, fingerprint: Fingerprint) -> FastJSONResponse:
    return FastJSONResponse(await _set(engine, fingerprint, OPEN))
