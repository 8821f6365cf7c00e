"""The live event bus: what was ingested (and later alerts) fanned out to dashboard clients.

``MemoryBus`` delivers within one process. ``RedisBus`` publishes on a Redis channel and relays
that channel to its local subscribers, so a dashboard connected to one instance sees what every
instance ingests. Events are small JSON-able dicts with a ``type`` (``trace``, ``alert``);
``summary`` and ``heartbeat`` are made per connection (see ``live/stream.py``).

A slow subscriber never holds up ingest: each one has a bounded queue, and when it is full the
oldest event is dropped (and counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from pharos.server.ingest.normalize import SpanRecord

log = logging.getLogger("pharos.live")
CHANNEL = "pharos:live"
QUEUE_SIZE = 256
MAX_TRACES_PER_EVENT = 50


@dataclass(eq=False)  # hashed by identity: kept in a set
class Subscription:
    window: str
    queue: asyncio.Queue[dict[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(maxsize=QUEUE_SIZE)
    )
    dropped: int = 0

    def offer(self, event: dict[str, Any]) -> None:
        while True:
            try:
                self.queue.put_nowait(event)
                return
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    self.queue.get_nowait()
                    self.dropped += 1


class MemoryBus:
    """Fan-out to the subscribers of this process."""

    kind = "memory"

    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self.published = 0

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def windows(self) -> set[str]:
        return {s.window for s in self._subs}

    def subscriptions(self) -> list[Subscription]:
        return list(self._subs)

    @contextlib.asynccontextmanager
    async def subscribe(self, window: str = "1h") -> AsyncIterator[Subscription]:
        sub = Subscription(window)
        self._subs.add(sub)
        try:
            yield sub
        finally:
            self._subs.discard(sub)

    def deliver(self, event: dict[str, Any]) -> None:
        """Hand ``event`` to every local subscriber (never blocks)."""
        for sub in list(self._subs):
            sub.offer(event)

    def publish(self, event: dict[str, Any]) -> None:
        """Publish an event to every subscriber (of every instance, with Redis)."""
        self.published += 1
        self.deliver(event)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class RedisBus(MemoryBus):
    """Publishes on a Redis channel; one reader task relays the channel to local subscribers.

    While Redis is unreachable the bus degrades to :class:`MemoryBus` behaviour (events reach
    this instance's subscribers only; a warning is logged once) and the relay keeps trying to
    resubscribe, so fan-out resumes by itself when Redis is back."""

    kind = "redis"

    def __init__(self, url: str, namespace: str = "") -> None:
        super().__init__()
        import redis.asyncio as aioredis

        #: One channel per install (ops/redis_link.py: namespace); bare ``pharos:live`` without.
        self.channel = f"{CHANNEL}:{namespace}" if namespace else CHANNEL

        from pharos.server.ops.redis_link import RedisLink, client

        self._redis: Any = client(url)  # publishing: fails fast
        # The subscriber connection blocks in listen(): no socket timeout, but health checks.
        self._sub_redis: Any = aioredis.from_url(url, health_check_interval=5)
        self.link = RedisLink("live events", log)
        self._reader: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self.publish_failures = 0

    async def start(self) -> None:
        # Subscribed before the server takes requests (so no early event is missed); if Redis
        # is away now, the relay keeps trying in the background and the bus starts local.
        pubsub = self._sub_redis.pubsub()
        try:
            await asyncio.wait_for(pubsub.subscribe(self.channel), timeout=2.0)
        except Exception as exc:
            self.link.failed(exc)
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            pubsub = None
        self._reader = asyncio.create_task(self._relay(pubsub), name="pharos-live-relay")

    async def _relay(self, subscribed: Any = None) -> None:
        backoff = 0.5
        while True:
            pubsub, subscribed = subscribed or self._sub_redis.pubsub(), None
            try:
                if not pubsub.subscribed:
                    await pubsub.subscribe(self.channel)
                self.link.ok()
                backoff = 0.5
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    try:
                        event = orjson.loads(message["data"])
                    except orjson.JSONDecodeError:
                        log.warning("ignoring a live event that is not JSON")
                        continue
                    if isinstance(event, dict):
                        self.deliver(event)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                raise
            except Exception as exc:  # resubscribe: the dashboard must not go quiet for good
                self.link.failed(exc)
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def publish(self, event: dict[str, Any]) -> None:
        self.published += 1
        if not self.link.up and not self.link.should_try():
            self.deliver(event)  # Redis is away: this instance's subscribers only
            return
        task = asyncio.get_running_loop().create_task(self._publish(event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _publish(self, event: dict[str, Any]) -> None:
        try:
            await self._redis.publish(self.channel, orjson.dumps(event))
        except Exception as exc:
            self.publish_failures += 1
            self.link.failed(exc)
            self.deliver(event)
        else:
            self.link.ok()

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        await self._redis.aclose()
        await self._sub_redis.aclose()


Bus = MemoryBus


def make_bus(redis_url: str | None, namespace: str = "") -> MemoryBus:
    return RedisBus(redis_url, namespace) if redis_url else MemoryBus()


def ingested_event(records: Sequence[SpanRecord], stored: int) -> dict[str, Any]:
    """A small ``trace`` event: which traces got spans, per agent, with span and error counts."""
    traces: dict[str, dict[str, Any]] = {}
    for r in records:
        t = traces.get(r.trace_id)
        if t is None:
            if len(traces) >= MAX_TRACES_PER_EVENT:
                continue
            t = traces[r.trace_id] = {
                "trace_id": r.trace_id,
                "agent": r.agent,
                "spans": 0,
                "errors": 0,
            }
        t["spans"] += 1
        if r.status == "error":
            t["errors"] += 1
        if r.parent_span_id is None:
            t["agent"] = r.agent
            t["name"] = r.name
    return {
        "type": "trace",
        "spans": len(records),
        "stored": stored,
        "agents": sorted(_agents(records)),
        "traces": list(traces.values()),
    }


def _agents(records: Iterable[SpanRecord]) -> set[str]:
    return {r.agent for r in records}


def logs_event(records: Sequence[Any], stored: int) -> dict[str, Any]:
    """A small ``log`` event: how many log records were stored, by level, agent and trace."""
    levels: dict[str, int] = {}
    agents: set[str] = set()
    trace_ids: list[str] = []
    for r in records:
        levels[r.level] = levels.get(r.level, 0) + 1
        agents.add(r.agent)
        if r.trace_id and r.trace_id not in trace_ids and len(trace_ids) < MAX_TRACES_PER_EVENT:
            trace_ids.append(r.trace_id)
    return {
        "type": "log",
        "records": len(records),
        "stored": stored,
        "levels": levels,
        "agents": sorted(agents),
        "trace_ids": trace_ids,
    }
