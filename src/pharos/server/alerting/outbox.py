"""The outbox worker: sends the notifications the engine wrote, with exponential backoff and
jitter, until each is delivered once (or gives up after ``max_attempts``).

A row is leased (``locked_by``/``locked_until_ns``) before sending so two instances never send
it at the same time; it is marked sent in the database right after the channel accepted it. A
worker that stops gives its leases back; one that crashes loses them when they expire. Sending
happens here, in its own task, so a slow channel never delays rule evaluation; and each send is
its own task (up to ``concurrency`` at once), so a channel that hangs until the send timeout
holds one slot, not the other channels' notifications.

Delivery is at least once per transition per channel, and once in practice: a crash after the
receiver's 2xx but before the row is marked sent resends it, with the same idempotency key
(docs/alerting.md#delivery-the-outbox).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
from sqlalchemy import Engine

from pharos.server.alerting import store
from pharos.server.alerting.notifiers.send import DeliveryError, deliver
from pharos.server.alerting.state import NS

log = logging.getLogger("pharos.alerting.outbox")


def backoff_seconds(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Delay before retry number ``attempt`` (1-based): base·2^(attempt-1) capped, with "equal
    jitter" (between half and all of it) so retries of many rows do not arrive together."""
    delay = min(cap, base * 2 ** min(attempt - 1, 30))
    return float(delay / 2 + rng.random() * delay / 2)


@dataclass(slots=True)
class OutboxStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    errors_by_reason: Counter[str] = field(default_factory=Counter)
    last_error: str | None = None


class OutboxWorker:
    def __init__(
        self,
        engine: Engine,
        *,
        poll_seconds: float = 1.0,
        timeout_seconds: float = 10.0,
        base_seconds: float = 2.0,
        max_backoff_seconds: float = 600.0,
        max_attempts: int = 25,
        batch: int = 50,
        concurrency: int = 8,
        holder: str | None = None,
    ) -> None:
        self.engine = engine
        self.poll_seconds = poll_seconds
        self.timeout = timeout_seconds
        self.base = base_seconds
        self.cap = max_backoff_seconds
        self.max_attempts = max_attempts
        self.batch = batch
        self.concurrency = concurrency
        self.holder = holder or f"outbox-{uuid.uuid4().hex[:12]}"
        self.wake = asyncio.Event()
        self.stats = OutboxStats()
        self.running = False
        self.stopping = False
        self._rng = random.Random()
        self._client: httpx.AsyncClient | None = None

    async def run(self) -> None:
        """Claim due rows while fewer than ``concurrency`` sends are in flight, send each in its
        own task, record outcomes as they come (one transaction for those done together)."""
        self.running = True
        client = self._client = httpx.AsyncClient(follow_redirects=False)
        inflight: set[asyncio.Task[Any]] = set()
        done: list[tuple[Any, str | None, bool]] = []

        def finished(task: asyncio.Task[Any]) -> None:
            inflight.discard(task)
            if not task.cancelled() and task.exception() is None:
                done.append(task.result())
            self.wake.set()

        try:
            while True:
                self.wake.clear()
                try:
                    if done:
                        batch, done[:] = list(done), []
                        await anyio.to_thread.run_sync(self._record, batch)
                    claimed: list[Any] = []
                    free = self.concurrency - len(inflight)
                    if free > 0 and not self.stopping:
                        claimed = await anyio.to_thread.run_sync(
                            self._claim, time.time_ns(), min(free, self.batch)
                        )
                    for row, channel in claimed:
                        task = asyncio.create_task(self._send(client, row, channel))
                        inflight.add(task)
                        task.add_done_callback(finished)
                except Exception as exc:  # the database went away: log, wait, try again
                    self.stats.last_error = f"{type(exc).__name__}: {exc}"[:300]
                    self.stats.errors_by_reason["database"] += 1
                    log.warning("outbox: %s", self.stats.last_error)
                    claimed = []
                if self.stopping and not inflight and not done:
                    return
                if claimed and len(inflight) < self.concurrency:
                    continue  # more may be due
                if done:
                    continue
                with anyio.move_on_after(self.poll_seconds):
                    await self.wake.wait()
        finally:
            self.running = False
            for task in list(inflight):  # cancelled (stop timed out): their leases go back
                task.cancel()
            await asyncio.gather(*inflight, return_exceptions=True)
            try:
                if done:
                    await anyio.to_thread.run_sync(self._record, list(done))
                await anyio.to_thread.run_sync(self._release)
            except Exception:
                log.warning("outbox: could not record or release leases", exc_info=True)
            await client.aclose()

    async def stop(self, task: asyncio.Task[None]) -> None:
        """Let the sends in flight finish (up to the send timeout), then cancel."""
        self.stopping = True
        self.wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), self.timeout + 1)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        except Exception:
            log.warning("outbox worker ended with an error", exc_info=True)

    def _release(self) -> None:
        with self.engine.begin() as conn:
            store.release(conn, self.holder)

    def _claim(self, now_ns: int, limit: int | None = None) -> list[Any]:
        lease_ns = int((self.timeout * 2 + 5) * NS)
        with self.engine.begin() as conn:
            rows = store.claim_due(
                conn, self.holder, now_ns, lease_ns, limit or self.batch, scan=self.batch
            )
            out = []
            channels: dict[int, Any] = {}
            for row in rows:
                cid = int(row.channel_id)
                if cid not in channels:
                    channels[cid] = store.get_channel(conn, cid)
                out.append((row, channels[cid]))
            return out

    async def deliver_due(self, now_ns: int | None = None) -> int:
        """Send every due notification once and wait for all of them (a one-shot pass for
        callers without the :meth:`run` loop); returns how many were attempted."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        claimed = await anyio.to_thread.run_sync(self._claim, now_ns)
        if not claimed:
            return 0
        client = self._client or httpx.AsyncClient()
        limit = anyio.Semaphore(self.concurrency)
        results: list[tuple[Any, str | None, bool]] = []

        async def one(row: Any, channel: Any) -> None:
            async with limit:
                results.append(await self._send(client, row, channel))

        async with anyio.create_task_group() as tg:
            for row, channel in claimed:
                tg.start_soon(one, row, channel)
        if self._client is None:
            await client.aclose()
        await anyio.to_thread.run_sync(self._record, results)
        return len(claimed)

    async def _send(self, client: httpx.AsyncClient, row: Any, channel: Any) -> Any:
        if channel is None:
            return row, "channel deleted", False
        if not channel.enabled:
            return row, "channel disabled", False
        try:
            # httpx's timeout is per read; a receiver trickling bytes is cut off here.
            with anyio.fail_after(self.timeout * 2 + 1):
                await deliver(
                    channel.type,
                    store.loads(channel.config, {}),
                    store.loads(row.payload, {}),
                    key=row.idempotency_key,
                    client=client,
                    seconds=self.timeout,
                )
        except TimeoutError:
            return row, f"timed out after {self.timeout * 2 + 1:g}s", True
        except DeliveryError as exc:
            return row, str(exc), exc.retryable
        except Exception as exc:  # a bad config value (KeyError...): will not get better
            return row, f"{type(exc).__name__}: {exc}"[:300], False
        return row, None, False

    def _record(self, results: list[tuple[Any, str | None, bool]]) -> None:
        now_ns = time.time_ns()
        with self.engine.begin() as conn:
            for row, error, retryable in results:
                if error is None:
                    store.mark_sent(conn, int(row.id), self.holder, now_ns)
                    self.stats.sent += 1
                    continue
                attempt = int(row.attempts) + 1
                give_up = not retryable or attempt >= self.max_attempts
                delay = backoff_seconds(attempt, self.base, self.cap, self._rng)
                store.mark_failed_attempt(
                    conn,
                    int(row.id),
                    self.holder,
                    error=error,
                    next_attempt_ns=now_ns + int(delay * NS),
                    give_up=give_up,
                )
                self.stats.last_error = error
                self.stats.errors_by_reason[error.split(":")[0][:40]] += 1
                if give_up:
                    self.stats.failed += 1
                    log.warning("notification %s failed for good: %s", row.idempotency_key, error)
                else:
                    self.stats.retried += 1
