"""The hot queries use indexes on PostgreSQL at a realistic size (EXPLAIN, not a stopwatch).

A database with 400k spans in 40k traces over three days, 100k log records and a month of
rollups is built with ``generate_series`` and ANALYZEd; then the real query functions run while
a cursor records every statement they send, and each statement's plan (EXPLAIN, JSON) must read
the big tables through an index: no sequential scan of spans, traces or logs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, event

from pharos.server.analytics import store as analytics
from pharos.server.cost.recompute import count_calls
from pharos.server.db.engine import make_engine
from pharos.server.db.migrate import upgrade
from pharos.server.ops import prune
from pharos.server.ops.retention import plan
from pharos.server.query.traces import TraceFilter, get_trace, list_traces
from pharos.server.settings import Settings
from tests.conftest import postgres_database

pytestmark = pytest.mark.postgres

T0 = 1_796_000_000 * 10**9  # ns
STEP = 6_480_000_000  # 40k traces over three days
TRACES = 40_000
ROLL_END = T0 // 10**9 // 86400 * 86400  # epoch seconds, day-aligned
BIG_TABLES = {"spans", "traces", "logs"}


class Recording(psycopg.Cursor[Any]):
    statements: list[tuple[str, Any]] = []

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        text = query if isinstance(query, str) else str(query)
        if not text.lstrip().upper().startswith(("EXPLAIN", "SET", "SHOW", "BEGIN", "COMMIT")):
            Recording.statements.append((text, params))
        return super().execute(query, params, **kwargs)


@pytest.fixture(scope="module")
def big_db() -> Iterator[str]:
    with postgres_database() as url:
        upgrade(url)
        engine = make_engine(url, pool_size=1)
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f"""
                INSERT INTO traces SELECT md5(i::text), substr(md5(i::text), 1, 16), 'run',
                  'agent-' || mod(i, 40), 3, {T0} + i::bigint * {STEP},
                  {T0} + i::bigint * {STEP} + 2000000000, 2000, 10,
                  CASE WHEN mod(i, 97) = 0 THEN 1 ELSE 0 END, 3, 2, 100, 50, 0, 1000,
                  CASE WHEN mod(i, 97) = 0 THEN 'error' ELSE 'ok' END, NULL, 0
                FROM generate_series(1, {TRACES}) i
                """
            )
            conn.exec_driver_sql(
                f"""
                INSERT INTO spans (trace_id, span_id, parent_span_id, name, kind, span_kind,
                  agent, model, service, start_ns, end_ns, duration_ms, status, attributes,
                  events, links, resource)
                SELECT md5(i::text), substr(md5(i::text || '-' || j), 1, 16),
                  CASE WHEN j = 0 THEN NULL ELSE substr(md5(i::text), 1, 16) END, 'step',
                  CASE WHEN mod(j, 3) = 1 THEN 'llm' ELSE 'tool' END, 1, 'agent-' || mod(i, 40),
                  'gpt-4o', 'svc', {T0} + i::bigint * {STEP} + j * 1000000,
                  {T0} + i::bigint * {STEP} + j * 1000000 + 500000, 0.5, 'ok',
                  '{{"k": "v"}}', '[]', '[]', '{{}}'
                FROM generate_series(1, {TRACES}) i, generate_series(0, 9) j
                """
            )
            conn.exec_driver_sql(
                f"""
                INSERT INTO logs (log_id, time_ns, observed_ns, severity_number, level, body,
                  body_json, attributes, resource, agent, trace_id)
                SELECT md5('log' || i), {T0} + i::bigint * 2592000000,
                  {T0} + i::bigint * 2592000000, 9, 'info', 'line ' || i, false, '{{}}', '{{}}',
                  'agent-' || mod(i, 40), md5((i / 3)::text)
                FROM generate_series(1, 100000) i
                """
            )
            for table, step in (("rollups_1m", 60), ("rollups_1h", 3600), ("rollups_1d", 86400)):
                conn.exec_driver_sql(
                    f"""
                    INSERT INTO {table} SELECT {ROLL_END} - b * {step}, 'agent-' || a,
                      'gpt-4o', 'request', 10, 1, 100, 50, 0, 0, 0, 0, '{{}}'
                    FROM generate_series(0, {min(30 * 86400 // step, 43200)}) b,
                      generate_series(0, 9) a
                    """
                )
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
        engine.dispose()
        yield url


def _recording_engine(url: str) -> Engine:
    engine = make_engine(url, pool_size=1)

    @event.listens_for(engine, "connect")
    def _record(dbapi_conn: Any, _rec: Any) -> None:
        dbapi_conn.cursor_factory = Recording

    return engine


def _plans(url: str, statements: list[tuple[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        out = []
        for sql, params in statements:
            row = conn.execute("EXPLAIN (FORMAT JSON) " + sql, params).fetchone()
            assert row is not None
            out.append((sql, row[0][0]["Plan"]))
            conn.rollback()
        return out


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def _check(sql: str, plan_: dict[str, Any]) -> None:
    nodes = list(_nodes(plan_))
    scans = [(n["Node Type"], n.get("Relation Name"), n.get("Index Name")) for n in nodes]
    seq = [s for s in scans if s[0] == "Seq Scan" and s[1] in BIG_TABLES]
    assert not seq, f"sequential scan of {seq} in\n{sql}\n{scans}"
    touched = {s[1] for s in scans if s[1] in BIG_TABLES}
    indexed = {s[1] for s in scans if s[1] in BIG_TABLES and s[2]}
    indexed |= {
        rel
        for kind, rel, _ in scans
        if kind in ("Bitmap Heap Scan", "Tid Scan") and rel in BIG_TABLES
    }
    assert touched <= indexed, f"{touched - indexed} read without an index in\n{sql}\n{scans}"


def _run_and_check(url: str, work: Any) -> list[str]:
    Recording.statements = []
    engine = _recording_engine(url)
    try:
        work(engine)
    finally:
        engine.dispose()
    statements = [
        (sql, params)
        for sql, params in Recording.statements
        if any(t in sql for t in BIG_TABLES | {"rollups_1"})
    ]
    assert statements, "the work sent no query to check"
    for sql, plan_ in _plans(url, statements):
        _check(sql, plan_)
    return [sql for sql, _ in statements]


def test_trace_list_and_detail_use_indexes(big_db: str) -> None:
    middle = T0 + TRACES // 2 * STEP

    def work(engine: Engine) -> None:
        first = list_traces(engine, TraceFilter(), limit=50, cursor=None)
        list_traces(engine, TraceFilter(), limit=50, cursor=first["next_cursor"])
        list_traces(engine, TraceFilter(agent="agent-7"), limit=50, cursor=None)
        list_traces(engine, TraceFilter(status="error"), limit=50, cursor=None)
        list_traces(
            engine,
            TraceFilter(since_ns=middle, until_ns=middle + 3600 * 10**9),
            limit=50,
            cursor=None,
        )
        trace_id = first["items"][0]["trace_id"]
        detail = get_trace(engine, trace_id, max_spans=5000)
        assert detail is not None and len(detail["spans"]) == 10
        with engine.connect() as conn:
            assert len(analytics.recent_error_traces(conn, T0, 20)) == 20
            assert analytics.recent_error_traces(conn, T0, 5, agent="agent-7", model="gpt-4o")
            analytics.slowest_traces(conn, T0 + (TRACES - 500) * STEP, 5, agent="agent-7")
            analytics.slowest_traces(conn, T0 + (TRACES - 500) * STEP, 5, model="gpt-4o")
            analytics.slowest_traces(conn, T0 + (TRACES - 500) * STEP, 10)
            analytics.last_seen_ns(conn, ["agent-1", "agent-2"])

    sent = _run_and_check(big_db, work)
    assert any("FROM spans" in s for s in sent) and any("FROM traces" in s for s in sent)


def test_dashboard_rollups_and_time_ranges_use_indexes(big_db: str) -> None:
    end_s = ROLL_END

    def work(engine: Engine) -> None:
        with engine.connect() as conn:
            for window in (3600, 86400, 7 * 86400, 30 * 86400):
                rows = analytics.fetch_rollups(conn, end_s - window, end_s)
                assert rows
            analytics.fetch_rollups(conn, end_s - 86400, end_s, agent="agent-3", resolution="1m")
            analytics.known_agents(conn, end_s - 7 * 86400)
        # Raw spans by time (cost recompute): the BRIN index.
        count_calls(engine, T0 + 1000 * STEP, T0 + 1100 * STEP)

    _run_and_check(big_db, work)


def test_logs_and_retention_use_indexes(big_db: str) -> None:
    cutoff = T0 + 300 * STEP  # a few hundred old traces, logs below it

    def work(engine: Engine) -> None:
        with engine.connect() as conn:
            conn.exec_driver_sql(
                "SELECT id, time_ns, body FROM logs WHERE time_ns >= %(t)s "
                "ORDER BY time_ns DESC LIMIT 100",
                {"t": T0 + 50_000 * 2_592_000_000},
            )
            conn.exec_driver_sql(
                "SELECT id FROM logs WHERE trace_id = %(t)s ORDER BY time_ns", {"t": "abc"}
            )
        settings = Settings(
            database_url=big_db, retention_spans_hours=1e-9, retention_logs_hours=1e-9
        )
        for target in plan(settings, cutoff):
            if target.table in ("traces", "logs"):
                prune.count(engine, target)
                prune.prune(engine, target, 2000)

    sent = _run_and_check(big_db, work)
    assert any(s.startswith("DELETE FROM logs WHERE ctid") for s in sent)
    assert any(s.startswith("DELETE FROM spans") for s in sent)
