"""Analytics read APIs against a real server on both dialects: the numbers are exact."""

from __future__ import annotations

import math
import random
import time

import pytest

from tests.conftest import RunningServer
from tests.otlp_helpers import PROTOBUF, request, span

NS = 1_000_000_000


def _exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def _send(server: RunningServer, spans: list) -> None:
    for i in range(0, len(spans), 500):
        resp = server.post(
            "/v1/traces", content=request(spans[i : i + 500]).SerializeToString(), headers=PROTOBUF
        )
        assert resp.status_code == 200, resp.text


def _runs(n: int, *, seed: int, agents: tuple[str, ...], start_ns: int, spread_s: int):
    """n agent runs with one LLM call each; returns spans and the truth to compare with."""
    rng = random.Random(seed)
    spans, truth = (
        [],
        {
            "durations": [],
            "errors": 0,
            "input": 0,
            "output": 0,
            "cost_nano": 0,
            "by_agent": {a: 0 for a in agents},
        },
    )
    error_ids = set(rng.sample(range(n), k=round(n * 0.07)))
    for i in range(n):
        agent = agents[i % len(agents)]
        duration = rng.lognormvariate(6.5, 0.9)  # ms, a long tail
        begin = start_ns + rng.randrange(spread_s * NS)
        t0_ms = (begin - start_ns) / 1e6
        tin, tout = rng.randint(10, 5000), rng.randint(1, 800)
        cost = round(rng.uniform(0, 0.05), 9)
        root = span(
            0x10_0000 + i,
            1,
            name="run",
            start_ms=0,
            duration_ms=duration,
            attrs={"gen_ai.agent.name": agent, "gen_ai.operation.name": "invoke_agent"},
            error="failed" if i in error_ids else None,
        )
        llm = span(
            0x10_0000 + i,
            2,
            1,
            name="chat",
            start_ms=0,
            duration_ms=duration / 2,
            attrs={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "m-1",
                "gen_ai.usage.input_tokens": tin,
                "gen_ai.usage.output_tokens": tout,
                "gen_ai.usage.cost": cost,
            },
        )
        for s in (root, llm):  # move to the run's start
            offset = begin - s.start_time_unix_nano
            s.start_time_unix_nano += offset
            s.end_time_unix_nano += offset
        del t0_ms
        spans += [root, llm]
        truth["durations"].append(duration)
        truth["errors"] += i in error_ids
        truth["input"] += tin
        truth["output"] += tout
        truth["cost_nano"] += round(cost * 1e9)
        truth["by_agent"][agent] += 1
    return spans, truth


@pytest.fixture
def loaded(server: RunningServer):
    now = time.time_ns()
    start = now - 50 * 60 * NS  # the last 50 minutes: inside a 1h window, none in the one before
    spans, truth = _runs(1000, seed=3, agents=("alpha", "beta"), start_ns=start, spread_s=45 * 60)
    _send(server, spans)
    return server, truth


def test_summary_is_exact(loaded) -> None:
    server, truth = loaded
    s = server.get("/api/v1/metrics/summary", params={"window": "1h"}).json()
    assert s["requests"] == 1000
    assert s["errors"] == truth["errors"] == 70
    assert s["error_rate"] == 7.0
    assert s["throughput"] == round(1000 / 3600, 6)
    assert s["tokens"] == {
        "input": truth["input"],
        "output": truth["output"],
        "cached": 0,
        "total": truth["input"] + truth["output"],
    }
    assert s["cost_usd"] == round(truth["cost_nano"] / 1e9, 9)
    assert s["llm_calls"] == 1000 and s["tool_calls"] == 0
    durations = truth["durations"]
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        exact = _exact(durations, q)
        assert abs(s["latency_ms"][name] - exact) <= 0.01 * exact, (name, s["latency_ms"], exact)
    assert s["latency_ms"]["max"] == pytest.approx(max(durations), rel=1e-6)
    assert s["latency_ms"]["avg"] == pytest.approx(sum(durations) / 1000, rel=1e-6)
    assert s["previous"]["requests"] == 0 and s["previous"]["no_data"] is True
    assert s["trend"]["requests"] == {"change_pct": None, "direction": "up"}

    alpha = server.get("/api/v1/metrics/summary", params={"window": "1h", "agent": "alpha"}).json()
    assert alpha["requests"] == truth["by_agent"]["alpha"] == 500
    model = server.get("/api/v1/metrics/summary", params={"window": "1h", "model": "m-1"}).json()
    assert model["scope"] == "model_calls" and model["requests"] == 1000
    # The same figures over a long window (read from hour and day rollups) agree.
    long = server.get("/api/v1/metrics/summary", params={"window": "30d"}).json()
    assert (long["requests"], long["errors"], long["tokens"]) == (1000, 70, s["tokens"])
    assert long["latency_ms"]["p99"] == s["latency_ms"]["p99"]


def test_timeseries_buckets(loaded) -> None:
    server, truth = loaded
    ts = server.get(
        "/api/v1/metrics/timeseries",
        params={"metric": "requests", "window": "2h", "interval": "5m"},
    ).json()
    assert ts["interval_seconds"] == 300
    assert len(ts["timestamps"]) == len(ts["series"][0]["values"]) in (24, 25)
    values = ts["series"][0]["values"]
    assert sum(values) == 1000
    assert values[0] == 0  # a gap is a zero, not missing
    by_agent = server.get(
        "/api/v1/metrics/timeseries",
        params={"metric": "requests", "window": "2h", "group_by": "agent"},
    ).json()
    assert {s["name"]: sum(s["values"]) for s in by_agent["series"]} == truth["by_agent"]
    p95 = server.get(
        "/api/v1/metrics/timeseries",
        params={"metric": "latency_p95", "window": "2h", "interval": "1h"},
    ).json()
    assert all(v is None or v > 0 for v in p95["series"][0]["values"])
    day = server.get("/api/v1/metrics/timeseries", params={"metric": "errors", "window": "7d"})
    assert sum(day.json()["series"][0]["values"]) == 70
    assert len(day.json()["timestamps"]) <= 1000


def test_agents_health_overview(loaded) -> None:
    server, _truth = loaded
    agents = server.get("/api/v1/agents", params={"window": "1h"}).json()["items"]
    assert [a["agent"] for a in agents] == ["alpha", "beta"]
    assert all(a["requests"] == 500 and a["last_seen"] for a in agents)
    assert all(a["health"]["status"] in ("healthy", "degraded", "critical") for a in agents)
    health = server.get("/api/v1/health", params={"window": "1h"}).json()
    assert 0 <= health["score"] <= 100
    assert health["status"] == "critical"  # 7 % errors is past the 5 % critical threshold
    assert any(r.startswith("High error rate: 7.0%") for r in health["reasons"])
    assert {a["agent"] for a in health["agents"]} == {"alpha", "beta"}
    overview = server.get("/api/v1/overview", params={"window": "1h"}).json()
    assert overview["summary"]["requests"] == 1000
    assert len(overview["recent_errors"]) == 10
    assert all(t["status"] == "error" for t in overview["recent_errors"])
    slow = overview["slow_traces"]
    assert [t["duration_ms"] for t in slow] == sorted(
        (t["duration_ms"] for t in slow), reverse=True
    )
    assert overview["ingest"]["writer"] == "running"
    assert overview["alerts"] == {"firing": 0, "items": []}
    assert overview["health"]["status"] == "critical"


def test_empty_windows_and_unknown_agents(server: RunningServer) -> None:
    s = server.get("/api/v1/metrics/summary", params={"window": "15m"}).json()
    assert s["no_data"] is True and s["requests"] == 0 and s["error_rate"] == 0.0
    assert s["latency_ms"] == {"p50": None, "p95": None, "p99": None, "avg": None, "max": None}
    ghost = server.get("/api/v1/metrics/summary", params={"agent": "nobody"}).json()
    assert ghost["no_data"] is True
    ts = server.get(
        "/api/v1/metrics/timeseries", params={"metric": "latency_p99", "window": "1h"}
    ).json()
    assert ts["series"][0]["values"] == [None] * len(ts["timestamps"])
    assert server.get("/api/v1/agents").json()["items"] == []
    assert server.get("/api/v1/health").json()["status"] == "unknown"
    assert server.get("/api/v1/overview").json()["summary"]["no_data"] is True


@pytest.mark.parametrize(
    ("path", "params", "name"),
    [
        ("/api/v1/metrics/summary", {"window": "soon"}, "window"),
        ("/api/v1/metrics/summary", {"window": "30s"}, "window"),
        ("/api/v1/metrics/summary", {"window": "9999d"}, "window"),
        ("/api/v1/metrics/timeseries", {"metric": "vibes"}, "metric"),
        ("/api/v1/metrics/timeseries", {"interval": "1m", "window": "30d"}, "interval"),
        ("/api/v1/metrics/timeseries", {"group_by": "colour"}, "group_by"),
        ("/api/v1/agents", {"window": "-1h"}, "window"),
        ("/api/v1/health", {"window": "x"}, "window"),
        ("/api/v1/overview", {"window": ""}, "window"),
    ],
)
def test_bad_parameters(server: RunningServer, path: str, params: dict, name: str) -> None:
    resp = server.get(path, params=params)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "invalid_parameter"
    assert name in resp.json()["error"]["message"]
