"""Reports over seeded traffic on both dialects: the figures are exactly the API's (and the
seeded values), HTML/text/Slack/PNG renderings, e-mail with the chart as an inline image through
a local aiosmtpd, Slack to a capture server, the schedule (once per slot, across a restart), and
``pharos report`` in the terminal and as HTML."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from sqlalchemy import func, select
from typer.testing import CliRunner

from pharos.cli import app
from pharos.server.db.engine import make_engine
from pharos.server.db.schema import outbox
from pharos.server.report.render import chart_png, slack_message, text, to_html
from tests.alert_receivers import receiver, wait_for
from tests.conftest import RunningServer, ServerFactory, free_port, run_server
from tests.otlp_helpers import PROTOBUF, kv, request, span

NS = 1_000_000_000
PER_CALL_USD = 0.0015  # gpt-4o: 400 input tokens at $2.50/M + 50 output at $10/M
QUIET = {"alert_default_rules": False, "alert_eval_interval_seconds": 3600.0, "ingest_workers": 0}


def seed(server: RunningServer) -> None:
    """checkout: 100 runs (90 of 100 ms, 10 of 500 ms, 3 failing "boom"), each with one
    gpt-4o call; search: 10 runs of 100 ms. All 2 minutes ago."""
    now = time.time_ns() - 120 * NS
    spans = []
    for i in range(100):
        ms = 100 if i < 90 else 500
        root = span(
            0xC000 + i,
            1,
            name="checkout run",
            attrs={"gen_ai.agent.name": "checkout", "gen_ai.operation.name": "invoke_agent"},
            error="boom" if i < 3 else None,
        )
        root.start_time_unix_nano = now + i * 1000
        root.end_time_unix_nano = root.start_time_unix_nano + ms * 1_000_000
        if i < 3:  # the exception behind each failure: an error group
            root.events.append(
                Span.Event(
                    name="exception",
                    time_unix_nano=root.end_time_unix_nano,
                    attributes=[
                        kv("exception.type", "RuntimeError"),
                        kv("exception.message", f"boom in order {1000 + i}"),
                    ],
                )
            )
        call = span(
            0xC000 + i,
            2,
            1,
            name="chat gpt-4o",
            attrs={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 400,
                "gen_ai.usage.output_tokens": 50,
            },
        )
        call.start_time_unix_nano = root.start_time_unix_nano + 1_000_000
        call.end_time_unix_nano = call.start_time_unix_nano + 50_000_000
        spans += [root, call]
    for i in range(10):
        s = span(0x5000 + i, 1, name="search run", attrs={"gen_ai.agent.name": "search"})
        s.start_time_unix_nano = now + i * 1000
        s.end_time_unix_nano = s.start_time_unix_nano + 100_000_000
        spans.append(s)
    r = server.post("/v1/traces", content=request(spans).SerializeToString(), headers=PROTOBUF)
    assert r.status_code == 200, r.text
    r = server.post(
        "/api/v1/budgets",
        json={"name": "checkout daily", "agent": "checkout", "period": "daily", "limit_usd": "1"},
    )
    assert r.status_code == 201, r.text
    r = server.post(
        "/api/v1/slos",
        json={"name": "checkout-success", "agent": "checkout", "kind": "success", "objective": 99},
    )
    assert r.status_code == 201, r.text
    r = server.post(
        "/api/v1/alerts/rules",
        json={"name": "Errors", "expression": "errors(15m) > 0 by agent", "severity": "critical"},
    )
    assert r.status_code == 201, r.text
    assert server.post("/api/v1/alerts/evaluate").json()["errors"] == []


def test_report_figures_are_the_apis(make_server: ServerFactory) -> None:
    server = make_server(**QUIET)
    seed(server)
    r = server.get("/api/v1/reports", params={"period": "24h"}).json()
    assert r["kind"] == "daily" and r["title"] == "Daily health report" and r["period"] == "24h"
    t = r["totals"]
    assert (t["requests"], t["errors"], t["error_rate"]) == (110, 3, 2.727)
    assert t["llm_calls"] == 100
    assert t["cost_usd"] == pytest.approx(100 * PER_CALL_USD)
    summary = server.get("/api/v1/metrics/summary", params={"window": "24h"}).json()
    assert (
        t["p95_ms"] == summary["latency_ms"]["p95"] and t["p50_ms"] == summary["latency_ms"]["p50"]
    )

    agents = {a["agent"]: a for a in r["agents"]}
    assert [a["agent"] for a in r["agents"]] == ["checkout", "search"]
    checkout = agents["checkout"]
    assert (checkout["requests"], checkout["errors"], checkout["error_rate"]) == (100, 3, 3.0)
    assert checkout["p95_ms"] == 500.0  # rank 95 of 100 is a 500 ms run
    assert checkout["cost_usd"] == pytest.approx(100 * PER_CALL_USD)
    api_agents = {
        a["agent"]: a
        for a in server.get("/api/v1/agents", params={"window": "24h"}).json()["items"]
    }
    for name in ("checkout", "search"):
        assert agents[name]["p95_ms"] == api_agents[name]["latency_ms"]["p95"]
        assert agents[name]["error_rate"] == api_agents[name]["error_rate"]

    # the error groups, as GET /api/v1/errors counts them
    [group] = server.get("/api/v1/errors", params={"window": "24h"}).json()["items"]
    assert [(e["fingerprint"], e["count"], e["agents"]) for e in r["top_errors"]] == [
        (group["fingerprint"], 3, ["checkout"])
    ]
    assert r["top_errors"][0]["message"] == group["title"]
    assert group["title"].startswith("RuntimeError: boom in order 10")
    assert r["top_errors"][0]["trace_id"] is not None
    costs = server.get("/api/v1/costs", params={"window": "24h"}).json()
    assert r["cost"]["total_usd"] == costs["total"]["cost_usd"]
    [budget] = r["cost"]["budgets"]
    assert budget["name"] == "checkout daily"
    assert budget["spend_usd"] == pytest.approx(100 * PER_CALL_USD)
    assert budget["limit_usd"] == 1.0 and budget["status"] in ("ok", "warning", "critical")
    # The budget's built-in warning fires too when its forecast reaches the limit (which depends
    # on the hour of the day: the rest of the day at the current rate).
    rules = [x for x in r["alerts"]["by_rule"] if x["rule"] != "budget:checkout daily"]
    assert rules == [{"rule": "Errors", "severity": "critical", "fired": 1, "agents": ["checkout"]}]
    assert r["alerts"]["fired"] == 1 + (budget["status"] == "critical")
    [slo] = r["slos"]
    assert (slo["name"], slo["attainment"], slo["met"]) == ("checkout-success", 97.0, False)
    [target] = r["targets"]  # search has no SLO: held against the default targets
    assert target["agent"] == "search" and target["success_pct"] == 100.0
    assert target["success_met"] is True and target["p95_met"] is True
    assert sum(r["chart"]["requests"]) == 110 and sum(r["chart"]["errors"]) == 3
    assert len(r["chart"]["timestamps"]) == 24

    weekly = server.get("/api/v1/reports", params={"period": "7d"}).json()
    assert weekly["kind"] == "weekly" and weekly["totals"]["requests"] == 110
    assert len(weekly["chart"]["timestamps"]) == 7
    bad = server.get("/api/v1/reports", params={"period": "soon"})
    assert bad.status_code == 400 and "period" in bad.json()["error"]["message"]

    # The renderings carry the same figures.
    page = to_html(r, "cid:chart")
    assert "Daily health report" in page and "2.73%" in page and "500 ms" in page
    assert 'data-table="agents"' in page and "checkout-success" in page and "boom" in page
    assert "110" in text(r) and "checkout: 100 requests, 3.00% errors, p95 500 ms" in text(r)
    slack = slack_message(r)
    assert slack["blocks"][0]["text"]["text"] == "Daily health report"
    assert "*Requests*\n110" in slack["blocks"][2]["fields"][0]["text"]
    png = chart_png(r)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    html = server.get("/api/v1/reports/html", params={"period": "7d"})
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "data:image/png;base64,iVBORw0KGgo" in html.text


class _Sink:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content)
        return "250 OK"


def _reports(raw: list[bytes]) -> list[Message]:
    messages = [message_from_bytes(m) for m in raw]
    return [m for m in messages if m["X-Pharos-Report"]]


def _slack(capture: Any) -> list[Any]:
    return [r.json for r in capture.accepted if "Requests " in r.json["text"]]


def _parts(msg: Message) -> dict[str, Message]:
    return {p.get_content_type(): p for p in msg.walk() if not p.is_multipart()}


def test_report_by_email_with_inline_chart_and_by_slack(db_url: str, tmp_path: Path) -> None:
    sink = _Sink()
    smtp_port, slack_port = free_port(), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        with receiver(slack_port) as slack:
            settings = {
                **QUIET,
                "alert_outbox_poll_seconds": 0.1,
                "alert_smtp_host": "127.0.0.1",
                "alert_smtp_port": smtp_port,
                "alert_smtp_from": "pharos@example.com",
                "alert_smtp_to": ["team@example.com"],
                "alert_slack_webhook_url": slack.url,
                "alert_dashboard_url": "https://pharos.example",
                "report_channels": ["env-email", "env-slack"],
                "report_daily_time": "",
                "report_weekly_day": "",
            }
            with run_server(db_url, **settings) as server:
                seed(server)
                sent = server.post("/api/v1/reports/send", json={"period": "7d"})
                assert sent.status_code == 202, sent.text
                assert [q["channel"] for q in sent.json()["queued"]] == ["env-email", "env-slack"]
                wait_for(lambda: len(_reports(sink.messages)) == 1 and len(_slack(slack)) == 1)
                bad = server.post("/api/v1/reports/send", json={"channels": ["nope"]})
                assert bad.status_code == 400 and "nope" in bad.json()["error"]["message"]
    finally:
        controller.stop()
    [msg] = _reports(sink.messages)  # (the seeded alert rule's notification is the other one)
    assert msg["Subject"].startswith("[Pharos] Weekly performance & cost summary: Requests 110")
    assert msg["To"] == "team@example.com"
    parts = _parts(msg)
    assert set(parts) == {"text/plain", "text/html", "image/png"}
    image = parts["image/png"]
    cid = image["Content-ID"].strip("<>")
    html = parts["text/html"].get_payload(decode=True).decode()
    assert f'src="cid:{cid}"' in html
    png = image.get_payload(decode=True)
    assert png.startswith(b"\x89PNG")
    related = next(p for p in msg.walk() if p.get_content_type() == "multipart/related")
    assert related.get_payload()[0].get_content_type() == "text/html"
    assert "2.73%" in html and "boom" in html and "https://pharos.example" in html
    assert "checkout: 100 requests" in parts["text/plain"].get_payload(decode=True).decode()
    [body] = _slack(slack)
    assert body["blocks"][0]["text"]["text"] == "Weekly performance & cost summary"
    assert "checkout" in body["blocks"][3]["text"]["text"]
    assert body["blocks"][-1]["elements"][0]["url"] == "https://pharos.example"


def test_scheduled_daily_report_is_sent_once_across_a_restart(sqlite_url: str) -> None:
    port = free_port()
    now = datetime.now(UTC)
    at = max(now - timedelta(minutes=2), now.replace(hour=0, minute=0, second=0, microsecond=0))
    settings = {
        **QUIET,
        "alert_eval_interval_seconds": 0.2,
        "alert_outbox_poll_seconds": 0.1,
        "report_check_seconds": 0.1,
        "report_daily_time": at.strftime("%H:%M"),
        "report_weekly_day": "",
        "report_channels": ["env-slack"],
    }
    with receiver(port) as slack:
        settings["alert_slack_webhook_url"] = slack.url
        with run_server(sqlite_url, **settings):
            wait_for(lambda: len(slack.accepted) == 1)
            assert slack.accepted[0].json["blocks"][0]["text"]["text"] == "Daily health report"
        with run_server(sqlite_url, **settings) as again:
            reports = again.app.state.reports
            wait_for(lambda: reports.checks >= 3)
            assert reports.sent_slots == 0
        engine = make_engine(sqlite_url)
        with engine.connect() as conn:
            keys = [r[0] for r in conn.execute(select(outbox.c.idempotency_key))]
            assert conn.execute(select(func.count()).select_from(outbox)).scalar() == 1
        engine.dispose()
    assert keys[0].startswith(f"report:daily:{at.date().isoformat()}:c")
    assert len(slack.accepted) == 1


def test_pharos_report_in_the_terminal_and_as_html(server: RunningServer, tmp_path: Path) -> None:
    seed(server)
    out = tmp_path / "report.html"
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        app, ["report", "--period", "7d", "--url", server.url, "--html", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "Weekly performance & cost summary" in result.output
    assert "checkout" in result.output and "boom" in result.output and "2.73%" in result.output
    page = out.read_text()
    assert "data:image/png;base64," in page and "checkout-success" in page
    bad = CliRunner().invoke(app, ["report", "--period", "x", "--url", server.url])
    assert bad.exit_code == 1 and "period" in bad.output
