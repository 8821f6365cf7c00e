"""Retention benchmark: what pruning a day of spans costs, batched deletes vs dropping a daily
partition, on PostgreSQL (and batched deletes on SQLite).

    .venv/bin/python bench/retention.py                    # 3 days x 400k spans
    .venv/bin/python bench/retention.py --spans-per-day 1000000

Three days of spans (one trace per 8 spans, time-ordered, ~250-byte rows, with their `traces`
rows) are loaded into a fresh database. Then the oldest day is pruned the way Pharos does it
(ops/prune.py: batches of whole traces, each its own transaction) and the figure is spans
deleted per second and the longest batch (the longest any writer waits behind the pruner). As
the alternative, the same rows are copied into a table partitioned by day and that day's
partition is dropped (DETACH + DROP): the time it takes is the partitioning option's cost.
Both are timed on the same database in the same run; the ingest writer's own rate (bench/scale)
says how much of the day the pruning takes.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest as ib
from pharos.server.db.engine import make_engine
from pharos.server.db.migrate import upgrade
from pharos.server.ops import prune
from pharos.server.ops.retention import Target

ROOT = Path(__file__).resolve().parents[1]
console = Console()
DAY_NS = 86400 * 10**9


def load(url: str, per_day: int, days: int, t0: int) -> None:
    engine = make_engine(url, pool_size=1)
    step = DAY_NS // per_day
    total = per_day * days
    pg = not ib.is_sqlite(url)
    series = (
        "generate_series(0, {n}) i"
        if pg
        else "(WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s "
        "WHERE i < {n}) SELECT i FROM s)"
    )
    md5 = "md5" if pg else "hex"
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"""
            INSERT INTO spans (trace_id, span_id, parent_span_id, name, kind, span_kind, agent,
              model, service, start_ns, end_ns, duration_ms, status, attributes, events, links,
              resource)
            SELECT substr({md5}('t' || (i / 8)) || '00000000000000000000000000000000', 1, 32),
              substr({md5}('s' || i) || '0000000000000000', 1, 16), NULL, 'chat gpt-4o-mini',
              'llm', 1, 'bench-agent', 'gpt-4o-mini', 'svc', {t0} + CAST(i AS BIGINT) * {step},
              {t0} + CAST(i AS BIGINT) * {step} + 350000000, 350.0, 'ok',
              '{{"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
                "llm.prompt": "summarise the ticket and propose a reply"}}', '[]', '[]',
              '{{"service.name": "svc"}}'
            FROM {series.format(n=total - 1)}
            """
        )
        conn.exec_driver_sql(
            f"""
            INSERT INTO traces (trace_id, root_span_id, name, agent, agent_rank, start_ns,
              end_ns, duration_ms, span_count, error_count, llm_calls, tool_calls, input_tokens,
              output_tokens, cached_tokens, cost_nanousd, status, error_message, updated_ns)
            SELECT substr({md5}('t' || i) || '00000000000000000000000000000000', 1, 32), NULL,
              'run', 'bench-agent', 3, {t0} + CAST(i AS BIGINT) * 8 * {step},
              {t0} + CAST(i AS BIGINT) * 8 * {step} + 2000000000,
              2000, 8, 0, 8, 0, 0, 0, 0, 0, 'ok', NULL, 0
            FROM {series.format(n=total // 8 - 1)}
            """
        )
    engine.dispose()


def batched(url: str, cutoff: int, batch: int) -> prune.Pruned:
    engine = make_engine(url)
    try:
        target = Target("spans", "traces", "start_ns", cutoff, cutoff)
        return prune.prune(engine, target, batch)
    finally:
        engine.dispose()


def partition_drop(url: str, t0: int, days: int) -> tuple[float, int]:
    """Copy spans into a daily-partitioned table, then time dropping the first day."""
    engine = make_engine(url, pool_size=1)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE spans_p (LIKE spans INCLUDING DEFAULTS) PARTITION BY RANGE (start_ns)"
        )
        for d in range(days):
            lo, hi = t0 + d * DAY_NS, t0 + (d + 1) * DAY_NS
            conn.exec_driver_sql(
                f"CREATE TABLE spans_p_{d} PARTITION OF spans_p FOR VALUES FROM ({lo}) TO ({hi})"
            )
        conn.exec_driver_sql("CREATE INDEX ON spans_p (trace_id, span_id)")
        conn.exec_driver_sql("INSERT INTO spans_p SELECT * FROM spans")
    with engine.begin() as conn:
        rows = conn.exec_driver_sql("SELECT count(*) FROM spans_p_0").scalar_one()
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE spans_p DETACH PARTITION spans_p_0")
        conn.exec_driver_sql("DROP TABLE spans_p_0")
    seconds = time.perf_counter() - started
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE spans_p")
    engine.dispose()
    return seconds, int(rows)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--database-url", default=os.environ.get("PHAROS_TEST_POSTGRES_URL"))
    parser.add_argument("--spans-per-day", type=int, default=400_000)
    parser.add_argument("--batch-rows", type=int, default=5000)
    args = parser.parse_args()
    admin = args.database_url or "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    workdir = Path(tempfile.mkdtemp(prefix="pharos-retention-"))
    days = 3
    t0 = (time.time_ns() - 4 * DAY_NS) // DAY_NS * DAY_NS
    cutoff = t0 + DAY_NS
    table = Table(
        title=f"Pruning one day of {args.spans_per_day:,} spans (batches of {args.batch_rows} rows)"
    )
    for col in ("database", "method", "seconds", "spans/s", "longest lock ms"):
        table.add_column(col, justify="left" if col in ("database", "method") else "right")
    report: dict[str, object] = {"bench": "retention", "spans_per_day": args.spans_per_day}
    for kind in ("postgresql", "sqlite"):
        url = ib.fresh_database(admin if kind == "postgresql" else None, workdir, "ret")
        try:
            upgrade(url)
            with console.status(f"{kind}: loading {days} days"):
                load(url, args.spans_per_day, days, t0)
            if kind == "postgresql":
                with console.status("postgresql: partitioned copy, drop a day"):
                    secs, rows = partition_drop(url, t0, days)
                table.add_row(
                    kind,
                    "DETACH + DROP a daily partition",
                    f"{secs:.3f}",
                    f"{rows / secs:,.0f}",
                    f"{secs * 1000:.0f}",
                )
                report["postgresql_partition_drop"] = {"rows": rows, "seconds": secs}
            with console.status(f"{kind}: batched deletes"):
                result = batched(url, cutoff, args.batch_rows)
            rate = result.spans / result.seconds if result.seconds else 0.0
            table.add_row(
                kind,
                "batched deletes (Pharos)",
                f"{result.seconds:.1f}",
                f"{rate:,.0f}",
                f"{result.longest_batch_seconds * 1000:.0f}",
            )
            report[f"{kind}_batched"] = {
                "spans": result.spans,
                "seconds": result.seconds,
                "longest_batch_ms": result.longest_batch_seconds * 1000,
            }
            if kind == "sqlite":
                path = url.removeprefix("sqlite:///")
                with sqlite3.connect(path) as c:
                    free = c.execute("PRAGMA freelist_count").fetchone()[0]
                report["sqlite_freelist_pages_after"] = free
        finally:
            ib.drop_database(url, admin if kind == "postgresql" else None)
    console.print(table)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"retention-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2))
    console.print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
