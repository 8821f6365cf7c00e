"""Alerting over real traffic on both dialects: rules read the rollups the writer produced,
alerts carry the right labels and values, filters, ack/resolve/silence, summary, overview,
/metrics, default rules, one evaluating instance, and clear 4xx for bad input."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.conftest import RunningServer, ServerFactory
from tests.otlp_helpers import PROTOBUF, request, span

NS = 1_000_000_000
QUIET = {"alert_default_rules": False, "alert_eval_interval_seconds": 3600.0, "ingest_workers": 0}


def _send_runs(server: RunningServer, agent: str, n: int, *, errors: int, ms: float) -> None:
    now = time.time_ns() - 90 * NS
    spans = []
    for i in range(n):
        s = span(
            abs(hash((agent, i))) % 2**64 + 1,
            1,
            name="run",
            duration_ms=ms,
            attrs={"gen_ai.agent.name": agent, "gen_ai.operation.name": "invoke_agent"},
            error="boom" if i < errors else None,
        )
        s.start_time_unix_nano = now + i * 1000
        s.end_time_unix_nano = s.start_time_unix_nano + int(ms * 1_000_000)
        spans.append(s)
    resp = server.post("/v1/traces", content=request(spans).SerializeToString(), headers=PROTOBUF)
    assert resp.status_code == 200, resp.text


def _rule(server: RunningServer, **body: Any) -> dict[str, Any]:
    resp = server.post("/api/v1/alerts/rules", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_rules_over_real_rollups(make_server: ServerFactory) -> None:
    server = make_server(**QUIET)
    _send_runs(server, "checkout", 10, errors=3, ms=3000)
    _send_runs(server, "search", 10, errors=0, ms=100)
    errors = _rule(
        server,
        name="Errors",
        expression="error_rate(5m) > 5 and requests(5m) > 5 by agent",
        severity="critical",
        message="{agent}: {value} % errors",
        labels={"team": "payments"},
    )
    _rule(server, name="Slow", expression="p95(latency, 10m) > 2000 by agent", severity="warning")
    _rule(server, name="Quiet", expression="requests(15m) == 0 by agent", severity="info")
    _rule(server, name="Later", expression="errors(5m) >= 1", severity="error", **{"for": "10m"})

    cycle = server.post("/api/v1/alerts/evaluate").json()
    assert cycle["rules"] == 4 and cycle["windows"] == 3 and cycle["errors"] == []
    firing = server.get("/api/v1/alerts", params={"state": "firing"}).json()["items"]
    by_rule = {a["rule"]: a for a in firing}
    assert set(by_rule) == {"Errors", "Slow"}
    err = by_rule["Errors"]
    assert err["labels"] == {
        "alertname": "Errors",
        "severity": "critical",
        "team": "payments",
        "agent": "checkout",
    }
    assert err["value"] == pytest.approx(30.0)
    assert err["message"] == "checkout: 30 % errors"
    assert by_rule["Slow"]["value"] == pytest.approx(3000, rel=0.01)
    pending = server.get("/api/v1/alerts", params={"state": "pending"}).json()["items"]
    assert [a["rule"] for a in pending] == ["Later"]

    assert len(server.get("/api/v1/alerts", params={"severity": "critical"}).json()["items"]) == 1
    assert server.get("/api/v1/alerts", params={"agent": "search"}).json()["items"] == []
    page = server.get("/api/v1/alerts", params={"limit": 2}).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = server.get("/api/v1/alerts", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None

    summary = server.get("/api/v1/alerts/summary").json()
    assert summary["by_state"] == {"pending": 1, "firing": 2, "resolved": 0}
    assert summary["by_severity"]["critical"] == {"firing": 1}
    assert summary["firing_unacknowledged"] == 2
    overview = server.get("/api/v1/overview").json()
    assert overview["alerts"]["firing"] == 2
    items = overview["alerts"]["items"]
    assert [(a["rule"], a["severity"], a["agent"]) for a in items] == [
        ("Errors", "critical", "checkout"),
        ("Slow", "warning", "checkout"),
    ]
    assert items[0]["fired_at"].endswith("Z") and items[0]["value"] == pytest.approx(30.0)
    agents = {a["agent"]: a for a in server.get("/api/v1/agents").json()["items"]}
    assert agents["checkout"]["health"]["components"]["alerts"]["value"] == 2
    assert agents["search"]["health"]["components"]["alerts"]["value"] == 0
    assert "pharos_alerts_firing 2.0" in server.get("/metrics").text

    # A silence mutes the alert's notifications; the alert stays listed, marked silenced.
    silence = server.post(
        "/api/v1/silences",
        json={
            "matchers": [{"name": "agent", "op": "=", "value": "checkout"}],
            "duration": "1h",
            "created_by": "ana",
            "comment": "deploying",
        },
    )
    assert silence.status_code == 201 and silence.json()["status"] == "active"
    server.post("/api/v1/alerts/evaluate")
    err = server.get(f"/api/v1/alerts/{err['id']}").json()
    assert err["state"] == "firing" and err["silenced"] and err["expression"]
    assert [h["event"] for h in err["history"]][:1] == ["silenced"]
    assert server.get("/api/v1/alerts/summary").json()["firing_silenced"] == 2
    expired = server.client().delete(f"/api/v1/silences/{silence.json()['id']}")
    assert expired.json()["status"] == "expired"
    assert server.get("/api/v1/silences").json()["items"] == []
    assert (
        len(server.get("/api/v1/silences", params={"include_expired": True}).json()["items"]) == 1
    )

    acked = server.post(f"/api/v1/alerts/{err['id']}/ack", json={"who": "ana", "comment": "x"})
    assert acked.json()["acknowledged"] and acked.json()["acked_by"] == "ana"
    resolved = server.post(f"/api/v1/alerts/{err['id']}/resolve", json={"who": "bo"})
    assert resolved.json()["state"] == "resolved"
    assert server.get("/api/v1/overview").json()["alerts"]["firing"] == 1
    again = server.post(f"/api/v1/alerts/{err['id']}/resolve", json={"who": "bo"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"

    # Disabling a rule resolves its alerts at the next cycle.
    server.client().patch(f"/api/v1/alerts/rules/{errors['id']}", json={"enabled": False})
    slow_id = by_rule["Slow"]["rule_id"]
    server.client().patch(f"/api/v1/alerts/rules/{slow_id}", json={"enabled": False})
    server.post("/api/v1/alerts/evaluate")
    assert server.get("/api/v1/alerts", params={"state": "firing"}).json()["items"] == []


def test_default_rules_once_and_one_leader(make_server: ServerFactory) -> None:
    first = make_server(alert_eval_interval_seconds=0.2, ingest_workers=0)
    rules = first.get("/api/v1/alerts/rules").json()["items"]
    assert [r["name"] for r in rules] == [
        "High error rate",
        "Slow responses",
        "Low throughput",
        "High token usage",
    ]
    assert rules[0]["severity"] == "critical" and rules[1]["severity"] == "warning"
    first.client().delete(f"/api/v1/alerts/rules/{rules[3]['id']}")
    second = make_server(alert_eval_interval_seconds=0.2, ingest_workers=0)
    assert len(second.get("/api/v1/alerts/rules").json()["items"]) == 3  # not re-created
    time.sleep(0.6)
    leaders = [s.get("/api/v1/alerts/summary").json()["engine"]["leader"] for s in (first, second)]
    assert sorted(leaders) == [False, True]
    ready = first.get("/readyz").json()["checks"]["alerting"]
    assert ready["engine"] == "running" and ready["outbox_worker"] == "running"


BAD_INPUT = [
    (
        "POST",
        "/api/v1/alerts/rules",
        {"name": "x", "expression": "x.y > 1", "severity": "info"},
        400,
        "attribute access ('.') is not allowed (line 1, column 2)",
    ),
    (
        "POST",
        "/api/v1/alerts/rules",
        {"name": "x", "expression": "requests(5m) > 1"},
        400,
        "missing: severity",
    ),
    (
        "POST",
        "/api/v1/alerts/rules",
        {"name": "x", "expression": "requests(5m) > 1", "severity": "loud"},
        400,
        "severity",
    ),
    (
        "POST",
        "/api/v1/alerts/rules",
        {"name": "x", "expression": "requests(5m) > 1", "severity": "info", "for": "soon"},
        400,
        "for: 'soon' is not a duration",
    ),
    (
        "POST",
        "/api/v1/alerts/rules",
        {
            "name": "x",
            "expression": "requests(5m) > 1",
            "severity": "info",
            "labels": {"agent": "a"},
        },
        400,
        "label 'agent' is set by Pharos",
    ),
    (
        "POST",
        "/api/v1/alerts/rules",
        {"name": "x", "expression": "requests(5m) > 1", "severity": "info", "bogus": 1},
        400,
        "bogus",
    ),
    ("GET", "/api/v1/alerts/rules/999", None, 404, "no rule 999"),
    ("PATCH", "/api/v1/alerts/rules/999", {"enabled": False}, 404, "no rule 999"),
    ("GET", "/api/v1/alerts/abc", None, 400, "alert_id"),
    ("GET", "/api/v1/alerts/999", None, 404, "no alert 999"),
    ("POST", "/api/v1/alerts/999/ack", {"who": "a"}, 404, "no alert 999"),
    ("POST", "/api/v1/alerts/1/ack", {}, 400, "who"),
    ("GET", "/api/v1/alerts?state=burning", None, 400, "state"),
    ("GET", "/api/v1/alerts?cursor=zz", None, 400, "cursor"),
    (
        "POST",
        "/api/v1/silences",
        {"matchers": [], "duration": "1h", "created_by": "a", "comment": "c"},
        400,
        "at least one matcher",
    ),
    (
        "POST",
        "/api/v1/silences",
        {
            "matchers": [{"name": "agent", "op": "=~", "value": "("}],
            "duration": "1h",
            "created_by": "a",
            "comment": "c",
        },
        400,
        "not a valid regex",
    ),
    (
        "POST",
        "/api/v1/silences",
        {"matchers": [{"name": "agent", "value": "x"}], "created_by": "a", "comment": "c"},
        400,
        "ends_at or duration",
    ),
    ("DELETE", "/api/v1/silences/999", None, 404, "no silence 999"),
    (
        "POST",
        "/api/v1/alerts/channels",
        {"name": "s", "type": "slack", "config": {"url": "ftp://x"}},
        400,
        "http(s) URL",
    ),
    (
        "POST",
        "/api/v1/alerts/channels",
        {"name": "p", "type": "pagerduty", "config": {}},
        400,
        "routing_key",
    ),
    (
        "POST",
        "/api/v1/alerts/channels",
        {"name": "e", "type": "email", "config": {"host": "h", "to": ["nobody"]}},
        400,
        "config.to",
    ),
    (
        "POST",
        "/api/v1/alerts/channels",
        {"name": "w", "type": "webhook", "config": {"url": "http://x", "token": "t"}},
        400,
        "unknown for webhook: token",
    ),
    (
        "POST",
        "/api/v1/alerts/channels",
        {"name": "w", "type": "sms", "config": {}},
        400,
        "type",
    ),
]


def test_bad_input_is_a_clear_4xx(server: RunningServer) -> None:
    with server.client() as client:
        for method, path, body, status, needle in BAD_INPUT:
            resp = client.request(method, path, json=body)
            assert resp.status_code == status, (method, path, resp.text)
            assert needle in resp.json()["error"]["message"], (method, path, resp.text)


def test_validate_channels_and_duplicates(server: RunningServer) -> None:
    bad = server.post("/api/v1/alerts/rules/validate", json={"expression": "p95(latency) > 1"})
    assert bad.json() == {
        "valid": False,
        "error": {
            "message": "usage: p95(latency, window[, ...]): 95th percentile latency, ms",
            "position": 0,
            "line": 1,
            "column": 1,
        },
    }
    ok = server.post(
        "/api/v1/alerts/rules/validate", json={"expression": "sum(cost, 1d) > 50 by agent"}
    ).json()
    assert ok["valid"] and ok["by"] == ["agent"] and ok["series"] == ["sum(cost, 1d)"]
    body = {"name": "dup", "expression": "requests(5m) > 1", "severity": "info"}
    assert server.post("/api/v1/alerts/rules", json=body).status_code == 201
    dup = server.post("/api/v1/alerts/rules", json=body)
    assert dup.status_code == 409 and "exists" in dup.json()["error"]["message"]

    made = server.post(
        "/api/v1/alerts/channels",
        json={
            "name": "ops",
            "type": "slack",
            "config": {"url": "https://hooks.slack.com/services/T0/B0/SECRET"},
            "severities": ["critical"],
            "matchers": [{"name": "team", "op": "=", "value": "payments"}],
        },
    )
    assert made.status_code == 201, made.text
    listed = server.get("/api/v1/alerts/channels").json()["items"]
    assert listed[0]["config"] == {"url": "hooks.slack.com/***"}  # the secret path is masked
    changed = server.client().patch(
        f"/api/v1/alerts/channels/{made.json()['id']}", json={"enabled": False}
    )
    assert changed.json()["enabled"] is False
    test = server.post(f"/api/v1/alerts/channels/{made.json()['id']}/test")
    assert test.status_code == 202
    deleted = server.client().delete(f"/api/v1/alerts/channels/{made.json()['id']}")
    assert deleted.json() == {"deleted": made.json()["id"]}
