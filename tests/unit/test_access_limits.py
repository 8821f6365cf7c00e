"""Token buckets and the FIFO gate, with a controlled clock (exact counts, no timing)."""

from __future__ import annotations

import asyncio
import os

import pytest

from pharos.server.access.limits import Gate, Limit, Limited, MemoryBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_exactly_the_rate_per_window() -> None:
    clock = Clock()
    b = MemoryBuckets(clock)
    assert sum(b.take_now("k", 60, 1) == 0 for _ in range(100)) == 60
    assert b.take_now("k", 60, 1) == pytest.approx(1.0)  # one token per second
    clock.now += 30
    assert sum(b.take_now("k", 60, 1) == 0 for _ in range(100)) == 30
    clock.now += 600  # never more than a full bucket
    assert sum(b.take_now("k", 60, 1) == 0 for _ in range(100)) == 60
    assert b.take_now("other", 60, 1) == 0  # buckets are separate


def test_bucket_costs_and_debt() -> None:
    clock = Clock()
    b = MemoryBuckets(clock)
    assert b.take_now("t", 1000, 600) == 0
    assert b.take_now("t", 1000, 600) == pytest.approx(200 / (1000 / 60))
    asyncio.run(b.charge("t", 1000, 1000))  # actual usage known after the call: into debt
    assert b.take_now("t", 1000, 1) == pytest.approx(601 / (1000 / 60))


def test_gate_concurrent_clients_exact_and_fifo() -> None:
    async def main() -> None:
        clock = Clock()
        gate = Gate(MemoryBuckets(clock))
        limit = Limit("a", 60)
        results = await asyncio.gather(
            *(gate.acquire(limit, 0, 0) for _ in range(100)), return_exceptions=True
        )
        assert sum(r == 0 for r in results) == 60
        assert sum(isinstance(r, Limited) for r in results) == 40
        # FIFO: three waiters, tokens arrive one by one
        order: list[int] = []

        async def waiter(i: int) -> None:
            await gate.acquire(limit, 3, 1000)
            order.append(i)

        tasks = []
        for i in range(3):
            tasks.append(asyncio.create_task(waiter(i)))
            await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        assert gate.queue_length("a") == 3
        with pytest.raises(Limited, match="queue is full"):
            await gate.acquire(limit, 3, 1000)
        for _ in range(3):
            clock.now += 1.0  # one token
            await asyncio.wait(tasks, timeout=2.5, return_when=asyncio.FIRST_COMPLETED)
            tasks = [t for t in tasks if not t.done()]
        assert order == [0, 1, 2]
        assert gate.stats()["a"]["waited_total"] == 3

    asyncio.run(main())


def test_a_cancelled_waiter_frees_its_place() -> None:
    async def main() -> None:
        clock = Clock()
        gate = Gate(MemoryBuckets(clock))
        limit = Limit("c", 1)
        assert await gate.acquire(limit, 1, 100) == 0
        first = asyncio.create_task(gate.acquire(limit, 1, 100))
        await asyncio.sleep(0.01)
        assert gate.queue_length("c") == 1
        first.cancel()  # the client went away
        await asyncio.sleep(0)
        assert gate.queue_length("c") == 0
        second = asyncio.create_task(gate.acquire(limit, 1, 100))
        await asyncio.sleep(0.01)
        assert gate.queue_length("c") == 1  # queued, not refused
        second.cancel()

    asyncio.run(main())


def test_max_wait_refuses_with_retry_after() -> None:
    async def main() -> None:
        gate = Gate(MemoryBuckets(Clock()))
        limit = Limit("w", 1)
        await gate.acquire(limit, 5, 0.05)
        with pytest.raises(Limited) as exc:
            await gate.acquire(limit, 5, 0.05)  # the next token is 60 s away
        assert exc.value.retry_after >= 1 and "max-wait" in exc.value.reason

    asyncio.run(main())


@pytest.mark.skipif(not os.environ.get("PHAROS_TEST_REDIS_URL"), reason="no PHAROS_TEST_REDIS_URL")
def test_redis_buckets_two_instances_exact() -> None:
    from pharos.server.access.limits import RedisBuckets

    url = os.environ["PHAROS_TEST_REDIS_URL"]

    async def main() -> tuple[int, float]:
        a, b = RedisBuckets(url, prefix="pharos:test:"), RedisBuckets(url, prefix="pharos:test:")
        await a.client.delete("pharos:test:r")
        loop = asyncio.get_running_loop()
        started = loop.time()
        waits = await asyncio.gather(*((a if i % 2 else b).take("r", 60, 1) for i in range(150)))
        elapsed = loop.time() - started
        await a.close()
        await b.close()
        return sum(w == 0 for w in waits), elapsed

    ok, elapsed = asyncio.run(main())
    assert 60 <= ok <= 60 + int(elapsed) + 1  # plus what refilled (1/s) during the burst
