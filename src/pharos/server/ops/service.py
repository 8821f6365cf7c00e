"""Wires the operations room into the app: the retention job, memory upkeep (ops/memory.py:
SQLite's heap limit, malloc trimming) and the readiness checks it adds (writer queue
saturation, Redis, draining on SIGTERM, retention health)."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from typing import Any

from sqlalchemy import Engine

from pharos.server.ops.job import RetentionJob
from pharos.server.ops.memory import limit_sqlite_heap, trim_loop
from pharos.server.ops.redis_link import client
from pharos.server.ops.retention import check_order
from pharos.server.settings import Settings

log = logging.getLogger("pharos")


async def start_ops(app: Any, stack: AsyncExitStack, settings: Settings, engine: Engine) -> None:
    app.state.retention = None
    if settings.retention_enabled:
        for warning in check_order(settings):
            log.warning("retention: %s", warning)
        job = RetentionJob(
            engine,
            settings,
            interval_seconds=settings.retention_interval_seconds,
            batch_rows=settings.retention_batch_rows,
        )
        task = asyncio.create_task(job.loop(), name="pharos-retention")
        stack.push_async_callback(job.stop, task)
        app.state.retention = job
    if engine.dialect.name == "sqlite" and settings.sqlite_heap_limit_mib:
        limit_sqlite_heap(settings.sqlite_heap_limit_mib)  # all connections' caches together
    if settings.malloc_trim_seconds > 0:  # freed heap back to the kernel (ops/memory.py)
        trimming = asyncio.create_task(
            trim_loop(settings.malloc_trim_seconds), name="pharos-malloc-trim"
        )
        stack.callback(trimming.cancel)
    app.state.redis_ping = None
    if settings.redis_url:
        ping = client(settings.redis_url, timeout=1.0)
        stack.push_async_callback(ping.aclose)
        app.state.redis_ping = ping


async def readiness(app: Any, checks: dict[str, Any]) -> bool:
    """Add this room's checks to /readyz's; False if the instance should get no traffic."""
    state = app.state
    settings: Settings = state.settings
    ok = True
    writer = state.writer
    limit = max(1, int(writer.queue_capacity * settings.ready_max_queue_fraction))
    if writer.queue_depth >= limit:
        checks["queue"] = f"saturated ({writer.queue_depth}/{writer.queue_capacity})"
        ok = False
    if getattr(state, "draining", False):
        checks["shutdown"] = "draining"
        ok = False
    ping = getattr(state, "redis_ping", None)
    if ping is not None:
        try:
            await asyncio.wait_for(ping.ping(), timeout=1.5)
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = (
                f"unreachable: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}"
            )
            if settings.ready_requires_redis:
                ok = False
        links = getattr(state, "redis_links", [])
        bus_link = getattr(getattr(state, "live_bus", None), "link", None)
        if bus_link is not None:
            links = [*links, bus_link]
        checks["redis_fallback"] = {link.what: link.state() for link in links}
    retention = getattr(state, "retention", None)
    if retention is not None:
        checks["retention"] = retention.health()
    return ok
