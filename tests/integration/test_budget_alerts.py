"""Budgets raise alerts without a rule, on SQLite and PostgreSQL: priced LLM spans sent over
OTLP/HTTP to a real server with budgets (cost API and agent registry) → built-in budget alerts
pending → firing with their severity and labels, notified to a real local webhook receiver with
links to the alert, the agent and a trace; acknowledged like any alert; resolved when the
budget is raised or goes away. And with an explicit clock over rollup rows: a new period
resolves them, and ``budget_burn(agent="x")`` alerts carry the agent."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from pharos.server.alerting import store
from pharos.server.alerting.engine import AlertEngine
from pharos.server.cost import store as cost_store
from pharos.server.db.engine import make_engine
from pharos.server.db.migrate import upgrade
from pharos.server.db.schema import ROLLUP_TABLES, outbox
from tests.alert_receivers import receiver, wait_for
from tests.conftest import RunningServer, ServerFactory, free_port
from tests.otlp_helpers import PROTOBUF, T0, request, span

NS = 1_000_000_000
PER_CALL = 400 * 2_500 + 50 * 10_000  # gpt-4o, 400 in / 50 out: 1_500_000 nano-USD
QUIET = {
    "alert_eval_interval_seconds": 3600.0,  # cycles are triggered by the test
    "alert_default_rules": False,
    "alert_retry_base_seconds": 0.2,
    "alert_retry_max_seconds": 0.6,
    "alert_outbox_poll_seconds": 0.1,
    "alert_dashboard_url": "http://dash.example",
    "ingest_workers": 0,
}


def _llm_calls(n: int, agent: str, base: int = 0x7000) -> list[Any]:
    """``n`` agent runs with one priced gpt-4o call each, started a minute ago."""
    start = (time.time_ns() - T0) / 1e6 - 60_000
    spans = []
    for i in range(n):
        root = span(
            base + i,
            1,
            name="run",
            start_ms=start + i,
            duration_ms=500 + i,
            attrs={"gen_ai.agent.name": agent, "gen_ai.operation.name": "invoke_agent"},
        )
        attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 400,
            "gen_ai.usage.output_tokens": 50,
        }
        call = span(base + i, 2, 1, name="chat", start_ms=start + i + 1, attrs=attrs)
        spans += [root, call]
    return spans


def _alerts(server: RunningServer, **params: Any) -> dict[tuple[str, str], dict[str, Any]]:
    items = server.get("/api/v1/alerts", params={"limit": 100, **params}).json()["items"]
    return {(a["rule"], a["labels"]["threshold"]): a for a in items}


def test_budgets_raise_alerts_that_notify_and_resolve(make_server: ServerFactory) -> None:
    with receiver(free_port()) as hook:
        server = make_server(**QUIET, alert_webhook_url=hook.url)
        r = server.post(
            "/v1/traces",
            content=request(_llm_calls(40, "bot/eu")).SerializeToString(),
            headers=PROTOBUF,
        )
        assert r.status_code == 200, r.text
        spent = 40 * PER_CALL  # 0.06 USD
        for body in (
            {"name": "bot daily", "agent": "bot/eu", "period": "daily", "limit_usd": "0.05"},
            {"name": "all monthly", "period": "monthly", "limit_usd": 1000, "soft_limit_usd": 0.05},
        ):
            assert server.post("/api/v1/budgets", json=body).status_code == 201
        # An agent registry budget: pharos agents add bot/eu --budget 0.01 (names allow no "/",
        # so another agent spends it).
        r = server.post("/api/v1/agents/registry", json={"name": "bot", "budget_usd": "0.01"})
        assert r.status_code == 201, r.text
        r = server.post(
            "/v1/traces",
            content=request(_llm_calls(10, "bot", 0x8000)).SerializeToString(),
            headers=PROTOBUF,
        )
        assert r.status_code == 200

        cycle = server.post("/api/v1/alerts/evaluate").json()
        assert cycle["errors"] == [] and cycle["budgets"] == 3
        # bot daily: spent 120 % -> soft (warning) and hard (critical); all monthly: 0.075 USD
        # spent (bot and bot/eu), soft limit reached -> warning; registry: 0.015 of 0.01.
        firing = _alerts(server, state="firing")
        assert set(firing) == {
            ("budget:bot daily", "soft"),
            ("budget:bot daily", "hard"),
            ("budget:all monthly", "soft"),
            ("budget:agent bot (registry)", "soft"),
            ("budget:agent bot (registry)", "hard"),
        }
        assert cycle["transitions"] == 10 and cycle["notifications"] == 5
        hard = firing[("budget:bot daily", "hard")]
        assert hard["severity"] == "critical" and hard["rule_id"] == 0
        assert hard["labels"] == {
            "alertname": "budget:bot daily",
            "severity": "critical",
            "budget": "bot daily",
            "period": "daily",
            "threshold": "hard",
            "source": "budgets",
            "agent": "bot/eu",
        }
        assert hard["value"] == 120.0
        assert hard["message"].startswith("Budget 'bot daily' (agent bot/eu, daily): spent $0.06")
        assert "exhausted" in hard["message"]
        soft = firing[("budget:bot daily", "soft")]
        assert soft["severity"] == "warning" and soft["labels"]["threshold"] == "soft"
        assert "the soft limit $0.04 is reached" in soft["message"]
        monthly = firing[("budget:all monthly", "soft")]
        assert monthly["severity"] == "warning" and "agent" not in monthly["labels"]
        assert monthly["value"] == round(100 * 50 * PER_CALL / 1000e9, 2)
        registry = firing[("budget:agent bot (registry)", "hard")]
        assert registry["labels"]["source"] == "registry" and registry["labels"]["agent"] == "bot"
        detail = server.get(f"/api/v1/alerts/{hard['id']}").json()
        assert detail["expression"] == "spend >= limit"
        assert [h["event"] for h in reversed(detail["history"])] == ["pending", "firing"]
        summary = server.get("/api/v1/alerts/summary").json()
        assert summary["by_severity"]["critical"] == {"firing": 2}

        # Delivered once each to the webhook, with links to the alert, the agent and a trace.
        wait_for(lambda: len(hook.accepted) == 5)
        sent = {
            (g.json["alert"]["rule"], g.json["alert"]["labels"]["threshold"]): g.json
            for g in hook.accepted
        }
        got = sent[("budget:bot daily", "hard")]
        assert got["event"] == "firing" and got["alert"]["severity"] == "critical"
        assert got["alert"]["fingerprint"] == hard["fingerprint"]
        assert got["alert"]["url"] == f"http://dash.example/alerts/{hard['id']}"
        assert got["alert"]["agent_url"] == "http://dash.example/agents/bot%2Feu"
        trace_id = got["alert"]["trace_url"].removeprefix("http://dash.example/traces/")
        trace = server.get(f"/api/v1/traces/{trace_id}").json()
        assert trace["spans"][0]["agent"] == "bot/eu"
        assert "trace_url" in sent[("budget:all monthly", "soft")]["alert"]  # any agent's

        # Acknowledged like any alert (the built-in rule has no row).
        r = server.post(f"/api/v1/alerts/{hard['id']}/ack", json={"who": "ana"})
        assert r.status_code == 200 and r.json()["acked_by"] == "ana"
        wait_for(lambda: len(hook.accepted) == 6)
        assert hook.accepted[5].json["event"] == "acknowledged"

        # Raising bot daily resolves both of its alerts; removing the registry budget (the
        # agent) resolves those; all monthly keeps firing.
        r = server.client().put(
            f"/api/v1/budgets/{_budget_id(server, 'bot daily')}", json={"limit_usd": "100"}
        )
        assert r.status_code == 200 and r.json()["status"] == "ok"
        assert server.client().delete("/api/v1/agents/registry/bot").status_code == 204
        cycle = server.post("/api/v1/alerts/evaluate").json()
        assert cycle["transitions"] == 4 and cycle["notifications"] == 4
        assert set(_alerts(server, state="firing")) == {("budget:all monthly", "soft")}
        resolved = _alerts(server, state="resolved")
        assert len(resolved) == 4 and resolved[("budget:bot daily", "hard")]["id"] == hard["id"]
        wait_for(lambda: len(hook.accepted) == 10)
        assert sorted(g.json["event"] for g in hook.accepted[6:]) == ["resolved"] * 4
        # A further cycle changes nothing; nothing was sent twice.
        assert server.post("/api/v1/alerts/evaluate").json()["transitions"] == 0
        wait_for(lambda: server.get("/api/v1/alerts/outbox").json()["counts"] == {"sent": 10})
        assert len({g.headers["x-pharos-idempotency-key"] for g in hook.accepted}) == 10
        assert spent == 60_000_000


def _budget_id(server: RunningServer, name: str) -> int:
    budgets = server.get("/api/v1/budgets").json()["budgets"]
    return int(next(b["id"] for b in budgets if b["name"] == name))


# --- with an explicit clock ----------------------------------------------------------------------

DAY0 = 1_790_035_200  # 2026-09-22 00:00 UTC
assert DAY0 % 86400 == 0


@pytest.fixture
def engines(db_url: str) -> Iterator[tuple[Engine, Engine]]:
    upgrade(db_url)
    read = make_engine(db_url, pool_size=2)
    write = make_engine(db_url, sqlite_begin="IMMEDIATE", pool_size=2)
    yield read, write
    read.dispose()
    write.dispose()


def _spend(write: Engine, minute_s: int, nanousd: int, agent: str = "support") -> None:
    """One model call's cost in every rollup resolution, as the writer stores it."""
    row = {
        "agent": agent,
        "model": "gpt-4o",
        "kind": "llm",
        "count": 1,
        "errors": 0,
        "duration_sum_ms": 100.0,
        "duration_max_ms": 100.0,
        "input_tokens": 10,
        "output_tokens": 10,
        "cached_tokens": 0,
        "cost_nanousd": nanousd,
        "histogram": '{"100": 1}',
    }
    with write.begin() as conn:
        for name, size in (("1m", 60), ("1h", 3600), ("1d", 86400)):
            bucket = {**row, "bucket_start": minute_s // size * size}
            conn.execute(insert(ROLLUP_TABLES[name]), [bucket])


def _states(read: Engine) -> dict[tuple[str, str], tuple[str, str]]:
    with read.connect() as conn:
        rows = store.list_alerts(
            conn, states=None, severities=None, agent=None, rule_id=None, before_id=None, limit=50
        )
    return {
        (r.rule_name, store.loads(r.labels, {}).get("threshold", "")): (r.state, r.severity)
        for r in rows
    }


def test_a_new_period_resolves_and_budget_burn_alerts_carry_the_agent(
    engines: tuple[Engine, Engine],
) -> None:
    read, write = engines
    with write.begin() as conn:
        cost_store.create_budget(
            conn,
            {
                "name": "support daily",
                "agent": "support",
                "period": "daily",
                "limit_nanousd": 10 * NS,
                "soft_limit_nanousd": 8 * NS,
            },
        )
        store.create_channel(
            conn,
            {"name": "hook", "type": "webhook", "config": {"url": "http://127.0.0.1:9/x"}},
            0,
        )
        store.create_rule(
            conn,
            {
                "name": "support burn",
                "expression": 'budget_burn(agent="support") > 0.5',
                "severity": "warning",
                "channels": ["hook"],
            },
            0,
        )
    # Spend 8.2 USD at 01:00, nothing more: the soft limit is reached, not the hard one.
    _spend(write, DAY0 + 3600, 8_200_000_000)
    engine = AlertEngine(read, write)
    engine.run_cycle((DAY0 + 3600 + 30) * NS)
    assert _states(read) == {
        ("budget:support daily", "soft"): ("firing", "warning"),
        ("support burn", ""): ("firing", "warning"),
    }
    with read.connect() as conn:
        burn = next(r for r in store.active_alerts(conn) if r.rule_name == "support burn")
    assert store.loads(burn.labels, {})["agent"] == "support"  # named by budget_burn(agent=)
    assert burn.value == 0.82
    # 23:59: still the same day; 00:00:30 the next day: a new period, both resolve (the
    # forecast, 8.2 USD in 23 hours, stays below the limit).
    engine.run_cycle((DAY0 + 86400 - 30) * NS)
    assert _states(read)[("budget:support daily", "soft")] == ("firing", "warning")
    engine.run_cycle((DAY0 + 86400 + 30) * NS)
    assert _states(read) == {
        ("budget:support daily", "soft"): ("resolved", "warning"),
        ("support burn", ""): ("resolved", "warning"),
    }
    with read.connect() as conn:
        events = [r[0] for r in conn.execute(select(outbox.c.event).order_by(outbox.c.id))]
    # The burn rule names the channel (repeating every 4 h while firing); the budget alerts
    # have no route here (the channel has no severities).
    assert events == ["firing", "repeat", "resolved"]
    assert datetime.fromtimestamp(DAY0, UTC).hour == 0
