"""Ingest benchmark: durable spans/s through a real `pharos serve`, as a ratio to a same-run floor.

    .venv/bin/python bench/ingest.py              # 200k spans, 4 clients, SQLite in a temp dir
    .venv/bin/python bench/ingest.py --quick      # ~30k spans
    .venv/bin/python bench/ingest.py --profile    # the server (and its workers) under py-spy
    .venv/bin/python bench/ingest.py --database-url postgresql+psycopg://postgres@127.0.0.1/test

The corpus is a fixed, seeded set of realistic agent traces (pharos.server.demo) in OTLP protobuf
requests of 512 spans, serialised before any timing. Pharos' figure counts wall time from the
first send until the last 200 arrived; afterwards every span must be queryable
(SELECT count(*) FROM spans equals the corpus), or the benchmark fails.

The floor is a bare single-threaded loop over the same request bytes: ParseFromString, one row
per span with the same columns the server stores (hex ids, orjson attributes/events/resource),
one executemany per request in one transaction per request, on a fresh database of the same
kind and the same durability (make_engine: WAL + synchronous=FULL on SQLite). No HTTP, no
convention mapping, no trace summaries, no rollups. The machine is shared and noisy, so the
floor runs before *and* after Pharos, and the figure that matters is Pharos / mean(floor).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
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
from pharos.server.db.schema import spans, traces
from pharos.server.demo import demo_requests

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BIN = Path(sys.executable).parent  # .venv/bin when run as `.venv/bin/python bench/ingest.py`
REQUEST_SPANS = 512
SAMPLE_EVERY_S = 0.2
TARGET_RATIO, STRETCH_RATIO, TARGET_P99_MS, TARGET_RSS_MB = 0.7, 1.0, 250.0, 400.0

# Wide enough for the report table when the output is a file or a pipe (rich assumes 80).
console = Console() if sys.stdout.isatty() else Console(width=120)


# --- the corpus --------------------------------------------------------------------------------


@dataclass
class Corpus:
    bodies: list[bytes]
    spans: int
    traces: int
    seed: int

    @property
    def megabytes(self) -> float:
        return sum(map(len, self.bodies)) / 1e6


def _span_count(request: ExportTraceServiceRequest) -> int:
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


def build_corpus(target_spans: int, seed: int) -> Corpus:
    """Whole requests of seeded demo traffic until ``target_spans`` is reached.

    The traces span the day before the start of the current hour: the same corpus up to a shift
    of whole hours (so the same minute and hour rollup buckets), and always inside retention.
    """
    end_ns = (time.time_ns() // 3_600_000_000_000) * 3_600_000_000_000
    sample = list(demo_requests(500, seed=seed, end_ns=end_ns, max_spans=REQUEST_SPANS))
    per_trace = sum(map(_span_count, sample)) / 500
    n_traces = math.ceil(target_spans / per_trace * 1.1) + 10  # the cut below keeps ~91%
    bodies: list[bytes] = []
    count = 0
    trace_ids: set[bytes] = set()
    for request in demo_requests(n_traces, seed=seed, end_ns=end_ns, max_spans=REQUEST_SPANS):
        bodies.append(request.SerializeToString())
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                count += len(ss.spans)
                trace_ids.update(s.trace_id for s in ss.spans)
        if count >= target_spans:
            break
    if count < target_spans:  # never expected; say so rather than bench a smaller corpus
        raise SystemExit(f"corpus: only {count} spans from {n_traces} traces (seed {seed})")
    return Corpus(bodies, count, len(trace_ids), seed)


# --- databases ---------------------------------------------------------------------------------


def is_sqlite(url: str | None) -> bool:
    return url is None or url.startswith("sqlite")


def fresh_database(base_url: str | None, workdir: Path, name: str) -> str:
    """A new, empty database of the requested kind (a file, or a new PostgreSQL database)."""
    if is_sqlite(base_url):
        return f"sqlite:///{workdir / name}.db"
    assert base_url is not None
    url = make_url(base_url).set(drivername="postgresql+psycopg")
    database = f"pharos_bench_{name}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{database}"'))
    admin.dispose()
    return url.set(database=database).render_as_string(hide_password=False)


def drop_database(url: str, admin_url: str | None) -> None:
    if is_sqlite(url) or admin_url is None:
        return
    database = make_url(url).database
    admin = create_engine(make_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    admin.dispose()


def stored_counts(url: str) -> tuple[int, int]:
    """(rows in spans, rows in traces), read through a separate engine."""
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            n_spans = conn.execute(select(func.count()).select_from(spans)).scalar_one()
            n_traces = conn.execute(select(func.count()).select_from(traces)).scalar_one()
    finally:
        engine.dispose()
    return int(n_spans), int(n_traces)


# --- the floor ---------------------------------------------------------------------------------


def _value(v: Any) -> Any:
    """OTLP AnyValue -> a JSON-able value (the same mapping the server stores)."""
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return getattr(v, which)


def _attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs}


_STATUS = ("unset", "ok", "error")


def floor_rows(request: ExportTraceServiceRequest) -> list[tuple[Any, ...]]:
    """The ``spans`` rows of one request, in SPAN_COLUMNS order, with no convention mapping."""
    rows: list[tuple[Any, ...]] = []
    for rs in request.resource_spans:
        resource = _attrs(rs.resource.attributes)
        resource_json = orjson.dumps(resource).decode()
        service = resource.get("service.name")
        for ss in rs.scope_spans:
            scope = ss.scope.name or None
            for s in ss.spans:
                start, end = s.start_time_unix_nano, s.end_time_unix_nano
                events = [
                    {
                        "name": e.name,
                        "time_unix_nano": e.time_unix_nano,
                        "attributes": _attrs(e.attributes),
                    }
                    for e in s.events
                ]
                links = [
                    {
                        "trace_id": k.trace_id.hex(),
                        "span_id": k.span_id.hex(),
                        "attributes": _attrs(k.attributes),
                    }
                    for k in s.links
                ]
                rows.append(
                    (
                        s.trace_id.hex(),
                        s.span_id.hex(),
                        s.parent_span_id.hex() or None,
                        s.name,
                        "span",  # kind: no convention mapping in the floor
                        int(s.kind),
                        service or "unknown",  # agent
                        None,  # model
                        service,
                        start,
                        end,
                        (end - start) / 1e6,
                        _STATUS[s.status.code] if s.status.code < 3 else "unset",
                        s.status.message or None,
                        None,  # input_tokens
                        None,  # output_tokens
                        None,  # cached_tokens
                        None,  # cost_nanousd
                        orjson.dumps(_attrs(s.attributes)).decode(),
                        orjson.dumps(events).decode() if events else "[]",
                        orjson.dumps(links).decode() if links else "[]",
                        resource_json,
                        scope,
                    )
                )
    return rows


@dataclass
class FloorRun:
    spans_per_s: float
    cpu_us_per_span: float  # CPU time of the loop (this process), per span


def run_floor(corpus: Corpus, url: str) -> FloorRun:
    """The bare decode + insert loop on a fresh database at ``url``."""
    upgrade(url)
    engine = make_engine(url, pool_size=1)
    columns = [c.name for c in spans.columns if c.name != "id"]
    mark = "?" if is_sqlite(url) else "%s"
    sql = f"INSERT INTO spans ({', '.join(columns)}) VALUES ({', '.join(mark for _ in columns)})"
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")  # connect (and set the pragmas) before the clock
            conn.commit()
            started, cpu = time.perf_counter(), time.process_time()
            for body in corpus.bodies:
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                rows = floor_rows(request)
                with conn.begin():
                    conn.exec_driver_sql(sql, rows)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        engine.dispose()
    stored, _ = stored_counts(url)
    if stored != corpus.spans:
        raise SystemExit(f"floor: {stored} spans stored, expected {corpus.spans}")
    return FloorRun(corpus.spans / elapsed, cpu * 1e6 / corpus.spans)


# --- the server --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with contextlib.suppress(OSError, ValueError):
                children = [int(c) for c in (task / "children").read_text().split()]
                found += children
                todo += children
    return found


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (from /proc/<pid>/stat)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14, 15)
    return 0.0


def tree_cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds of the server process, and of its descendants (the ingest workers)."""
    return _cpu_seconds(pid), sum(_cpu_seconds(child) for child in _descendants(pid))


@dataclass
class RssPeak:
    server_mb: float = 0.0  # the server process alone
    total_mb: float = 0.0  # the server and its children (ingest worker processes)
    samples: int = 0

    def sample(self, pid: int) -> None:
        server = _rss_kb(pid)
        total = server + sum(_rss_kb(child) for child in _descendants(pid))
        self.server_mb = max(self.server_mb, server / 1024)
        self.total_mb = max(self.total_mb, total / 1024)
        self.samples += 1


@dataclass
class PharosRun:
    spans_per_s: float
    seconds: float
    latencies_ms: list[float]
    retries: int
    rss: RssPeak
    stored_spans: int
    stored_traces: int
    retry_statuses: Counter[int]
    cpu_us_per_span: float  # CPU time of the server and its workers, per span
    server_busy: float  # CPU seconds of the server process / wall seconds (cores used)
    workers_busy: float  # the same for its ingest workers, together
    client_cpu_us_per_span: float  # CPU time of this process (the HTTP clients), per span
    writer: dict[str, float]  # from /metrics, when the server exposes it


def scrape(base: str) -> dict[str, float]:
    """The server's /metrics as {series (name with its labels): value}; empty if unreachable."""
    out: dict[str, float] = {}
    with contextlib.suppress(httpx.HTTPError, ValueError):
        resp = httpx.get(f"{base}/metrics", timeout=30)
        for line in resp.text.splitlines() if resp.status_code == 200 else []:
            if line and not line.startswith("#"):
                series, _, value = line.rpartition(" ")
                out[series] = float(value)
    return out


def writer_stats(base: str) -> dict[str, float]:
    """Pharos' own counters from /metrics (empty if it has none)."""
    wanted = {
        "pharos_writer_transactions_total": "transactions",
        "pharos_ingest_requests_total": "requests",
        "pharos_ingest_rejected_total": "rejected",
    }
    out: dict[str, float] = {}
    for series, value in scrape(base).items():
        name = wanted.get(series.partition("{")[0])
        if name is not None:
            out[name] = out.get(name, 0.0) + value
    return out


async def send_all(
    base: str, bodies: list[bytes], clients: int
) -> tuple[list[float], Counter[int], float]:
    """Send every body once (retrying 429/503 after Retry-After) with ``clients`` concurrent
    connections. Returns per-request latencies (ms, first try to the 200, retries included),
    the retried statuses, and the wall time from the first send to the last 200."""
    pending = list(reversed(bodies))
    latencies: list[float] = []
    retried: Counter[int] = Counter()
    headers = {"content-type": "application/x-protobuf"}

    async def client() -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as http:
            while pending:
                body = pending.pop()
                sent = time.perf_counter()
                while True:
                    resp = await http.post("/v1/traces", content=body, headers=headers)
                    if resp.status_code == 200:
                        break
                    if resp.status_code not in (429, 503):
                        raise SystemExit(f"server answered {resp.status_code}: {resp.text[:500]}")
                    retried[resp.status_code] += 1
                    await asyncio.sleep(float(resp.headers.get("retry-after", "1")))
                latencies.append((time.perf_counter() - sent) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, retried, time.perf_counter() - started


def _wait_ready(server: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + 120
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the server did not become ready:\n" + log.read_text()[-3000:])
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, wait: float = 60) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_pharos(
    corpus: Corpus,
    url: str,
    clients: int,
    workers: int | None,
    workdir: Path,
    profile: Path | None,
    spy_args: list[str],
) -> PharosRun:
    port = free_port()
    env = {**os.environ, "PHAROS_LOG_LEVEL": "warning", "PHAROS_GRPC_PORT": "0"}
    if workers is not None:
        env["PHAROS_INGEST_WORKERS"] = str(workers)
    pharos = BIN / "pharos"
    command = [str(pharos)] if pharos.exists() else [sys.executable, "-m", "pharos.cli"]
    log = workdir / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*command, "serve", "--port", str(port), "--database-url", url],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    base = f"http://127.0.0.1:{port}"
    spy: subprocess.Popen[bytes] | None = None
    try:
        _wait_ready(server, base, log)
        if profile is not None:
            spy = subprocess.Popen(
                [
                    str(BIN / "py-spy"),
                    "record",
                    "--pid",
                    str(server.pid),
                    "--subprocesses",
                    "--threads",
                    "--nonblocking",
                    "--rate",
                    "100",
                    "--format",
                    "raw",
                    "--output",
                    str(profile),
                    *spy_args,
                ],
                stdout=subprocess.DEVNULL,
                stderr=(workdir / "py-spy.log").open("wb"),
            )
            time.sleep(1.0)  # let py-spy attach to the server and find its workers
        rss = RssPeak()
        rss.sample(server.pid)
        cpu = tree_cpu_seconds(server.pid)
        stop = threading.Event()

        def sampler() -> None:
            while not stop.wait(SAMPLE_EVERY_S):
                rss.sample(server.pid)

        thread = threading.Thread(target=sampler, name="rss-sampler", daemon=True)
        thread.start()
        client_cpu = time.process_time()
        try:
            latencies, retried, seconds = asyncio.run(send_all(base, corpus.bodies, clients))
        finally:
            client_cpu = time.process_time() - client_cpu
            stop.set()
            thread.join()
        rss.sample(server.pid)
        server_end, workers_end = tree_cpu_seconds(server.pid)
        server_cpu, workers_cpu = server_end - cpu[0], workers_end - cpu[1]
        if spy is not None:
            _stop(spy, signal.SIGINT)
        stats = writer_stats(base)
        # Queryable while the server still runs: every acknowledged span, once.
        stored_spans, stored_traces = stored_counts(url)
    finally:
        if spy is not None:
            _stop(spy, signal.SIGINT)
        _stop(server)
    if server.returncode not in (0, -signal.SIGTERM):
        console.print(f"[yellow]server exited with {server.returncode}:[/yellow]")
        console.print(log.read_text()[-2000:])
    if stored_spans != corpus.spans:
        raise SystemExit(
            f"FAILED: {stored_spans} spans are queryable after every request got its 200, "
            f"expected {corpus.spans}"
        )
    if stored_traces != corpus.traces:
        raise SystemExit(f"FAILED: {stored_traces} trace summaries, expected {corpus.traces}")
    return PharosRun(
        corpus.spans / seconds,
        seconds,
        latencies,
        sum(retried.values()),
        rss,
        stored_spans,
        stored_traces,
        retried,
        (server_cpu + workers_cpu) * 1e6 / corpus.spans,
        server_cpu / seconds,
        workers_cpu / seconds,
        client_cpu * 1e6 / corpus.spans,
        stats,
    )


# --- the profile -------------------------------------------------------------------------------

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

# Where a sample's own (leaf) time goes, first match wins: (label, function or path fragments).
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "pickle / IPC between server and workers",
        ("_rebuild_batch", "__reduce__", "multiprocessing/", "pickle"),
    ),
    ("protobuf decode (ParseFromString)", ("decode_traces", "ParseFromString")),
    ("JSON serialisation (orjson)", ("_dumps", "orjson", "histogram.py:dumps")),
    ("normalize: attributes + conventions", ("ingest/normalize.py",)),
    ("DB driver: execute/executemany/commit", ("do_execute", "do_commit", "psycopg/", "sqlite3")),
    ("SQLAlchemy (Python side)", ("sqlalchemy/",)),
    ("writer: rows, dedupe, summaries, rollups", ("ingest/writer.py", "analytics/")),
    ("HTTP: uvicorn/starlette/fastapi/body", ("uvicorn/", "starlette/", "fastapi/", "h11/")),
    ("HTTP: pharos handler/middleware", ("ingest/http.py", "ingest/body.py", "prometheus.py")),
    ("process pool plumbing", ("concurrent/futures/", "ingest/parsing.py")),
    ("asyncio / anyio / threads", ("asyncio/", "anyio/", "threading.py", "queue.py", "uvloop")),
)


def _category(leaf: str) -> str:
    for label, needles in CATEGORIES:
        if any(n in leaf for n in needles):
            return label
    return "other"


def _short_frame(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m["file"]
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m['func']} ({path}:{m['line']})" if m["line"] else f"{m['func']} ({path})"


def summarize_profile(path: Path, top: int = 20) -> dict[str, Any]:
    """Self time by category, by process and by function from py-spy's collapsed stacks."""
    by_category: Counter[str] = Counter()
    by_thread: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        # --subprocesses nests a worker's stacks under its parent: the last process is its own.
        process = [f for f in frames if f.startswith("process ")][-1:] or ["process ?"]
        thread = next((f for f in frames if f.startswith("thread ")), "thread ?: ?")
        code = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not code:
            continue
        # C calls (ParseFromString, orjson.dumps, sqlite3) are no frames: their time is the
        # calling Python line's, which the categories name.
        by_category[_category(code[-1])] += count
        owner = "worker" if "spawn_main" in process[0] else "server"
        name = re.sub(r"[-_ ]?\d+$", "", thread.partition(": ")[2]) or "?"
        by_thread[f"{owner}: {name}"] += count
        by_function[_short_frame(code[-1])] += count
    return {
        "samples": sum(by_category.values()),
        "by_category": by_category.most_common(),
        "by_thread": by_thread.most_common(),
        "top_functions": by_function.most_common(top),
    }


def print_profile(summary: dict[str, Any], path: Path) -> None:
    total = summary["samples"] or 1
    console.print(
        f"\n[bold]py-spy profile[/bold] ({summary['samples']:,} samples at 100 Hz ~ "
        f"{summary['samples'] / 100:.0f} CPU-s; self time; collapsed stacks in {path}, "
        "open with https://speedscope.app)"
    )
    for title, rows in (
        ("where CPU time goes", summary["by_category"]),
        ("by process: thread", summary["by_thread"]),
        ("top functions (self time)", summary["top_functions"]),
    ):
        table = Table(title=title, title_justify="left")
        table.add_column("")
        table.add_column("samples", justify="right")
        table.add_column("%", justify="right")
        for name, count in rows:
            table.add_row(name, f"{count:,}", f"{100 * count / total:.1f}")
        console.print(table)


# --- the report --------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _git_commit() -> str | None:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"], cwd=ROOT, capture_output=True
        )
        return out.stdout.decode().strip() + ("+dirty" if dirty.stdout.strip() else "")
    return None


def _mark(ok: bool) -> str:
    return "[green]met[/green]" if ok else "[red]missed[/red]"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=200_000, help="corpus size (spans)")
    parser.add_argument("--quick", action="store_true", help="a 30k-span corpus")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    parser.add_argument(
        "--workers", type=int, default=None, help="PHAROS_INGEST_WORKERS (default: the server's)"
    )
    parser.add_argument("--seed", type=int, default=11, help="corpus seed")
    parser.add_argument(
        "--database-url", default=None, help="default: fresh SQLite files in a temp dir"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="Pharos runs, each followed by a floor run (the ratio reported is the median)",
    )
    parser.add_argument(
        "--profile",
        nargs="?",
        const="",
        default=None,
        metavar="PATH",
        help="record the server and its workers with py-spy (collapsed stacks, which "
        "speedscope.app opens) to PATH, default bench/results/ingest-<time>.pyspy.txt",
    )
    parser.add_argument(
        "--py-spy-args",
        default="",
        metavar="ARGS",
        help='more py-spy record options, e.g. "--gil" (only samples holding the GIL)',
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when a target (ratio, p99, RSS) is missed"
    )
    args = parser.parse_args()
    target = 30_000 if args.quick else args.spans
    database = "sqlite" if is_sqlite(args.database_url) else "postgresql"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(parents=True, exist_ok=True)
    profile = None
    if args.profile is not None:
        profile = Path(args.profile) if args.profile else RESULTS / f"ingest-{stamp}.pyspy.txt"
    if profile is not None and not (BIN / "py-spy").exists():
        raise SystemExit(f"--profile needs py-spy: {BIN / 'pip'} install py-spy")

    with console.status(f"building a seeded corpus of {target:,} spans"):
        corpus = build_corpus(target, args.seed)
    console.print(
        f"corpus: {corpus.spans:,} spans, {corpus.traces:,} traces, {len(corpus.bodies)} requests "
        f"of <= {REQUEST_SPANS} spans, {corpus.megabytes:.1f} MB protobuf (seed {args.seed})"
    )
    overrides = {k: v for k, v in os.environ.items() if k.startswith("PHAROS_") and "URL" not in k}
    if overrides:
        console.print(f"the server inherits {overrides}")
    workdir = Path(tempfile.mkdtemp(prefix="pharos-bench-"))

    def with_fresh_database(name: str, job: Any) -> Any:
        url = fresh_database(args.database_url, workdir, name)
        try:
            return job(url)
        finally:
            drop_database(url, args.database_url)
            for path in workdir.glob(f"{name}.db*"):
                path.unlink()

    def floor_run(n: int) -> FloorRun:
        with console.status(f"floor {n}: bare decode + insert loop"):
            result: FloorRun = with_fresh_database(f"floor{n}", lambda u: run_floor(corpus, u))
        console.print(f"floor {n}: {result.spans_per_s:,.0f} spans/s")
        return result

    try:
        floors = [floor_run(1)]
        runs: list[PharosRun] = []
        for n in range(1, args.rounds + 1):
            with console.status(f"Pharos {n}: {args.clients} clients over HTTP"):
                run: PharosRun = with_fresh_database(
                    f"pharos{n}",
                    lambda u, n=n: run_pharos(
                        corpus,
                        u,
                        args.clients,
                        args.workers,
                        workdir,
                        profile if n == 1 else None,
                        args.py_spy_args.split(),
                    ),
                )
            console.print(
                f"Pharos {n}: {run.spans_per_s:,.0f} spans/s, all {run.stored_spans:,} stored"
            )
            runs.append(run)
            floors.append(floor_run(n + 1))
    except BaseException:
        console.print(f"[red]the server's log: {workdir / 'server.log'}[/red]")
        raise
    shutil.rmtree(workdir, ignore_errors=True)

    # Each Pharos run against the mean of the floor runs just before and just after it.
    ratios = [
        run.spans_per_s / ((floors[i].spans_per_s + floors[i + 1].spans_per_s) / 2)
        for i, run in enumerate(runs)
    ]
    ratio = statistics.median(ratios)
    pharos_rate = statistics.median(r.spans_per_s for r in runs)
    floor_rate = statistics.mean(f.spans_per_s for f in floors)
    latencies = [ms for r in runs for ms in r.latencies_ms]
    p50, p95, p99 = (percentile(latencies, q) for q in (0.50, 0.95, 0.99))
    retried: Counter[int] = sum((r.retry_statuses for r in runs), Counter())
    rss_total = max(r.rss.total_mb for r in runs)
    rss_server = max(r.rss.server_mb for r in runs)
    pharos_cpu = statistics.median(r.cpu_us_per_span for r in runs)
    floor_cpu = statistics.mean(f.cpu_us_per_span for f in floors)
    writer = runs[0].writer
    checks = {
        "ratio": ratio >= TARGET_RATIO,
        "p99": p99 < TARGET_P99_MS,
        "rss": rss_total < TARGET_RSS_MB,
    }

    def each(values: list[float], fmt: str = ",.0f") -> str:
        return " / ".join(format(v, fmt) for v in values) if len(values) > 1 else ""

    table = Table(
        title=f"Pharos ingest, {database}: {corpus.spans:,} spans in {len(corpus.bodies)} "
        f"requests, {args.clients} clients, {args.rounds} round(s)"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_column("notes")
    table.add_row("corpus", f"{corpus.spans:,} spans", "", f"{corpus.traces:,} traces")
    table.add_row(
        "Pharos durable spans/s", f"{pharos_rate:,.0f}", "", each([r.spans_per_s for r in runs])
    )
    table.add_row(
        "floor spans/s (decode + insert)",
        f"{floor_rate:,.0f}",
        "",
        "runs " + " / ".join(f"{f.spans_per_s:,.0f}" for f in floors),
    )
    ratio_note = _mark(checks["ratio"]) + (", stretch met" if ratio >= STRETCH_RATIO else "")
    if len(ratios) > 1:
        ratio_note += f" (rounds {each(ratios, '.2f')})"
    table.add_row(
        "[bold]RATIO Pharos / floor",
        f"[bold]{ratio:.2f}",
        f">= {TARGET_RATIO} (stretch >= {STRETCH_RATIO})",
        ratio_note,
    )
    table.add_row(
        "request latency p50/p95/p99 ms",
        f"{p50:.0f} / {p95:.0f} / {p99:.0f}",
        f"p99 < {TARGET_P99_MS:.0f}",
        _mark(checks["p99"]) + f" (max {max(latencies):.0f})",
    )
    table.add_row(
        "retries (503/429)",
        f"{sum(retried.values())}",
        "",
        ", ".join(f"{n}x {code}" for code, n in sorted(retried.items())),
    )
    table.add_row(
        "peak RSS MB (server + workers)",
        f"{rss_total:.0f}",
        f"< {TARGET_RSS_MB:.0f}",
        _mark(checks["rss"]) + f" (the server process alone {rss_server:.0f})",
    )
    client_cpu = statistics.median(r.client_cpu_us_per_span for r in runs)
    table.add_row(
        "CPU us/span: Pharos / floor",
        f"{pharos_cpu:.0f} / {floor_cpu:.0f}",
        "",
        f"server + workers / the loop; the HTTP clients used {client_cpu:.0f}",
    )
    table.add_row(
        "cores used: server / workers",
        f"{statistics.median(r.server_busy for r in runs):.2f} / "
        f"{statistics.median(r.workers_busy for r in runs):.2f}",
        "",
        f"of {os.cpu_count()}; CPU seconds per wall second during the run",
    )
    if writer.get("transactions"):
        table.add_row(
            "requests per writer transaction",
            f"{writer.get('requests', 0) / writer['transactions']:.2f}",
            "",
            f"{writer['transactions']:.0f} transactions (the floor: 1 per request)",
        )
    console.print(table)

    summary = None
    if profile is not None and profile.exists():
        summary = summarize_profile(profile)
        print_profile(summary, profile)
    elif profile is not None:
        console.print("[yellow]py-spy wrote no profile (is ptrace allowed here?)[/yellow]")
    if profile is not None:
        console.print("[dim]the profiled round runs slower: py-spy costs the server CPU[/dim]")

    report = {
        "bench": "ingest",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": _git_commit(),
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_at_end": os.getloadavg(),
            "python": platform.python_version(),
        },
        "database": database,
        "corpus": {
            "spans": corpus.spans,
            "traces": corpus.traces,
            "requests": len(corpus.bodies),
            "request_spans": REQUEST_SPANS,
            "megabytes": round(corpus.megabytes, 2),
            "seed": corpus.seed,
        },
        "clients": args.clients,
        "workers": args.workers,
        "server_env": overrides,
        "rounds": args.rounds,
        "profiled": profile is not None,
        "pharos_spans_per_s": pharos_rate,
        "pharos_runs": [
            {
                "spans_per_s": r.spans_per_s,
                "seconds": r.seconds,
                "retries": r.retries,
                "peak_rss_mb": asdict(r.rss),
                "cpu_us_per_span": r.cpu_us_per_span,
                "cores_used": {"server": r.server_busy, "workers": r.workers_busy},
                "client_cpu_us_per_span": r.client_cpu_us_per_span,
                "writer": r.writer,
            }
            for r in runs
        ],
        "floor_spans_per_s": floor_rate,
        "floor_runs": [asdict(f) for f in floors],
        "ratio": ratio,
        "ratios": ratios,
        "latency_ms": {"p50": p50, "p95": p95, "p99": p99, "max": max(latencies)},
        "retries": sum(retried.values()),
        "retry_statuses": {str(k): v for k, v in retried.items()},
        "peak_rss_mb": {"total": rss_total, "server": rss_server},
        "targets": {
            "ratio": TARGET_RATIO,
            "ratio_stretch": STRETCH_RATIO,
            "p99_ms": TARGET_P99_MS,
            "rss_mb": TARGET_RSS_MB,
        },
        "met": checks,
        "profile": None if summary is None else {"path": str(profile), **summary},
    }
    path = RESULTS / f"ingest-{stamp}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"results: {path}")
    return 1 if args.check and not all(checks.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
