"""Dashboard query benchmark: p50/p95 of the analytics calls over 10M spans' worth of data,
against a same-run baseline (a plain `SELECT count(*)` over the minute rollups).

    .venv/bin/python bench/query.py              # 30 days, ~10M spans' worth, SQLite
    .venv/bin/python bench/query.py --scale 0.1  # a tenth of that, for a quick look

History (30 days) is generated straight into the rollup and trace-summary tables — exactly the
rows the writer produces for such spans, which is all the dashboard reads. The last hour is real
ingest through a running `pharos serve`, plus one 500-span trace for the trace-detail call.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import text

from pharos.server.analytics import histogram as hist
from pharos.server.db.engine import make_engine
from pharos.server.db.migrate import upgrade
from pharos.server.demo import demo_requests

ROOT = Path(__file__).resolve().parents[1]
console = Console()
NS = 1_000_000_000
AGENTS = ("support-bot", "research-agent", "code-reviewer", "sql-analyst", "triage-router")
MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "claude-3-5-sonnet",
    "gemini-1.5-pro",
    "llama-3.1-70b",
    "o3-mini",
)
SPANS_PER_RUN = 7.5
COLS = (
    "bucket_start, agent, model, kind, count, errors, duration_sum_ms, duration_max_ms, "
    "input_tokens, output_tokens, cached_tokens, cost_nanousd, histogram"
)


def _histogram_pool(
    rng: random.Random, median_ms: float
) -> list[tuple[Counter[int], float, float]]:
    pool = []
    for _ in range(64):
        values = [rng.lognormvariate(0, 0.8) * median_ms for _ in range(rng.randint(1, 12))]
        pool.append((hist.from_values(values), sum(values), max(values)))
    return pool


def load_history(url: str, scale: float, days: int, seed: int) -> int:
    """Rollups (1m, 1h, 1d) and trace summaries for ``days`` days before the last hour."""
    rng = random.Random(seed)
    engine = make_engine(url, pool_size=1)
    now_min = int(time.time()) // 60 * 60
    start = now_min - days * 86400
    end = now_min - 3600
    runs_per_min = 10_000_000 * scale / SPANS_PER_RUN / (days * 1440)
    pools = {
        "request": _histogram_pool(rng, 1800),
        "llm": _histogram_pool(rng, 700),
        "tool": _histogram_pool(rng, 90),
    }
    coarse: dict[str, dict[tuple[int, str, str, str], list[Any]]] = {"1h": {}, "1d": {}}
    runs = 0
    with Progress(console=console) as progress, engine.begin() as conn:
        task = progress.add_task(
            "history: minute rollups + trace summaries", total=(end - start) // 60
        )
        minute_rows: list[tuple[Any, ...]] = []
        trace_rows: list[tuple[Any, ...]] = []
        for bucket in range(start, end, 60):
            for agent in AGENTS:
                n = max(0, round(rng.gauss(runs_per_min / len(AGENTS), 1)))
                if not n:
                    continue
                runs += n
                model = MODELS[hash(agent) % len(MODELS)]
                for kind, model_name, count in (
                    ("request", "", n),
                    ("llm", model, n * 3),
                    ("tool", "", n * 2),
                ):
                    h, total, peak = rng.choice(pools[kind])
                    errors = sum(1 for _ in range(count) if rng.random() < 0.03)
                    tin = count * 900 if kind == "llm" else 0
                    tout = count * 120 if kind == "llm" else 0
                    cost = count * 2_500_000 if kind == "llm" else 0
                    scaled = Counter(
                        {b: c * count // max(1, sum(h.values())) or 1 for b, c in h.items()}
                    )
                    row = [
                        bucket,
                        agent,
                        model_name,
                        kind,
                        count,
                        errors,
                        total * count,
                        peak,
                        tin,
                        tout,
                        0,
                        cost,
                        scaled,
                    ]
                    minute_rows.append((*row[:12], hist.dumps(scaled)))
                    for name, size in (("1h", 3600), ("1d", 86400)):
                        key = (bucket // size * size, agent, model_name, kind)
                        acc = coarse[name].get(key)
                        if acc is None:
                            coarse[name][key] = [*key, *row[4:12], Counter(scaled)]
                        else:
                            for i in range(4, 12):
                                acc[i] = max(acc[i], row[i]) if i == 7 else acc[i] + row[i]
                            acc[12].update(scaled)
                for i in range(n):
                    t0 = (bucket + rng.random() * 60) * NS
                    dur = rng.lognormvariate(0, 0.8) * 1800
                    failed = rng.random() < 0.03
                    trace_rows.append(
                        (
                            f"{rng.getrandbits(128):032x}",
                            f"{rng.getrandbits(64):016x}",
                            f"invoke_agent {agent}",
                            agent,
                            3,
                            int(t0),
                            int(t0 + dur * 1e6),
                            dur,
                            8,
                            int(failed),
                            3,
                            2,
                            2700,
                            360,
                            0,
                            7_500_000,
                            "error" if failed else "ok",
                            "RateLimitError: 429" if failed else None,
                            int(t0),
                            i,
                        )
                    )
            if len(minute_rows) > 20_000:
                _flush(conn, "rollups_1m", minute_rows)
                _flush_traces(conn, trace_rows)
            progress.advance(task)
        _flush(conn, "rollups_1m", minute_rows)
        _flush_traces(conn, trace_rows)
        for name, rows in coarse.items():
            _flush(conn, f"rollups_{name}", [(*r[:12], hist.dumps(r[12])) for r in rows.values()])
    engine.dispose()
    return runs


def _flush(conn: Any, table: str, rows: list[tuple[Any, ...]]) -> None:
    if rows:
        conn.exec_driver_sql(f"INSERT INTO {table} ({COLS}) VALUES ({','.join('?' * 13)})", rows)
        rows.clear()


def _flush_traces(conn: Any, rows: list[tuple[Any, ...]]) -> None:
    if rows:
        conn.exec_driver_sql(
            "INSERT INTO traces (trace_id, root_span_id, name, agent, agent_rank, start_ns, "
            "end_ns, duration_ms, span_count, error_count, llm_calls, tool_calls, input_tokens, "
            "output_tokens, cached_tokens, cost_nanousd, status, error_message, updated_ns) "
            f"VALUES ({','.join('?' * 19)})",
            [r[:19] for r in rows],
        )
        rows.clear()


def big_trace(spans: int = 500) -> tuple[str, bytes]:
    trace_id = os.urandom(16)
    start = time.time_ns() - 120 * NS
    out = [
        Span(
            trace_id=trace_id,
            span_id=(1).to_bytes(8, "big"),
            name="invoke_agent big",
            start_time_unix_nano=start,
            end_time_unix_nano=start + 60 * NS,
            attributes=[
                KeyValue(key="gen_ai.agent.name", value=AnyValue(string_value="research-agent"))
            ],
        )
    ]
    for i in range(2, spans + 1):
        parent = max(1, i // 3)
        s0 = start + i * 100_000_000
        out.append(
            Span(
                trace_id=trace_id,
                span_id=i.to_bytes(8, "big"),
                parent_span_id=parent.to_bytes(8, "big"),
                name=f"step {i}",
                start_time_unix_nano=s0,
                end_time_unix_nano=s0 + 80_000_000,
                attributes=[
                    KeyValue(key="gen_ai.operation.name", value=AnyValue(string_value="chat")),
                    KeyValue(key="gen_ai.usage.input_tokens", value=AnyValue(int_value=100)),
                ],
            )
        )
    req = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(
                    attributes=[
                        KeyValue(
                            key="service.name", value=AnyValue(string_value="research-service")
                        )
                    ]
                ),
                scope_spans=[ScopeSpans(spans=out)],
            )
        ]
    )
    return trace_id.hex(), req.SerializeToString()


def timed(fn: Any, n: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out  # in call order (the results file keeps them so)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * len(values)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 10M spans' worth")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("-n", type=int, default=40, help="timed calls per endpoint")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="pharos-qbench-"))
    url = f"sqlite:///{workdir / 'query.db'}"
    upgrade(url)
    runs = load_history(url, args.scale, args.days, args.seed)
    console.print(f"history: {runs:,} agent runs ≈ {runs * SPANS_PER_RUN / 1e6:.1f}M spans")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PHAROS_LOG_LEVEL": "warning", "PHAROS_GRPC_PORT": "0"}
    server = subprocess.Popen(
        [sys.executable, "-m", "pharos.cli", "serve", "--port", str(port), "--database-url", url],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        client = httpx.Client(base_url=base, timeout=60)
        live = 0
        with console.status("the last hour: real ingest"):
            for req in demo_requests(2500, seed=args.seed, window_seconds=3600):
                body = req.SerializeToString()
                client.post(
                    "/v1/traces", content=body, headers={"content-type": "application/x-protobuf"}
                ).raise_for_status()
                live += sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
            trace_id, body = big_trace()
            client.post(
                "/v1/traces", content=body, headers={"content-type": "application/x-protobuf"}
            ).raise_for_status()
        console.print(f"last hour: {live:,} spans ingested through HTTP, plus a 500-span trace")

        engine = make_engine(url)
        with engine.connect() as conn:
            baseline = timed(
                lambda: conn.execute(text("SELECT count(*) FROM rollups_1m")).one(), args.n
            )
            rollup_rows = conn.execute(text("SELECT count(*) FROM rollups_1m")).scalar_one()
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
            "trace detail (500 spans)": f"/api/v1/traces/{trace_id}",
            "healthz (HTTP floor)": "/healthz",
        }
        results: dict[str, list[float]] = {}
        for name, path in calls.items():
            results[name] = timed(lambda p=path: client.get(p).raise_for_status(), args.n)
    finally:
        server.terminate()
        server.wait(60)
        shutil.rmtree(workdir, ignore_errors=True)  # ~500 MB at full scale

    base_p95 = pct(baseline, 0.95)
    table = Table(
        title=f"Dashboard queries, SQLite, {runs * SPANS_PER_RUN / 1e6:.1f}M spans' "
        f"worth ({rollup_rows:,} minute-rollup rows), n={args.n}"
    )
    for col in ("call", "p50 ms", "p95 ms", "p95 / baseline", "target", ""):
        table.add_column(col, justify="right" if col != "call" else "left")
    table.add_row(
        "SELECT count(*) FROM rollups_1m (baseline)",
        f"{pct(baseline, 0.5):.1f}",
        f"{base_p95:.1f}",
        "1.0",
        "",
        "",
    )
    report: dict[str, Any] = {
        "bench": "query",
        "spans_equivalent": runs * SPANS_PER_RUN,
        "baseline_ms": {"p50": pct(baseline, 0.5), "p95": base_p95},
        "calls": {},
    }
    for name, values in results.items():
        p50, p95 = pct(values, 0.5), pct(values, 0.95)
        target = 30 if "detail" in name else (None if "healthz" in name else 50)
        ok = "" if target is None else ("ok" if p95 < target else "MISS")
        table.add_row(
            name,
            f"{p50:.1f}",
            f"{p95:.1f}",
            f"{p95 / base_p95:.1f}",
            "" if target is None else f"< {target}",
            ok,
        )
        report["calls"][name] = {
            "p50": p50,
            "p95": p95,
            "target_p95": target,
            "samples_ms": [round(v, 2) for v in values],
        }
    console.print(table)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"query-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2))
    console.print(f"results: {path}")


if __name__ == "__main__":
    main()
