"""The group-commit writer against real databases: batching, overload, isolation of bad data."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import pytest
from sqlalchemy import func, select

from pharos.server.db.engine import make_writer_engine
from pharos.server.db.migrate import upgrade
from pharos.server.db.schema import spans, traces
from pharos.server.ingest.normalize import Limits, SpanRecord, normalize_traces
from pharos.server.ingest.writer import GroupCommitWriter, _Job
from tests.conftest import ServerFactory
from tests.otlp_helpers import PROTOBUF, request, span


def _records(trace: int, n: int) -> list[SpanRecord]:
    return normalize_traces(
        request([span(trace, i + 1, i if i else None) for i in range(n)]), Limits()
    ).spans


def _hold_sqlite_write_lock(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def test_group_commit_batches_waiting_requests(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    engine = make_writer_engine(sqlite_url)
    writer = GroupCommitWriter(engine, queue_size=64)
    writer.start()
    lock = _hold_sqlite_write_lock(sqlite_url.removeprefix("sqlite:///"))

    async def scenario() -> list[int]:
        tasks = [asyncio.create_task(writer.write(_records(100 + i, 10))) for i in range(6)]
        await asyncio.sleep(0.3)  # all six are queued or waiting on the lock
        assert not any(t.done() for t in tasks), "acknowledged before commit"
        lock.execute("COMMIT")
        return [(await t).stored for t in tasks]

    try:
        stored = asyncio.run(scenario())
    finally:
        lock.close()
        writer.stop()
    assert stored == [10] * 6
    assert writer.stats.transactions <= 2  # the queued requests shared one transaction
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(spans)).scalar_one() == 60
        assert conn.execute(select(func.count()).select_from(traces)).scalar_one() == 6
    engine.dispose()


def test_one_bad_request_does_not_fail_the_others(db_url: str) -> None:
    upgrade(db_url)
    engine = make_writer_engine(db_url)
    writer = GroupCommitWriter(engine)
    writer.start()
    bad = _records(0xBAD, 2)
    bad[1].attributes = object()  # type: ignore[assignment]  # the driver cannot bind this

    async def scenario() -> list[object]:
        return await asyncio.gather(
            writer.write(_records(0x600D, 3)),
            writer.write(bad),
            writer.write(_records(0x600E, 4)),
            return_exceptions=True,
        )

    try:
        results = asyncio.run(scenario())
    finally:
        writer.stop()
    assert results[0].stored == 3  # type: ignore[union-attr]
    assert isinstance(results[1], RuntimeError)
    assert results[2].stored == 4  # type: ignore[union-attr]
    with engine.connect() as conn:
        ids = {r[0] for r in conn.execute(select(spans.c.trace_id).distinct())}
        assert ids == {f"{0x600D:032x}", f"{0x600E:032x}"}
    engine.dispose()


def test_stop_commits_everything_queued(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    engine = make_writer_engine(sqlite_url)
    writer = GroupCommitWriter(engine)
    writer.start()
    lock = _hold_sqlite_write_lock(sqlite_url.removeprefix("sqlite:///"))

    async def scenario() -> list[int]:
        tasks = [asyncio.create_task(writer.write(_records(300 + i, 5))) for i in range(5)]
        await asyncio.sleep(0.2)
        stopper = threading.Thread(target=writer.stop)
        stopper.start()  # stop while requests wait: they must still be committed
        await asyncio.sleep(0.2)
        lock.execute("COMMIT")
        results = [(await t).stored for t in tasks]
        stopper.join()
        return results

    try:
        assert asyncio.run(scenario()) == [5] * 5
    finally:
        lock.close()
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(spans)).scalar_one() == 25
    engine.dispose()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_full_queue_answers_503_with_retry_after(make_server: ServerFactory, db_url: str) -> None:
    srv = make_server(writer_queue_size=1, retry_after_seconds=2)
    lock = _hold_sqlite_write_lock(db_url.removeprefix("sqlite:///"))
    responses: dict[int, object] = {}

    def post(i: int) -> None:
        body = request([span(0x500 + i, 1)]).SerializeToString()
        responses[i] = srv.post("/v1/traces", content=body, headers=PROTOBUF)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(4)]
    try:
        for t in threads:
            t.start()
            time.sleep(0.15)
        deadline = time.monotonic() + 10
        while sum(1 for r in responses.values() if r.status_code == 503) < 2:  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, responses
            time.sleep(0.05)
    finally:
        lock.execute("COMMIT")
        lock.close()
        for t in threads:
            t.join()
    codes = sorted(r.status_code for r in responses.values())  # type: ignore[attr-defined]
    assert codes == [200, 200, 503, 503], codes
    rejected = [r for r in responses.values() if r.status_code == 503]  # type: ignore[attr-defined]
    assert all(r.headers["retry-after"] == "2" for r in rejected)  # type: ignore[attr-defined]
    # Acknowledged ones are stored; the refused ones are not half-stored.
    for i, r in responses.items():
        found = srv.get(f"/api/v1/traces/{0x500 + i:032x}").status_code
        assert found == (200 if r.status_code == 200 else 404)  # type: ignore[attr-defined]


def test_partial_resend_stores_only_new_spans_and_keeps_summary_right(db_url: str) -> None:
    upgrade(db_url)
    engine = make_writer_engine(db_url)
    writer = GroupCommitWriter(engine)
    writer.start()
    every = normalize_traces(
        request([span(0x77, i + 1, 1 if i else None, duration_ms=10 + i) for i in range(6)]),
        Limits(),
    ).spans

    async def scenario() -> tuple[object, object, object]:
        first = await writer.write(every[:3])
        again = await writer.write(every[1:5] + every[1:2])  # overlap, and a span sent twice
        last = await writer.write(every)
        return first, again, last

    try:
        first, again, last = asyncio.run(scenario())
    finally:
        writer.stop()
    assert (first.stored, first.duplicates) == (3, 0)  # type: ignore[attr-defined]
    assert (again.stored, again.duplicates) == (2, 3)  # type: ignore[attr-defined]
    assert (last.stored, last.duplicates) == (1, 5)  # type: ignore[attr-defined]
    with engine.connect() as conn:
        row = conn.execute(select(traces)).one()
        assert conn.execute(select(func.count()).select_from(spans)).scalar_one() == 6
    assert row.span_count == 6
    assert row.root_span_id == f"{1:016x}"
    assert row.duration_ms == 15.0  # max(end) - min(start): the longest child ends last
    engine.dispose()


def test_rollups_of_every_resolution_agree_across_transactions(db_url: str) -> None:
    """Regression: merging into existing minute rows must not inflate hour/day rollups."""
    from pharos.server.db.schema import ROLLUP_TABLES

    upgrade(db_url)
    engine = make_writer_engine(db_url)
    writer = GroupCommitWriter(engine)
    writer.start()
    agent = {"gen_ai.agent.name": "a", "gen_ai.operation.name": "invoke_agent"}

    async def scenario() -> None:
        for n in range(4):  # four transactions hitting the same minute, hour and day rows
            recs = normalize_traces(
                request([span(0x900 + n, 1, attrs=agent, error="x" if n == 0 else None)]),
                Limits(),
            ).spans
            await writer.write(recs)

    try:
        asyncio.run(scenario())
    finally:
        writer.stop()
    with engine.connect() as conn:
        for table in ROLLUP_TABLES.values():
            count, errors = conn.execute(
                select(func.sum(table.c["count"]), func.sum(table.c.errors))
            ).one()
            assert (count, errors) == (4, 1), table.name
    engine.dispose()


def _table_rows(engine: object, table: object, drop: tuple[str, ...]) -> list[tuple[object, ...]]:
    from sqlalchemy import Engine, Table

    assert isinstance(engine, Engine) and isinstance(table, Table)
    import orjson

    cols = [c for c in table.c if c.name not in drop]

    def canonical(row: tuple[object, ...]) -> tuple[object, ...]:
        # Sums of float durations depend on the order they were added in (by request or by
        # group), histograms are the same whatever the order of their keys.
        return tuple(
            round(v, 6)
            if isinstance(v, float)
            else sorted(orjson.loads(v).items())
            if c.name == "histogram" and isinstance(v, str)
            else v
            for c, v in zip(cols, row, strict=True)
        )

    with engine.connect() as conn:
        rows = [canonical(tuple(r)) for r in conn.execute(select(*cols))]
    return sorted(rows, key=lambda r: tuple(str(v) for v in r))


def test_deltas_derived_when_parsed_give_the_same_tables_as_the_writer_computing_them(
    db_url: str, tmp_path: object
) -> None:
    """ingest/derive.py: requests parsed with their pricing, summary rows and rollup deltas
    (what ingest workers do) end in exactly the tables the writer produces computing them
    itself — including the cases where it must not use them: a resend, a trace split over
    requests of one group, spans given their parent's agent at store time."""
    from pathlib import Path

    from pharos.server.cost.book import CostHook, PriceBook, price_records
    from pharos.server.demo import demo_requests
    from pharos.server.ingest.derive import derive
    from tests.conftest import postgres_database

    requests = list(demo_requests(400, seed=3, max_spans=97))  # traces split over requests
    agent = {"gen_ai.agent.name": "parent-agent", "gen_ai.operation.name": "invoke_agent"}
    parent = request([span(0xABC, 1, attrs=agent)])
    llm = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.output_tokens": 300,
    }
    orphans = request([span(0xABC, 2, 1, attrs=llm), span(0xABC, 3, 2)], service="child-service")
    # The parent again with a new child below it (in the request): one duplicate, no orphan.
    resend = request([span(0xABC, 1, attrs=agent), span(0xABC, 9, 1, attrs=llm)])
    mixed = type(requests[0])()  # a request resent with new spans added: some duplicates
    mixed.CopyFrom(requests[0])
    mixed.resource_spans.extend(request([span(0xDEF, 1, attrs=agent)]).resource_spans)

    def ingest(url: str, derived: bool) -> None:
        upgrade(url)
        engine = make_writer_engine(url)
        writer = GroupCommitWriter(engine)
        book = PriceBook(None)
        writer.cost = CostHook(book, engine.dialect.name)
        loop = asyncio.new_event_loop()

        def job(req: object) -> _Job:
            batch = normalize_traces(req, Limits())  # type: ignore[arg-type]
            if derived:
                derive(batch, lambda records: price_records(book, records), book.version)
            return _Job(batch.spans, loop, loop.create_future(), derived=batch.derived)

        # The writer's transactions, in fixed groups (its thread groups whatever is queued):
        # groups of three requests, a group resending five, a resend with new spans, then a
        # parent, its children (an LLM call taking its agent) and a resend of it with a new child.
        groups = [[job(r) for r in requests[i : i + 3]] for i in range(0, len(requests), 3)]
        groups.append([job(r) for r in requests[:5]])
        groups.append([job(mixed), job(requests[6])])
        groups += [[job(parent)], [job(orphans)], [job(resend)]]
        try:
            for group in groups:
                writer._transaction(group)
        finally:
            loop.close()
            engine.dispose()

    ingest(db_url, derived=True)
    if db_url.startswith("sqlite"):
        other = f"sqlite:///{Path(str(tmp_path)) / 'computed.db'}"
        ingest(other, derived=False)
        compare(db_url, other)
    else:
        with postgres_database() as other:
            ingest(other, derived=False)
            compare(db_url, other)


def compare(url: str, other: str) -> None:
    from sqlalchemy import create_engine

    from pharos.server.db.engine import normalise_url
    from pharos.server.db.schema import ROLLUP_TABLES, llm_usage_daily

    a, b = create_engine(normalise_url(url)), create_engine(normalise_url(other))
    try:
        checks = [(spans, ("id",)), (traces, ("updated_ns",)), (llm_usage_daily, ())]
        checks += [(t, ()) for t in ROLLUP_TABLES.values()]
        for table, drop in checks:
            left, right = _table_rows(a, table, drop), _table_rows(b, table, drop)
            assert left, table.name
            assert left == right, table.name
        with a.connect() as conn:
            agents = conn.execute(
                select(spans.c.agent).where(spans.c.trace_id == f"{0xABC:032x}")
            ).scalars()
            assert set(agents) == {"parent-agent"}
            priced = conn.execute(
                select(func.count()).select_from(spans).where(spans.c.cost_nanousd > 0)
            ).scalar_one()
            assert priced > 0
    finally:
        a.dispose()
        b.dispose()
