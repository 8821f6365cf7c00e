"""``WS /api/v1/live``: the dashboard's live feed (JSON text frames, see ``live/stream.py``)."""

from __future__ import annotations

import asyncio
import contextlib

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from pharos.server.errors import ApiError
from pharos.server.live.bus import MemoryBus
from pharos.server.live.stream import check_window, events

router = APIRouter(tags=["live"])


@router.websocket("/api/v1/live")
async def live(ws: WebSocket) -> None:
    """Live events for the dashboard: ``summary``, ``trace``, ``alert``, ``heartbeat``.

    Query parameter ``window`` (default ``1h``) picks the window of the ``summary`` events.
    Messages the client sends are read and ignored (a client may send pings).
    """
    window = ws.query_params.get("window", "1h")
    await ws.accept()
    try:
        check_window(window)
    except ApiError as exc:  # accepted first, so the client can read why (a 403 says nothing)
        error = {"type": "error", "error": {"code": exc.code, "message": str(exc)}}
        await ws.send_text(orjson.dumps(error).decode())
        await ws.close(code=1008, reason=str(exc)[:120])
        return
    bus: MemoryBus = ws.app.state.live_bus
    heartbeat_s: float = ws.app.state.settings.live_heartbeat_seconds

    async def send_events() -> None:
        async for event in events(bus, window, heartbeat_s):
            await ws.send_text(orjson.dumps(event).decode())

    sender = asyncio.create_task(send_events())
    try:
        while True:  # until the client goes away (messages it sends are ignored)
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await sender
