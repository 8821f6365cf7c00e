"""Seeded OTLP metrics from the demo agents (``pharos serve --demo``): what an agent reports
about its resource use and its work — CPU and memory gauges, a tool-call counter per tool, an
up-down counter of open conversations, a cache-hit counter and the GenAI client operation
duration histogram. Cumulative values carry on from one export to the next like a real SDK's.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from pharos.server.demo import AGENTS, DemoAgent
from pharos.server.ingest.metric_store import METRIC_POINTS
from pharos.server.ingest.metrics import MetricPoint, normalize_metrics

if TYPE_CHECKING:
    from pharos.server.ingest.normalize import Limits
    from pharos.server.ingest.writer import GroupCommitWriter

log = logging.getLogger("pharos.demo")

NS = 1_000_000_000
#: The GenAI semantic conventions' advised buckets for gen_ai.client.operation.duration (s).
DURATION_BOUNDS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48)
CUMULATIVE = m.AGGREGATION_TEMPORALITY_CUMULATIVE


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


@dataclass
class _AgentState:
    agent: DemoAgent
    tool_calls: dict[str, int] = field(default_factory=dict)
    cache_hits: int = 0
    conversations: int = 0
    durations: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BOUNDS) + 1))
    duration_sum: float = 0.0


class DemoMetrics:
    """Cumulative state of every demo agent's instruments since ``start_ns``."""

    def __init__(self, start_ns: int, seed: int = 7) -> None:
        self.start_ns = start_ns
        self._rng = random.Random(seed)
        self._agents = [_AgentState(a) for a in AGENTS]

    def export(self, time_ns: int, step_seconds: float = 60.0) -> ExportMetricsServiceRequest:
        """Advance every instrument by ``step_seconds`` of activity and export it at ``time_ns``."""
        rng = self._rng
        hours = (time_ns - self.start_ns) / NS / 3600
        request = ExportMetricsServiceRequest()
        for state in self._agents:
            a = state.agent
            busy = a.weight * (1.0 + 0.5 * math.sin(hours * math.pi / 6)) * step_seconds / 60
            for tool in a.tools:
                state.tool_calls[tool] = state.tool_calls.get(tool, 0) + rng.randint(
                    0, max(1, round(20 * busy))
                )
            state.cache_hits += rng.randint(0, max(1, round(30 * busy)))
            state.conversations = max(0, state.conversations + rng.randint(-3, 3))
            slow = 3.0 if a.degrading and hours > 18 else 1.0
            for _ in range(max(1, round(40 * busy))):
                seconds = rng.lognormvariate(math.log(0.8 * slow), 0.7)
                state.duration_sum += seconds
                i = next(
                    (k for k, b in enumerate(DURATION_BOUNDS) if seconds <= b),
                    len(DURATION_BOUNDS),
                )
                state.durations[i] += 1
            cpu = min(1.0, 0.15 + 0.6 * busy + rng.uniform(0, 0.05) + (0.2 if slow > 1 else 0))
            memory = 180e6 + 40e6 * a.weight * 10 + 5e6 * hours + rng.uniform(0, 4e6)
            request.resource_metrics.append(self._resource_metrics(state, time_ns, cpu, memory))
        return request

    def _resource_metrics(
        self, state: _AgentState, time_ns: int, cpu: float, memory: float
    ) -> m.ResourceMetrics:
        a = state.agent
        start = self.start_ns

        def number(value: float, **attrs: str) -> m.NumberDataPoint:
            return m.NumberDataPoint(
                start_time_unix_nano=start,
                time_unix_nano=time_ns,
                as_double=value,
                attributes=[_kv(k, v) for k, v in attrs.items()],
            )

        def counter(value: int, **attrs: str) -> m.NumberDataPoint:
            return m.NumberDataPoint(
                start_time_unix_nano=start,
                time_unix_nano=time_ns,
                as_int=value,
                attributes=[_kv(k, v) for k, v in attrs.items()],
            )

        metrics = [
            m.Metric(
                name="process.cpu.utilization",
                unit="1",
                description="Share of one CPU used by the agent process",
                gauge=m.Gauge(data_points=[number(round(cpu, 4))]),
            ),
            m.Metric(
                name="process.memory.usage",
                unit="By",
                description="Resident memory of the agent process",
                gauge=m.Gauge(data_points=[number(round(memory))]),
            ),
            m.Metric(
                name="agent.tool_calls",
                unit="{call}",
                description="Tool calls made by the agent",
                sum=m.Sum(
                    aggregation_temporality=CUMULATIVE,
                    is_monotonic=True,
                    data_points=[counter(n, tool=t) for t, n in sorted(state.tool_calls.items())],
                ),
            ),
            m.Metric(
                name="agent.cache.hits",
                unit="{hit}",
                description="Prompt cache hits",
                sum=m.Sum(
                    aggregation_temporality=CUMULATIVE,
                    is_monotonic=True,
                    data_points=[counter(state.cache_hits)],
                ),
            ),
            m.Metric(
                name="agent.conversations.active",
                unit="{conversation}",
                description="Conversations open right now",
                sum=m.Sum(
                    aggregation_temporality=CUMULATIVE,
                    is_monotonic=False,
                    data_points=[counter(state.conversations)],
                ),
            ),
            m.Metric(
                name="gen_ai.client.operation.duration",
                unit="s",
                description="GenAI operation duration",
                histogram=m.Histogram(
                    aggregation_temporality=CUMULATIVE,
                    data_points=[
                        m.HistogramDataPoint(
                            start_time_unix_nano=start,
                            time_unix_nano=time_ns,
                            count=sum(state.durations),
                            sum=state.duration_sum,
                            explicit_bounds=DURATION_BOUNDS,
                            bucket_counts=state.durations,
                            attributes=[_kv("gen_ai.request.model", a.models[0])],
                        )
                    ],
                ),
            ),
        ]
        return m.ResourceMetrics(
            resource=Resource(
                attributes=[
                    _kv("service.name", a.service),
                    _kv("gen_ai.agent.name", a.name),
                    _kv("host.name", f"{a.service}-1"),
                ]
            ),
            scope_metrics=[
                m.ScopeMetrics(scope=InstrumentationScope(name="pharos.demo"), metrics=metrics)
            ],
        )


async def demo_metrics_loop(
    writer: GroupCommitWriter,
    limits: Limits,
    *,
    hours: float = 6.0,
    step_seconds: int = 60,
    live_seconds: float = 30.0,
) -> None:
    """Backfill ``hours`` of demo metrics through the writer, then export every
    ``live_seconds`` like a PeriodicExportingMetricReader would."""
    now = time.time_ns()
    start = now - int(hours * 3600) * NS
    demo = DemoMetrics(start)
    pending: list[MetricPoint] = []
    t = start + step_seconds * NS
    while t <= now:
        pending.extend(normalize_metrics(demo.export(t, step_seconds), limits).points)
        if len(pending) >= 2000:
            await writer.write(extras={METRIC_POINTS: pending})
            pending = []
        t += step_seconds * NS
    if pending:
        await writer.write(extras={METRIC_POINTS: pending})
    log.info("demo: %.0f h of agent metrics loaded", hours)
    while True:
        await asyncio.sleep(live_seconds)
        batch = normalize_metrics(demo.export(time.time_ns(), live_seconds), limits)
        await writer.write(extras={METRIC_POINTS: batch.points})
