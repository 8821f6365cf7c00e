"""The report scheduler (one instance: the one leading alert evaluation) and sending a report
now. Reports go out through the alerting outbox: one row per channel with an idempotency key, so
retries, backoff and delivery are the alerting room's."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import anyio
from sqlalchemy import Engine, select

from pharos.server.alerting import store as alert_store
from pharos.server.db.schema import outbox
from pharos.server.report.build import build_report
from pharos.server.report.schedule import due, next_due
from pharos.server.settings import Settings

log = logging.getLogger("pharos.report")
NS = 1_000_000_000


class UnknownChannels(ValueError):
    pass


class Reports:
    """``app.state.reports``: builds reports and queues them to the report channels."""

    def __init__(self, settings: Settings, read_engine: Engine, alerting: Any) -> None:
        self.settings = settings
        self.read_engine = read_engine
        self.alerting = alerting
        self.sent_slots = 0
        self.checks = 0
        self.last_error: str | None = None
        self.running = False

    @property
    def dashboard_url(self) -> str:
        s = self.settings
        return s.alert_dashboard_url or f"http://{s.host}:{s.port}"

    def build(self, window_s: int, end_s: int, firing_now: int = 0) -> dict[str, Any]:
        s = self.settings
        return build_report(
            self.read_engine,
            window_s=window_s,
            end_s=end_s,
            success_target=s.report_success_target,
            p95_target_ms=s.report_p95_target_ms,
            firing_now=firing_now,
            dashboard_url=self.dashboard_url,
        )

    def _channels(self, names: list[str]) -> list[Any]:
        with self.read_engine.connect() as conn:
            rows = {r.name: r for r in alert_store.list_channels(conn)}
        missing = [n for n in names if n not in rows]
        if missing:
            raise UnknownChannels(f"no channel named {', '.join(missing)}")
        return [rows[n] for n in names if rows[n].enabled]

    def queue(self, report: dict[str, Any], key: str, names: list[str]) -> list[dict[str, Any]]:
        """One outbox row per channel (skipped where the key was queued before)."""
        channels = self._channels(names)
        now = time.time_ns()
        payload = {"event": "report", "at": datetime.now(UTC).isoformat(), "report": report}
        queued = []
        with self.alerting.write_engine.begin() as conn:
            for ch in channels:
                row_key = f"{key}:c{ch.id}"
                if alert_store.enqueue(
                    conn,
                    key=row_key,
                    channel_id=int(ch.id),
                    alert_id=None,
                    event="report",
                    payload=payload,
                    now_ns=now,
                ):
                    queued.append({"channel": ch.name, "key": row_key})
        self.alerting.worker.wake.set()
        return queued

    def _queued_already(self, key: str, names: list[str]) -> bool:
        channels = self._channels(names)
        keys = [f"{key}:c{ch.id}" for ch in channels]
        with self.read_engine.connect() as conn:
            found = {
                r[0]
                for r in conn.execute(
                    select(outbox.c.idempotency_key).where(outbox.c.idempotency_key.in_(keys))
                )
            }
        return set(keys) <= found

    def tick(self, now: datetime | None = None) -> int:
        """Queue every due scheduled report not queued yet (the alerting leader only)."""
        names = self.settings.report_channels
        if not names or not self.alerting.leader:
            return 0
        self.checks += 1
        now = now or datetime.now(UTC)
        count = 0
        for slot in due(now, self.settings.report_daily_time, self.settings.report_weekly_day):
            if self._queued_already(slot.key, names):
                continue
            firing = self.alerting.engine.firing(None)
            report = self.build(slot.window_s, slot.end_s, firing_now=firing)
            queued = self.queue(report, slot.key, names)
            count += len(queued)
            log.info("report %s queued to %s", slot.key, ", ".join(q["channel"] for q in queued))
        self.sent_slots += count
        return count

    async def _loop(self) -> None:
        self.running = True
        try:
            while True:
                try:
                    await anyio.to_thread.run_sync(self.tick)
                    self.last_error = None
                except Exception as exc:  # never die: log, try at the next check
                    self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                    log.exception("report scheduling failed")
                await asyncio.sleep(self.settings.report_check_seconds)
        finally:
            self.running = False

    async def start(self, stack: AsyncExitStack) -> None:
        if not self.settings.report_channels:
            return
        task = asyncio.create_task(self._loop(), name="pharos-reports")
        s = self.settings
        upcoming = next_due(datetime.now(UTC), s.report_daily_time, s.report_weekly_day)
        log.info(
            "reports to %s; next at %s",
            ", ".join(s.report_channels),
            upcoming.isoformat() if upcoming else "never (no daily time or weekly day)",
        )

        async def stop() -> None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        stack.push_async_callback(stop)
