"""Admins raise or reset a budget, on SQLite and PostgreSQL: a reset is a budget event and the
period's count starts again from it (the API shows the spend since); the gateway's hard stop
(402) honours it on every instance sharing the database within the budget cache time; and
``pharos budgets list|create|update|reset|delete`` does it all with ``--url`` and ``--key``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from pharos.cli import app as cli_app
from pharos.server.access.keys import create_key, parse_scopes
from pharos.server.db.engine import make_engine
from tests.conftest import RunningServer, ServerFactory, run_server
from tests.fake_upstream import Upstream, fake_upstream
from tests.otlp_helpers import PROTOBUF, T0, request, span

PER_CALL = 400 * 2_500 + 50 * 10_000  # gpt-4o, 400 in / 50 out: 1_500_000 nano-USD


def _ingest(server: RunningServer, n: int, base: int, agent: str = "bot") -> None:
    start = (time.time_ns() - T0) / 1e6 - 30_000
    spans = []
    for i in range(n):
        attrs = {"gen_ai.agent.name": agent, "gen_ai.operation.name": "invoke_agent"}
        spans.append(span(base + i, 1, name="run", start_ms=start, attrs=attrs))
        llm = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 400,
            "gen_ai.usage.output_tokens": 50,
        }
        spans.append(span(base + i, 2, 1, name="chat", start_ms=start + 1, attrs=llm))
    r = server.post("/v1/traces", content=request(spans).SerializeToString(), headers=PROTOBUF)
    assert r.status_code == 200, r.text


def _until(check: Callable[[], Any], seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def test_a_reset_counts_the_period_again_from_now(server: RunningServer) -> None:
    _ingest(server, 40, 0x100)
    body = {"name": "bot daily", "agent": "bot", "period": "daily", "limit_usd": "0.05"}
    created = server.post("/api/v1/budgets", json=body).json()
    assert created["status"] == "exceeded" and created["spend_nanousd"] == 40 * PER_CALL
    assert created["reset_at"] is None and created["period_spend_usd"] == 0.06

    r = server.post(f"/api/v1/budgets/{created['id']}/reset")
    assert r.status_code == 200, r.text
    after = r.json()
    assert after["spend_nanousd"] == 0 and after["spend_usd"] == 0
    assert after["status"] in ("ok", "warning", "critical")  # the forecast keeps the rate
    assert after["reset_at"] is not None and after["period_spend_usd"] == 0.06
    event = after["events"][0]
    assert event.pop("forecast_usd") == pytest.approx(created["forecast"]["projected_usd"], 0.01)
    assert event == {
        "at": after["reset_at"],
        "from": "exceeded",
        "to": "reset",
        "spend_usd": 0.06,  # the period's spend at the reset
        "limit_usd": 0.05,
    }
    # Spend after the reset counts; before it does not.
    _ingest(server, 10, 0x200)
    again = server.get(f"/api/v1/budgets/{created['id']}").json()
    assert again["spend_nanousd"] == 10 * PER_CALL and again["reset_at"] == after["reset_at"]
    assert again["period_spend_usd"] == 0.075
    listed = server.get("/api/v1/budgets").json()["budgets"]
    assert listed[0]["spend_nanousd"] == 10 * PER_CALL
    assert server.post("/api/v1/budgets/999/reset").status_code == 404
    assert server.post("/api/v1/budgets/0/reset").status_code == 400


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with fake_upstream() as up:
        yield up


def test_the_gateway_hard_stop_honours_a_reset_on_every_instance(
    make_server: ServerFactory, upstream: Upstream
) -> None:
    settings = {"llm_upstream_url": upstream.url + "/v1", "budget_cache_seconds": 0.2}
    admin = make_server(**settings)
    gateway = make_server(**settings)  # another instance on the same database
    r = admin.post(
        "/api/v1/budgets",
        json={"name": "spender", "agent": "spender", "period": "daily", "limit_usd": "0.000002"},
    )
    assert r.status_code == 201, r.text
    budget_id = r.json()["id"]
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-pharos-agent": "spender"}

    def call() -> httpx.Response:
        return gateway.post("/gateway/openai/v1/chat/completions", json=chat, headers=headers)

    served = [call().status_code]  # ~$0.0000058: the budget is gone
    assert served == [200]

    def refused_now() -> httpx.Response | None:
        r = call()
        served.append(r.status_code)
        return r if r.status_code == 402 else None

    refused = _until(refused_now)
    assert refused and refused.json()["error"]["budget"]["name"] == "spender"
    # Served calls' spans are written after their answers: all of them land before the reset.
    assert _until(
        lambda: (
            len(admin.get("/api/v1/traces", params={"agent": "spender"}).json()["items"])
            == served.count(200)
        )
    )

    reset = admin.post(f"/api/v1/budgets/{budget_id}/reset")
    assert reset.status_code == 200 and reset.json()["spend_usd"] == 0
    served = _until(lambda: (r := call()).status_code == 200 and r)
    assert served, "the gateway instance kept refusing after the reset"
    # The call after the reset is counted: the budget stops the agent again.
    refused = _until(lambda: (r := call()).status_code == 402 and r)
    assert refused
    events = admin.get(f"/api/v1/budgets/{budget_id}").json()["events"]
    # Newest first: the reset (it was exceeded), then exceeded again (this read records it).
    assert [(e["from"], e["to"]) for e in events] == [("ok", "exceeded"), ("exceeded", "reset")]


def test_budgets_cli_with_url_and_key(sqlite_url: str) -> None:
    runner = CliRunner()
    with run_server(sqlite_url) as server:
        engine = make_engine(sqlite_url)
        try:
            key = create_key(engine, "ops", parse_scopes("admin"))[0]
        finally:
            engine.dispose()
        _until(lambda: server.get("/api/v1/budgets").status_code == 401)
        _ingest(server_with_key(server, key), 40, 0x300)

        def cli(*args: str, env: dict[str, str] | None = None) -> Any:
            return runner.invoke(cli_app, ["budgets", *args], env=env or {})

        flags = ["--url", server.url, "--key", key]
        r = cli("--url", server.url, "list")
        assert r.exit_code == 1 and "401" in r.stderr, r.output
        r = cli(
            *flags, "create", "bot daily", "--limit", "0.05", "--agent", "bot", "--period", "daily"
        )
        assert r.exit_code == 0, r.output
        assert "bot daily (agent bot, daily): spent $0.06 of $0.05" in r.stdout
        assert "exceeded" in r.stdout
        env = {"PHAROS_URL": server.url, "PHAROS_API_KEY": key}
        r = cli("list", env=env)
        assert r.exit_code == 0 and "bot daily" in r.stdout and "exceeded" in r.stdout
        r = cli("reset", "bot daily", env=env)
        assert r.exit_code == 0, r.output
        assert r.stdout.startswith("reset: $0.06 had been spent; #1 bot daily")
        assert "spent $0.00 of $0.05" in r.stdout and "since its reset at" in r.stdout
        r = cli("list", "--json", env=env)
        assert r.exit_code == 0 and '"reset_at"' in r.stdout
        r = cli("update", "1", "--limit", "100", env=env)
        assert r.exit_code == 0 and "of $100.00 (soft $80.00)" in r.stdout
        r = cli("update", "1", env=env)
        assert r.exit_code == 2 and "nothing to change" in r.stderr
        r = cli("reset", "nope", env=env)
        assert r.exit_code == 1 and "no budget 'nope'" in r.stderr
        r = cli("delete", "bot daily", env=env)
        assert r.exit_code == 0 and "deleted budget #1 bot daily" in r.stdout
        r = cli("list", env=env)
        assert r.exit_code == 0 and "no budgets" in r.stdout


class _Keyed:
    """A RunningServer whose posts carry a key (for _ingest once the server needs one)."""

    def __init__(self, server: RunningServer, key: str) -> None:
        self.server, self.key = server, key

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**kwargs.pop("headers", {}), "authorization": f"Bearer {self.key}"}
        return self.server.post(path, headers=headers, **kwargs)


def server_with_key(server: RunningServer, key: str) -> Any:
    return _Keyed(server, key)


def test_a_registry_budget_is_reset_through_the_api_and_the_cli(
    make_server: ServerFactory, upstream: Upstream, db_url: str
) -> None:
    """An agent's own ``--budget`` (the registry): exhausted -> the gateway refuses with 402;
    reset (API, then CLI) -> served again on another instance, counted from the reset."""
    settings = {"llm_upstream_url": upstream.url + "/v1", "budget_cache_seconds": 0.2}
    admin = make_server(**settings)
    gateway = make_server(**settings)
    r = admin.post("/api/v1/agents/registry", json={"name": "reg", "budget_usd": "0.000002"})
    assert r.status_code == 201, r.text
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}

    def call() -> httpx.Response:
        return gateway.post(
            "/gateway/openai/v1/chat/completions", json=chat, headers={"x-pharos-agent": "reg"}
        )

    served: list[int] = []

    def refused_now() -> httpx.Response | None:
        r = call()
        if r.status_code == 200:
            served.append(1)
        return r if r.status_code == 402 else None

    assert call().status_code == 200
    served.append(1)
    refused = _until(refused_now)
    assert refused and refused.json()["error"]["budget"]["name"] == "agent reg (registry)"
    # Each served call's span is written after its answer: let them all land before the reset
    # (a call still being written when it happens counts after it).
    assert _until(
        lambda: (
            len(admin.get("/api/v1/traces", params={"agent": "reg"}).json()["items"]) == len(served)
        )
    )

    reset = admin.post("/api/v1/agents/registry/reg/budget/reset")
    assert reset.status_code == 200, reset.text
    body = reset.json()
    assert body["spend_usd"] == 0 and body["reset_at"] is not None
    assert [(e["from"], e["to"]) for e in body["events"]] == [("exceeded", "reset")]
    assert _until(lambda: call().status_code == 200), "still refused after the reset"
    assert _until(lambda: call().status_code == 402)  # the call after the reset counts

    runner = CliRunner()
    out = runner.invoke(cli_app, ["agents", "reset-budget", "reg", "--database-url", db_url])
    assert out.exit_code == 0, out.output
    assert out.stdout.startswith("reset: reg daily budget counts again from now")
    assert _until(lambda: call().status_code == 200)
    missing = admin.post("/api/v1/agents/registry/nobody/budget/reset")
    assert missing.status_code == 404 and "not registered" in missing.json()["error"]["message"]
    cli_missing = runner.invoke(
        cli_app, ["agents", "reset-budget", "nobody", "--database-url", db_url]
    )
    assert cli_missing.exit_code == 1
