"""The forwarding room's services for one app (``app.state.forwarder``).

The ingest routes (OTLP/HTTP and gRPC) call :meth:`Forwarder.context` with the request as
received and pass the result to ``GroupCommitWriter.write(..., context=...)``; the writer calls
:meth:`Forwarder.step` inside the transaction that stores the request's data, which queues one
row per target, only if the request stored something new (a whole resend is not sent again; of a
partial resend only the new spans are). A signal plugs in with one line in its route::

    await writer.write(extras={LOGS: batch.records},
                       context=forward_context(request, "logs", body, content_type, LOGS))
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Request
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection

from pharos.server.db.engine import make_engine
from pharos.server.forward import queue
from pharos.server.forward.config import SIGNALS, Target, build_targets
from pharos.server.forward.worker import ForwardWorker
from pharos.server.ingest.normalize import Limits, SpanRecord
from pharos.server.settings import Settings

log = logging.getLogger("pharos.forward")


@dataclass(frozen=True, slots=True)
class ForwardContext:
    """One accepted request to send on, as received."""

    signal: str  # traces | metrics | logs
    body: bytes
    content_type: str
    encoding: str | None
    items: int  # spans (or points, log records) the request carried
    store: str | None = None  # the writer store of a non-span signal (its new count decides)


class Forwarder:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.targets: list[Target] = build_targets(
            settings.forward_otlp,
            {
                "traces": settings.forward_otlp_traces,
                "metrics": settings.forward_otlp_metrics,
                "logs": settings.forward_otlp_logs,
            },
            signals=settings.forward_signals,
            headers=settings.forward_headers,
            agents=settings.forward_agents,
        )
        self.by_signal: dict[str, list[Target]] = {
            s: [t for t in self.targets if s in t.urls] for s in SIGNALS
        }
        self.worker: ForwardWorker | None = None
        self.enqueued = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.targets)

    def context(
        self,
        signal: str,
        body: bytes,
        content_type: str,
        encoding: str | None,
        items: int,
        store: str | None = None,
    ) -> ForwardContext | None:
        """What to queue for this request, or None if no target takes this signal."""
        if not self.by_signal.get(signal) or not items:
            return None
        enc = (encoding or "").strip().lower() or None
        return ForwardContext(
            signal, bytes(body), content_type, None if enc == "identity" else enc, items, store
        )

    # -- in the writer's transaction ---------------------------------------------------------
    def step(
        self,
        conn: Connection,
        context: Any,
        new_spans: Sequence[SpanRecord],
        extra_stored: Mapping[str, int],
    ) -> None:
        if not isinstance(context, ForwardContext):
            return
        only: str | None = None
        if context.signal == "traces":
            if not new_spans:
                return  # a resend of spans already stored (and so already queued)
            if len(new_spans) < context.items:
                only = orjson.dumps(sorted({r.trace_id + r.span_id for r in new_spans})).decode()
        elif context.store is not None and not extra_stored.get(context.store):
            return
        now = time.time_ns()
        rows = [
            {
                "target": target.name,
                "signal": context.signal,
                "content_type": context.content_type,
                "encoding": context.encoding,
                "body": context.body,
                "only_spans": only,
                "items": context.items if only is None else len(new_spans),
                "created_ns": now,
                "next_attempt_ns": now,
                "attempts": 0,
            }
            for target in self.by_signal[context.signal]
        ]
        queue.enqueue(conn, rows)
        self.enqueued += len(rows)
        if self._loop is not None and self.worker is not None:
            # Best effort: the commit follows at once; the worker's poll catches a miss.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._wake_later)

    def _wake_later(self) -> None:
        if self._loop is not None and self.worker is not None:
            self._loop.call_later(0.02, self.worker.wake.set)

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self, stack: AsyncExitStack) -> None:
        if not self.enabled:
            return
        s = self.settings
        engine = make_engine(
            s.database_url,
            sqlite_synchronous=s.sqlite_synchronous,
            sqlite_begin="IMMEDIATE",
            pool_size=2,
        )
        stack.callback(engine.dispose)
        self.worker = ForwardWorker(
            engine,
            self.targets,
            timeout_seconds=s.forward_timeout_seconds,
            base_seconds=s.forward_retry_base_seconds,
            max_backoff_seconds=s.forward_retry_max_seconds,
            poll_seconds=s.forward_poll_seconds,
            max_queue=s.forward_max_queue,
            max_decompressed_bytes=s.max_decompressed_bytes,
            limits=Limits(s.max_attributes, s.max_attribute_length),
        )
        self._loop = asyncio.get_running_loop()
        task = asyncio.create_task(self.worker.run(), name="pharos-forward")
        worker = self.worker
        stack.push_async_callback(worker.stop, task)
        log.info("forwarding to %s", ", ".join(t.name for t in self.targets))

    def health(self) -> dict[str, Any]:
        w = self.worker
        return {
            "targets": [t.name for t in self.targets],
            "worker": "running" if w is not None and w.running else "stopped",
            "queue_depth": dict(w.stats.depth) if w is not None else {},
            "last_error": dict(w.stats.last_error) if w is not None else {},
        }


def forward_context(
    request: Request,
    signal: str,
    body: bytes,
    content_type: str,
    items: int,
    store: str | None = None,
) -> ForwardContext | None:
    """The writer ``context`` of an OTLP/HTTP request (None when forwarding is off)."""
    forwarder: Forwarder | None = getattr(request.app.state, "forwarder", None)
    if forwarder is None:
        return None
    return forwarder.context(
        signal, body, content_type, request.headers.get("content-encoding"), items, store
    )


class ForwardCollector(Collector):
    """``pharos_forward_*`` on /metrics: queue depth (from the database, every instance's
    rows), and this instance's sent, failed and dropped requests by target."""

    def __init__(self, forwarder: Forwarder) -> None:
        self.forwarder = forwarder

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        worker = self.forwarder.worker
        if worker is None:
            return
        stats = worker.stats
        depth = GaugeMetricFamily(
            "pharos_forward_queue_depth", "Requests queued for a target.", labels=["target"]
        )
        for target in sorted(worker.targets):
            depth.add_metric([target], stats.depth.get(target, 0))
        sent = CounterMetricFamily(
            "pharos_forward_sent", "Requests a target accepted.", labels=["target", "signal"]
        )
        items = CounterMetricFamily(
            "pharos_forward_sent_items",
            "Spans, points or log records in the requests a target accepted.",
            labels=["target", "signal"],
        )
        for (target, signal), n in sorted(stats.sent.items()):
            sent.add_metric([target, signal], n)
            items.add_metric([target, signal], stats.sent_items[(target, signal)])
        failed = CounterMetricFamily(
            "pharos_forward_failed", "Failed send attempts.", labels=["target", "reason"]
        )
        for (target, reason), n in sorted(stats.failed.items()):
            failed.add_metric([target, reason], n)
        dropped = CounterMetricFamily(
            "pharos_forward_dropped",
            "Queued requests dropped unsent (queue_full, target_removed, http_4xx).",
            labels=["target", "reason"],
        )
        for (target, reason), n in sorted(stats.dropped.items()):
            dropped.add_metric([target, reason], n)
        yield from (depth, sent, items, failed, dropped)


async def start_forwarding(
    app: Any, settings: Settings, stack: AsyncExitStack, writer: Any
) -> None:
    """Create the forwarder, hook it into the writer, start its worker (if targets exist)."""
    forwarder = Forwarder(settings)
    app.state.forwarder = forwarder
    if not forwarder.enabled:
        return
    writer.request_steps.append(forwarder.step)
    app.state.metrics.attach(ForwardCollector(forwarder))
    await forwarder.start(stack)
