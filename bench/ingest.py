"""Ingest benchmark: durable spans/s through a real `pharos serve` against a same-run floor.

    .venv/bin/python bench/ingest.py            # 200k+ spans, 4 clients, SQLite
    .venv/bin/python bench/ingest.py --quick    # ~30k spans
    .venv/bin/python bench/ingest.py --database-url postgresql+psycopg://postgres@127.0.0.1/test

The corpus is a fixed, seeded set of realistic agent traces (pharos.server.demo) in OTLP
protobuf requests of 512 spans, serialised before timing. Pharos' figure counts a span only when
its request got a 200 *and* it is queryable at the end. The floor, measured in the same run on a
fresh database of the same kind, is a bare single-threaded loop that decodes the same request
bytes and inserts the same columns into the same schema, one transaction per request, with the
same durability (WAL + synchronous=FULL on SQLite): no HTTP, no convention mapping, no summary
rows, no rollups. The machine is shared and noisy, so the result is the ratio Pharos / floor.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from pharos.server.db.engine import make_engine
from pharos.server.db.migrate import upgrade
from pharos.server.db.schema import spans
from pharos.server.demo import demo_requests
from pharos.server.ingest.normalize import any_value

ROOT = Path(__file__).resolve().parents[1]
console = Console()


@dataclass
class Corpus:
    bodies: list[bytes]
    spans: int


def build_corpus(target_spans: int, seed: int) -> Corpus:
    traces = max(1, round(target_spans / 7.3))
    bodies: list[bytes] = []
    count = 0
    while count < target_spans:
        bodies, count = [], 0
        for request in demo_requests(traces, seed=seed, max_spans=512):
            bodies.append(request.SerializeToString())
            count += sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        traces = int(traces * 1.05) + 1
    return Corpus(bodies, count)


# --- databases ---------------------------------------------------------------------------------


def fresh_database(base_url: str | None, workdir: Path, name: str) -> str:
    if base_url is None or base_url.startswith("sqlite"):
        return f"sqlite:///{workdir / name}.db"
    url = make_url(base_url).set(drivername="postgresql+psycopg")
    db = f"pharos_bench_{name}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{db}"'))
    admin.dispose()
    return url.set(database=db).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    if url.startswith("sqlite"):
        return
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
    admin.dispose()


# --- the floor ---------------------------------------------------------------------------------


def _attrs_json(kvs: Any) -> str:
    return orjson.dumps({kv.key: any_value(kv.value, 1 << 30) for kv in kvs}).decode()


def floor(corpus: Corpus, url: str) -> float:
    """Decode + insert the same columns, one transaction per request, single thread."""
    upgrade(url)
    engine = make_engine(url, pool_size=1)
    columns = [c.name for c in spans.columns if c.name != "id"]
    placeholders = ", ".join("?" if url.startswith("sqlite") else "%s" for _ in columns)
    sql = f"INSERT INTO spans ({', '.join(columns)}) VALUES ({placeholders})"
    started = time.perf_counter()
    with engine.connect() as conn:
        for body in corpus.bodies:
            request = ExportTraceServiceRequest.FromString(body)
            rows = []
            for rs in request.resource_spans:
                resource = _attrs_json(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        duration = (s.end_time_unix_nano - s.start_time_unix_nano) / 1e6
                        events = orjson.dumps(
                            [
                                {
                                    "name": e.name,
                                    "time_unix_nano": e.time_unix_nano,
                                    "attributes": {
                                        kv.key: any_value(kv.value, 1 << 30) for kv in e.attributes
                                    },
                                }
                                for e in s.events
                            ]
                        ).decode()
                        rows.append(
                            (
                                s.trace_id.hex(),
                                s.span_id.hex(),
                                s.parent_span_id.hex() or None,
                                s.name,
                                "span",
                                int(s.kind),
                                "agent",
                                None,
                                None,
                                s.start_time_unix_nano,
                                s.end_time_unix_nano,
                                duration,
                                "ok",
                                s.status.message or None,
                                None,
                                None,
                                None,
                                None,
                                _attrs_json(s.attributes),
                                events,
                                "[]",
                                resource,
                                ss.scope.name,
                            )
                        )
            with conn.begin():
                conn.exec_driver_sql(sql, rows)
    elapsed = time.perf_counter() - started
    engine.dispose()
    return corpus.spans / elapsed


# --- Pharos ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_tree_rss_mb(pid: int) -> float:
    """RSS of the server and its child processes (the ingest workers), in MB."""
    total_kb = 0
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            pids += [int(c) for c in (task / "children").read_text().split()]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            pass
    return total_kb / 1024


@dataclass
class RunResult:
    spans_per_s: float
    latencies_ms: list[float]
    retries: int
    peak_rss_mb: float
    stored: int
    samples: list[float] = field(default_factory=list)


async def _send_all(url: str, bodies: list[bytes], clients: int) -> tuple[list[float], int]:
    queue = list(reversed(bodies))
    latencies: list[float] = []
    retries = 0

    async def client() -> None:
        nonlocal retries
        async with httpx.AsyncClient(base_url=url, timeout=120) as c:
            while queue:
                body = queue.pop()
                started = time.perf_counter()
                while True:
                    resp = await c.post(
                        "/v1/traces",
                        content=body,
                        headers={"content-type": "application/x-protobuf"},
                    )
                    if resp.status_code == 200:
                        break
                    if resp.status_code not in (429, 503):
                        raise RuntimeError(f"server answered {resp.status_code}: {resp.text}")
                    retries += 1
                    await asyncio.sleep(float(resp.headers.get("retry-after", "0.1")) / 10)
                latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, retries


def run_pharos(
    corpus: Corpus, url: str, clients: int, workers: int, profile: Path | None
) -> RunResult:
    port = free_port()
    env = {**os.environ, "PHAROS_LOG_LEVEL": "warning", "PHAROS_INGEST_WORKERS": str(workers)}
    server = subprocess.Popen(
        [sys.executable, "-m", "pharos.cli", "serve", "--port", str(port), "--database-url", url],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    spy = None
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server did not start: " + server.stderr.read().decode()[-2000:])
            time.sleep(0.1)
        if profile is not None:
            spy = subprocess.Popen(
                [
                    str(ROOT / ".venv/bin/py-spy"),
                    "record",
                    "-p",
                    str(server.pid),
                    "--subprocesses",
                    "-f",
                    "speedscope",
                    "-o",
                    str(profile),
                    "-r",
                    "100",
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1)
        peak = 0.0
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.wait(0.2):
                peak = max(peak, process_tree_rss_mb(server.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        latencies, retries = asyncio.run(_send_all(base, corpus.bodies, clients))
        elapsed = time.perf_counter() - started
        stop.set()
        sampler.join()
        peak = max(peak, process_tree_rss_mb(server.pid))
    finally:
        if spy is not None:
            spy.send_signal(2)
            spy.wait(60)
        server.terminate()
        server.wait(60)
    engine = make_engine(url)
    with engine.connect() as conn:
        stored = int(conn.execute(select(func.count()).select_from(spans)).scalar_one())
    engine.dispose()
    if stored != corpus.spans:
        raise SystemExit(f"only {stored} of {corpus.spans} acknowledged spans are queryable")
    return RunResult(corpus.spans / elapsed, latencies, retries, peak, stored)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="about 30k spans")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, help="PHAROS_INGEST_WORKERS")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--database-url", default=None, help="default: SQLite files in a temp dir")
    parser.add_argument(
        "--profile", type=Path, default=None, help="write a py-spy speedscope profile"
    )
    args = parser.parse_args()
    target = 30_000 if args.quick else args.spans

    with console.status(f"building a seeded corpus of {target:,} spans"):
        corpus = build_corpus(target, args.seed)
    console.print(
        f"corpus: {corpus.spans:,} spans in {len(corpus.bodies)} requests "
        f"({sum(map(len, corpus.bodies)) / 1e6:.1f} MB protobuf)"
    )
    workdir = Path(tempfile.mkdtemp(prefix="pharos-bench-"))
    floor_url = fresh_database(args.database_url, workdir, "floor")
    pharos_url = fresh_database(args.database_url, workdir, "pharos")
    try:
        with console.status("floor: bare decode + insert loop"):
            floor_rate = floor(corpus, floor_url)
        with console.status(f"pharos: {args.clients} clients over HTTP"):
            result = run_pharos(corpus, pharos_url, args.clients, args.workers, args.profile)
    finally:
        drop_database(floor_url)
        drop_database(pharos_url)

    ratio = result.spans_per_s / floor_rate
    p50, p95, p99 = (pct(result.latencies_ms, q) for q in (0.5, 0.95, 0.99))
    table = Table(
        title=f"Ingest — {'PostgreSQL' if 'postgresql' in pharos_url else 'SQLite'}, "
        f"{corpus.spans:,} spans, {args.clients} clients, "
        f"{args.workers} ingest worker(s)"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_row("floor (decode + bare insert), spans/s", f"{floor_rate:,.0f}", "")
    table.add_row("Pharos durable, spans/s", f"{result.spans_per_s:,.0f}", "")
    table.add_row("[bold]ratio Pharos / floor", f"[bold]{ratio:.2f}x", ">= 0.7 (stretch 1.0)")
    table.add_row(
        "request latency p50 / p95 / p99, ms", f"{p50:.0f} / {p95:.0f} / {p99:.0f}", "p99 < 250"
    )
    table.add_row("503 retries", str(result.retries), "")
    table.add_row("peak RSS, server + workers, MB", f"{result.peak_rss_mb:.0f}", "< 400")
    console.print(table)

    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "bench": "ingest",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "database": "postgresql" if "postgresql" in pharos_url else "sqlite",
        "spans": corpus.spans,
        "requests": len(corpus.bodies),
        "clients": args.clients,
        "workers": args.workers,
        "floor_spans_per_s": floor_rate,
        "pharos_spans_per_s": result.spans_per_s,
        "ratio": ratio,
        "latency_ms": {"p50": p50, "p95": p95, "p99": p99},
        "retries": result.retries,
        "peak_rss_mb": result.peak_rss_mb,
    }
    path = out / f"ingest-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2))
    console.print(f"results: {path}")


if __name__ == "__main__":
    main()
