"""``GET /metrics``: per-agent series read from the rollups at scrape time, plus Pharos' own
health (ingest, writer, HTTP API latency, process).

Per-agent counters are sums over the daily rollups, which hold everything ingested, so they are
monotonic until retention prunes old rollups (a counter reset, which ``rate()`` handles). The
agent and model labels are capped (``PHAROS_METRICS_MAX_AGENTS``): the busiest keep their name,
the rest are added up under ``other``.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client import Counter as CounterMetric
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from pharos.server.analytics import histogram as hist
from pharos.server.analytics.rollups import REQUEST
from pharos.server.db.schema import ROLLUP_TABLES
from pharos.server.ingest.writer import GroupCommitWriter
from pharos.server.ops import memory

OTHER = "other"
#: ``le`` bounds (seconds) of the request duration histogram.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
MODEL_CALL_KINDS = ("llm", "embedding")
#: Label values of ``pharos_ingest_rejected_total`` (all bounded).
SIGNALS = ("traces", "metrics", "logs")
TRANSPORTS = ("http", "grpc")
REJECT_REASONS = (
    "bad_request",  # 400 / INVALID_ARGUMENT: undecodable body, bad gzip, bad Content-Length
    "too_large",  # 413: over PHAROS_MAX_BODY_BYTES, or over PHAROS_MAX_DECOMPRESSED_BYTES unzipped
    "unsupported_media_type",  # 415: a content type that is not protobuf or JSON
    "unsupported_encoding",  # 415: a Content-Encoding that is not gzip
    "overloaded",  # 503 / RESOURCE_EXHAUSTED: the writer queue is full
    "unavailable",  # 503 / UNAVAILABLE: the database is away, an ingest worker restarted
    "write_failed",  # 500 / INTERNAL: the writer could not store it (see the server log)
)


def cap_labels(weights: Mapping[str, float], limit: int) -> dict[str, str]:
    """Map each label value to itself if it is among the ``limit`` heaviest, else to ``other``.
    Ties break by name so the mapping is stable between scrapes."""
    ranked = sorted(weights, key=lambda k: (-weights[k], k))
    keep = set(ranked[:limit])
    return {k: (k if k in keep else OTHER) for k in weights}


def le_buckets(
    histogram: Mapping[int, int], bounds: Iterable[float] = DURATION_BUCKETS
) -> list[tuple[str, int]]:
    """Cumulative Prometheus buckets (seconds) from a log-bucket histogram (milliseconds):
    each log bucket counts under the first bound at or above its representative value."""
    bounds = tuple(bounds)
    counts = [0] * (len(bounds) + 1)
    for bucket, n in histogram.items():
        seconds = hist.value_of(bucket) / 1000.0
        index = next((i for i, b in enumerate(bounds) if seconds <= b), len(bounds))
        counts[index] += n
    out, running = [], 0
    for bound, n in zip((*bounds, float("inf")), counts, strict=True):
        running += n
        out.append(("+Inf" if bound == float("inf") else repr(bound), running))
    return out


class RollupCollector(Collector):
    """Reads the daily rollups when Prometheus scrapes."""

    def __init__(
        self,
        engine: Engine,
        writer: GroupCommitWriter,
        *,
        max_agents: int,
        firing_alerts: Callable[[], int] | None = None,
    ) -> None:
        self.engine = engine
        self.writer = writer
        self.max_agents = max_agents
        self.firing_alerts = firing_alerts

    def describe(self) -> Iterable[Metric]:
        return []  # collected on demand; nothing to register up front

    def collect(self) -> Iterator[Metric]:
        yield from self._agent_metrics()
        yield from self._own_metrics()

    def _agent_metrics(self) -> Iterator[Metric]:
        t = ROLLUP_TABLES["1d"]
        stmt = select(
            t.c.agent,
            t.c.model,
            t.c.kind,
            func.sum(t.c["count"]),
            func.sum(t.c.errors),
            func.sum(t.c.duration_sum_ms),
            func.sum(t.c.input_tokens),
            func.sum(t.c.output_tokens),
            func.sum(t.c.cached_tokens),
            func.sum(t.c.cost_nanousd),
        ).group_by(t.c.agent, t.c.model, t.c.kind)
        hist_stmt = select(t.c.agent, t.c.histogram).where(t.c.kind == REQUEST)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
            hist_rows = conn.execute(hist_stmt).all()

        weights: Counter[str] = Counter()
        for agent, _model, _kind, count, *_rest in rows:
            weights[agent] += int(count or 0)
        agents = cap_labels(weights, self.max_agents)
        model_weights: dict[str, Counter[str]] = defaultdict(Counter)
        for agent, model, kind, count, *_rest in rows:
            if kind in MODEL_CALL_KINDS:
                model_weights[agents[agent]][model or "none"] += int(count or 0)
        models = {a: cap_labels(w, self.max_agents) for a, w in model_weights.items()}

        requests = CounterMetricFamily(
            "pharos_agent_requests", "Agent runs by outcome.", labels=["agent", "status"]
        )
        tokens = CounterMetricFamily(
            "pharos_llm_tokens", "LLM tokens by direction.", labels=["agent", "model", "direction"]
        )
        cost = CounterMetricFamily(
            "pharos_llm_cost_usd", "LLM cost in USD.", labels=["agent", "model"]
        )
        req: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0])
        tok: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for agent, model, kind, count, errors, dur, tin, tout, tcached, nano in rows:
            a = agents[agent]
            if kind == REQUEST:
                r = req[a]
                r[0] += int(count or 0)
                r[1] += int(errors or 0)
                r[2] += float(dur or 0.0)
            elif kind in MODEL_CALL_KINDS:
                m = models[a][model or "none"]
                k = tok[(a, m)]
                k[0] += int(tin or 0)
                k[1] += int(tout or 0)
                k[2] += int(tcached or 0)
                k[3] += int(nano or 0)
        for a, (count, errors, _dur) in sorted(req.items()):
            requests.add_metric([a, "ok"], count - errors)
            requests.add_metric([a, "error"], errors)
        for (a, m), (tin, tout, tcached, nano) in sorted(tok.items()):
            tokens.add_metric([a, m, "input"], tin)
            tokens.add_metric([a, m, "output"], tout)
            tokens.add_metric([a, m, "cached"], tcached)
            cost.add_metric([a, m], nano / 1e9)

        merged: dict[str, Counter[int]] = defaultdict(Counter)
        for agent, text in hist_rows:
            hist.merge(merged[agents.get(agent, OTHER)], hist.loads(text))
        duration = HistogramMetricFamily(
            "pharos_agent_request_duration_seconds", "Agent run duration.", labels=["agent"]
        )
        for a in sorted(merged):
            duration.add_metric([a], le_buckets(merged[a]), sum_value=req[a][2] / 1000.0)

        firing = GaugeMetricFamily("pharos_alerts_firing", "Alerts currently firing.")
        firing.add_metric([], self.firing_alerts() if self.firing_alerts else 0)
        yield from (requests, duration, tokens, cost, firing)

    def _own_metrics(self) -> Iterator[Metric]:
        stats = self.writer.stats
        spans = CounterMetricFamily("pharos_spans_ingested", "Spans stored for the first time.")
        spans.add_metric([], stats.spans_stored)
        dupes = CounterMetricFamily("pharos_spans_duplicate", "Re-sent spans skipped.")
        dupes.add_metric([], stats.spans_duplicate)
        reqs = CounterMetricFamily("pharos_ingest_requests", "Ingest requests committed.")
        reqs.add_metric([], stats.requests)
        refused = CounterMetricFamily(
            "pharos_writer_refused",
            "Requests the writer refused (queue full) or could not store, from any source.",
            labels=["reason"],
        )
        refused.add_metric(["overloaded"], stats.rejected_overloaded)
        for reason, n in sorted(stats.failures.items()):
            refused.add_metric([reason], n)
        logs = CounterMetricFamily("pharos_logs_ingested", "Log records stored for the first time.")
        logs.add_metric([], stats.extra_stored["logs"])
        log_dupes = CounterMetricFamily(
            "pharos_logs_duplicate", "Re-sent log records skipped (and identical ones)."
        )
        log_dupes.add_metric([], stats.extra_duplicate["logs"])
        txns = CounterMetricFamily("pharos_writer_transactions", "Writer transactions.")
        txns.add_metric([], stats.transactions)
        deadlocks = CounterMetricFamily(
            "pharos_writer_deadlocks_retried",
            "Writer transactions PostgreSQL rolled back to break a deadlock, run again.",
        )
        deadlocks.add_metric([], stats.deadlocks_retried)
        depth = GaugeMetricFamily("pharos_ingest_queue_depth", "Requests waiting for the writer.")
        depth.add_metric([], self.writer.queue_depth)
        capacity = GaugeMetricFamily("pharos_ingest_queue_capacity", "Writer queue capacity.")
        capacity.add_metric([], self.writer.queue_capacity)
        last = GaugeMetricFamily(
            "pharos_writer_last_commit_seconds", "Duration of the last writer transaction."
        )
        last.add_metric([], stats.last_commit_seconds)
        yield from (
            spans,
            dupes,
            logs,
            log_dupes,
            reqs,
            refused,
            txns,
            deadlocks,
            depth,
            capacity,
            last,
            memory_metric(),
        )


def memory_metric() -> GaugeMetricFamily:
    """Where the server process's heap is (ops/memory.py): beside process_resident_memory_bytes
    it tells a leak (malloc_in_use climbing) from fragmentation (malloc_free) and caches."""
    gauge = GaugeMetricFamily(
        "pharos_memory_bytes",
        "Heap of this process by pool: malloc_in_use, malloc_free (freed, kept by malloc), "
        "sqlite (all SQLite connections; part of malloc_in_use).",
        labels=["pool"],
    )
    malloc = memory.malloc_stats()
    if malloc is not None:
        gauge.add_metric(["malloc_in_use"], malloc.in_use)
        gauge.add_metric(["malloc_free"], malloc.free)
    sqlite = memory.sqlite_memory_bytes()
    if sqlite is not None:
        gauge.add_metric(["sqlite"], sqlite)
    return gauge


class IngestRejections:
    """Counts OTLP exports refused at the edge (HTTP routes, gRPC services), where the signal
    and the reason are known, and the items an accepted export refused (partial_success)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = CounterMetric(
            "pharos_ingest_rejected",
            "OTLP export requests refused or not stored, by signal, transport and reason.",
            ["signal", "transport", "reason"],
            registry=registry,
        )
        self.items_rejected = CounterMetric(
            "pharos_ingest_rejected_items",
            "Spans, log records or metric data points refused inside an accepted OTLP export "
            "(partial_success), by signal and transport.",
            ["signal", "transport"],
            registry=registry,
        )
        for signal in SIGNALS:  # every series from the start: rate() sees the first one
            for transport in TRANSPORTS:
                self.items_rejected.labels(signal, transport)
                for reason in REJECT_REASONS:
                    self.requests.labels(signal, transport, reason)

    def request(self, signal: str, transport: str, reason: str) -> None:
        if signal in SIGNALS and transport in TRANSPORTS and reason in REJECT_REASONS:
            self.requests.labels(signal, transport, reason).inc()

    def items(self, signal: str, transport: str, n: int) -> None:
        if n > 0 and signal in SIGNALS and transport in TRANSPORTS:
            self.items_rejected.labels(signal, transport).inc(n)


class Metrics:
    """The per-app registry (tests build many apps in one process, so not the global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.http_duration = Histogram(
            "pharos_http_request_duration_seconds",
            "Latency of Pharos' own HTTP API, by route template.",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.grpc_duration = Histogram(
            "pharos_grpc_request_duration_seconds",
            "Latency of OTLP/gRPC exports, by method and gRPC status code.",
            ["method", "code"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.ingest_rejections = IngestRejections(self.registry)

    def observe_grpc(self, method: str, code: str, seconds: float) -> None:
        self.grpc_duration.labels(method, code).observe(seconds)

    def attach(self, collector: Collector) -> None:
        self.registry.register(collector)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class HttpMetricsMiddleware:
    """Times every HTTP request; labels by the matched route template (bounded), never the raw
    path. Unmatched paths are labelled ``unmatched``."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.http_duration.labels(scope["method"], template, str(status)).observe(
                time.perf_counter() - started
            )
