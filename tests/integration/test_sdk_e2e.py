"""The SDK end to end: ``import pharos`` -> a real Pharos server (SQLite and PostgreSQL) -> the
query APIs show the spans, the tree, agent/LLM/tool kinds, tokens, cost from the price table,
errors and the redacted values; the example agent through ``pharos demo --sdk``; OpenAI calls
through the OpenInference instrumentation; system metrics."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import pharos
from pharos.sdk import state
from pharos.server.access.keys import create_key, parse_scopes
from pharos.server.db.engine import make_engine
from tests.conftest import RunningServer

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-proj-Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2"
# gpt-4o-mini in src/pharos/server/cost/prices.toml: USD per million tokens.
MINI_INPUT, MINI_OUTPUT = Decimal("0.15"), Decimal("0.60")


@pytest.fixture(autouse=True)
def _clean_sdk() -> Iterator[None]:
    pharos.shutdown(timeout=5)
    yield
    pharos.shutdown(timeout=5)
    state.holder.last = None


def _keys(server: RunningServer) -> dict[str, str]:
    engine = make_engine(server.settings.database_url)
    try:
        keys = {s: create_key(engine, f"sdk-{s}", parse_scopes(s))[0] for s in ("ingest", "read")}
    finally:
        engine.dispose()
    deadline = time.monotonic() + 10
    while server.get("/api/v1/traces").status_code != 401:  # the key cache noticed
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return keys


def _get(server: RunningServer, path: str, key: str | None = None, **params: Any) -> Any:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    response = server.get(path, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def _wait_traces(server: RunningServer, n: int, key: str | None = None, **params: Any) -> list:
    deadline = time.monotonic() + 20
    while True:
        items = _get(server, "/api/v1/traces", key, **params)["items"]
        if len(items) >= n or time.monotonic() > deadline:
            return items
        time.sleep(0.1)


def test_agent_llm_and_tool_spans_with_tokens_cost_errors_and_redaction(
    server: RunningServer,
) -> None:
    keys = _keys(server)
    assert pharos.init(
        service_name="e2e-service",
        endpoint=server.url,
        api_key=keys["ingest"],
        capture_content=True,
        schedule_delay=0.05,
    )

    @pharos.tool
    def search_kb(query: str, api_key: str) -> list[str]:
        """Search the help center."""
        return ["Refunds take 5 days."]

    @pharos.tool
    def lookup_order(order_id: str) -> dict[str, str]:
        """Look up an order."""
        raise TimeoutError(f"order db timed out; token was Bearer {SECRET}")

    @pharos.agent(name="support-bot")
    def handle(ticket: str) -> str:
        docs = search_kb(ticket, api_key=SECRET)
        with contextlib.suppress(TimeoutError):
            lookup_order("A1")
        with pharos.llm(model="gpt-4o-mini", system="openai") as call:
            call.record(
                input_tokens=1200,
                output_tokens=300,
                input=[{"role": "user", "content": f"{ticket} (key {SECRET})"}],
            )
        pharos.current_span().set("customer.password", "hunter2")
        return docs[0]

    assert handle("Where is my refund?") == "Refunds take 5 days."
    assert pharos.shutdown(10)
    assert pharos.stats()["spans"] == {"queued": 0, "dropped": 0, "exported": 4, "failed": 0}

    (summary,) = _wait_traces(server, 1, keys["read"], agent="support-bot")
    assert summary["name"] == "invoke_agent support-bot"
    assert summary["span_count"] == 4 and summary["error_count"] == 1
    assert summary["llm_calls"] == 1 and summary["tool_calls"] == 2
    assert summary["tokens"]["input"] == 1200 and summary["tokens"]["output"] == 300
    expected_cost = (1200 * MINI_INPUT + 300 * MINI_OUTPUT) / 1_000_000
    assert Decimal(str(summary["cost_usd"])) == pytest.approx(expected_cost)

    detail = _get(server, f"/api/v1/traces/{summary['trace_id']}", keys["read"])
    spans = {s["name"]: s for s in detail["spans"]}
    root = spans["invoke_agent support-bot"]
    assert detail["roots"] == [root["span_id"]]
    assert root["kind"] == "agent" and root["parent_span_id"] in (None, "")
    assert set(root["children"]) == {
        spans[n]["span_id"]
        for n in ("execute_tool search_kb", "execute_tool lookup_order", "chat gpt-4o-mini")
    }
    chat = spans["chat gpt-4o-mini"]
    assert chat["kind"] == "llm" and chat["model"] == "gpt-4o-mini"
    assert chat["agent"] == "support-bot" and chat["span_kind"] == "client"
    assert chat["tokens"]["input"] == 1200 and chat["tokens"]["output"] == 300
    assert Decimal(str(chat["cost_usd"])) == pytest.approx(expected_cost)
    failed = spans["execute_tool lookup_order"]
    assert failed["kind"] == "tool" and failed["status"] == "error"
    assert failed["status_message"] == "TimeoutError: order db timed out; token was [REDACTED]"
    (event,) = failed["events"]
    assert event["name"] == "exception"
    assert event["attributes"]["exception.type"] == "TimeoutError"
    assert spans["execute_tool search_kb"]["attributes"]["gen_ai.tool.call.arguments"] == (
        '{"query": "Where is my refund?", "api_key": "[REDACTED]"}'
    )
    assert root["attributes"]["customer.password"] == "[REDACTED]"
    assert root["resource"]["service.name"] == "e2e-service"
    # The secret appears nowhere the server stored it.
    raw = json.dumps(detail)
    assert SECRET not in raw and "hunter2" not in raw
    assert raw.count("[REDACTED]") >= 4


def test_example_agent_through_pharos_demo_sdk(server: RunningServer) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pharos.cli",
            "demo",
            "--sdk",
            "--url",
            server.url,
            "--traces",
            "8",
            "--seed",
            "3",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "handled 8 tickets" in result.stderr
    traces = _wait_traces(server, 8, agent="support-bot")
    assert len(traces) == 8
    assert sum(t["llm_calls"] for t in traces) >= 16  # classify + answer per ticket
    assert all(t["cost_usd"] > 0 for t in traces)
    refund = next(t for t in traces if t["span_count"] > 6)
    detail = _get(server, f"/api/v1/traces/{refund['trace_id']}")
    kinds = {s["kind"] for s in detail["spans"]}
    assert {"agent", "llm", "tool"} <= kinds
    agents = {s["agent"] for s in detail["spans"] if s["kind"] == "agent"}
    assert agents == {"support-bot", "billing-agent"}  # a nested agent
    raw = json.dumps([_get(server, f"/api/v1/traces/{t['trace_id']}") for t in traces])
    assert "sk-shopdb" not in raw and "sk-live" not in raw
    assert "@example.com" not in raw  # redact_pii=True in the example
    logs = _get(server, "/api/v1/logs", agent="support-bot", limit=500)["items"]
    received = [item for item in logs if item["body"] == "ticket received"]
    assert len(received) == 8
    assert all(item["attributes"]["customer"] == "[REDACTED]" for item in received)
    assert all(item["trace"]["exists"] for item in received)
    raw_logs = json.dumps(logs)
    assert "@example.com" not in raw_logs and "sk-live" not in raw_logs


def test_openai_calls_through_openinference_instrumentation(server: RunningServer) -> None:
    openai = pytest.importorskip("openai")
    pytest.importorskip("openinference.instrumentation.openai")
    from tests.fake_upstream import MODEL, USAGE, fake_upstream

    with fake_upstream() as upstream:
        assert pharos.init(
            service_name="oi-service", endpoint=server.url, instrument=["openai"], logs=False
        )
        client = openai.OpenAI(base_url=upstream.url + "/v1", api_key="sk-test-not-real-0000")
        with pharos.agent(name="oi-bot"):
            reply = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        assert reply.usage.prompt_tokens == USAGE["prompt_tokens"]
        assert pharos.shutdown(10)
    (summary,) = _wait_traces(server, 1, agent="oi-bot")
    assert summary["llm_calls"] == 1
    assert summary["tokens"]["input"] == USAGE["prompt_tokens"]
    assert summary["tokens"]["output"] == USAGE["completion_tokens"]
    assert summary["cost_usd"] > 0  # priced from the table as gpt-4o-mini
    detail = _get(server, f"/api/v1/traces/{summary['trace_id']}")
    (llm,) = [s for s in detail["spans"] if s["kind"] == "llm"]
    assert llm["model"] == MODEL
    assert llm["attributes"]["openinference.span.kind"] == "LLM"
    assert llm["agent"] == "oi-bot"


def test_system_metrics_reach_pharos(server: RunningServer) -> None:
    assert pharos.init(
        service_name="metered-agent",
        endpoint=server.url,
        system_metrics=True,
        metrics_interval=0.2,
        logs=False,
    )
    deadline = time.monotonic() + 20
    names: set[str] = set()
    while time.monotonic() < deadline and "process.memory.usage" not in names:
        time.sleep(0.2)
        items = _get(server, "/api/v1/metrics/names", agent="metered-agent")["items"]
        names = {item["name"] for item in items}
    assert {"process.memory.usage", "process.cpu.time", "system.memory.usage"} <= names
    assert pharos.shutdown(10)


def test_logs_are_correlated_with_the_trace_and_redacted(server: RunningServer) -> None:
    keys = _keys(server)
    assert pharos.init(
        service_name="log-service",
        endpoint=server.url,
        api_key=keys["ingest"],
        redact_pii=True,
        log_level="INFO",
        schedule_delay=0.05,
    )
    log = pharos.get_logger("support")

    @pharos.tool
    def refund(order_id: str) -> None:
        raise PermissionError(f"refund of {order_id} refused for carol@example.com")

    @pharos.agent(name="log-bot")
    def handle() -> tuple[str | None, str | None]:
        with pharos.bind(request_id="req-e2e-1", channel="chat"):
            log.info(
                "ticket received from %s",
                "alice@example.com",
                ticket_id=31,
                authorization=f"Bearer {SECRET}",
            )
            try:
                refund("A9")
            except PermissionError:
                log.exception("refund failed", order_id="A9")
            span = pharos.current_span()
            return span.trace_id, span.span_id

    trace_id, span_id = handle()
    assert pharos.shutdown(10)
    assert pharos.stats()["logs"]["exported"] == 2

    deadline = time.monotonic() + 20
    while True:
        items = _get(server, "/api/v1/logs", keys["read"], trace_id=trace_id)["items"]
        if len(items) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    by_level = {item["level"]: item for item in items}
    info, error = by_level["info"], by_level["error"]
    for item in (info, error):
        assert item["trace_id"] == trace_id and item["span_id"] == span_id
        assert item["agent"] == "log-bot"
        assert item["service"] == "log-service"
        assert item["scope"] == "support"
        assert item["trace"]["exists"] is True
        assert item["attributes"]["request_id"] == "req-e2e-1"
        assert item["attributes"]["channel"] == "chat"
    assert info["body"] == "ticket received from [REDACTED]"
    assert info["attributes"]["ticket_id"] == 31
    assert info["attributes"]["authorization"] == "[REDACTED]"
    assert error["body"] == "refund failed"
    assert error["attributes"]["exception.type"] == "PermissionError"
    assert error["attributes"]["exception.message"] == "refund of A9 refused for [REDACTED]"
    raw = json.dumps(items)
    assert SECRET not in raw and "@example.com" not in raw

    # The trace detail lists the same logs next to the spans they were written in.
    detail = _get(server, f"/api/v1/traces/{trace_id}", keys["read"])
    assert {entry["log_id"] for entry in detail["logs"]} == {info["log_id"], error["log_id"]}
    assert {s["name"] for s in detail["spans"]} == {"invoke_agent log-bot", "execute_tool refund"}
