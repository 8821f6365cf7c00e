"""Built-in budget alerts (pure): which budgets hold which alert, their labels and messages,
the forecast's hysteresis; notification links and the default dashboard URL."""

from __future__ import annotations

from email import message_from_bytes

import pytest

from pharos.server.alerting import budget_alerts
from pharos.server.alerting.engine import AlertEngine
from pharos.server.alerting.notifiers.payloads import email_message, pagerduty_event, slack_message
from pharos.server.alerting.rules import RuleDef, alert_labels, fingerprint, message_for
from pharos.server.alerting.service import dashboard_url
from pharos.server.cost.budgets import BudgetState, burn_of
from pharos.server.cost.forecast import Forecast
from pharos.server.settings import Settings

NANO = 1_000_000_000
DAY = 1_790_035_200 * NANO  # 2026-09-22 00:00 UTC


def state(
    spend: float,
    projected: float,
    *,
    name: str = "b",
    agent: str | None = "bot",
    limit: float = 10,
    soft: float = 8,
    source: str = "budgets",
) -> BudgetState:
    return BudgetState(
        id=1,
        name=name,
        agent=agent,
        period="daily",
        limit_nanousd=int(limit * NANO),
        soft_limit_nanousd=int(soft * NANO),
        period_start_ns=DAY,
        period_end_ns=DAY + 86400 * NANO,
        spend_nanousd=int(spend * NANO),
        forecast=Forecast("flat_rate", int(projected * NANO), DAY + 3600 * NANO, 0),
        status="ok",
        source=source,
    )


def held(s: BudgetState, active: frozenset[str] = frozenset()) -> dict[str, bool]:
    return {
        a.labels["threshold"]: a.active
        for a in budget_alerts.evaluate([s], lambda fp: fp in active)
    }


@pytest.mark.parametrize(
    ("spend", "projected", "soft", "hard"),
    [
        (1, 5, False, False),  # fine
        (1, 9, False, False),  # forecast at the soft limit only: status warning, no alert
        (1, 10, True, False),  # the forecast reaches the limit
        (8, 8, True, False),  # spend at the soft limit
        (10, 10, True, True),  # exhausted
        (12, 30, True, True),
    ],
)
def test_which_alert_holds(spend: float, projected: float, soft: bool, hard: bool) -> None:
    assert held(state(spend, projected)) == {"soft": soft, "hard": hard}


def test_a_crossed_forecast_clears_below_90_percent() -> None:
    fp = budget_alerts.evaluate([state(1, 10)], lambda _: False)[0].fingerprint
    active = frozenset({fp})
    assert held(state(1, 9.5), active)["soft"] is True  # hovering just under: still on
    assert held(state(1, 9.5))["soft"] is False  # but it does not start there
    assert held(state(1, 8.9), active)["soft"] is False


def test_labels_rule_and_message() -> None:
    soft, hard = budget_alerts.evaluate([state(12, 30, name="bot daily")], lambda _: False)
    assert hard.labels == {
        "alertname": "budget:bot daily",
        "severity": "critical",
        "budget": "bot daily",
        "period": "daily",
        "threshold": "hard",
        "source": "budgets",
        "agent": "bot",
    }
    assert hard.fingerprint == fingerprint(0, hard.labels) != soft.fingerprint
    assert (hard.rule.id, hard.rule.name, hard.rule.severity) == (0, "budget:bot daily", "critical")
    assert (soft.rule.severity, soft.labels["severity"]) == ("warning", "warning")
    assert hard.value == soft.value == 120.0
    assert message_for(hard.rule, hard.labels, 120.0) == (
        "Budget 'bot daily' (agent bot, daily): spent $12.00 of $10.00 (120.0 %): exhausted "
        "until the period ends at 2026-09-23 00:00 UTC"
    )
    assert message_for(soft.rule, soft.labels, 1.0) == (
        "Budget 'bot daily' (agent bot, daily): spent $12.00 of $10.00 (120.0 %); the soft "
        "limit $8.00 is reached; the forecast $30.00 for the period reaches the limit "
        "(exhausted at 2026-09-22 01:00 UTC)"
    )
    # A template-looking name is text, not a template.
    (odd, _) = budget_alerts.evaluate([state(9, 1, name="{agent}", agent=None)], lambda _: False)
    assert "agent" not in odd.labels
    assert message_for(odd.rule, odd.labels, 1.0).startswith("Budget '{agent}' (all agents,")
    rebuilt = budget_alerts.rule_of_alert("budget:bot daily", hard.labels, "m")
    assert (rebuilt.expression, rebuilt.severity, rebuilt.message) == (
        "spend >= limit",
        "critical",
        "m",
    )


def test_burn_of_takes_the_highest_budget_of_the_agent() -> None:
    states = [
        state(5, 20),
        state(9, 9, source="registry"),
        state(1, 1, agent=None),
        state(100, 100, agent="other"),
    ]
    assert burn_of(states, "bot") == 0.9
    assert burn_of(states, "bot", forecast=True) == 2.0
    assert burn_of(states, None) == 0.1
    assert burn_of(states, "nobody") is None


def test_an_agent_named_by_the_rule_labels_its_alert() -> None:
    rule = RuleDef(3, "burn", 'budget_burn(agent="x") > 0.8', "warning")
    assert alert_labels(rule, {}, "x") == {"alertname": "burn", "severity": "warning", "agent": "x"}
    assert alert_labels(rule, {"agent": "y"}, "x")["agent"] == "y"  # the group wins


def test_links_encode_the_agent_and_point_at_the_trace() -> None:
    engine = AlertEngine(None, None, dashboard_url="https://pharos.example.com/")  # type: ignore[arg-type]
    links = engine.links(7, {"agent": "team a/bot?"}, "ab" * 16)
    assert links == {
        "url": "https://pharos.example.com/alerts/7",
        "agent_url": "https://pharos.example.com/agents/team%20a%2Fbot%3F",
        "trace_url": "https://pharos.example.com/traces/" + "ab" * 16,
    }
    assert AlertEngine(None, None).links(7, {"agent": "x"}) == {}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:4318"),
        ("::", "http://127.0.0.1:4318"),
        ("127.0.0.1", "http://127.0.0.1:4318"),
        ("10.1.2.3", "http://10.1.2.3:4318"),
        ("::1", "http://[::1]:4318"),
        ("pharos.internal", "http://pharos.internal:4318"),
    ],
)
def test_default_dashboard_url(host: str, url: str) -> None:
    assert dashboard_url(Settings(host=host, port=4318, insecure=True)) == url
    public = Settings(host=host, alert_dashboard_url="https://p.example.com/", insecure=True)
    assert dashboard_url(public) == "https://p.example.com"


def test_every_channel_carries_the_links() -> None:
    alert = {
        "id": 3,
        "rule": "budget:b",
        "fingerprint": "f" * 32,
        "labels": {"alertname": "budget:b", "severity": "critical", "agent": "bot"},
        "severity": "critical",
        "message": "Budget 'b' exhausted",
        "expression": "spend >= limit",
        "value": 120.0,
        "fired_at": "2026-11-23T00:00:00.000000Z",
        "url": "http://d/alerts/3",
        "agent_url": "http://d/agents/bot",
        "trace_url": "http://d/traces/" + "c" * 32,
    }
    payload = {"event": "firing", "at": "2026-11-23T00:00:00.000000Z", "alert": alert}
    blocks = slack_message(payload)["attachments"][0]["blocks"]
    buttons = {b["text"]["text"]: b["url"] for b in blocks[-1]["elements"]}
    assert buttons == {
        "Open alert": alert["url"],
        "Open agent": alert["agent_url"],
        "Open trace": alert["trace_url"],
    }
    pd = pagerduty_event(payload, "key")
    assert pd["links"] == [
        {"href": alert["url"], "text": "Alert in Pharos"},
        {"href": alert["agent_url"], "text": "Agent bot"},
        {"href": alert["trace_url"], "text": "Trace in Pharos"},
    ]
    msg = email_message(payload, "p@example.com", ["o@example.com"], "a3:e1:firing:c2")
    parsed = message_from_bytes(msg.as_bytes())
    assert parsed["Message-ID"] == "<a3.e1.firing.c2@pharos>"
    assert parsed["X-Pharos-Idempotency-Key"] == "a3:e1:firing:c2"
    parts = {
        p.get_content_type(): p.get_payload(decode=True).decode()
        for p in parsed.walk()
        if not p.is_multipart()
    }
    for url in (alert["url"], alert["agent_url"], alert["trace_url"]):
        assert url in parts["text/plain"] and f"href='{url}'" in parts["text/html"]
    assert "Trace: " + alert["trace_url"] in parts["text/plain"]
