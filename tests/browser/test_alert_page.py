"""An alert's own page (where Slack, PagerDuty and e-mail notifications link: /alerts/{id}) and
the rules editor's edit and delete, in Chromium against a real server with firing alerts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import seed
from tests.browser.conftest import Seeded, Watched
from tests.conftest import run_server


@pytest.fixture(scope="module")
def alerting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    db = tmp_path_factory.mktemp("browser-alerts") / "pharos.db"
    with run_server(
        f"sqlite:///{db}",
        live_summary_seconds=0.5,
        live_heartbeat_seconds=2,
        alert_default_rules=False,
    ) as srv:
        s = Seeded(srv)
        for i in range(6):
            agent = "checkout" if i % 2 else "search"
            _tid, spans = seed.agent_run(
                agent, steps=2, fail=agent == "checkout", ago_s=120 + 20 * i
            )
            s.post(spans)
        yield s


def _rule(s: Seeded, **body: Any) -> dict[str, Any]:
    r = s.server.post("/api/v1/alerts/rules", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _firing(s: Seeded, rule: str) -> dict[str, Any]:
    assert s.server.post("/api/v1/alerts/evaluate").status_code == 200
    items = [a for a in s.api("/api/v1/alerts", state="firing")["items"] if a["rule"] == rule]
    assert len(items) == 1, items
    return dict(items[0])


def test_the_alert_page_shows_the_alert_and_acts_on_it(alerting: Seeded, page: Watched) -> None:
    _rule(
        alerting,
        name="Checkout failing",
        expression="errors(15m) >= 1 by agent",
        severity="critical",
        message="{agent}: {value} failed runs",
        labels={"team": "payments"},
    )
    alert = _firing(alerting, "Checkout failing")
    assert alert["labels"]["agent"] == "checkout"
    page.page.goto(f"{alerting.server.url}/alerts/{alert['id']}")
    page.page.get_by_test_id("page-alert").wait_for()
    assert page.page.get_by_test_id("alert-state").inner_text() == "firing"
    assert "Checkout failing" in page.page.get_by_role("heading", level=1).inner_text()
    labels = page.page.get_by_test_id("alert-labels").inner_text()
    assert "team" in labels and "payments" in labels and "checkout" in labels
    assert page.page.get_by_test_id("alert-value").inner_text() == "3"
    assert "checkout: 3 failed runs" in page.page.get_by_test_id("page-alert").inner_text()
    history = page.page.get_by_test_id("alert-history")
    assert "firing" in history.inner_text()
    # Its agent and the agent's recent traces.
    assert page.page.get_by_test_id("alert-agent").get_attribute("href") == "/agents/checkout"
    page.page.get_by_test_id("alert-traces").locator("tbody tr").first.wait_for()
    assert page.page.get_by_test_id("alert-traces").locator("tbody tr").count() == 3
    assert page.page.get_by_test_id("alert-traces-link").get_attribute("href") == (
        "/traces?agent=checkout"
    )
    assert page.page.get_by_test_id("custom-range").count() == 0  # no time range here
    page.shot("alert-page")

    # Acknowledge with a comment.
    page.page.get_by_test_id("ack").click()
    page.page.get_by_label("Your name").fill("ana")
    page.page.get_by_test_id("action-comment").fill("on it <b>now</b>")
    page.page.get_by_test_id("action-submit").click()
    page.page.get_by_test_id("acked").wait_for()
    assert "ana" in page.page.get_by_test_id("acked").inner_text()
    assert "on it <b>now</b>" in page.page.get_by_test_id("acked").inner_text()
    page.page.get_by_text("acknowledged", exact=True).first.wait_for()
    api = alerting.api(f"/api/v1/alerts/{alert['id']}")
    assert api["acked_by"] == "ana" and api["ack_comment"] == "on it <b>now</b>"
    # Silence it for 4 hours (a reason is required).
    page.page.get_by_test_id("silence").click()
    page.page.get_by_test_id("silence-duration").select_option("4h")
    page.page.get_by_test_id("action-comment").fill("deploying the fix")
    page.page.get_by_test_id("action-submit").click()
    page.page.get_by_test_id("notice").get_by_text(re.compile("Silenced")).wait_for()
    silences = alerting.api("/api/v1/silences")["items"]
    assert any(
        ("agent", "=", "checkout") in {(m["name"], m["op"], m["value"]) for m in s["matchers"]}
        and s["comment"] == "deploying the fix"
        for s in silences
    )
    # Resolve it now.
    page.page.get_by_test_id("resolve").click()
    page.page.get_by_test_id("action-comment").fill("fixed in 1.2.3")
    page.page.get_by_test_id("action-submit").click()
    page.page.locator("[data-testid=alert-state]", has_text="resolved").wait_for()
    api = alerting.api(f"/api/v1/alerts/{alert['id']}")
    assert api["state"] == "resolved"
    assert any(
        h["event"] == "resolved" and h["comment"] == "fixed in 1.2.3" for h in api["history"]
    )
    assert "fixed in 1.2.3" in page.page.get_by_test_id("alert-history").inner_text()
    assert (
        page.page.get_by_test_id("ack").count() == 0
        and page.page.get_by_test_id("resolve").count() == 0
    )
    page.shot("alert-page-resolved")
    page.assert_clean()


def test_each_alert_has_its_page(alerting: Seeded, page: Watched) -> None:
    """Notifications link to {dashboard}/alerts/{id}; the alerts list links there too."""
    _rule(alerting, name="Search seen", expression="requests(15m) >= 1 by agent", severity="info")
    assert alerting.server.post("/api/v1/alerts/evaluate").status_code == 200
    search = next(
        a
        for a in alerting.api("/api/v1/alerts", state="firing")["items"]
        if a["rule"] == "Search seen" and a["labels"].get("agent") == "search"
    )
    page.page.goto(f"{alerting.server.url}/alerts")
    page.page.get_by_test_id("alerts-table").wait_for()
    page.page.locator(f'tr[data-alert-id="{search["id"]}"] a.alert-link').click()
    page.page.wait_for_url(f"**/alerts/{search['id']}")
    page.page.get_by_test_id("page-alert").wait_for()
    assert page.page.get_by_test_id("page-alert").get_attribute("data-alert-id") == str(
        search["id"]
    )
    # An alert that does not exist, and an id that is not one: the page says so.
    page.page.goto(f"{alerting.server.url}/alerts/999999")
    page.page.get_by_role("heading", name="Alert not found").wait_for()
    page.page.goto(f"{alerting.server.url}/alerts/%3Cscript%3E")
    page.page.get_by_role("heading", name="Alert not found").wait_for()
    unexpected = [e for e in page.errors if "404" not in e]  # the missing alert's API answer
    assert unexpected == [], unexpected
    assert page.dialogs == []


def test_rules_can_be_edited_and_deleted(alerting: Seeded, page: Watched) -> None:
    rule = _rule(
        alerting,
        name="Slow search (edit me)",
        expression="p95(latency, 10m) > 5000",
        severity="warning",
    )
    page.page.goto(f"{alerting.server.url}/alerts")
    rules = page.page.get_by_test_id("rules")
    row = rules.locator(f'tr[data-rule-id="{rule["id"]}"]')
    row.wait_for()
    row.get_by_test_id("rule-edit").click()
    form = rules.get_by_test_id("edit-form")
    expression = form.get_by_test_id("edit-expression")
    assert expression.input_value() == "p95(latency, 10m) > 5000"
    # Live validation, with the error's position marked under the expression.
    expression.fill("p95(latency, 10m) >> 2000")
    check = form.get_by_test_id("rule-check")
    check.get_by_text(re.compile(r"line 1, column \d+")).wait_for()
    column = int(re.search(r"column (\d+)", check.inner_text()).group(1))  # type: ignore[union-attr]
    caret = form.get_by_test_id("rule-caret").inner_text().split("\n")
    assert caret[0] == "p95(latency, 10m) >> 2000" and caret[1] == " " * (column - 1) + "^"
    assert form.get_by_test_id("edit-submit").is_disabled()
    expression.fill("p95(latency, 10m) > 2000 by agent")
    check.get_by_text(re.compile("Valid · one alert per agent")).wait_for()
    form.get_by_test_id("edit-name").fill("Slow search")
    form.get_by_test_id("edit-severity").select_option("critical")
    form.get_by_test_id("edit-for").fill("10m")
    form.get_by_test_id("edit-submit").click()
    row.get_by_role("cell", name="Slow search", exact=True).wait_for()
    saved = alerting.api(f"/api/v1/alerts/rules/{rule['id']}")
    assert saved["name"] == "Slow search" and saved["severity"] == "critical"
    assert saved["expression"] == "p95(latency, 10m) > 2000 by agent" and saved["for"] == "10m"
    page.shot("rules-edited")
    # Delete: asks first (in the page, no browser dialog); Cancel keeps it.
    row.get_by_test_id("rule-delete").click()
    row.get_by_role("button", name="Cancel").click()
    assert alerting.server.get(f"/api/v1/alerts/rules/{rule['id']}").status_code == 200
    row.get_by_test_id("rule-delete").click()
    row.get_by_test_id("rule-delete-confirm").click()
    row.wait_for(state="detached")
    assert alerting.server.get(f"/api/v1/alerts/rules/{rule['id']}").status_code == 404
    page.page.get_by_test_id("notice").get_by_text("deleted").wait_for()
    page.assert_clean()
