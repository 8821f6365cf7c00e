"""Live updates for the dashboard: the bus (memory | Redis), ``WS /api/v1/live``,
``GET /api/v1/stream`` (SSE) and the periodic summary ticker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from pharos.server.live.bus import MemoryBus, ingested_event, logs_event, make_bus
from pharos.server.live.stream import SummaryTicker, cancel, watch_alerts

if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy import Engine

    from pharos.server.ingest.normalize import SpanRecord
    from pharos.server.settings import Settings

log = logging.getLogger("pharos.live")


async def start_live(
    app: FastAPI,
    stack: AsyncExitStack,
    settings: Settings,
    engine: Engine,
    firing: Callable[[], int],
) -> MemoryBus:
    """Start the bus and the summary ticker; both stop when ``stack`` closes."""
    namespace = ""
    if settings.redis_url:  # one channel per install (ops/redis_link.py)
        import anyio

        from pharos.server.ops.redis_link import namespace as install_namespace

        namespace = await anyio.to_thread.run_sync(install_namespace, engine)
    bus = make_bus(settings.redis_url, namespace)
    await bus.start()
    stack.push_async_callback(bus.stop)
    ticker = SummaryTicker(bus, engine, settings, firing)
    task = asyncio.create_task(ticker.run(), name="pharos-live-summary")
    stack.push_async_callback(cancel, task)
    alerts = asyncio.create_task(
        watch_alerts(bus, lambda: _last_cycle(app), firing, settings.live_summary_seconds),
        name="pharos-live-alerts",
    )
    stack.push_async_callback(cancel, alerts)
    app.state.live_bus = bus
    app.state.live_ticker = ticker
    return bus


def publish_ingested(bus: MemoryBus) -> Callable[[Sequence[SpanRecord], Any], None]:
    """The writer's ``on_commit`` hook: a ``trace`` event after each committed request."""

    def hook(records: Sequence[SpanRecord], result: Any) -> None:
        if not records:
            return
        try:  # never let a live event fail an ingest request that is already committed
            bus.publish(ingested_event(records, getattr(result, "stored", len(records))))
        except Exception:
            log.exception("publishing a live trace event failed")

    return hook


def publish_logs(bus: MemoryBus) -> Callable[[Sequence[Any], int], None]:
    """The writer's ``on_commit_extras["logs"]`` hook: a ``log`` event after each committed
    request that stored new log records (the dashboard's live tail refetches on it)."""

    def hook(records: Sequence[Any], stored: int) -> None:
        if not stored:
            return
        try:
            bus.publish(logs_event(records, stored))
        except Exception:
            log.exception("publishing a live log event failed")

    return hook


def _last_cycle(app: FastAPI) -> Any:
    alerting = getattr(app.state, "alerting", None)
    return getattr(getattr(alerting, "engine", None), "last_result", None)
