"""``GET /api/v1/stream``: the same live events as Server-Sent Events, for when WebSocket is
blocked (proxies, corporate networks). Each event is one ``data:`` line of JSON."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from pharos.server.live.bus import MemoryBus
from pharos.server.live.stream import check_window, events

router = APIRouter(prefix="/api/v1", tags=["live"])


@router.get(
    "/stream",
    summary="Live events (summary, trace, alert, heartbeat) as Server-Sent Events",
    response_class=StreamingResponse,
)
async def stream(
    request: Request,
    window: Annotated[str, Query(description="Window of the summary events, 1m to 7d")] = "1h",
) -> StreamingResponse:
    check_window(window)
    bus: MemoryBus = request.app.state.live_bus
    heartbeat_s: float = request.app.state.settings.live_heartbeat_seconds

    async def body() -> AsyncIterator[bytes]:
        yield b"retry: 2000\n\n"
        async for event in events(bus, window, heartbeat_s):
            yield b"data: " + orjson.dumps(event) + b"\n\n"

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
