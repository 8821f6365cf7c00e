"""Analytics read APIs against a real server on both dialects: the numbers are exact."""

from __future__ import annotations

import math
import random
import time

import pytest

from tests.conftest import RunningServer, ServerFactory
from tests.otlp_helpers import PROTOBUF, kv, request, span

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


def _trace(
    trace: int,
    *,
    agent: str,
    model: str,
    start_ns: int,
    ms: float,
    error: bool = False,
    exception: str | None = None,
) -> list:
    """An agent run with one LLM call of ``model`` (and an exception event when asked)."""
    root = span(
        trace,
        1,
        name=f"run {agent}",
        duration_ms=ms,
        attrs={"gen_ai.agent.name": agent, "gen_ai.operation.name": "invoke_agent"},
        error="run failed" if error else None,
    )
    llm = span(
        trace,
        2,
        1,
        name="chat",
        duration_ms=ms / 2,
        attrs={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": model,
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 10,
        },
        error=exception,
    )
    if exception:
        ev = llm.events.add()
        ev.name = "exception"
        ev.time_unix_nano = llm.start_time_unix_nano
        ev.attributes.extend(
            [kv("exception.type", exception), kv("exception.message", f"{exception} happened")]
        )
    offset = start_ns - root.start_time_unix_nano
    for s in (root, llm):
        s.start_time_unix_nano += offset
        s.end_time_unix_nano += offset
        for ev in s.events:
            ev.time_unix_nano += offset
    return [root, llm]


@pytest.fixture
def two_agents(server: RunningServer):
    """alpha calls model m-a, beta m-b; both fail sometimes, with their own exception; and a
    failed alpha run 90 minutes ago (outside a 1 h window)."""
    now = time.time_ns()
    spans: list = []
    for i in range(12):
        agent, model = ("alpha", "m-a") if i % 2 == 0 else ("beta", "m-b")
        fail = i % 3 == 0
        spans += _trace(
            0x20_0000 + i,
            agent=agent,
            model=model,
            start_ns=now - (40 - 3 * i) * 60 * NS,
            ms=100.0 + 50 * i,
            error=fail,
            exception=("AlphaError" if agent == "alpha" else "BetaError") if fail else None,
        )
    spans += _trace(
        0x20_1000, agent="alpha", model="m-a", start_ns=now - 90 * 60 * NS, ms=9000, error=True
    )
    _send(server, spans)
    return server


def test_overview_is_scoped_by_agent_and_model(two_agents: RunningServer) -> None:
    server = two_agents
    everything = server.get("/api/v1/overview", params={"window": "1h"}).json()
    assert everything["agent"] is None and everything["summary"]["requests"] == 12
    assert {t["agent"] for t in everything["recent_errors"]} == {"alpha", "beta"}
    # The window is respected: the 90-minute-old failure is not in a 1 h overview...
    old = format(0x20_1000, "032x")
    assert old not in {t["trace_id"] for t in everything["recent_errors"]}
    assert old not in {t["trace_id"] for t in everything["slow_traces"]}
    # ...but is in a 2 h one, and the slowest there.
    wider = server.get("/api/v1/overview", params={"window": "2h"}).json()
    assert wider["recent_errors"][-1]["trace_id"] == old
    assert wider["slow_traces"][0]["trace_id"] == old

    agents = {a["agent"]: a for a in server.get("/api/v1/agents").json()["items"]}
    alpha = server.get("/api/v1/overview", params={"window": "1h", "agent": "alpha"}).json()
    assert alpha["agent"] == "alpha" and alpha["model"] is None
    assert alpha["summary"]["requests"] == 6 and alpha["summary"]["agent"] == "alpha"
    assert alpha["health"] == agents["alpha"]["health"]
    assert [a["agent"] for a in alpha["top_agents"]] == ["alpha"]
    assert alpha["top_agents"][0] == agents["alpha"]
    assert alpha["recent_errors"] and {t["agent"] for t in alpha["recent_errors"]} == {"alpha"}
    assert len(alpha["slow_traces"]) == 5
    assert {t["agent"] for t in alpha["slow_traces"]} == {"alpha"}
    durations = [t["duration_ms"] for t in alpha["slow_traces"]]
    assert durations == sorted(durations, reverse=True)
    assert [g["type"] for g in alpha["top_errors"]] == ["AlphaError"]
    assert alpha["top_errors"][0]["count"] == 2 and "stacktrace" not in alpha["top_errors"][0]
    assert {g["type"] for g in everything["top_errors"]} == {"AlphaError", "BetaError"}

    beta_model = server.get("/api/v1/overview", params={"window": "1h", "model": "m-b"}).json()
    assert beta_model["model"] == "m-b"
    s = beta_model["summary"]
    assert s["scope"] == "model_calls" and s["requests"] == 6 and s["errors"] == 2
    assert [a["agent"] for a in beta_model["top_agents"]] == ["beta"]
    assert beta_model["top_agents"][0]["requests"] == 6  # beta's calls of m-b
    assert {t["agent"] for t in beta_model["recent_errors"]} == {"beta"}
    assert {t["agent"] for t in beta_model["slow_traces"]} == {"beta"}
    # The health of the model's calls (2 of 6 failed: critical), not the global one.
    assert beta_model["health"]["components"]["error_rate"]["value"] == pytest.approx(33.333)
    assert beta_model["health"] != everything["health"]
    assert beta_model["top_errors_scope"] == {"agent": None, "model": None}

    both = server.get(
        "/api/v1/overview", params={"window": "1h", "agent": "alpha", "model": "m-b"}
    ).json()
    assert both["summary"]["no_data"] is True and both["top_agents"] == []
    assert both["recent_errors"] == [] and both["slow_traces"] == []
    ghost = server.get("/api/v1/overview", params={"agent": "nobody"}).json()
    assert ghost["summary"]["no_data"] is True and ghost["health"]["status"] == "unknown"
    assert ghost["top_agents"] == [] and ghost["top_errors"] == []


def test_agent_health_counts_firing_alerts_everywhere(two_agents: RunningServer) -> None:
    server = two_agents
    rule = server.post(
        "/api/v1/alerts/rules",
        json={
            "name": "beta only",
            "expression": "p99(latency, 1h) > 625 by agent",
            "severity": "critical",
        },
    )
    assert rule.status_code == 201, rule.text
    cycle = server.post("/api/v1/alerts/evaluate")
    assert cycle.status_code == 200 and cycle.json()["errors"] == [], cycle.text
    firing = server.get("/api/v1/alerts", params={"state": "firing"}).json()["items"]
    assert [a["labels"]["agent"] for a in firing] == ["beta"]

    from_agents = {a["agent"]: a["health"] for a in server.get("/api/v1/agents").json()["items"]}
    window = {"window": "1h"}
    from_health = {
        a["agent"]: {k: v for k, v in a.items() if k != "agent"}
        for a in server.get("/api/v1/health", params=window).json()["agents"]
    }
    overview = server.get("/api/v1/overview", params=window).json()
    from_overview = {a["agent"]: a["health"] for a in overview["top_agents"]}
    scoped = server.get("/api/v1/overview", params={**window, "agent": "beta"}).json()
    assert from_agents["beta"]["components"]["alerts"]["value"] == 1
    assert from_agents["alpha"]["components"]["alerts"]["value"] == 0
    assert from_health["beta"] == from_agents["beta"] == from_overview["beta"]
    assert from_health["alpha"] == from_agents["alpha"] == from_overview["alpha"]
    assert scoped["health"] == from_agents["beta"]
    assert "1 alert(s) firing" in from_health["beta"]["reasons"]
    # The overview lists the firing alert, for everyone and for beta, not for alpha.
    assert [a["agent"] for a in overview["alerts"]["items"]] == ["beta"]
    assert scoped["alerts"]["firing"] == 1 and scoped["alerts"]["items"][0]["rule"] == "beta only"
    alpha = server.get("/api/v1/overview", params={**window, "agent": "alpha"}).json()
    assert alpha["alerts"] == {"firing": 0, "items": []}
    assert alpha["health"]["components"]["alerts"]["value"] == 0


def test_agents_sparklines_cover_every_agent(server: RunningServer) -> None:
    now = time.time_ns()
    spans: list = []
    for i in range(25):  # more agents than a grouped time series keeps (20)
        for j in range(i % 3 + 1):
            spans += _trace(
                0x30_0000 + i * 10 + j,
                agent=f"agent-{i:02d}",
                model="m",
                start_ns=now - (5 + j) * 60 * NS,
                ms=50,
            )
    _send(server, spans)
    plain = server.get("/api/v1/agents", params={"window": "1h"}).json()
    assert "sparkline" not in plain and "sparkline" not in plain["items"][0]
    data = server.get("/api/v1/agents", params={"window": "1h", "sparkline": "true"}).json()
    spark = data["sparkline"]
    assert spark["interval_seconds"] == 60 and spark["points"] in (60, 61)
    assert len(data["items"]) == 25
    for row in data["items"]:
        assert len(row["sparkline"]) == spark["points"]
        assert sum(row["sparkline"]) == row["requests"] == int(row["agent"][-2:]) % 3 + 1
    week = server.get("/api/v1/agents", params={"window": "7d", "sparkline": "true"}).json()
    assert week["sparkline"]["interval_seconds"] == 3 * 3600
    assert all(sum(r["sparkline"]) == r["requests"] for r in week["items"])


def test_health_alert_thresholds_come_from_the_settings(make_server: ServerFactory) -> None:
    """PHAROS_HEALTH_ALERTS_WARNING/CRITICAL reach /health, /overview and /agents alike: with a
    warning threshold of 1, one firing alert costs an agent nothing."""
    server = make_server(health_alerts_warning=1, health_alerts_critical=3)
    now = time.time_ns()
    _send(server, _trace(0x40_0000, agent="solo", model="m", start_ns=now - 5 * 60 * NS, ms=900))
    rule = server.post(
        "/api/v1/alerts/rules",
        json={"name": "slow", "expression": "p99(latency, 1h) > 100 by agent", "severity": "error"},
    )
    assert rule.status_code == 201, rule.text
    assert server.post("/api/v1/alerts/evaluate").json()["errors"] == []
    window = {"window": "1h"}
    agents = {
        a["agent"]: a["health"] for a in server.get("/api/v1/agents", params=window).json()["items"]
    }
    health = {a["agent"]: a for a in server.get("/api/v1/health", params=window).json()["agents"]}
    overview = server.get("/api/v1/overview", params=window).json()
    for h in (agents["solo"], health["solo"], overview["top_agents"][0]["health"]):
        assert h["components"]["alerts"]["value"] == 1
        assert h["components"]["alerts"]["score"] == 1.0, h
