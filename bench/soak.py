"""Soak: mixed load on a real `pharos serve` for a while, sampling memory and latency every
10 s, and reporting the trend (does anything grow?).

    .venv/bin/python bench/soak.py                    # 10 minutes, SQLite in a temp dir
    .venv/bin/python bench/soak.py --minutes 2        # a shorter try
    .venv/bin/python bench/soak.py --database-url postgresql+psycopg://postgres@127.0.0.1/test

Load, all at once for the whole run:
- ingest: 2 clients posting seeded demo traffic (OTLP protobuf, 64-span requests; runs that
  ended in the last minute) at a steady rate (--spans-per-s, default 1500), retrying 503/429;
- dashboard: 2 clients cycling through overview, summary, time series, agents, the trace list
  and a trace's detail, as an open dashboard does (with a live WebSocket subscriber);
- alerts: the server's engine evaluates the default rules plus 20 more every 5 s, and a client
  forces an evaluation through the API every 10 s.

Before the load, the database gets a day of history (rollups and trace summaries, as
bench/query.py writes them; --history-scale 0 for none), so the dashboard's 6 h and 24 h windows
read a running install's worth of rows from the start: starting empty, every chart reads more
rows each minute for hours, and memory and latency grow with it without anything leaking.

Every 10 s: RSS of the server and of its ingest workers, where the server's heap is
(`pharos_memory_bytes` from /metrics: malloc in use, malloc free, SQLite), p50/p95 of ingest and
of dashboard calls in that interval, spans stored, writer queue depth. The report fits a line
through the samples of the second half (after warm-up): MB per minute and p95 ms per minute. A
memory leak shows as a steady positive slope; noise as a slope near zero.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table
from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest as ib
import query as qb
from pharos.server.demo import demo_requests

ROOT = Path(__file__).resolve().parents[1]
console = Console()
SAMPLE_SECONDS = 10.0
HEADERS = {"content-type": "application/x-protobuf"}


@dataclass
class Window:
    ingest_ms: list[float] = field(default_factory=list)
    query_ms: list[float] = field(default_factory=list)
    spans: int = 0
    errors: int = 0
    retries: int = 0


@dataclass
class Sample:
    t: float
    rss_mb: float  # the server and its workers
    server_mb: float
    workers_mb: float
    malloc_in_use_mb: float
    malloc_free_mb: float
    sqlite_mb: float
    ingest_p50: float
    ingest_p95: float
    query_p50: float
    query_p95: float
    spans_per_s: float
    queue: int
    retries: int
    errors: int


class Soak:
    def __init__(self, base: str, spans_per_s: float) -> None:
        self.base = base
        self.spans_per_s = spans_per_s
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.window = Window()
        self.total_spans = 0
        self.live_events = 0

    def swap(self) -> Window:
        with self.lock:
            out, self.window = self.window, Window()
        return out

    def ingest(self, seed: int) -> None:
        client = httpx.Client(base_url=self.base, timeout=60)
        per_client = self.spans_per_s / 2
        started = time.monotonic()
        sent = 0
        while not self.stop.is_set():
            # Runs that ended in the last minute, as exporters send them (the OTel batch
            # processor within 5 s of a span's end). A window of 10 minutes, as before
            # 2026-12-06, kept every rollup row of the last 10 minutes changing with each
            # commit: ten times the churn of new histogram texts a live install sees.
            for req in demo_requests(2000, seed=seed, window_seconds=60, max_spans=64):
                if self.stop.is_set():
                    break
                n = sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
                body = req.SerializeToString()
                t0 = time.perf_counter()
                while not self.stop.is_set():
                    try:
                        r = client.post("/v1/traces", content=body, headers=HEADERS)
                    except httpx.HTTPError:
                        with self.lock:
                            self.window.errors += 1
                        time.sleep(1)
                        continue
                    if r.status_code in (429, 503):
                        with self.lock:
                            self.window.retries += 1
                        time.sleep(float(r.headers.get("retry-after", "1")))
                        continue
                    break
                ms = (time.perf_counter() - t0) * 1000
                with self.lock:
                    if r.status_code == 200:
                        self.window.ingest_ms.append(ms)
                        self.window.spans += n
                        self.total_spans += n
                    else:
                        self.window.errors += 1
                sent += n
                ahead = sent / per_client - (time.monotonic() - started)
                if ahead > 0:
                    self.stop.wait(ahead)
            seed += 100
        client.close()

    def dashboard(self) -> None:
        client = httpx.Client(base_url=self.base, timeout=60)
        paths = [
            "/api/v1/overview?window=1h",
            "/api/v1/metrics/summary?window=24h",
            "/api/v1/metrics/timeseries?metric=latency_p95&window=6h&group_by=agent",
            "/api/v1/agents?window=1h",
            "/api/v1/traces?limit=50",
            "/api/v1/alerts?state=firing",
        ]
        i = 0
        while not self.stop.is_set():
            path = paths[i % len(paths)]
            i += 1
            t0 = time.perf_counter()
            try:
                r = client.get(path)
                ok = r.status_code == 200
                if ok and path.startswith("/api/v1/traces?"):
                    items = r.json()["items"]
                    if items:
                        client.get(f"/api/v1/traces/{items[0]['trace_id']}")
            except httpx.HTTPError:
                ok = False
            with self.lock:
                if ok:
                    self.window.query_ms.append((time.perf_counter() - t0) * 1000)
                else:
                    self.window.errors += 1
            self.stop.wait(0.25)
        client.close()

    def alerts(self) -> None:
        client = httpx.Client(base_url=self.base, timeout=60)
        for k in range(20):
            client.post(
                "/api/v1/alerts/rules",
                json={
                    "name": f"soak-{k}",
                    "expression": f"error_rate(5m) > {k + 1} and requests(5m) > 10 by agent",
                    "severity": "warning",
                },
            )
        while not self.stop.wait(SAMPLE_SECONDS):
            with contextlib.suppress(httpx.HTTPError):
                client.post("/api/v1/alerts/evaluate")
        client.close()

    def live(self) -> None:
        url = self.base.replace("http://", "ws://") + "/api/v1/live?window=15m"
        with contextlib.suppress(Exception), connect(url, open_timeout=10) as ws:
            while not self.stop.is_set():
                with contextlib.suppress(TimeoutError):
                    ws.recv(timeout=1)
                    self.live_events += 1


def memory_pools(base: str) -> dict[str, float]:
    """``pharos_memory_bytes`` by pool (MB) from /metrics; empty where it is not exposed."""
    prefix = 'pharos_memory_bytes{pool="'
    return {
        series[len(prefix) : -2]: value / 1e6
        for series, value in ib.scrape(base).items()
        if series.startswith(prefix)
    }


def slope_per_minute(ts: list[float], ys: list[float]) -> float:
    if len(ts) < 3:
        return 0.0
    return statistics.linear_regression(ts, ys).slope * 60


def pct(values: list[float], q: float) -> float:
    return ib.percentile(values, q) if values else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--spans-per-s", type=float, default=1500.0)
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--history-scale",
        type=float,
        default=0.1,
        help="a day of history before the load, as bench/query.py --scale (0: start empty)",
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="pharos-soak-"))
    url = args.database_url or f"sqlite:///{workdir / 'soak.db'}"
    if not ib.is_sqlite(url):
        url = ib.fresh_database(url, workdir, "soak")
    if args.history_scale > 0:
        qb.upgrade(url)
        runs = qb.load_history(url, args.history_scale, 1, seed=11)
        console.print(f"history: {runs:,} runs over the day before")
    port = ib.free_port()
    env = {
        **os.environ,
        "PHAROS_LOG_LEVEL": "warning",
        "PHAROS_GRPC_PORT": "0",
        "PHAROS_ALERT_EVAL_INTERVAL_SECONDS": "5",
        "PHAROS_LIVE_SUMMARY_SECONDS": "1",
    }
    pharos = ib.BIN / "pharos"
    command = [str(pharos)] if pharos.exists() else [sys.executable, "-m", "pharos.cli"]
    log = workdir / "server.log"
    server = subprocess.Popen(
        [*command, "serve", "--port", str(port), "--database-url", url],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )
    base = f"http://127.0.0.1:{port}"
    samples: list[Sample] = []
    try:
        ib._wait_ready(server, base, log)
        soak = Soak(base, args.spans_per_s)
        threads = [
            threading.Thread(target=soak.ingest, args=(1,), daemon=True),
            threading.Thread(target=soak.ingest, args=(2,), daemon=True),
            threading.Thread(target=soak.dashboard, daemon=True),
            threading.Thread(target=soak.dashboard, daemon=True),
            threading.Thread(target=soak.alerts, daemon=True),
            threading.Thread(target=soak.live, daemon=True),
        ]
        for t in threads:
            t.start()
        started = time.monotonic()
        end = started + args.minutes * 60
        console.print(
            f"soak: {args.minutes:g} min, {args.spans_per_s:g} spans/s target, {url.split('@')[-1]}"
        )
        while time.monotonic() < end:
            time.sleep(max(0.0, min(SAMPLE_SECONDS, end - time.monotonic())))
            w = soak.swap()
            rss = ib.RssPeak()
            rss.sample(server.pid)
            queue = 0
            with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
                queue = int(httpx.get(f"{base}/readyz", timeout=10).json()["checks"]["queue_depth"])
            heap = memory_pools(base)
            s = Sample(
                time.monotonic() - started,
                rss.total_mb,
                rss.server_mb,
                rss.total_mb - rss.server_mb,
                heap.get("malloc_in_use", 0.0),
                heap.get("malloc_free", 0.0),
                heap.get("sqlite", 0.0),
                pct(w.ingest_ms, 0.5),
                pct(w.ingest_ms, 0.95),
                pct(w.query_ms, 0.5),
                pct(w.query_ms, 0.95),
                w.spans / SAMPLE_SECONDS,
                queue,
                w.retries,
                w.errors,
            )
            samples.append(s)
            console.print(
                f"{s.t:6.0f}s  rss {s.server_mb:6.1f} + {s.workers_mb:5.1f} MB (malloc "
                f"{s.malloc_in_use_mb:5.1f} + free {s.malloc_free_mb:5.1f}, sqlite "
                f"{s.sqlite_mb:5.1f})  ingest p50/p95 {s.ingest_p50:6.1f}/"
                f"{s.ingest_p95:6.1f} ms  dashboard p50/p95 {s.query_p50:6.1f}/"
                f"{s.query_p95:6.1f} ms  {s.spans_per_s:6.0f} spans/s  queue {s.queue}  "
                f"retries {s.retries}  errors {s.errors}"
            )
        soak.stop.set()
        for t in threads:
            t.join(30)
        stored, _ = ib.stored_counts(url)
    finally:
        ib._stop(server)
        if not ib.is_sqlite(url):
            ib.drop_database(url, args.database_url)

    half = [s for s in samples if s.t >= samples[-1].t / 2] if samples else []
    ts = [s.t for s in half]
    trend = {
        "rss_mb_per_min": slope_per_minute(ts, [s.rss_mb for s in half]),
        "server_rss_mb_per_min": slope_per_minute(ts, [s.server_mb for s in half]),
        "workers_rss_mb_per_min": slope_per_minute(ts, [s.workers_mb for s in half]),
        "malloc_in_use_mb_per_min": slope_per_minute(ts, [s.malloc_in_use_mb for s in half]),
        "sqlite_mb_per_min": slope_per_minute(ts, [s.sqlite_mb for s in half]),
        "ingest_p95_ms_per_min": slope_per_minute(ts, [s.ingest_p95 for s in half]),
        "dashboard_p95_ms_per_min": slope_per_minute(ts, [s.query_p95 for s in half]),
    }
    table = Table(title=f"Soak {args.minutes:g} min: trend over the second half")
    for col in ("figure", "first sample", "last sample", "min", "max", "slope / min"):
        table.add_column(col, justify="left" if col == "figure" else "right")
    for label, attr, key in (
        ("RSS MB (server + workers)", "rss_mb", "rss_mb_per_min"),
        ("  server RSS MB", "server_mb", "server_rss_mb_per_min"),
        ("  workers RSS MB", "workers_mb", "workers_rss_mb_per_min"),
        ("  server malloc in use MB", "malloc_in_use_mb", "malloc_in_use_mb_per_min"),
        ("    of which SQLite MB", "sqlite_mb", "sqlite_mb_per_min"),
        ("ingest p95 ms", "ingest_p95", "ingest_p95_ms_per_min"),
        ("dashboard p95 ms", "query_p95", "dashboard_p95_ms_per_min"),
    ):
        values = [getattr(s, attr) for s in samples]
        table.add_row(
            label,
            f"{values[0]:.1f}",
            f"{values[-1]:.1f}",
            f"{min(values):.1f}",
            f"{max(values):.1f}",
            f"{trend[key]:+.2f}",
        )
    console.print(table)
    errors = sum(s.errors for s in samples)
    console.print(
        f"spans stored {stored:,} (acknowledged {soak.total_spans:,}), live events "
        f"{soak.live_events:,}, client errors {errors}, retries {sum(s.retries for s in samples)}"
    )
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(
        json.dumps(
            {
                "bench": "soak",
                "minutes": args.minutes,
                "history_scale": args.history_scale,
                "database": url.split("@")[-1],
                "samples": [s.__dict__ for s in samples],
                "trend_second_half": trend,
                "spans_stored": stored,
                "spans_acknowledged": soak.total_spans,
                "load_average": os.getloadavg()[0],
            },
            indent=2,
        )
    )
    console.print(f"results: {path}")
    return 0 if stored >= soak.total_spans and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
