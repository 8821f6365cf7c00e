"""The retention job: every ``retention_interval_seconds`` the instance holding the retention
lease prunes every target in small batches. It never dies: a failure is logged, counted and
shown on /readyz, and the next interval tries again."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import anyio
from sqlalchemy import Engine

from pharos.server.ops import prune
from pharos.server.ops.retention import NS, RetentionSettings, plan

log = logging.getLogger("pharos.retention")


class RetentionJob:
    def __init__(
        self,
        engine: Engine,
        settings: RetentionSettings,
        *,
        interval_seconds: float,
        batch_rows: int,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.interval = interval_seconds
        self.batch_rows = batch_rows
        self.clock = clock
        self.holder = f"pharos-{uuid.uuid4().hex[:12]}"
        self.deleted: Counter[str] = Counter()  # rows deleted since start, by table
        self.runs = 0
        self.failures = 0
        self.last_error: str | None = None
        self.last_run_ns: int | None = None
        self.last_seconds = 0.0
        self.leader = False
        self.running = False
        self._stop = threading.Event()

    def run_once(self) -> list[prune.Pruned]:
        """Prune every target now (if this instance holds the lease)."""
        now = self.clock()
        ttl = int(max(2 * self.interval, 60.0) * NS)
        self.leader = prune.take_lease(self.engine, self.holder, now, ttl)
        if not self.leader:
            return []
        started = time.perf_counter()
        done = []
        for target in plan(self.settings, now):
            if self._stop.is_set():
                break
            result = prune.prune(
                self.engine, target, self.batch_rows, should_stop=self._stop.is_set
            )
            if result.rows:
                self.deleted[target.table] += result.rows
            if result.spans:
                self.deleted["spans"] += result.spans
            done.append(result)
            prune.take_lease(self.engine, self.holder, self.clock(), ttl)  # still ours
        self.runs += 1
        self.last_run_ns = now
        self.last_seconds = time.perf_counter() - started
        went = {r.target.table: r.rows for r in done if r.rows}
        if went:
            log.info("retention pruned %s in %.1fs", went, self.last_seconds)
        return done

    async def loop(self) -> None:
        self.running = True
        try:
            # The first run waits an interval: instances starting together (or a test loading
            # old data) do not prune at boot.
            await asyncio.sleep(self.interval)
            while not self._stop.is_set():
                try:
                    await anyio.to_thread.run_sync(self.run_once)
                    self.last_error = None
                except Exception as exc:  # never die: log, count, try next interval
                    self.failures += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                    log.exception("retention run failed")
                await asyncio.sleep(self.interval)
        finally:
            self.running = False

    async def stop(self, task: asyncio.Task[None]) -> None:
        self._stop.set()  # a prune in progress ends after its current batch
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if self.leader:
            try:
                await anyio.to_thread.run_sync(prune.drop_lease, self.engine, self.holder)
            except Exception:
                log.warning("could not release the retention lease", exc_info=True)

    def health(self) -> dict[str, Any]:
        return {
            "job": "running" if self.running else "stopped",
            "leader": self.leader,
            "runs": self.runs,
            "last_run_ns": self.last_run_ns,
            "last_seconds": round(self.last_seconds, 3),
            "deleted": dict(self.deleted),
            "failures": self.failures,
            "last_error": self.last_error,
        }
