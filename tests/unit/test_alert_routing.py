"""Routing by severity and labels, silence matchers, webhook signatures, PagerDuty actions, and
the rule figures computed from rollup rows (pure)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from pharos.server.alerting.engine import _Channel, route
from pharos.server.alerting.figures import Figures
from pharos.server.alerting.language import Series, parse
from pharos.server.alerting.notifiers.payloads import pagerduty_event, sign, slack_message
from pharos.server.alerting.rules import RuleDef, alert_labels, fingerprint, message_for
from pharos.server.alerting.silences import ActiveSilence, Matcher, parse_matchers, silenced_by
from pharos.server.analytics import histogram as hist
from pharos.server.analytics.summary import RollupRow


def test_routing_critical_to_pagerduty_and_slack_warning_to_slack() -> None:
    pd = _Channel(1, "pd", ("critical",), ())
    slack = _Channel(2, "slack", ("critical", "warning"), ())
    team = _Channel(3, "payments", ("critical", "warning"), (Matcher("team", "=", "payments"),))
    named = _Channel(4, "named-only", (), ())
    crit = RuleDef(1, "c", "requests(5m) > 1", "critical", labels={"team": "payments"})
    warn = RuleDef(2, "w", "requests(5m) > 1", "warning", channels=("named-only",))
    channels = [pd, slack, team, named]
    assert [c.name for c in route(crit, alert_labels(crit, {}), channels)] == [
        "pd",
        "slack",
        "payments",
    ]
    assert [c.name for c in route(warn, alert_labels(warn, {}), channels)] == [
        "slack",
        "named-only",
    ]


def test_silence_matchers() -> None:
    matchers = parse_matchers(
        [
            {"name": "agent", "op": "=~", "value": "check.*"},
            {"name": "severity", "op": "!=", "value": "info"},
        ]
    )
    silence = ActiveSilence(7, tuple(matchers), 100, 200)
    labels = {"agent": "checkout", "severity": "critical"}
    assert silenced_by(labels, [silence], 150) == 7
    assert silenced_by(labels, [silence], 200) is None  # ended
    assert silenced_by({**labels, "severity": "info"}, [silence], 150) is None
    assert silenced_by({"severity": "critical"}, [silence], 150) is None  # missing label = ""
    with pytest.raises(ValueError, match="op must be one of"):
        parse_matchers([{"name": "a", "op": "~", "value": "x"}])


def test_payload_builders() -> None:
    alert = {
        "id": 3,
        "rule": "Errors",
        "fingerprint": "f" * 32,
        "labels": {"alertname": "Errors", "severity": "warning", "agent": "a<b>"},
        "severity": "warning",
        "message": "a<b> is failing",
        "expression": "error_rate(5m) > 5",
        "value": 12.0,
        "fired_at": "2026-11-23T00:00:00.000000Z",
    }
    slack = slack_message({"event": "firing", "alert": alert})
    assert slack["attachments"][0]["color"] == "#F2C744"
    assert "a&lt;b&gt; is failing" in slack["attachments"][0]["blocks"][1]["text"]["text"]
    for event, action in (
        ("firing", "trigger"),
        ("acknowledged", "acknowledge"),
        ("resolved", "resolve"),
    ):
        pd = pagerduty_event({"event": event, "alert": alert}, "key")
        assert pd["event_action"] == action and pd["dedup_key"] == "f" * 32
    assert (
        pagerduty_event({"event": "firing", "alert": alert}, "k")["payload"]["severity"]
        == "warning"
    )
    body = b'{"x":1}'
    assert (
        sign("k", "1700000000", body)
        == "sha256=" + hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    )


def _row(
    agent: str, model: str, kind: str, count: int, errors: int, values: list[float]
) -> RollupRow:
    return RollupRow(
        60,
        agent,
        model,
        kind,
        count,
        errors,
        sum(values),
        max(values),
        100 * count,
        10 * count,
        0,
        5_000_000 * count,
        hist.dumps(hist.from_values(values)),
    )


def test_figures_per_group_and_filter() -> None:
    rows = [
        _row("a", "", "request", 4, 1, [100, 200, 300, 4000]),
        _row("b", "", "request", 2, 0, [50, 60]),
        _row("a", "gpt-4o", "llm", 3, 0, [10, 20, 30]),
        _row("b", "claude", "llm", 1, 1, [40]),
    ]
    fig = Figures({300: rows})
    assert fig.groups(("agent",), {300}, agents=["c"]) == [
        {"agent": "a"},
        {"agent": "b"},
        {"agent": "c"},
    ]
    assert fig.groups(("model",), {300}) == [{"model": "claude"}, {"model": "gpt-4o"}]
    assert fig.value(Series("error_rate", 300), {"agent": "a"}) == 25.0
    assert fig.value(Series("error_rate", 300), {"agent": "c"}) is None  # no requests: no data
    assert fig.value(Series("requests", 300), {}) == 6
    assert fig.value(Series("throughput", 300), {}) == pytest.approx(6 / 300)
    assert fig.value(Series("latency_p99", 300), {"agent": "a"}) == pytest.approx(4000, rel=0.01)
    assert fig.value(Series("tokens", 300), {"agent": "a"}) == 330  # model calls only
    assert fig.value(Series("cost", 300), {}) == pytest.approx(0.02)
    # A model filter describes that model's calls.
    assert fig.value(Series("requests", 300, model="claude"), {}) == 1
    assert fig.value(Series("error_rate", 300, agent="b", model="claude"), {}) == 100.0


def test_message_template_and_fingerprint() -> None:
    rule = RuleDef(
        9,
        "Slow",
        "p95(latency, 10m) > 2000 by agent",
        "warning",
        message="{agent} p95 {value} ms ({nope})",
    )
    labels = alert_labels(rule, {"agent": "x"})
    assert message_for(rule, labels, 2500.4) == "x p95 2500 ms ({nope})"
    assert fingerprint(9, labels) == fingerprint(9, dict(reversed(labels.items())))
    assert fingerprint(9, labels) != fingerprint(10, labels)
    assert parse(rule.expression).by == ("agent",)
