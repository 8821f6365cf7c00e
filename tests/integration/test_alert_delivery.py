"""Notifications survive outages and restarts: Slack, PagerDuty and webhook receivers that
answer 500, time out and refuse connections before recovering get every notification exactly
once, with the server restarted in between; e-mail through a local aiosmtpd."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.alert_receivers import receiver, wait_for
from tests.conftest import RunningServer, free_port, run_server

FAST = {
    "alert_eval_interval_seconds": 3600.0,  # cycles are triggered by the test
    "alert_default_rules": False,
    "alert_retry_base_seconds": 0.2,
    "alert_retry_max_seconds": 0.6,
    "alert_send_timeout_seconds": 0.5,
    "alert_outbox_poll_seconds": 0.1,
    "alert_dashboard_url": "http://dash.example",
    "ingest_workers": 0,
}


@contextmanager
def _server(db_url: str, **settings: Any) -> Iterator[RunningServer]:
    """A server whose alert loop has run its start-up cycle: a rule created afterwards is first
    evaluated by the test's forced cycle, not by that one (on PostgreSQL the lease made it
    late enough to race)."""
    with run_server(db_url, **settings) as srv:
        wait_for(lambda: srv.app.state.alerting.engine.last_result is not None)
        yield srv


def test_every_notification_arrives_exactly_once_across_outages_and_a_restart(
    db_url: str,
) -> None:
    slack_port, pd_port, hook_port = free_port(), free_port(), free_port()
    with (
        receiver(slack_port, ["500", "500", "500"]) as slack,
        receiver(pd_port, ["timeout", "500", "timeout"]) as pd,
        receiver(hook_port, started=False) as hook,  # connection refused until started
    ):
        settings = {
            **FAST,
            "alert_slack_webhook_url": slack.url,
            "alert_pagerduty_routing_key": "R0UT1NGKEY",
            "alert_pagerduty_url": pd.url,
            "alert_webhook_url": hook.url,
            "alert_webhook_secret": "s3cret",
        }
        with _server(db_url, **settings) as first:
            rule = first.post(
                "/api/v1/alerts/rules",
                json={
                    "name": "No traffic",
                    "expression": "requests(15m) == 0",
                    "severity": "critical",
                    "message": "no requests in 15 minutes ({value})",
                },
            )
            assert rule.status_code == 201, rule.text
            cycle = first.post("/api/v1/alerts/evaluate").json()
            assert cycle["transitions"] == 2 and cycle["notifications"] == 3  # 3 channels
            alert = first.get("/api/v1/alerts", params={"state": "firing"}).json()["items"][0]
            # Slack and PagerDuty recover within the retries; the webhook keeps refusing.
            wait_for(lambda: len(slack.accepted) == 1 and len(pd.accepted) == 1)
            ack = first.post(
                f"/api/v1/alerts/{alert['id']}/ack", json={"who": "ana", "comment": "on it"}
            )
            assert ack.status_code == 200 and ack.json()["acked_by"] == "ana"
            wait_for(lambda: len(slack.accepted) == 2 and len(pd.accepted) == 2)
            pending = first.get("/api/v1/alerts/outbox", params={"status": "pending"}).json()
            assert {row["event"] for row in pending["items"]} == {"firing", "acknowledged"}
            # The webhook's acknowledged waits behind its firing (order per alert and channel).
            attempts = {row["event"]: row["attempts"] for row in pending["items"]}
            assert attempts["firing"] >= 1 and attempts["acknowledged"] == 0
        # The first server stopped with the webhook's two notifications still undelivered.
        hook.start()
        with _server(db_url, **settings) as second:
            wait_for(lambda: len(hook.accepted) == 2)
            # The condition stops holding: the rule now wants traffic; resolved goes out.
            patched = second.client().patch(
                f"/api/v1/alerts/rules/{rule.json()['id']}",
                json={"expression": "requests(15m) == 0 and requests(15m) > 0"},
            )
            assert patched.status_code == 200
            cycle = second.post("/api/v1/alerts/evaluate").json()
            assert cycle["transitions"] == 1 and cycle["notifications"] == 3
            wait_for(
                lambda: (
                    len(slack.accepted) == 3 and len(pd.accepted) == 3 and len(hook.accepted) == 3
                )
            )
            # Nothing more arrives: every row is sent, none twice.
            time.sleep(1.0)
            counts = second.get("/api/v1/alerts/outbox").json()["counts"]
            assert counts == {"sent": 9}
            history = second.get(f"/api/v1/alerts/{alert['id']}").json()["history"]
        assert [h["event"] for h in reversed(history)] == [
            "pending",
            "firing",
            "acknowledged",
            "resolved",
        ]

    assert [x.json["text"].split("]")[0] for x in slack.accepted] == [
        "[FIRING",
        "[ACKNOWLEDGED",
        "[RESOLVED",
    ]
    # Slack: text + attachment coloured by severity with blocks (header, message, labels, link).
    firing = slack.accepted[0].json
    assert firing["text"].startswith("[FIRING] No traffic (critical)")
    attachment = firing["attachments"][0]
    assert attachment["color"] == "#D00000"
    blocks = attachment["blocks"]
    assert [b["type"] for b in blocks] == ["header", "section", "section", "context", "actions"]
    assert blocks[0]["text"] == {
        "type": "plain_text",
        "text": "[FIRING] No traffic (critical)",
        "emoji": True,
    }
    assert blocks[1]["text"] == {"type": "mrkdwn", "text": "no requests in 15 minutes (0)"}
    assert {"type": "mrkdwn", "text": "*severity*\ncritical"} in blocks[2]["fields"]
    assert blocks[3]["elements"][0]["text"] == "`requests(15m) == 0`"
    button = blocks[4]["elements"][0]
    assert (
        button["type"] == "button" and button["url"] == f"http://dash.example/alerts/{alert['id']}"
    )
    assert slack.accepted[1].json["text"].startswith("[ACKNOWLEDGED]")
    assert slack.accepted[2].json["attachments"][0]["color"] == "#2EB67D"
    assert slack.accepted[2].json["text"].startswith("[RESOLVED]")

    # PagerDuty Events API v2: trigger, acknowledge, resolve with the same dedup_key.
    trigger, acknowledge, resolve = (x.json for x in pd.accepted)
    assert [trigger["event_action"], acknowledge["event_action"], resolve["event_action"]] == [
        "trigger",
        "acknowledge",
        "resolve",
    ]
    assert {e["dedup_key"] for e in (trigger, acknowledge, resolve)} == {alert["fingerprint"]}
    assert {e["routing_key"] for e in (trigger, acknowledge, resolve)} == {"R0UT1NGKEY"}
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["summary"] == "no requests in 15 minutes (0)"
    assert trigger["payload"]["source"] == "pharos"
    assert trigger["payload"]["timestamp"].endswith("Z")
    assert trigger["links"][0]["href"] == f"http://dash.example/alerts/{alert['id']}"
    assert set(acknowledge) == {"routing_key", "event_action", "dedup_key"}
    assert pd.attempts >= 6  # the failures were real attempts

    # Webhook: signed JSON, idempotency key per transition per channel.
    keys = []
    for got in hook.accepted:
        ts = got.headers["x-pharos-timestamp"]
        expected = hmac.new(b"s3cret", ts.encode() + b"." + got.body, hashlib.sha256).hexdigest()
        assert got.headers["x-pharos-signature"] == f"sha256={expected}"
        assert got.headers["x-pharos-idempotency-key"] == got.json["idempotency_key"]
        keys.append(got.json["idempotency_key"])
        assert got.json["alert"]["fingerprint"] == alert["fingerprint"]
    assert [g.json["event"] for g in hook.accepted] == ["firing", "acknowledged", "resolved"]
    assert len(set(keys)) == 3


class _Sink:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def test_email_plain_and_html_through_smtp(sqlite_url: str) -> None:
    sink = _Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = {
            **FAST,
            "alert_smtp_host": "127.0.0.1",
            "alert_smtp_port": port,
            "alert_smtp_from": "pharos@example.com",
            "alert_smtp_to": ["oncall@example.com"],
        }
        with _server(sqlite_url, **settings) as server:
            server.post(
                "/api/v1/alerts/rules",
                json={
                    "name": "Quiet <agents>",
                    "expression": "requests(5m) == 0",
                    "severity": "error",
                    "labels": {"team": "payments"},
                },
            )
            server.post("/api/v1/alerts/evaluate")
            wait_for(lambda: len(sink.messages) == 1)
    finally:
        controller.stop()
    sender, recipients, raw = sink.messages[0]
    assert sender == "pharos@example.com" and recipients == ["oncall@example.com"]
    msg = message_from_bytes(raw)
    assert msg["Subject"] == "[FIRING] Quiet <agents> (error)"
    assert msg.get_content_type() == "multipart/alternative"
    parts = {
        p.get_content_type(): p.get_payload(decode=True).decode()
        for p in msg.walk()
        if not p.is_multipart()
    }
    assert "team: payments" in parts["text/plain"]
    assert "Quiet &lt;agents&gt;" in parts["text/html"]  # escaped
    assert "http://dash.example/alerts/" in parts["text/html"]


@pytest.mark.parametrize("status", [400, 404])
def test_a_permanent_4xx_fails_at_once(sqlite_url: str, status: int) -> None:
    port = free_port()
    with receiver(port) as hook:
        hook.status = status
        with _server(sqlite_url, **FAST, alert_webhook_url=hook.url) as server:
            server.post(
                "/api/v1/alerts/rules",
                json={"name": "r", "expression": "requests(5m) == 0", "severity": "info"},
            )
            server.post("/api/v1/alerts/evaluate")
            wait_for(
                lambda: server.get("/api/v1/alerts/outbox").json()["counts"].get("failed") == 1
            )
            row = server.get("/api/v1/alerts/outbox").json()["items"][0]
    assert row["attempts"] == 1 and row["last_error"].startswith(f"HTTP {status}")


def test_a_channel_whose_settings_are_removed_stops_sending(db_url: str) -> None:
    with receiver(free_port()) as pd, receiver(free_port()) as hook:
        paging = {
            **FAST,
            "alert_pagerduty_routing_key": "R0UT1NGKEY",
            "alert_pagerduty_url": pd.url,
            "alert_webhook_url": hook.url,
        }
        with _server(db_url, **paging) as first:
            first.post(
                "/api/v1/alerts/rules",
                json={"name": "quiet", "expression": "requests(15m) == 0", "severity": "critical"},
            )
            assert first.post("/api/v1/alerts/evaluate").json()["notifications"] == 2
            wait_for(lambda: len(pd.accepted) == 1 and len(hook.accepted) == 1)
        # PHAROS_ALERT_PAGERDUTY_ROUTING_KEY unset: env-pagerduty is disabled at start.
        without = {k: v for k, v in paging.items() if not k.startswith("alert_pagerduty")}
        with _server(db_url, **without) as second:
            channels = {c["name"]: c for c in second.get("/api/v1/alerts/channels").json()["items"]}
            assert channels["env-pagerduty"]["enabled"] is False
            assert channels["env-webhook"]["enabled"] is True
            second.post(
                "/api/v1/alerts/rules",
                json={
                    "name": "no errors",
                    "expression": "errors(15m) == 0",
                    "severity": "critical",
                },
            )
            assert second.post("/api/v1/alerts/evaluate").json()["notifications"] == 1
            wait_for(lambda: len(hook.accepted) == 2)
            assert second.get("/api/v1/alerts/outbox").json()["counts"] == {"sent": 3}
        assert len(pd.accepted) == 1
        # Set again: enabled again.
        with _server(db_url, **paging) as third:
            channels = {c["name"]: c for c in third.get("/api/v1/alerts/channels").json()["items"]}
            assert channels["env-pagerduty"]["enabled"] is True


def test_a_hanging_channel_delays_neither_evaluation_nor_the_other_channels(
    sqlite_url: str,
) -> None:
    with receiver(free_port(), ["hang"]) as hook, receiver(free_port()) as slack:
        settings = {
            **FAST,
            "alert_eval_interval_seconds": 0.2,  # the real evaluation loop
            "alert_send_timeout_seconds": 60.0,  # the hung send stays in flight meanwhile
            "alert_webhook_url": hook.url,
            "alert_slack_webhook_url": slack.url,
        }
        with _server(sqlite_url, **settings) as server:
            alerting = server.app.state.alerting
            server.post(
                "/api/v1/alerts/rules",
                json={"name": "first", "expression": "requests(15m) == 0", "severity": "info"},
            )
            wait_for(lambda: hook.hanging == 1 and len(slack.accepted) == 1)
            # While the webhook holds its request: cycles go on at their interval...
            cycles = alerting.engine.cycles
            wait_for(lambda: alerting.engine.cycles >= cycles + 5)
            # ... and a new alert reaches Slack, and the webhook too (one alert's notifications
            # keep their order per channel; other alerts' do not wait for them).
            server.post(
                "/api/v1/alerts/rules",
                json={"name": "second", "expression": "errors(15m) == 0", "severity": "info"},
            )
            wait_for(lambda: len(slack.accepted) == 2 and len(hook.accepted) == 1)
            assert hook.hanging == 1 and hook.accepted[0].json["alert"]["rule"] == "second"
            assert [x.json["text"].split(":")[0] for x in slack.accepted] == [
                "[FIRING] first (info)",
                "[FIRING] second (info)",
            ]
            hook.release.set()
            wait_for(lambda: len(hook.accepted) == 2)
            wait_for(lambda: server.get("/api/v1/alerts/outbox").json()["counts"] == {"sent": 4})
        assert sorted(x.json["alert"]["rule"] for x in hook.accepted) == ["first", "second"]
