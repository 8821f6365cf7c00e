"""Rate limits: token buckets (per agent: requests/min and LLM tokens/min; per API key:
requests/min) with a FIFO wait queue in front.

A bucket holds up to ``capacity`` tokens (the per-minute rate: a full minute's burst) and refills
continuously at ``rate_per_min / 60`` per second. :class:`MemoryBuckets` keeps them in the
process; :class:`RedisBuckets` keeps them in Redis and takes tokens with one Lua script, so every
instance draws from the same bucket without a read-modify-write race (the script runs
atomically, and uses Redis' clock so instances' clocks do not matter).

:class:`Gate` puts a FIFO queue per bucket in front: a request that finds no token waits behind
the ones already waiting (at most ``max_queue`` of them) for at most ``max_wait`` seconds, and
only then is refused (:class:`Limited`, answered 429 with ``Retry-After``). The queue is per
instance; the tokens are shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


class Limited(Exception):
    def __init__(self, bucket: str, retry_after: float, reason: str) -> None:
        super().__init__(reason)
        self.bucket = bucket
        self.retry_after = max(1, math.ceil(retry_after))
        self.reason = reason


class Buckets(Protocol):
    async def take(self, key: str, rate_per_min: float, cost: float) -> float:
        """Take ``cost`` tokens if there are enough: 0.0. Else take none and return the seconds
        until there will be enough."""
        ...

    async def charge(self, key: str, rate_per_min: float, cost: float) -> None:
        """Take ``cost`` tokens unconditionally (the bucket may go into debt): LLM tokens are
        known only after the call."""
        ...


class MemoryBuckets:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._state: dict[str, tuple[float, float]] = {}

    async def take(self, key: str, rate_per_min: float, cost: float) -> float:
        return self.take_now(key, rate_per_min, cost)

    async def charge(self, key: str, rate_per_min: float, cost: float) -> None:
        tokens = self._refilled(key, rate_per_min)
        self._state[key] = (tokens - cost, self.clock())

    def _refilled(self, key: str, rate_per_min: float) -> float:
        now = self.clock()
        tokens, last = self._state.get(key, (rate_per_min, now))
        return min(rate_per_min, tokens + (now - last) * rate_per_min / 60.0)

    def take_now(self, key: str, rate_per_min: float, cost: float) -> float:
        now = self.clock()
        capacity = rate_per_min
        per_second = rate_per_min / 60.0
        tokens = self._refilled(key, rate_per_min)
        cost = min(cost, capacity)  # a request bigger than the bucket waits for a full bucket
        if tokens >= cost:
            self._state[key] = (tokens - cost, now)
            return 0.0
        self._state[key] = (tokens, now)
        return (cost - tokens) / per_second


# KEYS[1] bucket; ARGV: rate per minute, cost, force (1: take even into debt). Returns "0" or
# the wait in seconds (a string, so Redis does not truncate the float to an integer).
TAKE_LUA = """
local rate = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local force = ARGV[3] == '1'
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local per_second = rate / 60
if cost > rate and not force then cost = rate end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil then tokens = rate; ts = now end
tokens = math.min(rate, tokens + math.max(0, now - ts) * per_second)
local wait = 0
if force or tokens >= cost then
  tokens = tokens - cost
else
  wait = (cost - tokens) / per_second
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], 120)
return tostring(wait)
"""


class RedisBuckets:
    def __init__(self, url: str, prefix: str = "pharos:rl:") -> None:
        from pharos.server.ops.redis_link import client

        self.client: Any = client(url)  # fails fast: the caller falls back to local buckets
        self.prefix = prefix
        self._script = self.client.register_script(TAKE_LUA)

    async def take(self, key: str, rate_per_min: float, cost: float) -> float:
        result = await self._script(keys=[self.prefix + key], args=[rate_per_min, cost, 0])
        return float(result)

    async def charge(self, key: str, rate_per_min: float, cost: float) -> None:
        await self._script(keys=[self.prefix + key], args=[rate_per_min, cost, 1])

    async def close(self) -> None:
        await self.client.aclose()


class SharedBuckets:
    """Redis buckets, with this instance's own buckets while Redis is unreachable (a warning
    is logged once; the limits are then per instance until Redis is back)."""

    def __init__(self, redis: RedisBuckets, link: Any, local: MemoryBuckets | None = None) -> None:
        self.redis = redis
        self.link = link  # ops.redis_link.RedisLink
        self.local = local or MemoryBuckets()

    async def take(self, key: str, rate_per_min: float, cost: float) -> float:
        if self.link.should_try():
            try:
                wait = await self.redis.take(key, rate_per_min, cost)
            except Exception as exc:  # redis ConnectionError / TimeoutError / OSError
                self.link.failed(exc)
            else:
                self.link.ok()
                return wait
        return await self.local.take(key, rate_per_min, cost)

    async def charge(self, key: str, rate_per_min: float, cost: float) -> None:
        if self.link.should_try():
            try:
                await self.redis.charge(key, rate_per_min, cost)
            except Exception as exc:
                self.link.failed(exc)
            else:
                self.link.ok()
                return
        await self.local.charge(key, rate_per_min, cost)

    async def close(self) -> None:
        await self.redis.close()


@dataclass
class _Queue:
    waiters: deque[asyncio.Event] = field(default_factory=deque)
    waits_total: int = 0
    refused_total: int = 0
    wait_seconds_total: float = 0.0
    rate_per_min: float = 0.0  # the bucket's limit at its last use


@dataclass(frozen=True)
class Limit:
    """One bucket to pass: ``key`` (e.g. ``agent:support-bot:rpm``), its rate, this cost."""

    key: str
    rate_per_min: float
    cost: float = 1.0


class Gate:
    """FIFO queues in front of the buckets (one queue per bucket key, per instance)."""

    def __init__(self, buckets: Buckets) -> None:
        self.buckets = buckets
        self.queues: dict[str, _Queue] = {}

    def queue_length(self, key: str) -> int:
        q = self.queues.get(key)
        return len(q.waiters) if q else 0

    def stats(self) -> dict[str, dict[str, float]]:
        return {
            key: {
                "queued": len(q.waiters),
                "waited_total": q.waits_total,
                "refused_total": q.refused_total,
                "wait_seconds_total": round(q.wait_seconds_total, 6),
                "limit_per_minute": q.rate_per_min,
            }
            for key, q in sorted(self.queues.items())
        }

    async def try_acquire(self, limit: Limit) -> bool:
        """Take a token at once if nobody is waiting for this bucket and one is there (the
        common case, without queue bookkeeping); False otherwise (nothing counted)."""
        q = self.queues.get(limit.key)
        if q is None:
            q = self.queues[limit.key] = _Queue()
        q.rate_per_min = limit.rate_per_min
        if q.waiters:
            return False
        return await self.buckets.take(limit.key, limit.rate_per_min, limit.cost) == 0

    async def acquire(self, limit: Limit, max_queue: int, max_wait: float) -> float:
        """Wait (FIFO) for a token of ``limit``; returns the seconds waited, or raises
        :class:`Limited`. Cancelling the caller (a client gone) frees its place at once."""
        q = self.queues.get(limit.key)
        if q is None:
            q = self.queues[limit.key] = _Queue()
        q.rate_per_min = limit.rate_per_min
        if not q.waiters:
            wait = await self.buckets.take(limit.key, limit.rate_per_min, limit.cost)
            if wait == 0:
                return 0.0
            if max_queue <= 0 or max_wait <= 0:
                q.refused_total += 1
                raise Limited(limit.key, wait, "over the rate limit")
        if len(q.waiters) >= max_queue:
            q.refused_total += 1
            raise Limited(
                limit.key,
                max(1.0, 60.0 / limit.rate_per_min),
                f"over the rate limit and the wait queue is full ({max_queue})",
            )
        me = asyncio.Event()
        q.waiters.append(me)
        if q.waiters[0] is me:
            me.set()
        started = time.monotonic()
        deadline = started + max_wait
        try:
            while True:
                left = deadline - time.monotonic()
                if not me.is_set():  # not at the head: wait for the one before to leave
                    try:
                        await asyncio.wait_for(me.wait(), timeout=max(0.0, left))
                    except TimeoutError:
                        q.refused_total += 1
                        raise Limited(
                            limit.key, 60.0 / limit.rate_per_min, "waited max-wait in the queue"
                        ) from None
                    continue
                wait = await self.buckets.take(limit.key, limit.rate_per_min, limit.cost)
                if wait == 0:
                    waited = time.monotonic() - started
                    q.waits_total += 1
                    q.wait_seconds_total += waited
                    return waited
                left = deadline - time.monotonic()
                if wait > left:
                    q.refused_total += 1
                    raise Limited(limit.key, wait, "over the rate limit for longer than max-wait")
                await asyncio.sleep(wait)
        finally:
            with contextlib.suppress(ValueError):
                q.waiters.remove(me)
            if q.waiters:  # the next in line (already set if it was the head) may go
                q.waiters[0].set()
