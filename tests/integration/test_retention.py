"""Retention on a real server and database (SQLite and PostgreSQL): `pharos retention run
--dry-run` shows what would go and deletes nothing, the real run deletes exactly the old rows of
each signal (whole traces, logs with their SQLite full-text index, metric points, rollups by
resolution, error occurrences, alert history, delivered notifications), and the rollups keep
long-range charts right after the raw spans are gone. The background job does the same."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, func, insert, select
from typer.testing import CliRunner

from pharos.cli import app
from pharos.server.db.engine import make_engine, writing
from pharos.server.db.schema import (
    alert_events,
    error_occurrences,
    logs,
    metric_points,
    metric_series,
    outbox,
    rollups_1d,
    rollups_1h,
    rollups_1m,
    spans,
    traces,
)
from pharos.server.ops.job import RetentionJob
from pharos.server.ops.retention import plan
from pharos.server.settings import Settings
from tests.browser import seed
from tests.conftest import RunningServer, ServerFactory
from tests.log_helpers import log_record, logs_request

runner = CliRunner()
NS = 1_000_000_000
DAY = 86400
RUN_SPANS = 7  # seed.agent_run(steps=2): the agent span + (LLM, tool, retriever) per step


def _post_runs(server: RunningServer, agent: str, n: int, ago_s: float) -> list[str]:
    ids = []
    for _ in range(n):
        trace_id, spans_ = seed.agent_run(agent, steps=2, ago_s=ago_s)
        r = server.post(
            "/v1/traces",
            content=seed.request(spans_),
            headers={"content-type": "application/x-protobuf"},
        )
        assert r.status_code == 200, r.text
        ids.append(trace_id.hex())
    return ids


def _seed_other_signals(engine: Engine, now: int) -> None:
    with engine.begin() as conn:
        for i, (ago_h, body) in enumerate(
            [(48, "ancient needle one"), (30, "ancient needle two"), (1, "fresh needle")]
        ):
            t = now - ago_h * 3600 * NS
            conn.execute(
                insert(logs).values(
                    log_id=f"log{i}",
                    time_ns=t,
                    observed_ns=t,
                    severity_number=9,
                    level="info",
                    body=body,
                    body_json=False,
                    attributes="{}",
                    resource="{}",
                    agent="a",
                )
            )
        for key, ago_d in (("old-series", 9), ("live-series", 0)):
            t = now - ago_d * DAY * NS - NS
            conn.execute(
                insert(metric_series).values(
                    series_key=key,
                    name="queue.depth",
                    type="gauge",
                    temporality="",
                    monotonic=False,
                    unit="",
                    description="",
                    agent="a",
                    attributes="{}",
                    resource="{}",
                    first_seen_ns=t,
                    last_seen_ns=t,
                )
            )
            conn.execute(insert(metric_points).values(series_key=key, time_ns=t, value=1.0))
        # live-series also had a point long ago: that point goes, the series stays.
        conn.execute(
            insert(metric_points).values(series_key="live-series", time_ns=now - 8 * DAY * NS)
        )
        minute = now // NS // 60 * 60
        for table, ago_d in ((rollups_1m, 20), (rollups_1h, 100), (rollups_1h, 20)):
            bucket = (minute - ago_d * DAY) // 3600 * 3600
            conn.execute(
                insert(table).values(
                    bucket_start=bucket,
                    agent="ghost",
                    model="",
                    kind="request",
                    count=7,
                    errors=0,
                    duration_sum_ms=1.0,
                    duration_max_ms=1.0,
                    input_tokens=0,
                    output_tokens=0,
                    cached_tokens=0,
                    cost_nanousd=0,
                    histogram="{}",
                )
            )
        for ago_d, fp in ((40, "old"), (1, "new")):
            conn.execute(
                insert(error_occurrences).values(
                    bucket_start=minute - ago_d * DAY, fingerprint=fp, agent="a", count=1
                )
            )
        for ago_d in (40, 1):
            conn.execute(
                insert(alert_events).values(
                    alert_id=1, at_ns=now - ago_d * DAY * NS, event="firing", state="firing"
                )
            )
        for i, (ago_d, status) in enumerate(((40, "sent"), (40, "pending"), (1, "sent"))):
            conn.execute(
                insert(outbox).values(
                    idempotency_key=f"k{i}",
                    channel_id=1,
                    event="firing",
                    payload="{}",
                    status=status,
                    attempts=1,
                    # not due for a day: the server's outbox worker leaves the pending one alone
                    next_attempt_ns=now + DAY * NS,
                    created_ns=now - ago_d * DAY * NS,
                )
            )


def _count(engine: Engine, table: Any, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def _requests(server: RunningServer, window: str) -> int:
    return int(server.get("/api/v1/metrics/summary", params={"window": window}).json()["requests"])


def test_retention_run_dry_run_then_prune(make_server: ServerFactory, db_url: str) -> None:
    server = make_server(retention_enabled=False)
    engine = make_engine(db_url)
    try:
        now = time.time_ns()
        old = _post_runs(server, "old-agent", 3, ago_s=4 * DAY)
        new = _post_runs(server, "new-agent", 2, ago_s=60)
        _seed_other_signals(engine, now)
        spans_before = _count(engine, spans)
        assert _requests(server, "7d") == 5

        dry = runner.invoke(app, ["retention", "run", "--dry-run", "--database-url", db_url])
        assert dry.exit_code == 0, dry.output
        assert "would be deleted (dry run)" in dry.output
        assert _count(engine, spans) == spans_before  # nothing went
        # The table lists each target; the traces row names the spans that go with them.
        old_spans = _count(engine, spans, spans.c.trace_id.in_(old))
        assert old_spans == 3 * RUN_SPANS
        for table in ("traces", "logs", "metric_points", "rollups_1m", "outbox"):
            assert table in dry.output
        # 3 traces + their spans, 2 logs, 2 points + 1 series, a 1m and a 1h rollup row,
        # an error occurrence, an alert event and a sent notification
        assert f"{3 + old_spans + 2 + 3 + 2 + 1 + 1 + 1:,} rows would go" in dry.output

        run = runner.invoke(app, ["retention", "run", "--database-url", db_url])
        assert run.exit_code == 0, run.output
        assert "deleted" in run.output

        with engine.connect() as conn:
            kept = {r[0] for r in conn.execute(select(traces.c.trace_id))}
            stored = {r[0] for r in conn.execute(select(spans.c.trace_id).distinct())}
        assert kept == set(new) and stored == set(new)
        assert _count(engine, spans) == spans_before - old_spans
        assert {r for (r,) in _rows(engine, select(logs.c.body))} == {"fresh needle"}
        assert {r for (r,) in _rows(engine, select(metric_series.c.series_key))} == {"live-series"}
        assert _count(engine, metric_points) == 1
        assert _count(engine, rollups_1m, rollups_1m.c.agent == "ghost") == 0
        assert _count(engine, rollups_1h, rollups_1h.c.agent == "ghost") == 1  # 20 d < 90 d
        assert {r for (r,) in _rows(engine, select(error_occurrences.c.fingerprint))} == {"new"}
        assert _count(engine, alert_events) == 1
        # a pending notification is never pruned, however old
        assert {r for (r,) in _rows(engine, select(outbox.c.idempotency_key))} == {"k1", "k2"}
        if engine.dialect.name == "sqlite":  # the full-text index followed the deletes
            with engine.begin() as conn:
                conn.exec_driver_sql("INSERT INTO logs_fts(logs_fts) VALUES ('integrity-check')")
                hits = conn.exec_driver_sql(
                    "SELECT count(*) FROM logs_fts WHERE logs_fts MATCH 'needle'"
                ).scalar_one()
            assert hits == 1

        # Long-range numbers come from the rollups: the old runs still count over 7 days, the
        # chart still has their bar, and only the raw traces list lost them.
        assert _requests(server, "7d") == 5
        series = server.get(
            "/api/v1/metrics/timeseries",
            params={"metric": "requests", "window": "7d", "interval": "1h"},
        ).json()
        assert sum(v or 0 for v in series["series"][0]["values"]) == 5
        listed = server.get("/api/v1/traces", params={"limit": 50}).json()["items"]
        assert {t["trace_id"] for t in listed} == set(new)

        again = runner.invoke(app, ["retention", "run", "--dry-run", "--database-url", db_url])
        assert again.exit_code == 0 and "0 rows would go" in again.output
    finally:
        engine.dispose()


def _rows(engine: Engine, stmt: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(stmt))


def test_background_job_prunes_and_reports(make_server: ServerFactory, db_url: str) -> None:
    first = make_server(retention_enabled=False)
    old = _post_runs(first, "old-agent", 2, ago_s=5 * DAY)
    new = _post_runs(first, "new-agent", 1, ago_s=30)
    # Two instances with the job on: one holds the lease and prunes, the other stands by.
    a = make_server(retention_interval_seconds=0.3)
    b = make_server(retention_interval_seconds=0.3)
    engine = make_engine(db_url)
    try:
        deadline = time.monotonic() + 30
        while _count(engine, traces, traces.c.trace_id.in_(old)):
            assert time.monotonic() < deadline, "the retention job did not prune"
            time.sleep(0.2)
        assert _count(engine, traces, traces.c.trace_id.in_(new)) == 1
        checks = [s.get("/readyz").json()["checks"]["retention"] for s in (a, b)]
        assert sorted(c["leader"] for c in checks) == [False, True]
        leader = next(c for c in checks if c["leader"])
        assert leader["deleted"]["traces"] == 2
        assert leader["deleted"]["spans"] == 2 * RUN_SPANS
        assert leader["failures"] == 0 and leader["job"] == "running"
    finally:
        engine.dispose()


# --- several batches -----------------------------------------------------------------------

BATCH = 100  # the smallest PHAROS_RETENTION_BATCH_ROWS: a trace batch is BATCH // 10 traces


def _post_logs(server: RunningServer, bodies_and_times: list[tuple[str, int]]) -> None:
    for start in range(0, len(bodies_and_times), 100):
        records = [log_record(b, time_ns=t) for b, t in bodies_and_times[start : start + 100]]
        resp = server.post(
            "/v1/logs",
            content=logs_request(records).SerializeToString(),
            headers={"content-type": "application/x-protobuf"},
        )
        assert resp.status_code == 200, resp.text


def _rollup_keys(engine: Engine, table: Any) -> set[tuple[Any, ...]]:
    t = table.c
    return set(_rows(engine, select(t.bucket_start, t.agent, t.model, t.kind, t["count"])))


def test_retention_prunes_in_many_small_batches(make_server: ServerFactory, db_url: str) -> None:
    """With the smallest batch (100 rows), every signal needs several batches: each batch
    deletes at most its share, exactly the old rows go, the new ones and the coarse rollups
    stay, and long-range numbers are still right once the raw rows and minute rollups are
    gone."""
    server = make_server(retention_enabled=False)
    engine = make_engine(db_url)
    try:
        now = time.time_ns()
        # 120 old runs, 20 days ago, each in its own minute (many minute-rollup rows), sent
        # ten runs a request; 5 new runs.
        old: list[str] = []
        for first in range(0, 120, 10):
            runs = [
                seed.agent_run("old-agent", steps=2, ago_s=20 * DAY + i * 60)
                for i in range(first, first + 10)
            ]
            spans_ = [s for _, run in runs for s in run]
            resp = server.post(
                "/v1/traces",
                content=seed.request(spans_),
                headers={"content-type": "application/x-protobuf"},
            )
            assert resp.status_code == 200, resp.text
            old += [trace_id.hex() for trace_id, _ in runs]
        new = _post_runs(server, "new-agent", 5, ago_s=60)
        # 350 logs older than the 24 h retention, 20 fresh ones.
        _post_logs(server, [(f"old line {i}", now - 30 * 3600 * NS - i * NS) for i in range(350)])
        _post_logs(server, [(f"fresh line {i}", now - i * NS) for i in range(20)])
        # 250 metric points older than 7 days (of one series seen lately), 10 new.
        with writing(engine).begin() as conn:
            conn.execute(
                insert(metric_series).values(
                    series_key="busy",
                    name="queue.depth",
                    type="gauge",
                    temporality="",
                    monotonic=False,
                    unit="",
                    description="",
                    agent="a",
                    attributes="{}",
                    resource="{}",
                    first_seen_ns=now - 9 * DAY * NS,
                    last_seen_ns=now,
                )
            )
            conn.execute(
                insert(metric_points),
                [
                    {"series_key": "busy", "time_ns": now - 8 * DAY * NS - i * NS, "value": 1.0}
                    for i in range(250)
                ]
                + [
                    {"series_key": "busy", "time_ns": now - i * NS, "value": 2.0} for i in range(10)
                ],
            )

        settings = Settings(database_url=db_url, retention_batch_rows=BATCH)
        cut = {t.table: t.cutoff for t in plan(settings, time.time_ns())}
        old_minutes = _count(engine, rollups_1m, rollups_1m.c.bucket_start < cut["rollups_1m"])
        assert old_minutes > 2 * BATCH  # several batches of minute rollups too
        hours_before = _rollup_keys(engine, rollups_1h)
        days_before = _rollup_keys(engine, rollups_1d)
        new_minutes = _rollup_keys(engine, rollups_1m) - {
            k for k in _rollup_keys(engine, rollups_1m) if k[0] < cut["rollups_1m"]
        }
        assert _requests(server, "30d") == 125

        job = RetentionJob(
            engine, settings, interval_seconds=300, batch_rows=settings.retention_batch_rows
        )
        done = {r.target.table: r for r in job.run_once()}
        assert job.leader

        def batches(rows: int, per_batch: int) -> int:
            return -(-rows // per_batch)

        traces_done = done["traces"]
        assert (traces_done.rows, traces_done.spans) == (120, 120 * RUN_SPANS)
        assert traces_done.batches == batches(120, BATCH // 10) == 12
        assert (done["logs"].rows, done["logs"].batches) == (350, 4)
        assert (done["metric_points"].rows, done["metric_points"].batches) == (250, 3)
        assert done["rollups_1m"].rows == old_minutes
        assert done["rollups_1m"].batches == batches(old_minutes, BATCH)
        for table in ("metric_series", "rollups_1h", "rollups_1d", "llm_usage_daily"):
            assert (done[table].rows, done[table].batches) == (0, 0), table
        assert job.deleted["spans"] == 120 * RUN_SPANS

        # Exactly the old rows went.
        assert {r for (r,) in _rows(engine, select(traces.c.trace_id))} == set(new)
        assert {r for (r,) in _rows(engine, select(spans.c.trace_id).distinct())} == set(new)
        assert _count(engine, spans) == 5 * RUN_SPANS
        bodies = {r for (r,) in _rows(engine, select(logs.c.body))}
        assert bodies == {f"fresh line {i}" for i in range(20)}
        assert {v for (v,) in _rows(engine, select(metric_points.c.value))} == {2.0}
        assert _count(engine, metric_points) == 10
        assert _rollup_keys(engine, rollups_1m) == new_minutes
        # The coarse rollups outlive the raw data, row for row.
        assert _rollup_keys(engine, rollups_1h) == hours_before
        assert _rollup_keys(engine, rollups_1d) == days_before
        assert _requests(server, "30d") == 125
        series = server.get(
            "/api/v1/metrics/timeseries",
            params={"metric": "requests", "window": "30d", "interval": "1d"},
        ).json()
        assert sum(v or 0 for v in series["series"][0]["values"]) == 125
        assert _requests(server, "1h") == 5
        if engine.dialect.name == "sqlite":  # the full-text index followed every batch
            with engine.begin() as conn:
                conn.exec_driver_sql("INSERT INTO logs_fts(logs_fts) VALUES ('integrity-check')")
                hits = conn.exec_driver_sql(
                    "SELECT count(*) FROM logs_fts WHERE logs_fts MATCH 'line'"
                ).scalar_one()
            assert hits == 20

        # Nothing is left to prune: one empty pass, no batch.
        again = job.run_once()
        assert all((r.rows, r.batches) == (0, 0) for r in again)
    finally:
        engine.dispose()
