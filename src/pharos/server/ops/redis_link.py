"""Degrade to local when Redis is away, and come back when it returns.

Redis only carries what several instances share (rate-limit buckets, live events); an instance
that cannot reach it keeps serving with its own in-process state rather than failing requests.
:class:`RedisLink` is one such use's view of Redis: it logs a warning once when Redis goes
away, once when it is back, and between the two lets a call through only every
``retry_seconds`` (so requests do not each wait for a connection that will not come).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any


def namespace(engine: Any) -> str:
    """A short name for this install, the same on every instance sharing its database: Redis
    keys and channels are prefixed with it, so two Pharos installs (or test runs) on one Redis
    never see each other's live events or share rate-limit buckets. Derived from the install
    secret (``access_secrets``), not from the database URL, which instances may spell
    differently."""
    import hashlib

    from pharos.server.access.keys import install_secret

    return hashlib.sha256(b"pharos-redis-namespace:" + install_secret(engine)).hexdigest()[:12]


def client(url: str, *, timeout: float = 3.0) -> Any:
    """An asyncio Redis client that fails fast (no built-in retries, short socket timeouts).

    Three seconds, not one: the timeout covers the event loop getting round to the reply, and
    an instance busy with a burst of requests took over a second to, so it fell back to its
    own rate-limit buckets (letting extra requests through) while Redis was fine. When Redis is
    really away only one call per ``RedisLink.retry_seconds`` waits that long."""
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return aioredis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


class RedisLink:
    def __init__(
        self,
        what: str,
        log: logging.Logger,
        *,
        retry_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.log = log
        self.retry_seconds = retry_seconds
        self.clock = clock
        self.up = True
        self.failures = 0  # calls that failed or were skipped while Redis was away
        self.outages = 0
        self._next_try = 0.0

    def should_try(self) -> bool:
        """Use Redis now? Always while it is up; once per ``retry_seconds`` while it is not."""
        if self.up:
            return True
        now = self.clock()
        if now >= self._next_try:
            self._next_try = now + self.retry_seconds
            return True
        self.failures += 1
        return False

    def failed(self, exc: BaseException) -> None:
        self.failures += 1
        if self.up:
            self.up = False
            self.outages += 1
            self._next_try = self.clock() + self.retry_seconds
            self.log.warning(
                "Redis unreachable (%s: %s): %s fall back to this instance only until it is back",
                type(exc).__name__,
                exc,
                self.what,
            )

    def ok(self) -> None:
        if not self.up:
            self.up = True
            self.log.warning("Redis reachable again: %s shared across instances again", self.what)

    def state(self) -> str:
        return "ok" if self.up else "unreachable (local fallback)"
