"""GET /metrics on a real server: exact per-agent values, own health, promtool-valid output."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import RunningServer
from tests.log_helpers import log_record, logs_request
from tests.otlp_helpers import PROTOBUF, request, span

ROOT = Path(__file__).resolve().parents[2]
NS = 1_000_000_000


def _promtool() -> str:
    tool = shutil.which("promtool")
    if tool is None:
        if os.environ.get("PHAROS_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail("promtool is required in CI (Debian package prometheus)")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return tool


def _seed(server: RunningServer) -> None:
    now_ms = (time.time_ns() - 5 * 60 * NS - 1_790_000_000_000_000_000) / 1e6
    batch = []
    for i in range(10):
        agent = "alpha" if i < 6 else "beta"
        root = span(
            0x5000 + i,
            1,
            start_ms=now_ms,
            duration_ms=200 * (i + 1),
            attrs={"gen_ai.agent.name": agent, "gen_ai.operation.name": "invoke_agent"},
            error="boom" if i in (0, 7) else None,
        )
        llm = span(
            0x5000 + i,
            2,
            1,
            start_ms=now_ms,
            duration_ms=100,
            attrs={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-x",
                "gen_ai.usage.input_tokens": 100,
                "gen_ai.usage.output_tokens": 10,
                "gen_ai.usage.cost": 0.25,
            },
        )
        batch += [root, llm]
    assert (
        server.post(
            "/v1/traces", content=request(batch).SerializeToString(), headers=PROTOBUF
        ).status_code
        == 200
    )


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_values(server: RunningServer) -> None:
    _seed(server)
    logs_body = logs_request([log_record(f"line {i}") for i in range(3)]).SerializeToString()
    for _ in range(2):  # the resend is counted as duplicates, not as ingested
        assert server.post("/v1/logs", content=logs_body, headers=PROTOBUF).status_code == 200
    server.get("/api/v1/traces/" + "ab" * 16)  # a 404 on a templated route
    resp = server.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    s = _samples(resp.text)
    assert s[("pharos_agent_requests_total", (("agent", "alpha"), ("status", "ok")))] == 5
    assert s[("pharos_agent_requests_total", (("agent", "alpha"), ("status", "error")))] == 1
    assert s[("pharos_agent_requests_total", (("agent", "beta"), ("status", "error")))] == 1
    assert s[("pharos_agent_request_duration_seconds_count", (("agent", "alpha"),))] == 6
    assert (
        s[("pharos_agent_request_duration_seconds_bucket", (("agent", "alpha"), ("le", "+Inf")))]
        == 6
    )
    assert (
        s[("pharos_agent_request_duration_seconds_bucket", (("agent", "alpha"), ("le", "0.25")))]
        == 1
    )  # 200 ms
    assert s[("pharos_agent_request_duration_seconds_sum", (("agent", "alpha"),))] == (
        pytest.approx(0.2 + 0.4 + 0.6 + 0.8 + 1.0 + 1.2)
    )
    key = (("agent", "alpha"), ("direction", "input"), ("model", "gpt-x"))
    assert s[("pharos_llm_tokens_total", key)] == 600
    assert s[("pharos_llm_cost_usd_total", (("agent", "alpha"), ("model", "gpt-x")))] == 1.5
    assert s[("pharos_alerts_firing", ())] == 0
    assert s[("pharos_spans_ingested_total", ())] == 20
    assert s[("pharos_logs_ingested_total", ())] == 3
    assert s[("pharos_logs_duplicate_total", ())] == 3
    assert s[("pharos_ingest_queue_capacity", ())] == server.settings.writer_queue_size
    routes = {dict(k[1]).get("route") for k in s if k[0].startswith("pharos_http_request")}
    assert "/api/v1/traces/{trace_id}" in routes
    assert not any(r and "abab" in r for r in routes)  # templates, never raw paths
    assert ("process_resident_memory_bytes", ()) in s


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_agent_label_cardinality_is_capped(make_server, db_url: str) -> None:
    srv = make_server(metrics_max_agents=2)
    batch = [span(0x6000 + i, 1, attrs={"gen_ai.agent.name": f"agent-{i}"}) for i in range(5)]
    srv.post("/v1/traces", content=request(batch).SerializeToString(), headers=PROTOBUF)
    agents = {
        dict(k[1])["agent"]
        for k in _samples(srv.get("/metrics").text)
        if k[0] == "pharos_agent_requests_total"
    }
    assert len(agents) == 3 and "other" in agents


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_promtool_accepts_the_scrape_and_the_rules(server: RunningServer, db_url: str) -> None:
    tool = _promtool()
    _seed(server)
    scrape = server.get("/metrics").text
    checked = subprocess.run(
        [tool, "check", "metrics"], input=scrape, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = subprocess.run(
        [tool, "check", "rules", str(ROOT / "deploy/prometheus/rules.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS" in rules.stdout
