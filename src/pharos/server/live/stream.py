"""What a live connection receives, shared by the WebSocket and SSE endpoints.

Every connection subscribes to the bus with its dashboard window. It then gets:

- ``trace`` (and ``alert``) events from the bus as soon as they are published,
- ``summary`` events from :class:`SummaryTicker` — the overview's numbers for its window,
  computed once per window per tick for all subscribers of this process,
- ``heartbeat`` when nothing else was sent for a heartbeat interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from sqlalchemy import Engine

from pharos.server.analytics.api import parse_window, summary_for
from pharos.server.analytics.health import HealthThresholds, health
from pharos.server.errors import ApiError
from pharos.server.live.bus import MemoryBus
from pharos.server.settings import Settings

log = logging.getLogger("pharos.live")
ALLOWED_WINDOW_SECONDS = 7 * 86400  # the dashboard's longest picker choice


def check_window(window: str) -> str:
    seconds = parse_window(window)
    if seconds > ALLOWED_WINDOW_SECONDS:
        raise ApiError(400, "window: at most 7d for live summaries", "invalid_parameter")
    return window


def heartbeat() -> dict[str, Any]:
    return {"type": "heartbeat", "time": time.time()}


async def events(bus: MemoryBus, window: str, heartbeat_s: float) -> AsyncIterator[dict[str, Any]]:
    """The events of one connection, forever (the caller stops iterating to leave)."""
    async with bus.subscribe(window) as sub:
        yield {"type": "hello", "bus": bus.kind, "window": window, "heartbeat_s": heartbeat_s}
        while True:
            try:
                event = await asyncio.wait_for(sub.queue.get(), timeout=heartbeat_s)
            except TimeoutError:
                event = heartbeat()
            yield event


class SummaryTicker:
    """Every ``interval`` seconds, while anyone is subscribed: a ``summary`` event per window."""

    def __init__(
        self,
        bus: MemoryBus,
        engine: Engine,
        settings: Settings,
        firing: Callable[[], int],
    ) -> None:
        self._bus = bus
        self._engine = engine
        self._settings = settings
        self._firing = firing
        self.failures = 0

    def _thresholds(self) -> HealthThresholds:
        return HealthThresholds.from_settings(self._settings)

    def summary_event(self, window: str) -> dict[str, Any]:
        window_s = parse_window(window)
        end_s = (int(time.time()) // 60 + 1) * 60
        summary = summary_for(self._engine, end_s, window_s, None, None)
        firing = self._firing()
        h = health(
            requests=summary["requests"],
            error_rate=summary["error_rate"],
            p99_ms=summary["latency_ms"]["p99"],
            firing_alerts=firing,
            thresholds=self._thresholds(),
            window=window,
        )
        return {
            "type": "summary",
            "window": window,
            "summary": {"window": window, **summary},
            "health": h,
            "alerts": {"firing": firing},
        }

    async def run(self) -> None:
        interval = self._settings.live_summary_seconds
        while True:
            await asyncio.sleep(interval)
            windows = self._bus.windows()
            if not windows:
                continue
            for window in sorted(windows):
                try:
                    event = await anyio.to_thread.run_sync(self.summary_event, window)
                except Exception:  # a failed tick must not end the loop
                    self.failures += 1
                    log.exception("live summary for window %s failed", window)
                    continue
                for sub in self._bus.subscriptions():
                    if sub.window == window:
                        sub.offer(event)


async def cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def watch_alerts(
    bus: MemoryBus, cycle: Callable[[], Any], firing: Callable[[], int], interval: float
) -> None:
    """Publish an ``alert`` event after each alert evaluation that changed an alert's state.

    ``cycle()`` is the alert engine's last cycle result (None before the first, or without the
    alerting room); only the instance that evaluates (the leader) has one, and with Redis its
    events reach every instance.
    """
    seen: int | None = None
    while True:
        await asyncio.sleep(interval)
        try:
            result = cycle()
            if result is None or result.now_ns == seen:
                continue
            seen = result.now_ns
            if result.transitions:
                bus.publish(
                    {"type": "alert", "transitions": result.transitions, "firing": firing()}
                )
        except Exception:
            log.exception("live alert watch failed")
