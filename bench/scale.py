"""Scale-out benchmark on PostgreSQL: durable ingest spans/s with 1 and 2 `pharos serve`
instances against a same-run floor, and dashboard query p95 with 10M spans stored.

    .venv/bin/python bench/scale.py                       # 120k spans; 10M-span query part
    .venv/bin/python bench/scale.py --quick               # 40k spans; 1M spans for queries
    .venv/bin/python bench/scale.py --skip-queries        # the ingest part only
    .venv/bin/python bench/scale.py --database-url postgresql+psycopg://postgres@127.0.0.1/test

Ingest: the corpus of bench/ingest.py (seeded demo traffic in 512-span OTLP requests). The
floor is a bare single-threaded loop over the same request bytes: ParseFromString, the same
span rows, and ``COPY spans FROM STDIN`` with one transaction per request (no HTTP, no
conventions, no trace summaries, no rollups) on a fresh database. Pharos runs on a fresh
database each time: 1 instance with C clients, then 2 instances with C clients split between
them. Every span must be stored once afterwards or the run fails. CPU seconds of the Pharos
processes, of the PostgreSQL server processes and of this process (the clients) per wall
second say which one is saturated: the bottleneck.

Queries: N spans (generate_series, ~250-byte rows, one trace per 8 spans, spread over 30 days,
arriving in time order) plus 30 days of rollups and trace summaries as bench/query.py makes
them, then the last hour through HTTP and one 500-span trace; p50/p95 of the dashboard calls
over n calls each, against `SELECT count(*) FROM rollups_1m` as the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest as ib
import query as qb
from pharos.server.db.engine import make_engine
from pharos.server.db.migrate import upgrade
from pharos.server.db.schema import spans

ROOT = Path(__file__).resolve().parents[1]
console = Console()
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SPAN_COLUMNS = [c.name for c in spans.columns if c.name != "id"]


# --- CPU accounting -------------------------------------------------------------------------------


def postgres_pids() -> list[int]:
    out = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if comm.read_text().strip() in ("postgres", "postmaster"):
                out.append(int(comm.parent.name))
    return out


def postgres_cpu() -> float:
    """CPU seconds of every PostgreSQL process now (backends come and go: diff two calls)."""
    return sum(ib._cpu_seconds(pid) for pid in postgres_pids())


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (all cores, everything running on it)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / ib._TICK


@dataclass
class Cores:
    pharos: float
    postgres: float
    clients: float
    machine: float = 0.0  # every process on the machine, this run's and others'

    @property
    def others(self) -> float:
        return max(0.0, self.machine - self.total)

    @property
    def total(self) -> float:
        return self.pharos + self.postgres + self.clients


# --- the floor: COPY by a bare loop -------------------------------------------------------------


def run_copy_floor(corpus: ib.Corpus, url: str) -> float:
    upgrade(url)
    engine = make_engine(url, pool_size=1)
    copy_sql = f"COPY spans ({', '.join(SPAN_COLUMNS)}) FROM STDIN"
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
            conn.commit()
            raw = conn.connection.dbapi_connection
            assert raw is not None
            started = time.perf_counter()
            for body in corpus.bodies:
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                rows = ib.floor_rows(request)
                with raw.cursor() as cur, cur.copy(copy_sql) as copy:
                    for row in rows:
                        copy.write_row(row)
                raw.commit()
            elapsed = time.perf_counter() - started
    finally:
        engine.dispose()
    stored, _ = ib.stored_counts(url)
    if stored != corpus.spans:
        raise SystemExit(f"floor: {stored} spans stored, expected {corpus.spans}")
    return corpus.spans / elapsed


# --- Pharos with k instances --------------------------------------------------------------------


@dataclass
class ScaleRun:
    instances: int
    spans_per_s: float
    seconds: float
    p95_ms: float
    retries: int
    cores: Cores


def start_servers(url: str, k: int, workdir: Path) -> list[tuple[subprocess.Popen[bytes], str]]:
    pharos = ib.BIN / "pharos"
    command = [str(pharos)] if pharos.exists() else [sys.executable, "-m", "pharos.cli"]
    env = {
        **os.environ,
        "PHAROS_LOG_LEVEL": "warning",
        "PHAROS_GRPC_PORT": "0",
        "PHAROS_AUTO_MIGRATE": "false",
        "PHAROS_RETENTION_ENABLED": "false",
    }
    out = []
    for i in range(k):
        port = ib.free_port()
        log = workdir / f"server{i}.log"
        proc = subprocess.Popen(
            [*command, "serve", "--port", str(port), "--database-url", url],
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
        base = f"http://127.0.0.1:{port}"
        ib._wait_ready(proc, base, log)
        out.append((proc, base))
    return out


def run_instances(corpus: ib.Corpus, url: str, k: int, clients: int, workdir: Path) -> ScaleRun:
    upgrade(url)
    servers = start_servers(url, k, workdir)
    try:
        shares = [corpus.bodies[i::k] for i in range(k)]
        pids = [p.pid for p, _ in servers]
        before_pharos = sum(sum(ib.tree_cpu_seconds(pid)) for pid in pids)
        before_pg = postgres_cpu()
        before_me = time.process_time()
        before_machine = machine_busy()

        async def everything() -> list[tuple[list[float], Any, float]]:
            return await asyncio.gather(
                *(
                    ib.send_all(base, share, max(1, clients // k))
                    for (_, base), share in zip(servers, shares, strict=True)
                )
            )

        started = time.perf_counter()
        results = asyncio.run(everything())
        wall = time.perf_counter() - started
        cores = Cores(
            (sum(sum(ib.tree_cpu_seconds(pid)) for pid in pids) - before_pharos) / wall,
            (postgres_cpu() - before_pg) / wall,
            (time.process_time() - before_me) / wall,
            (machine_busy() - before_machine) / wall,
        )
        stored, traces = ib.stored_counts(url)
    finally:
        for proc, _ in servers:
            ib._stop(proc)
    if stored != corpus.spans or traces != corpus.traces:
        raise SystemExit(
            f"FAILED: {stored} spans / {traces} traces stored, expected "
            f"{corpus.spans} / {corpus.traces}"
        )
    latencies = [x for r in results for x in r[0]]
    retries = sum(sum(r[1].values()) for r in results)
    return ScaleRun(k, corpus.spans / wall, wall, ib.percentile(latencies, 0.95), retries, cores)


# --- queries at N spans -------------------------------------------------------------------------


def _pg_flush(conn: Any, table: str, rows: list[tuple[Any, ...]]) -> None:
    if rows:
        conn.exec_driver_sql(
            f"INSERT INTO {table} ({qb.COLS}) VALUES ({','.join(['%s'] * 13)})", rows
        )
        rows.clear()


def _pg_flush_traces(conn: Any, rows: list[tuple[Any, ...]]) -> None:
    if rows:
        conn.exec_driver_sql(
            "INSERT INTO traces (trace_id, root_span_id, name, agent, agent_rank, start_ns, "
            "end_ns, duration_ms, span_count, error_count, llm_calls, tool_calls, input_tokens, "
            "output_tokens, cached_tokens, cost_nanousd, status, error_message, updated_ns) "
            f"VALUES ({','.join(['%s'] * 19)})",
            [r[:19] for r in rows],
        )
        rows.clear()


def load_spans(url: str, n_spans: int, days: int) -> None:
    """``n_spans`` raw span rows over ``days`` days before the last hour, in time order."""
    engine = make_engine(url, pool_size=1)
    now = time.time_ns() - 3600 * 10**9
    start = now - days * 86400 * 10**9
    step = (now - start) // max(1, n_spans)
    chunk = 500_000
    with Progress(console=console) as progress:
        task = progress.add_task(f"{n_spans:,} raw spans", total=n_spans)
        for lo in range(0, n_spans, chunk):
            hi = min(n_spans, lo + chunk)
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    f"""
                    INSERT INTO spans (trace_id, span_id, parent_span_id, name, kind, span_kind,
                      agent, model, service, start_ns, end_ns, duration_ms, status,
                      input_tokens, output_tokens, cost_nanousd, attributes, events, links,
                      resource)
                    SELECT md5('t' || (i / 8)), substr(md5('s' || i), 1, 16),
                      CASE WHEN mod(i, 8) = 0 THEN NULL
                           ELSE substr(md5('s' || (i - mod(i, 8))), 1, 16) END,
                      CASE WHEN mod(i, 8) = 0 THEN 'invoke_agent' ELSE 'chat gpt-4o-mini' END,
                      CASE WHEN mod(i, 8) = 0 THEN 'agent' ELSE 'llm' END, 1,
                      (ARRAY['support-bot','research-agent','code-reviewer','sql-analyst',
                             'triage-router'])[1 + mod(i / 8, 5)],
                      'gpt-4o-mini', 'svc', {start} + i * {step}::bigint,
                      {start} + i * {step}::bigint + 350000000, 350.0,
                      CASE WHEN mod(i, 97) = 0 THEN 'error' ELSE 'ok' END, 900, 120, 2500000,
                      '{{"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
                        "gen_ai.usage.input_tokens": 900, "gen_ai.usage.output_tokens": 120,
                        "llm.prompt": "summarise the ticket and propose a reply"}}',
                      '[]', '[]', '{{"service.name": "svc", "deployment.environment": "prod"}}'
                    FROM generate_series({lo}, {hi - 1}) i
                    """
                )
            progress.update(task, completed=hi)
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()


def run_queries(url: str, n_spans: int, n: int, workdir: Path) -> dict[str, Any]:
    upgrade(url)
    qb._flush, qb._flush_traces = _pg_flush, _pg_flush_traces  # PostgreSQL placeholders
    load_spans(url, n_spans, 30)
    runs = qb.load_history(url, n_spans / 10_000_000, 30, 5)
    console.print(f"history: {runs:,} agent runs in rollups + trace summaries")
    servers = start_servers(url, 1, workdir)
    proc, base = servers[0]
    try:
        client = httpx.Client(base_url=base, timeout=120)
        from pharos.server.demo import demo_requests

        with console.status("the last hour: real ingest"):
            for req in demo_requests(2500, seed=5, window_seconds=3600):
                client.post(
                    "/v1/traces",
                    content=req.SerializeToString(),
                    headers={"content-type": "application/x-protobuf"},
                ).raise_for_status()
            trace_id, body = qb.big_trace()
            client.post(
                "/v1/traces", content=body, headers={"content-type": "application/x-protobuf"}
            ).raise_for_status()
        engine = make_engine(url)
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
        with engine.connect() as conn:
            baseline = qb.timed(
                lambda: conn.execute(text("SELECT count(*) FROM rollups_1m")).one(), n
            )
            stored = conn.execute(text("SELECT count(*) FROM spans")).scalar_one()
            size = conn.execute(text("SELECT pg_total_relation_size('spans')")).scalar_one()
        engine.dispose()
        calls = {
            "summary 1h": "/api/v1/metrics/summary?window=1h",
            "summary 24h": "/api/v1/metrics/summary?window=24h",
            "summary 30d": "/api/v1/metrics/summary?window=30d",
            "timeseries 24h by agent": "/api/v1/metrics/timeseries?metric=latency_p95&window=24h"
            "&group_by=agent",
            "overview 1h": "/api/v1/overview?window=1h",
            "agents 24h": "/api/v1/agents?window=24h",
            "traces list": "/api/v1/traces?limit=50",
            "traces list, errors": "/api/v1/traces?limit=50&status=error",
            "trace detail (500 spans)": f"/api/v1/traces/{trace_id}",
            "healthz (HTTP floor)": "/healthz",
        }
        results = {
            name: qb.timed(lambda p=path: client.get(p).raise_for_status(), n)
            for name, path in calls.items()
        }
        client.close()
    finally:
        ib._stop(proc)
    return {
        "spans_stored": int(stored),
        "spans_bytes": int(size),
        "baseline": baseline,
        "calls": results,
    }


# --- report -------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--database-url", default=os.environ.get("PHAROS_BENCH_POSTGRES_URL"))
    parser.add_argument("--spans", type=int, default=120_000, help="ingest corpus size")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients in total")
    parser.add_argument("--query-spans", type=int, default=10_000_000)
    parser.add_argument("-n", type=int, default=40, help="timed calls per dashboard endpoint")
    parser.add_argument("--quick", action="store_true", help="40k spans; 1M for queries")
    parser.add_argument("--skip-queries", action="store_true")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    if args.quick:
        args.spans, args.query_spans, args.n = 40_000, 1_000_000, 20
    admin = args.database_url or os.environ.get("PHAROS_TEST_POSTGRES_URL") or DEFAULT_PG
    workdir = Path(tempfile.mkdtemp(prefix="pharos-scale-"))
    console.print(
        f"PostgreSQL: {admin.split('@')[-1]}   workdir: {workdir}   cores: {os.cpu_count()}   "
        f"load average: {os.getloadavg()[0]:.1f} (other work on the machine skews every figure)"
    )
    load_before = os.getloadavg()[0]

    report: dict[str, Any] = {"bench": "scale", "cores": os.cpu_count()}
    if not args.skip_ingest:
        corpus = ib.build_corpus(args.spans, args.seed)
        console.print(
            f"corpus: {corpus.spans:,} spans, {corpus.traces:,} traces, "
            f"{len(corpus.bodies)} requests, {corpus.megabytes:.1f} MB"
        )
        floors: list[float] = []
        runs: list[ScaleRun] = []
        for step in ("floor", 1, "floor", 2, "floor"):
            url = ib.fresh_database(admin, workdir, "scale")
            try:
                if step == "floor":
                    with console.status("floor: COPY by a bare loop"):
                        floors.append(run_copy_floor(corpus, url))
                else:
                    with console.status(f"Pharos x{step}"):
                        runs.append(run_instances(corpus, url, int(step), args.clients, workdir))
            finally:
                ib.drop_database(url, admin)
        floor = sum(floors) / len(floors)
        one, two = runs
        table = Table(
            title=f"Durable ingest on PostgreSQL, {corpus.spans:,} spans, "
            f"{args.clients} clients, {os.cpu_count()} cores"
        )
        for col in (
            "run",
            "spans/s",
            "ratio",
            "p95 ms",
            "retries",
            "cores: pharos",
            "postgres",
            "clients",
            "total",
            "other work",
        ):
            table.add_column(col, justify="left" if col == "run" else "right")
        table.add_row("floor: COPY, bare loop (mean of 3)", f"{floor:,.0f}", "1.00", *[""] * 7)
        for run in runs:
            table.add_row(
                f"Pharos x{run.instances}",
                f"{run.spans_per_s:,.0f}",
                f"{run.spans_per_s / floor:.2f}",
                f"{run.p95_ms:.0f}",
                str(run.retries),
                f"{run.cores.pharos:.2f}",
                f"{run.cores.postgres:.2f}",
                f"{run.cores.clients:.2f}",
                f"{run.cores.total:.2f}",
                f"{run.cores.others:.2f}",
            )
        console.print(table)
        scale = two.spans_per_s / one.spans_per_s
        cores = os.cpu_count() or 1
        if two.cores.machine >= 0.85 * cores:
            where = (
                f"the machine's {cores} cores, busy {two.cores.machine:.2f} during x2: Pharos "
                f"{two.cores.pharos:.2f}, PostgreSQL {two.cores.postgres:.2f}, clients "
                f"{two.cores.clients:.2f}, other work {two.cores.others:.2f}; a second instance "
                "only adds throughput with cores to run on"
            )
        elif two.cores.postgres >= max(two.cores.pharos / 2, 0.8):
            where = f"PostgreSQL ({two.cores.postgres:.2f} cores busy)"
        else:
            where = "neither CPU nor PostgreSQL is saturated: the clients' concurrency"
        console.print(
            f"Pharos x1 / floor = {one.spans_per_s / floor:.2f} (target >= 0.5);  "
            f"x2 / x1 = {scale:.2f} (target >= 1.6 where the database is not the bottleneck)\n"
            f"bottleneck: {where}\n"
            f"load average before/after: {load_before:.1f} / {os.getloadavg()[0]:.1f} "
            f"on {cores} cores"
        )
        report |= {
            "cores": cores,
            "corpus_spans": corpus.spans,
            "floor_spans_per_s": floors,
            "runs": [
                {
                    "instances": r.instances,
                    "spans_per_s": r.spans_per_s,
                    "p95_ms": r.p95_ms,
                    "retries": r.retries,
                    "cores": {
                        "pharos": r.cores.pharos,
                        "postgres": r.cores.postgres,
                        "clients": r.cores.clients,
                    },
                }
                for r in runs
            ],
            "bottleneck": where,
            "load_average": [load_before, os.getloadavg()[0]],
        }

    if not args.skip_queries:
        url = ib.fresh_database(admin, workdir, "query")
        try:
            q = run_queries(url, args.query_spans, args.n, workdir)
        finally:
            ib.drop_database(url, admin)
        base_p95 = qb.pct(q["baseline"], 0.95)
        qt = Table(
            title=f"Dashboard queries on PostgreSQL, {q['spans_stored']:,} spans stored "
            f"({q['spans_bytes'] / 1e9:.1f} GB with indexes), n={args.n}"
        )
        for col in ("call", "p50 ms", "p95 ms", "p95 / baseline"):
            qt.add_column(col, justify="left" if col == "call" else "right")
        qt.add_row(
            "SELECT count(*) FROM rollups_1m (baseline)",
            f"{qb.pct(q['baseline'], 0.5):.1f}",
            f"{base_p95:.1f}",
            "1.0",
        )
        report["queries"] = {"spans": q["spans_stored"], "baseline_p95": base_p95, "calls": {}}
        for name, values in q["calls"].items():
            p50, p95 = qb.pct(values, 0.5), qb.pct(values, 0.95)
            qt.add_row(name, f"{p50:.1f}", f"{p95:.1f}", f"{p95 / base_p95:.1f}")
            report["queries"]["calls"][name] = {"p50": p50, "p95": p95}
        console.print(qt)

    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"scale-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2))
    console.print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
