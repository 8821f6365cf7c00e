"""Issue 9 in Chromium: deep links on the trace page (only http(s) ever becomes a link, even when
the API is made to return a ``javascript:`` URL) and the SLO panel of the agent page."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import seed
from tests.browser.conftest import Seeded, Watched
from tests.conftest import run_server

LINKS = {
    "link_jaeger_url": "http://jaeger.example:16686",
    "link_langsmith_url": "https://smith.example",
    "link_langsmith_org": "org-1",
    "link_langsmith_project": "proj-2",
}


@pytest.fixture(scope="module")
def linked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    db = tmp_path_factory.mktemp("interop") / "pharos.db"
    with run_server(f"sqlite:///{db}", live_summary_seconds=0.5, **LINKS) as srv:
        s = Seeded(srv)
        tid, spans = seed.agent_run("checkout", steps=2, extra_attrs={"langsmith.run_id": "run-42"})
        s.post(spans)
        s.traces["run"] = tid.hex()
        tid, spans = seed.agent_run(
            "checkout",
            steps=1,
            extra_attrs={"langsmith.run_id": "javascript:alert(document.domain)"},
        )
        s.post(spans)
        s.traces["hostile"] = tid.hex()
        for i in range(20):  # 20 runs, 2 failed, of the "checkout" agent
            _, spans = seed.agent_run("checkout", steps=1, fail=i < 2, ago_s=120 + i)
            s.post(spans)
        yield s


def _anchors(w: Watched) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = w.page.evaluate(
        """() => [...document.querySelectorAll('a[href]')].map(a => ({
            href: a.getAttribute('href'), text: a.innerText, rel: a.rel, target: a.target}))"""
    )
    return result


def test_trace_page_shows_deep_links(linked: Seeded, page: Watched) -> None:
    trace_id = linked.traces["run"]
    detail = linked.api(f"/api/v1/traces/{trace_id}")
    by_system = {link["system"]: link for link in detail["links"]}
    assert by_system["jaeger"]["url"] == f"http://jaeger.example:16686/trace/{trace_id}"
    assert (
        by_system["langsmith"]["url"] == "https://smith.example/o/org-1/projects/p/proj-2/r/run-42"
    )

    page.page.goto(f"{linked.server.url}/traces/{trace_id}")
    bar = page.page.get_by_test_id("trace-links")
    bar.wait_for()
    hrefs = bar.locator("a").evaluate_all("els => els.map(a => a.getAttribute('href'))")
    assert hrefs == [link["url"] for link in detail["links"]]
    for a in _anchors(page):
        if a["href"] in hrefs:
            assert a["target"] == "_blank" and "noopener" in a["rel"]
    # The span with the run id links to its LangSmith run.
    llm = next(s for s in detail["spans"] if s["external_links"])
    page.page.locator(f'[data-span-id="{llm["span_id"]}"]').click()
    span_links = page.page.get_by_test_id("span-links")
    span_links.wait_for()
    assert span_links.locator("a").get_attribute("href") == llm["external_links"][0]["url"]
    page.shot("interop-trace-links")
    page.assert_clean()


def test_javascript_urls_never_become_links(linked: Seeded, page: Watched) -> None:
    # A hostile run id is percent-encoded into the configured https URL by the server...
    trace_id = linked.traces["hostile"]
    detail = linked.api(f"/api/v1/traces/{trace_id}")
    urls = [link["url"] for link in detail["links"]]
    assert all(u.startswith(("http://", "https://")) for u in urls)
    assert (
        "https://smith.example/o/org-1/projects/p/proj-2/r/javascript%3Aalert%28document.domain%29"
        in urls
    )

    # ...and even an API answer with javascript:/data: URLs (a compromised proxy, a future bug)
    # is not rendered as links by the dashboard.
    evil = dict(detail)
    evil["links"] = [
        {"system": "x", "label": "Evil JS", "url": "javascript:alert(1)"},
        {"system": "y", "label": "Evil data", "url": "data:text/html,<script>alert(1)</script>"},
        {"system": "z", "label": "Spaced", "url": "  JaVaScRiPt:alert(1)"},
        {"system": "ok", "label": "Fine", "url": "https://fine.example/t/1"},
    ]
    evil["spans"] = [
        {
            **s,
            "external_links": [{"system": "x", "label": "Evil span", "url": "javascript:alert(2)"}],
        }
        for s in detail["spans"]
    ]
    body = json.dumps(evil)
    page.page.route(
        f"**/api/v1/traces/{trace_id}",
        lambda route: route.fulfill(status=200, content_type="application/json", body=body),
    )
    page.page.goto(f"{linked.server.url}/traces/{trace_id}")
    page.page.get_by_test_id("trace-links").wait_for()
    page.page.locator(f'[data-span-id="{detail["spans"][0]["span_id"]}"]').click()
    page.page.get_by_test_id("span-details").wait_for()
    anchors = _anchors(page)
    assert not [a for a in anchors if not a["href"].startswith(("/", "#", "http:", "https:"))]
    texts = page.page.get_by_test_id("trace-links").inner_text()
    assert "Fine" in texts and "Evil" not in texts and "Spaced" not in texts
    assert page.page.get_by_test_id("span-links").count() == 0
    for a in page.page.locator("[data-testid=trace-links] a").all():
        a.click(modifiers=["Control"])  # would run a javascript: URL in this page
    time.sleep(0.3)
    page.shot("interop-hostile-links")
    assert page.dialogs == []


def test_agent_page_shows_slos(linked: Seeded, page: Watched) -> None:
    for body in (
        {"name": "checkout-success", "agent": "checkout", "kind": "success", "objective": 99.0},
        {
            "name": "checkout-fast",
            "agent": "checkout",
            "kind": "latency",
            "objective": 95.0,
            "threshold_ms": 60000,
        },
    ):
        r = linked.server.post("/api/v1/slos", json=body)
        assert r.status_code == 201, r.text
    slos = {s["name"]: s for s in linked.api("/api/v1/slos", agent="checkout")["items"]}
    success = slos["checkout-success"]["status"]
    assert success["windows"]["1h"]["bad"] == 2 and success["state"] == "breached"

    page.page.goto(f"{linked.server.url}/agents/checkout")
    panel = page.page.get_by_test_id("slo-panel")
    panel.wait_for()
    card = panel.locator('[data-slo="checkout-success"]')
    assert card.get_by_test_id("slo-attainment").inner_text() == f"{success['attainment']:.3f}%"
    assert card.get_by_test_id("slo-budget").inner_text() == (
        f"{success['error_budget_remaining']:.1f}%"
    )
    assert (
        card.get_by_test_id("slo-burn-1h").inner_text()
        == f"{success['burn_rates']['1h']:.2f}\u00d7"
    )
    assert card.get_by_test_id("slo-state").inner_text() == "budget spent"
    fast = panel.locator('[data-slo="checkout-fast"]')
    assert fast.get_by_test_id("slo-attainment").inner_text() == "100.000%"
    assert fast.get_by_test_id("slo-state").inner_text() == "on track"
    shot: Path = page.shot("interop-agent-slos")
    assert shot.stat().st_size > 0
    page.assert_clean()
