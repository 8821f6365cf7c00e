"""The forwarding worker: sends queued requests to their target after the ingest commit.

Each pass, per target: the oldest due rows are leased (``forward_queue.locked_by``, so two
instances never send the same row), posted (a few at a time), then deleted once the target
answered 2xx, in a transaction of their own. A row is deleted only after its send succeeded, and
a lease outlives the send timeout, so each queued request is sent once on success; a process
killed between a target's 2xx and the delete sends that request again after the lease expires
(at least once, never lost; Pharos targets ignore a re-sent span).

A failing target (refused connection, timeout, 408/429/5xx, also 401/403/404: configuration
that an operator can fix) is paused with exponential backoff and jitter (``backoff_seconds`` of
the alerting outbox) and its rows wait; a payload the target refuses as malformed (400, 413,
415, 422) will never be accepted and is dropped, counted and logged. Each target's backlog is
bounded (``max_queue``): beyond it the oldest rows are dropped with reason ``queue_full``.
Sending happens here, never on the ingest path: a down target costs ingest nothing.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import orjson
from sqlalchemy import Engine

from pharos.server.alerting.outbox import backoff_seconds
from pharos.server.forward import queue
from pharos.server.forward.config import Target
from pharos.server.forward.payload import Outgoing, outgoing
from pharos.server.ingest.body import BadEncoding, BodyTooLarge
from pharos.server.ingest.decode import DecodeError
from pharos.server.ingest.normalize import Limits

log = logging.getLogger("pharos.forward")
NS = 1_000_000_000
#: Answers meaning "this payload will never be accepted": drop it rather than retry forever.
PERMANENT = frozenset({400, 413, 415, 422})


@dataclass
class ForwardStats:
    sent: Counter[tuple[str, str]] = field(default_factory=Counter)  # (target, signal)
    sent_items: Counter[tuple[str, str]] = field(default_factory=Counter)
    failed: Counter[tuple[str, str]] = field(default_factory=Counter)  # (target, reason)
    dropped: Counter[tuple[str, str]] = field(default_factory=Counter)  # (target, reason)
    depth: dict[str, int] = field(default_factory=dict)
    last_error: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Result:
    row: Any
    error: str | None = None  # None = accepted (or nothing left to send after the filters)
    reason: str = ""
    permanent: bool = False


class ForwardWorker:
    def __init__(
        self,
        engine: Engine,
        targets: Sequence[Target],
        *,
        timeout_seconds: float = 10.0,
        base_seconds: float = 1.0,
        max_backoff_seconds: float = 300.0,
        poll_seconds: float = 1.0,
        max_queue: int = 10000,
        max_decompressed_bytes: int = 64 * 1024 * 1024,
        limits: Limits | None = None,
        batch: int = 16,
        concurrency: int = 4,
        holder: str | None = None,
    ) -> None:
        self.engine = engine
        self.targets = {t.name: t for t in targets}
        self.timeout = timeout_seconds
        self.base = base_seconds
        self.cap = max_backoff_seconds
        self.poll_seconds = poll_seconds
        self.max_queue = max_queue
        self.max_bytes = max_decompressed_bytes
        self.limits = limits or Limits(256, 32 * 1024)
        self.batch = batch
        self.concurrency = concurrency
        self.holder = holder or f"forward-{uuid.uuid4().hex[:12]}"
        self.stats = ForwardStats()
        self.wake = asyncio.Event()
        self.running = False
        self.stopping = False
        self._failures: Counter[str] = Counter()  # consecutive failed passes, by target
        self._paused_until: dict[str, int] = {}  # target -> ns
        self._rng = random.Random()
        self._client: httpx.AsyncClient | None = None
        self._last_maintenance = 0.0

    # -- lifecycle ---------------------------------------------------------------------------
    async def run(self) -> None:
        self.running = True
        self._client = httpx.AsyncClient(follow_redirects=False)
        try:
            while not self.stopping:
                try:
                    busy = await self.pass_once()
                except Exception as exc:  # the database went away: log, wait, try again
                    self.stats.last_error["*"] = f"{type(exc).__name__}: {exc}"[:300]
                    self.stats.failed[("*", "database")] += 1
                    log.warning("forwarding: %s", self.stats.last_error["*"])
                    busy = 0
                if self.stopping:
                    return
                if busy:
                    continue
                self.wake.clear()
                with anyio.move_on_after(self.poll_seconds):
                    await self.wake.wait()
        finally:
            self.running = False
            await self._client.aclose()
            self._client = None
            try:
                await anyio.to_thread.run_sync(self._release)
            except Exception:
                log.warning("forwarding: could not release leases", exc_info=True)

    async def stop(self, task: asyncio.Task[None]) -> None:
        """Let the sends in flight finish and be recorded (up to the send timeout), then end."""
        self.stopping = True
        self.wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), self.timeout + 5)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        except Exception:
            log.warning("forwarding worker ended with an error", exc_info=True)

    def _release(self) -> None:
        with self.engine.begin() as conn:
            queue.release(conn, self.holder)

    # -- one pass ----------------------------------------------------------------------------
    async def pass_once(self, now_ns: int | None = None) -> int:
        """Maintain the queue (bounds, depths), then send each target's due rows once; returns
        how many rows were attempted."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        if time.monotonic() - self._last_maintenance >= min(self.poll_seconds, 1.0):
            await anyio.to_thread.run_sync(self._maintain, now_ns)
            self._last_maintenance = time.monotonic()
        attempted = 0
        for name, target in self.targets.items():
            if self.stopping:
                break
            if self._paused_until.get(name, 0) > now_ns:
                continue
            rows = await anyio.to_thread.run_sync(self._claim, name, now_ns)
            if not rows:
                continue
            attempted += len(rows)
            results = await self._send_all(target, rows)
            await anyio.to_thread.run_sync(self._record, target, results)
        return attempted

    def _maintain(self, now_ns: int) -> None:
        with self.engine.begin() as conn:
            depth = queue.depths(conn)
            for name, count in depth.items():
                if name not in self.targets:
                    dropped = queue.drop_target(conn, name)
                    if dropped:
                        self.stats.dropped[(name, "target_removed")] += dropped
                        log.warning(
                            "forwarding: dropped %d queued request(s) of %s, which is no longer "
                            "a configured target",
                            dropped,
                            name,
                        )
                elif count > self.max_queue:
                    dropped = queue.trim(conn, name, self.max_queue, now_ns)
                    if dropped:
                        self.stats.dropped[(name, "queue_full")] += dropped
                        log.warning(
                            "forwarding: %s is behind by more than %d requests; dropped the "
                            "oldest %d (PHAROS_FORWARD_MAX_QUEUE)",
                            name,
                            self.max_queue,
                            dropped,
                        )
            depth = queue.depths(conn) if depth else depth
        self.stats.depth = {name: depth.get(name, 0) for name in self.targets}

    def _claim(self, target: str, now_ns: int) -> list[Any]:
        lease_ns = int((self.timeout * 2 + 10) * NS)
        with self.engine.begin() as conn:
            return queue.claim(conn, target, self.holder, now_ns, lease_ns, self.batch)

    async def _send_all(self, target: Target, rows: list[Any]) -> list[_Result]:
        client = self._client or httpx.AsyncClient()
        limit = anyio.Semaphore(self.concurrency)
        results: list[_Result] = []

        async def one(row: Any) -> None:
            async with limit:
                results.append(await self._send(client, target, row))

        try:
            async with anyio.create_task_group() as tg:
                for row in rows:
                    tg.start_soon(one, row)
        finally:
            if self._client is None:
                await client.aclose()
        return results

    async def _send(self, client: httpx.AsyncClient, target: Target, row: Any) -> _Result:
        only = orjson.loads(row.only_spans) if row.only_spans is not None else None
        try:
            out: Outgoing | None
            if row.content_type == "application/x-protobuf" and not target.agents and not only:
                out = outgoing(row.signal, row.body, row.content_type, row.encoding)
            else:  # decoding and filtering is CPU work: off the event loop
                out = await anyio.to_thread.run_sync(
                    lambda: outgoing(
                        row.signal,
                        row.body,
                        row.content_type,
                        row.encoding,
                        agents=target.agents,
                        only_spans=only,
                        max_bytes=self.max_bytes,
                        limits=self.limits,
                    )
                )
        except (DecodeError, BadEncoding, BodyTooLarge, ValueError) as exc:
            return _Result(row, f"cannot re-encode: {exc}"[:300], "undecodable", permanent=True)
        if out is None:
            return _Result(row)  # the agent filter left nothing for this target
        url = target.urls[row.signal]
        try:
            response = await client.post(
                url,
                content=out.body,
                headers={**target.headers, **out.headers},
                timeout=self.timeout,
            )
        except httpx.TimeoutException:
            return _Result(row, f"timed out after {self.timeout:g}s", "timeout")
        except httpx.HTTPError as exc:
            return _Result(row, f"{type(exc).__name__}: {exc}"[:300], "connection")
        if 200 <= response.status_code < 300:
            return _Result(row)
        reason = f"http_{response.status_code}"
        error = f"HTTP {response.status_code}: {response.text[:200]}"
        return _Result(row, error, reason, permanent=response.status_code in PERMANENT)

    def _record(self, target: Target, results: list[_Result]) -> None:
        now_ns = time.time_ns()
        done = [r for r in results if r.error is None]
        permanent = [r for r in results if r.error is not None and r.permanent]
        retry = [r for r in results if r.error is not None and not r.permanent]
        next_ns = now_ns
        if retry:
            self._failures[target.name] += 1
            delay = backoff_seconds(self._failures[target.name], self.base, self.cap, self._rng)
            next_ns = now_ns + int(delay * NS)
            self._paused_until[target.name] = next_ns
        elif done:
            self._failures[target.name] = 0
            self._paused_until.pop(target.name, None)
        with self.engine.begin() as conn:
            queue.remove(conn, [int(r.row.id) for r in done + permanent], self.holder)
            if retry:
                queue.retry_later(
                    conn,
                    [int(r.row.id) for r in retry],
                    self.holder,
                    error=retry[0].error or "",
                    next_attempt_ns=next_ns,
                )
        for r in done:
            self.stats.sent[(target.name, r.row.signal)] += 1
            self.stats.sent_items[(target.name, r.row.signal)] += int(r.row.items)
        for r in retry + permanent:
            self.stats.failed[(target.name, r.reason)] += 1
            self.stats.last_error[target.name] = r.error or ""
        for r in permanent:
            self.stats.dropped[(target.name, r.reason)] += 1
            log.warning(
                "forwarding: %s refused a %s request for good, dropped it: %s",
                target.name,
                r.row.signal,
                r.error,
            )
        if retry:
            log.info(
                "forwarding: %s failed (%s); %d request(s) wait, next try in %.1fs",
                target.name,
                retry[0].error,
                len(retry),
                (next_ns - now_ns) / NS,
            )
