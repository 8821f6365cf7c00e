"""Route of the log explorer: ``GET /api/v1/logs``."""

from __future__ import annotations

import re
import time
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import Engine

from pharos.server.errors import ApiError
from pharos.server.ingest.logs import LEVEL_FLOOR
from pharos.server.query.logs import BadCursor, BadFilter, LogFilter, list_logs
from pharos.server.responses import FastJSONResponse
from pharos.server.timeparse import parse_instant_ns

router = APIRouter(prefix="/api/v1", tags=["logs"])
_TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")
_SPAN_ID = re.compile(r"^[0-9a-fA-F]{16}$")
#: Level names accepted by ``level`` (the minimum level), with common spellings.
LEVEL_NAMES = {**{name: name for name in LEVEL_FLOOR}, "warning": "warn", "critical": "fatal"}


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


def min_severity(level: str | None) -> int | None:
    """The lowest severity number of ``level`` and worse (``warn`` -> 13)."""
    if not level:
        return None
    name = LEVEL_NAMES.get(level.strip().lower())
    if name is None:
        choices = ", ".join(LEVEL_FLOOR)
        raise ApiError(400, f"level: {level!r} is not one of {choices}", "invalid_parameter")
    return LEVEL_FLOOR[name]


@router.get("/logs", summary="Search logs, newest first (filters, text search, trace links)")
async def logs_list(
    engine: EngineDep,
    level: Annotated[
        str | None,
        Query(max_length=16, description="Minimum level: trace debug info warn error fatal"),
    ] = None,
    agent: Annotated[str | None, Query(max_length=512)] = None,
    trace_id: Annotated[str | None, Query(description="32 hex characters")] = None,
    span_id: Annotated[str | None, Query(description="16 hex characters")] = None,
    since: Annotated[str | None, Query(description="ISO 8601 time or a duration ago (1h)")] = None,
    until: Annotated[str | None, Query(description="ISO 8601 time or a duration ago")] = None,
    q: Annotated[
        str | None, Query(max_length=256, description="Text in the body (case-insensitive)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> FastJSONResponse:
    if trace_id and not _TRACE_ID.match(trace_id):
        raise ApiError(400, "trace_id: expected 32 hexadecimal characters", "invalid_parameter")
    if span_id and not _SPAN_ID.match(span_id):
        raise ApiError(400, "span_id: expected 16 hexadecimal characters", "invalid_parameter")
    now = time.time_ns()
    flt = LogFilter(
        min_severity=min_severity(level),
        agent=agent or None,
        trace_id=trace_id.lower() if trace_id else None,
        span_id=span_id.lower() if span_id else None,
        since_ns=_instant("since", since, now),
        until_ns=_instant("until", until, now),
        q=q or None,
    )
    try:
        page = await anyio.to_thread.run_sync(
            lambda: list_logs(engine, flt, limit=limit, cursor=cursor)
        )
    except BadCursor as exc:
        raise ApiError(400, f"cursor: {exc}", "invalid_parameter") from None
    except BadFilter as exc:  # the NUL guard (input_guard.py) catches these first
        raise ApiError(400, str(exc), "invalid_parameter") from None
    return FastJSONResponse(page)
