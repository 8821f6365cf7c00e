"""The hot queries use indexes on PostgreSQL at a realistic size (EXPLAIN, not a stopwatch).

A database with 400k spans in 40k traces over three days, 100k log records and the rollups
retention keeps (up to now) is built with ``generate_series`` and ANALYZEd; then the real query
functions run — and a real server answers the dashboard's endpoints and evaluates alert rules —
while a cursor records every statement they send (with the ``SET LOCAL`` planner settings in
force in its transaction), and each statement's plan (EXPLAIN, JSON) must read the big tables
through an index: no sequential scan of spans, traces, logs or the minute and hour rollups, and
a rollup read for one agent must seek that agent rather than filter every agent's rows.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import pq
from sqlalchemy import Engine, event
from sqlalchemy.pool import Pool

from pharos.server.analytics import store as analytics
from pharos.server.cost.recompute import count_calls
from pharos.server.db.engine import make_engine
from pharos.server.db.migrate import upgrade
from pharos.server.ops import prune
from pharos.server.ops.retention import plan
from pharos.server.query.logs import LogFilter, list_logs, logs_of_trace
from pharos.server.query.traces import TraceFilter, get_trace, list_traces
from pharos.server.settings import Settings
from tests.conftest import postgres_database, run_server

pytestmark = pytest.mark.postgres

T0 = 1_796_000_000 * 10**9  # ns
STEP = 6_480_000_000  # 40k traces over three days
TRACES = 40_000
# The rollups run up to the end of today (day-aligned): the dashboard's windows, which end now,
# read a full month of them.
ROLL_END = (int(time.time()) // 86400 + 1) * 86400  # epoch seconds
BIG_TABLES = {"spans", "traces", "logs", "rollups_1m", "rollups_1h"}
ROLLUPS = ("rollups_1m", "rollups_1h", "rollups_1d")
ROLLUP_STEP = {"rollups_1m": 60, "rollups_1h": 3600, "rollups_1d": 86400}
ROLLUP_ROWS_PER_BUCKET = 30  # the fixture's: 10 agents x (runs, LLM calls, tool calls)
SMALL_RANGE = 10_000  # rollup rows of all agents

#: A recorded statement: (SQL, parameters, the SET LOCAL statements in force in its transaction).
Statement = tuple[str, Any, tuple[str, ...]]


class Recording(psycopg.Cursor[Any]):
    statements: list[Statement] = []
    _local: dict[int, list[str]] = {}  # per connection: SET LOCAL of the open transaction

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        text = query if isinstance(query, str) else str(query)
        conn = self.connection
        if conn.info.transaction_status == pq.TransactionStatus.IDLE:
            Recording._local[id(conn)] = []  # a new transaction: no SET LOCAL yet
        head = text.lstrip().upper()
        if head.startswith("SET LOCAL"):
            Recording._local.setdefault(id(conn), []).append(text)
        elif not head.startswith(("EXPLAIN", "SET", "SHOW", "BEGIN", "COMMIT")):
            local = tuple(Recording._local.get(id(conn), ()))
            Recording.statements.append((text, params, local))
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
            # Rollups as long as retention keeps them (minutes 14 days, hours and days 90):
            # per agent and bucket, agent runs, LLM calls (with a model) and tool calls.
            for table, step, days in (
                ("rollups_1m", 60, 14),
                ("rollups_1h", 3600, 90),
                ("rollups_1d", 86400, 90),
            ):
                conn.exec_driver_sql(
                    f"""
                    INSERT INTO {table} SELECT {ROLL_END} - b * {step}, 'agent-' || a,
                      k.model, k.kind, 10, 1, 100, 50, 0, 0, 0, 0, '{{}}'
                    FROM generate_series(1, {days * 86400 // step}) b, generate_series(0, 9) a,
                      (VALUES ('', 'request'), ('gpt-4o', 'llm'), ('', 'tool')) k(model, kind)
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


def _plans(url: str, statements: list[Statement]) -> list[tuple[str, dict[str, Any]]]:
    """Each statement's plan, with the SET LOCAL settings its transaction had."""
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        out = []
        for sql, params, local in statements:
            for setting in local:
                conn.execute(setting)
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
    # One agent's rollups: the index condition must seek the agent (its rows only), not walk
    # every agent's rows of the time range and drop the others. Where the range holds fewer
    # than SMALL_RANGE rows of all agents that costs a few index pages, and the planner rightly
    # prefers the primary key, whose rows lie in heap order.
    if ".agent = " in sql:
        for rel, cond in _rollup_index_conditions(plan_):
            lo, hi = (re.search(rf"bucket_start {op} '(\d+)'", cond) for op in (">=", "<"))
            buckets = (int(hi[1]) - int(lo[1])) // ROLLUP_STEP[rel] if lo and hi else None
            if buckets is not None and buckets * ROLLUP_ROWS_PER_BUCKET < SMALL_RANGE:
                continue
            assert cond.lstrip("(").startswith("agent = "), (
                f"{rel} read for one agent without seeking it ({cond}) in\n{sql}"
            )


def _rollup_index_conditions(plan_: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(rollup table, index condition) of each index read of a rollup table."""
    for n in _nodes(plan_):
        rel = n.get("Relation Name")
        if rel not in ROLLUPS:
            continue
        if n["Node Type"] in ("Index Scan", "Index Only Scan"):
            yield rel, n.get("Index Cond", "")
        elif n["Node Type"] == "Bitmap Heap Scan":
            for child in _nodes(n):
                if child["Node Type"] == "Bitmap Index Scan":
                    yield rel, child.get("Index Cond", "")


def _checked(url: str, statements: list[Statement]) -> list[str]:
    statements = [s for s in statements if any(t in s[0] for t in BIG_TABLES | set(ROLLUPS))]
    assert statements, "the work sent no query to check"
    for sql, plan_ in _plans(url, statements):
        _check(sql, plan_)
    return [sql for sql, _, _ in statements]


def _run_and_check(url: str, work: Any) -> list[str]:
    Recording.statements = []
    engine = _recording_engine(url)
    try:
        work(engine)
    finally:
        engine.dispose()
    return _checked(url, Recording.statements)


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
        since = T0 + 50_000 * 2_592_000_000
        for flt in (
            LogFilter(),
            LogFilter(since_ns=since),
            LogFilter(agent="agent-7"),
            LogFilter(trace_id=_md5(1234)),
        ):
            first = list_logs(engine, flt, limit=100, cursor=None)
            assert first["items"]
            list_logs(engine, flt, limit=100, cursor=first["next_cursor"])
        with engine.connect() as conn:
            logs_of_trace(conn, _md5(1234), 100)
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


def _md5(i: int) -> str:
    import hashlib

    return hashlib.md5(str(i).encode()).hexdigest()


def test_log_text_search_uses_the_trigram_index_or_the_time_walk(big_db: str) -> None:
    """The real ``q`` paths of query/logs.py: a rare text is read through the pg_trgm index
    (the bitmap scan its SET LOCALs ask for), a common one by walking the newest logs."""

    def work(engine: Engine) -> None:
        rare = list_logs(engine, LogFilter(q="line 4242"), limit=100, cursor=None)
        assert len(rare["items"]) == 11  # line 4242, line 42420-42429
        assert len(list_logs(engine, LogFilter(q="LINE 99"), limit=50, cursor=None)["items"]) == 50
        list_logs(engine, LogFilter(q="no such text"), limit=100, cursor=None)
        list_logs(engine, LogFilter(q="line 4242", agent="agent-2"), limit=100, cursor=None)

    Recording.statements = []
    engine = _recording_engine(big_db)
    try:
        work(engine)
    finally:
        engine.dispose()
    statements = Recording.statements
    index_reads = [s for s in statements if s[2] and "ILIKE" in s[0]]
    assert index_reads, "no text search went to the trigram index"
    assert all(any("enable_seqscan" in x for x in s[2]) for s in index_reads)
    sent = _checked(big_db, statements)
    assert any("walk_rank" in s for s in sent)  # the walk of the newest logs
    for sql, plan_ in _plans(big_db, index_reads):
        used = {n.get("Index Name") for n in _nodes(plan_)}
        assert "ix_logs_body_trgm" in used, (sql, used)


RULES = [
    ("Errors", "error_rate(5m) > 5 and requests(5m) > 5 by agent", "critical"),
    ("Slow", 'p95(latency, 10m, agent="agent-3") > 2000', "warning"),
    ("Spiky", "anomaly(p95(latency, 10m)) > 3 by agent", "warning"),
    ("Quiet", "requests(1h) == 0 by agent", "info"),
]


def test_dashboard_endpoints_and_alert_rules_use_indexes(big_db: str) -> None:
    """The summary, time series, agents, health and overview endpoints and an alert evaluation,
    through a real server: every statement they send is recorded as sent and checked."""
    Recording.statements = []

    def record(dbapi_conn: Any, _rec: Any) -> None:
        dbapi_conn.cursor_factory = Recording

    event.listen(Pool, "connect", record)  # every engine the server makes
    try:
        with (
            run_server(
                big_db,
                retention_enabled=False,
                grpc_enabled=False,
                alert_eval_interval_seconds=3600,
            ) as server,
            server.client() as client,
        ):
            for name, expression, severity in RULES:
                made = client.post(
                    "/api/v1/alerts/rules",
                    json={"name": name, "expression": expression, "severity": severity},
                )
                assert made.status_code == 201, made.text
            Recording.statements = []  # what the dashboard and the engine send from here
            calls: list[tuple[str, dict[str, str]]] = []
            for window in ("15m", "1h", "24h", "7d", "30d"):
                calls += [
                    ("/api/v1/metrics/summary", {"window": window}),
                    ("/api/v1/metrics/summary", {"window": window, "agent": "agent-3"}),
                ]
            calls += [
                ("/api/v1/metrics/summary", {"window": "24h", "model": "gpt-4o"}),
                ("/api/v1/metrics/timeseries", {"metric": "requests", "window": "24h"}),
                (
                    "/api/v1/metrics/timeseries",
                    {"metric": "latency_p95", "window": "24h", "group_by": "agent"},
                ),
                (
                    "/api/v1/metrics/timeseries",
                    {"metric": "error_rate", "window": "7d", "agent": "agent-3"},
                ),
                (
                    "/api/v1/metrics/timeseries",
                    {"metric": "tokens", "window": "1h", "interval": "1m", "agent": "agent-3"},
                ),
                (
                    "/api/v1/metrics/timeseries",
                    {"metric": "cost", "window": "30d", "group_by": "model"},
                ),
                ("/api/v1/agents", {"window": "1h"}),
                ("/api/v1/health", {"window": "15m"}),
                ("/api/v1/overview", {"window": "1h"}),
                ("/api/v1/overview", {"window": "24h"}),
            ]
            for path, params in calls:
                resp = client.get(path, params=params)
                assert resp.status_code == 200, (path, params, resp.text)
            assert (
                client.get("/api/v1/metrics/summary", params={"window": "30d"}).json()["requests"]
                > 0
            )  # the windows read real rollups
            cycle = client.post("/api/v1/alerts/evaluate")
            assert cycle.status_code == 200, cycle.text
            evaluated = cycle.json()
            assert evaluated["rules"] >= len(RULES) and not evaluated["errors"], evaluated
            assert evaluated["rollup_rows"] > 0
    finally:
        event.remove(Pool, "connect", record)
    statements = [
        s for s in Recording.statements if s[0].lstrip().upper().startswith(("SELECT", "WITH"))
    ]
    sent = _checked(big_db, statements)
    for table in ROLLUPS:
        assert any(f"FROM {table}" in s for s in sent), table
    assert any("rollups_1m.agent = " in s for s in sent)
