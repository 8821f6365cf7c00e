"""The live bus without a server: fan-out, bounded queues, the ingested event."""

from __future__ import annotations

import asyncio

from pharos.server.ingest.normalize import SpanRecord
from pharos.server.live.bus import MAX_TRACES_PER_EVENT, MemoryBus, Subscription, ingested_event


def record(trace: str, span: str, parent: str | None, agent: str, status: str = "ok") -> SpanRecord:
    return SpanRecord(
        trace_id=trace,
        span_id=span,
        parent_span_id=parent,
        name=f"span {span}",
        kind="llm" if parent else "agent",
        span_kind=1,
        agent=agent,
        agent_rank=0,
        model=None,
        service=None,
        start_ns=0,
        end_ns=1,
        duration_ms=0.0,
        status=status,
        status_message=None,
        input_tokens=None,
        output_tokens=None,
        cached_tokens=None,
        cost_nanousd=None,
        attributes="{}",
        events="[]",
        links="[]",
        resource="{}",
        scope=None,
    )


def test_ingested_event_counts_spans_and_errors_per_trace() -> None:
    records = [
        record("t1", "b", "a", "bot", "error"),
        record("t1", "a", None, "bot"),
        record("t2", "c", "x", "other"),
    ]
    event = ingested_event(records, stored=2)
    assert event == {
        "type": "trace",
        "spans": 3,
        "stored": 2,
        "agents": ["bot", "other"],
        "traces": [
            {"trace_id": "t1", "agent": "bot", "spans": 2, "errors": 1, "name": "span a"},
            {"trace_id": "t2", "agent": "other", "spans": 1, "errors": 0},
        ],
    }


def test_ingested_event_stays_small() -> None:
    records = [record(f"t{i}", "a", None, "bot") for i in range(500)]
    event = ingested_event(records, stored=500)
    assert len(event["traces"]) == MAX_TRACES_PER_EVENT
    assert event["spans"] == 500


def test_a_full_subscriber_drops_its_oldest_events() -> None:
    async def run() -> None:
        sub = Subscription("1h", asyncio.Queue(maxsize=3))
        for i in range(5):
            sub.offer({"type": "trace", "n": i})
        assert sub.dropped == 2
        assert [sub.queue.get_nowait()["n"] for _ in range(3)] == [2, 3, 4]

    asyncio.run(run())


def test_memory_bus_fans_out_to_every_subscriber_until_they_leave() -> None:
    async def run() -> None:
        bus = MemoryBus()
        async with bus.subscribe("1h") as a, bus.subscribe("24h") as b:
            assert bus.subscribers == 2 and bus.windows() == {"1h", "24h"}
            bus.publish({"type": "trace"})
            assert a.queue.get_nowait() == b.queue.get_nowait() == {"type": "trace"}
        assert bus.subscribers == 0
        bus.publish({"type": "trace"})  # nobody listening: nothing happens
        assert bus.published == 2

    asyncio.run(run())
