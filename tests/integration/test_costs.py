"""Cost end to end on SQLite and PostgreSQL: spans sent over OTLP/HTTP get table prices at ingest
(a client cost wins, an override applies from its effective date), recompute rewrites history
and keeps traces and rollups equal to their spans, and costs, budgets and suggestions answer
with exact numbers."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from pharos.cli import app as cli_app
from tests.conftest import FIXTURES, RunningServer, ServerFactory
from tests.otlp_helpers import PROTOBUF, T0, fixture_bodies, request, span

NS = 1_000_000_000


def _ms_ago(seconds: float) -> float:
    """``start_ms`` (relative to the helpers' T0) of a moment ``seconds`` ago."""
    return (time.time_ns() - T0) / 1e6 - seconds * 1000


def _send(server: RunningServer, spans: list[Any], service: str = "svc") -> None:
    resp = server.post(
        "/v1/traces", content=request(spans, service).SerializeToString(), headers=PROTOBUF
    )
    assert resp.status_code == 200, resp.text


def _call(
    trace: int,
    *,
    model: str,
    tin: int,
    tout: int,
    cached: int | None = None,
    ago_s: float = 60,
    agent: str = "bot",
    cost: float | None = None,
    prompt: str | None = None,
    error: bool = False,
) -> list[Any]:
    """An agent run (root) with one chat call below it."""
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": tin,
        "gen_ai.usage.output_tokens": tout,
    }
    if cached is not None:
        attrs["gen_ai.usage.cache_read.input_tokens"] = cached
    if cost is not None:
        attrs["gen_ai.usage.cost"] = cost
    if prompt is not None:
        attrs["gen_ai.prompt.0.role"] = "user"
        attrs["gen_ai.prompt.0.content"] = prompt
    start = _ms_ago(ago_s)
    root = span(
        trace,
        1,
        name="run",
        start_ms=start,
        duration_ms=500,
        attrs={"gen_ai.agent.name": agent, "gen_ai.operation.name": "invoke_agent"},
    )
    child = span(
        trace,
        2,
        1,
        name=f"chat {model}",
        start_ms=start + 10,
        duration_ms=300,
        attrs=attrs,
        error="rate limited" if error else None,
    )
    return [root, child]


def _span_costs(db_url: str) -> dict[int, int | None]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT trace_id, cost_nanousd FROM spans WHERE kind = 'llm'")
            ).all()
    finally:
        engine.dispose()
    return {int(t, 16): c for t, c in rows}


def _assert_consistent(db_url: str) -> int:
    """traces and every rollup resolution sum to exactly what their spans hold."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            spans_total = conn.execute(
                text(
                    "SELECT COALESCE(SUM(cost_nanousd), 0) FROM spans "
                    "WHERE kind IN ('llm', 'embedding')"
                )
            ).scalar_one()
            per_trace = dict(
                conn.execute(
                    text(
                        "SELECT trace_id, COALESCE(SUM(cost_nanousd), 0) FROM spans "
                        "WHERE kind IN ('llm', 'embedding') GROUP BY trace_id"
                    )
                ).all()
            )
            summary = dict(conn.execute(text("SELECT trace_id, cost_nanousd FROM traces")).all())
            for trace_id, cost in per_trace.items():
                assert summary[trace_id] == cost, trace_id
            for table in ("rollups_1m", "rollups_1h", "rollups_1d"):
                total = conn.execute(
                    text(
                        f"SELECT COALESCE(SUM(cost_nanousd), 0) FROM {table} "
                        "WHERE kind IN ('llm', 'embedding')"
                    )
                ).scalar_one()
                assert total == spans_total, table
            usage = conn.execute(
                text("SELECT COALESCE(SUM(cost_nanousd), 0) FROM llm_usage_daily")
            ).scalar_one()
            assert usage == spans_total
    finally:
        engine.dispose()
    return int(spans_total)


def test_table_price_client_cost_override_and_recompute(
    make_server: ServerFactory, db_url: str
) -> None:
    server = make_server()
    # gpt-4o: 2.50 in / 10.00 out / 1.25 cached per million tokens (bundled table).
    # 800 uncached x 2.5 + 200 cached x 1.25 + 500 out x 10 = 7_250_000_000 pico = 7_250_000 nano
    _send(server, _call(0xA1, model="gpt-4o-2024-08-06", tin=1000, tout=500, cached=200, ago_s=90))
    # A client-sent cost wins over the table.
    _send(server, _call(0xA2, model="gpt-4o", tin=1000, tout=500, cost=0.5, ago_s=90))
    # A model nobody priced: stored without cost, listed as unknown.
    _send(server, _call(0xA3, model="my-private-llm", tin=123, tout=45, ago_s=90))
    # Vendor prefix + dated snapshot: claude-3-5-sonnet at 3 / 15.
    _send(server, _call(0xA4, model="anthropic/claude-3-5-sonnet-20241022", tin=2000, tout=100))
    costs = _span_costs(db_url)
    assert costs[0xA1] == 7_250_000
    assert costs[0xA2] == 500_000_000
    assert costs[0xA3] is None
    assert costs[0xA4] == 2000 * 3_000 + 100 * 15_000  # 7_500_000
    assert _assert_consistent(db_url) == 7_250_000 + 500_000_000 + 7_500_000

    unknown = server.get("/api/v1/prices/unknown", params={"window": "1h"}).json()
    assert [m["model"] for m in unknown["models"]] == ["my-private-llm"]
    assert unknown["models"][0]["tokens"] == {"input": 123, "output": 45, "cached": 0, "total": 168}
    assert unknown["models"][0]["calls"] == 1

    matched = server.get("/api/v1/prices", params={"model": "openai/GPT-4o-2024-08-06"}).json()
    assert matched["matched"] == "gpt-4o"
    assert matched["price"]["input_usd_per_mtok"] == "2.5"

    # An override from 30 s ago: calls that started before keep the old price, later ones
    # (even when sent later still) get the new one.
    effective = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 30))
    resp = server.post(
        "/api/v1/prices",
        json={"model": "gpt-4o", "input": "5", "output": 20, "effective_from": effective},
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["input_usd_per_mtok"] == "5"
    _send(server, _call(0xB1, model="gpt-4o-2024-08-06", tin=1000, tout=500, ago_s=5))
    _send(server, _call(0xB2, model="gpt-4o", tin=1000, tout=500, ago_s=80))
    costs = _span_costs(db_url)
    assert costs[0xB1] == 1000 * 5_000 + 500 * 20_000  # 15_000_000, the override
    assert costs[0xB2] == 1000 * 2_500 + 500 * 10_000  # started before: bundled, 7_500_000
    _assert_consistent(db_url)

    # A price for the unknown model, then an "always" override of gpt-4o; recompute rewrites
    # history: every span at the price in effect at its start, the client cost kept.
    for body in (
        {"model": "my-private-llm", "input": "1", "output": "2", "effective_from": "always"},
        {"model": "gpt-4o", "input": "4", "output": "16", "effective_from": "always"},
    ):
        assert server.post("/api/v1/prices", json=body).status_code == 201
    runner = CliRunner()
    result = runner.invoke(
        cli_app, ["prices", "recompute", "--since", "1h", "--database-url", db_url]
    )
    assert result.exit_code == 0, result.output
    costs = _span_costs(db_url)
    assert costs[0xA1] == 800 * 4_000 + 200 * 4_000 + 500 * 16_000  # no cached price: input
    assert costs[0xA2] == 500_000_000
    assert costs[0xA3] == 123 * 1_000 + 45 * 2_000
    assert costs[0xB1] == 15_000_000  # after the dated override: unchanged
    assert costs[0xB2] == 1000 * 4_000 + 500 * 16_000
    total = _assert_consistent(db_url)
    assert total == sum(c or 0 for c in costs.values())

    summary = server.get("/api/v1/costs", params={"window": "1h", "group_by": "model"}).json()
    assert summary["total"]["cost_nanousd"] == total
    by_model = {g["model"]: g["cost_nanousd"] for g in summary["groups"]}
    assert by_model["my-private-llm"] == 213_000
    assert sum(by_model.values()) == total
    assert summary["total"]["requests"] == 6 and summary["total"]["calls"] == 6

    # Bad input: clear 4xx, never a 500.
    for bad in (
        {"model": "x", "input": "-1", "output": "1"},
        {"model": "x", "input": "abc", "output": "1"},
        {"model": "x", "input": "0.0000001", "output": "1"},
        {"model": "x", "input": "1", "output": "1", "effective_from": "yesterday-ish"},
        {"model": "x", "input": "1"},
    ):
        resp = server.post("/api/v1/prices", json=bad)
        assert resp.status_code == 400, (bad, resp.text)
        assert resp.json()["error"]["code"] == "invalid_parameter"
    assert server.get("/api/v1/costs", params={"group_by": "planet"}).status_code == 400
    assert server.get("/api/v1/costs", params={"window": "soon"}).status_code == 400


def test_budgets_and_suggestions_with_numbers(make_server: ServerFactory, db_url: str) -> None:
    server = make_server()
    spans: list[Any] = []
    # 40 small gpt-4o calls by "bot", 30 of them the same prompt, 4 failing after using tokens.
    for i in range(40):
        prompt = "What is the status of my order?" if i < 30 else f"question {i}"
        spans += _call(0x1000 + i, model="gpt-4o", tin=400, tout=50, prompt=prompt, error=i < 4)
    _send(server, spans)
    per_call = 400 * 2_500 + 50 * 10_000  # 1_500_000 nano
    engine = create_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT SUM(calls) FROM llm_usage_daily")).scalar_one() == 40
    engine.dispose()

    resp = server.post(
        "/api/v1/budgets",
        json={"name": "bot daily", "agent": "bot", "period": "daily", "limit_usd": "0.05"},
    )
    assert resp.status_code == 201, resp.text
    budget = resp.json()
    assert budget["spend_nanousd"] == 40 * per_call  # 0.06 USD > 0.05
    assert budget["status"] == "exceeded"
    assert budget["crossed_at"] is not None
    assert budget["soft_limit_usd"] == 0.04
    assert budget["forecast"]["projected_usd"] >= 0.06
    assert budget["events"][0]["to"] == "exceeded"

    resp = server.post(
        "/api/v1/budgets",
        json={"name": "all monthly", "period": "monthly", "limit_usd": 1000, "soft_limit_usd": 900},
    )
    assert resp.status_code == 201
    listed = server.get("/api/v1/budgets").json()["budgets"]
    assert [b["name"] for b in listed] == ["bot daily", "all monthly"]
    assert listed[1]["status"] == "ok" and listed[1]["spend_nanousd"] == 40 * per_call
    assert listed[1]["forecast"]["method"] in ("flat_rate", "hourly_profile")

    # Raising the limit clears the status (and records the change).
    with server.client() as client:
        updated = client.put(f"/api/v1/budgets/{budget['id']}", json={"limit_usd": "100"})
        assert updated.status_code == 200, updated.text
        assert updated.json()["status"] == "ok"
        assert updated.json()["soft_limit_usd"] == 80.0
        assert [e["to"] for e in updated.json()["events"]] == ["ok", "exceeded"]
        assert (
            client.post("/api/v1/budgets", json={"name": "bot daily", "limit_usd": 1}).status_code
            == 409
        )
        for bad in (
            {"name": "x", "limit_usd": 0},
            {"name": "x", "limit_usd": "1", "soft_limit_usd": "2"},
            {"name": "x", "limit_usd": "1", "period": "weekly"},
            {"name": "", "limit_usd": "1"},
        ):
            r = client.post("/api/v1/budgets", json=bad)
            assert r.status_code == 400, (bad, r.text)
        assert client.get("/api/v1/budgets/999").status_code == 404
        for path in ("/api/v1/budgets/99999999999999999999", "/api/v1/budgets/0"):
            assert client.get(path).status_code == 400
        assert (
            client.post("/api/v1/budgets", json={"name": "  ", "limit_usd": 1}).status_code == 400
        )
        r = client.put(f"/api/v1/budgets/{budget['id']}", json={"limit_usd": None})
        assert r.status_code == 400 and "limit_usd" in r.json()["error"]["message"]
        assert client.post("/api/v1/budgets", content=b"[1,").status_code == 400
        assert client.delete("/api/v1/prices/12345").status_code == 404
        assert client.delete("/api/v1/prices/99999999999999999999").status_code == 400
        assert client.delete(f"/api/v1/budgets/{listed[1]['id']}").status_code == 204
        assert client.delete(f"/api/v1/budgets/{listed[1]['id']}").status_code == 404

    result = server.get("/api/v1/costs/suggestions", params={"window": "7d"}).json()
    by_type = {s["type"]: s for s in result["suggestions"]}
    assert {"cheaper_model", "cache_repeated_prompts", "reduce_errors"} <= set(by_type)
    cheaper = by_type["cheaper_model"]
    assert cheaper["evidence"]["cheaper_model"] == "gpt-4o-mini"
    assert cheaper["evidence"]["cost_usd"] == 0.06
    # gpt-4o-mini: 0.15 / 0.60 -> 40 x (400 x 150 + 50 x 600) pico = 3_600_000 nano
    assert cheaper["evidence"]["cost_at_cheaper_model_usd"] == 0.0036
    cache = by_type["cache_repeated_prompts"]
    assert cache["evidence"]["repeated_prompts"] == 1
    assert cache["evidence"]["repeat_calls_avoidable"] == 29
    assert cache["evidence"]["cost_of_repeats_usd"] == 29 * per_call / 1e9
    errors = by_type["reduce_errors"]
    assert errors["evidence"]["failed_calls"] == 4
    assert errors["evidence"]["cost_of_failed_calls_usd"] == 4 * per_call / 1e9
    for s in result["suggestions"]:
        assert s["estimated_monthly_saving_usd"] > 0
    observed = cheaper["evidence"]["observed_days"]
    assert observed > 0
    assert server.get("/api/v1/costs/suggestions", params={"window": "36h"}).status_code == 400


def test_costs_by_agent_with_trend_and_per_request(make_server: ServerFactory) -> None:
    window = "1h"
    server = make_server()
    spans: list[Any] = []
    for i in range(6):
        agent = "alpha" if i % 3 else "beta"
        spans += _call(0x2000 + i, model="gpt-4o-mini", tin=1000, tout=1000, agent=agent)
    _send(server, spans)
    per_call = 1000 * 150 + 1000 * 600  # 750_000 nano
    report = server.get("/api/v1/costs", params={"window": window, "group_by": "agent"}).json()
    assert report["total"]["cost_nanousd"] == 6 * per_call
    assert report["total"]["per_request_usd"] == per_call / 1e9
    assert report["total"]["per_1k_tokens_usd"] == per_call / 2 / 1e9
    groups = {g["agent"]: g for g in report["groups"]}
    assert groups["alpha"]["cost_nanousd"] == 4 * per_call
    assert groups["beta"]["share_percent"] == pytest.approx(33.33, abs=0.01)
    assert report["trend"]["cost_percent"] is None  # nothing in the previous hour
    day = server.get("/api/v1/costs", params={"window": "1d", "group_by": "day"}).json()
    assert sum(d["cost_nanousd"] for d in day["daily"]) == 6 * per_call
    assert sum(m["cost_nanousd"] for m in day["monthly"]) == 6 * per_call


def test_real_instrumentation_payloads_are_priced(server: RunningServer, db_url: str) -> None:
    """The OpenInference OpenAI fixtures: dated names price as their base model, cached
    tokens at the cached price, the embedding too, the failed call (no tokens) not at all."""
    for body in fixture_bodies(FIXTURES):
        resp = server.post("/v1/traces", content=body, headers=PROTOBUF)
        assert resp.status_code == 200, resp.text
    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = dict(
            conn.execute(
                text("SELECT model, cost_nanousd FROM spans WHERE kind IN ('llm', 'embedding')")
            ).all()
        )
        trace_cost = conn.execute(text("SELECT cost_nanousd FROM traces")).scalar_one()
    engine.dispose()
    assert rows["gpt-4o-2024-08-06"] == 192_500  # 25 x 2.5 + 32 cached x 1.25 + 9 x 10 (pico)
    assert rows["gpt-4o-mini-2024-07-18"] == 4_350  # 21 x 0.15 + 2 x 0.60
    assert rows["text-embedding-3-small"] == 100  # 5 x 0.02
    assert rows["gpt-4o"] is None  # the 429: no tokens, no cost
    assert trace_cost == 192_500 + 4_350 + 100
    _assert_consistent(db_url)


def test_prune_usage_folds_one_off_prompts_and_keeps_totals(db_url: str) -> None:
    from pharos.server.cost.store import prune_usage
    from pharos.server.db.migrate import upgrade

    upgrade(db_url)
    engine = create_engine(db_url)
    day = 86400
    now_s = 1_790_000_000 // day * day + 3600  # 01:00 on some day
    today, yesterday = now_s // day * day, now_s // day * day - day
    rows = [
        (yesterday, "a", "m", "once-1", 1, 100),
        (yesterday, "a", "m", "once-2", 1, 200),
        (yesterday, "a", "m", "twice", 2, 300),
        (yesterday, "a", "m", "", 5, 1000),
        (today, "a", "m", "once-today", 1, 50),  # today is not finished: kept
        (today - 100 * day, "a", "m", "", 1, 7),  # beyond 90 days: deleted
    ]
    with engine.begin() as conn:
        for d, agent, model, h, calls, cost in rows:
            conn.execute(
                text(
                    "INSERT INTO llm_usage_daily (day, agent, model, prompt_hash, calls, errors, "
                    "input_tokens, output_tokens, cached_tokens, cost_nanousd, error_cost_nanousd) "
                    "VALUES (:d, :a, :m, :h, :c, 0, :c, 0, 0, :cost, 0)"
                ),
                {"d": d, "a": agent, "m": model, "h": h, "c": calls, "cost": cost},
            )
        assert prune_usage(conn, now_s) == 3
    with engine.connect() as conn:
        left = {
            (r[0], r[1]): (r[2], r[3])
            for r in conn.execute(
                text("SELECT day, prompt_hash, calls, cost_nanousd FROM llm_usage_daily")
            )
        }
    engine.dispose()
    assert left == {
        (yesterday, "twice"): (2, 300),
        (yesterday, ""): (7, 1300),
        (today, "once-today"): (1, 50),
    }


def test_azure_deployment_names_priced_through_aliases(
    make_server: ServerFactory, db_url: str
) -> None:
    server = make_server(model_aliases={"prod-gpt4o": "gpt-4o-2024-08-06"})
    _send(server, _call(0x3001, model="azure/prod-gpt4o", tin=1000, tout=100))
    assert _span_costs(db_url)[0x3001] == 1000 * 2_500 + 100 * 10_000
    assert server.get("/api/v1/prices").json()["aliases"]["prod-gpt4o"] == "gpt-4o-2024-08-06"
