"""The overview (and the agents table) in Chromium against a server seeded for it: traffic in the
window and the one before (every card has a trend), two agents on different models with their
own errors, a steady agent with one run a minute (its latency percentiles coincide), a burst
from almost nothing, more agents than a grouped time series keeps, and firing alerts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.browser import seed
from tests.browser.conftest import Seeded, Watched
from tests.conftest import run_server

WINDOW = "1h"
CARD_TRENDS = {  # stat card -> the API's trend key
    "requests": "requests",
    "throughput": "throughput",
    "error-rate": "error_rate",
    "p95": "latency_p95",
    "tokens": "tokens",
    "cost": "cost_usd",
}


def _retell(spans: list[Span], message: str) -> None:
    """Give the failed tool's exception another message (another error group)."""
    for s in spans:
        for ev in s.events:
            for a in ev.attributes:
                if a.key == "exception.message":
                    a.value.string_value = message


def _runs(
    agent: str, n: int, *, start_s: float, every_s: float, model: str, fail_every: int = 0
) -> list[Span]:
    out: list[Span] = []
    for i in range(n):
        fail = fail_every > 0 and i % fail_every == fail_every - 1
        _tid, spans = seed.agent_run(
            agent, model=model, steps=1 + i % 3, fail=fail, ago_s=start_s + i * every_s
        )
        if fail and agent == "research-agent":
            _retell(spans, "rate limited by the upstream model")
        out += spans
    return out


@pytest.fixture(scope="module")
def overview(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    db = tmp_path_factory.mktemp("browser-overview") / "pharos.db"
    with run_server(f"sqlite:///{db}", live_summary_seconds=0.5, live_heartbeat_seconds=2) as srv:
        s = Seeded(srv)
        spans: list[Span] = []
        # The window (5..55 min ago) and the one before it (65..115 min ago).
        spans += _runs(
            "support-bot", 150, start_s=300, every_s=20, model="gpt-4o-mini", fail_every=10
        )
        spans += _runs(
            "support-bot", 100, start_s=3900, every_s=30, model="gpt-4o-mini", fail_every=20
        )
        spans += _runs(
            "research-agent", 100, start_s=300, every_s=30, model="gpt-4o", fail_every=25
        )
        spans += _runs(
            "research-agent", 120, start_s=3900, every_s=25, model="gpt-4o", fail_every=30
        )
        # One run a minute, at the middle of each minute: one request per chart bucket.
        spans += _runs("steady-agent", 58, start_s=90, every_s=60, model="gpt-4o-mini")
        spans += _runs("steady-agent", 58, start_s=3690, every_s=60, model="gpt-4o-mini")
        # From almost nothing: 1 run before, 110 now.
        spans += _runs("burst-agent", 110, start_s=330, every_s=27, model="gpt-4o-mini")
        spans += _runs("burst-agent", 1, start_s=4000, every_s=1, model="gpt-4o-mini")
        for i in range(22):  # 26 agents in all: more than the 20 a grouped series keeps
            spans += _runs(
                f"fleet-{i:02d}", 1, start_s=600 + 60 * i, every_s=1, model="gpt-4o-mini"
            )
        for i in range(0, len(spans), 400):
            s.post(spans[i : i + 400])
        for rule in (
            {
                "name": "Errors (overview test)",
                "expression": "errors(1h) >= 5 by agent",
                "severity": "critical",
            },
            {
                "name": "Busy (overview test)",
                "expression": "requests(1h) > 100 by agent",
                "severity": "warning",
            },
        ):
            assert srv.post("/api/v1/alerts/rules", json=rule).status_code == 201
        assert srv.post("/api/v1/alerts/evaluate").status_code == 200
        yield s


def _goto_overview(w: Watched, s: Seeded, query: str = "") -> None:
    w.page.goto(f"{s.server.url}/?range={WINDOW}{query}")
    w.page.get_by_test_id("page-overview").wait_for()
    w.page.wait_for_load_state("networkidle")


def _column(w: Watched, table: str, attr: str) -> list[str]:
    rows = w.page.locator(f"[data-testid={table}] tbody tr")
    return [str(rows.nth(i).get_attribute(attr)) for i in range(rows.count())]


def test_every_stat_card_shows_the_api_trend(overview: Seeded, page: Watched) -> None:
    api = overview.api("/api/v1/overview", window=WINDOW)
    _goto_overview(page, overview)
    for card, key in CARD_TRENDS.items():
        direction = api["summary"]["trend"][key]["direction"]
        assert direction in ("up", "down", "stable"), (key, api["summary"]["trend"][key])
        trend = page.page.get_by_test_id(f"card-{card}-trend")
        trend.wait_for()
        assert trend.get_attribute("data-direction") == direction, card
        arrow = {"up": "▲", "down": "▼", "stable": "▶"}[direction]
        assert trend.inner_text().startswith(arrow), (card, trend.inner_text())
    page.assert_clean()


def test_a_rise_from_almost_nothing_reads_new(overview: Seeded, page: Watched) -> None:
    api = overview.api("/api/v1/overview", window=WINDOW, agent="burst-agent")
    assert api["summary"]["trend"]["requests"]["change_pct"] > 10_000  # 1 -> 110
    _goto_overview(page, overview, "&agent=burst-agent")
    trend = page.page.get_by_test_id("card-requests-trend")
    page.page.wait_for_function(
        "el => el.innerText.includes('new')", arg=trend.element_handle(), timeout=10_000
    )
    assert "%" not in trend.inner_text()
    page.assert_clean()


def test_filters_narrow_every_list(overview: Seeded, page: Watched) -> None:
    agent = "research-agent"
    api = overview.api("/api/v1/overview", window=WINDOW, agent=agent)
    everything = overview.api("/api/v1/overview", window=WINDOW)
    assert {t["agent"] for t in everything["slow_traces"] + everything["recent_errors"]} != {agent}
    _goto_overview(page, overview, f"&agent={agent}")
    page.page.locator("[data-testid=top-agents] tbody tr").first.wait_for()
    assert _column(page, "slow-traces", "data-trace-id") == [
        t["trace_id"] for t in api["slow_traces"]
    ]
    assert _column(page, "recent-errors", "data-trace-id") == [
        t["trace_id"] for t in api["recent_errors"]
    ]
    assert {t["agent"] for t in api["slow_traces"] + api["recent_errors"]} == {agent}
    assert _column(page, "top-agents", "data-agent") == [agent]
    assert _column(page, "top-errors", "data-fingerprint") == [
        g["fingerprint"] for g in api["top_errors"]
    ]
    assert "rate limited" in page.page.get_by_test_id("top-errors").inner_text()
    assert "timed out" not in page.page.get_by_test_id("top-errors").inner_text()
    health = page.page.get_by_test_id("card-health-value").inner_text().strip()
    assert health == str(round(api["health"]["score"]))
    assert page.page.get_by_test_id("card-requests-value").inner_text().strip() == str(
        api["summary"]["requests"]
    )
    page.shot("overview-agent-filter")

    # A model only: the health card follows the model's calls, not the global figure.
    by_model = overview.api("/api/v1/overview", window=WINDOW, model="gpt-4o")
    _goto_overview(page, overview, "&model=gpt-4o")
    page.page.get_by_test_id("top-errors-note").wait_for()
    page.page.wait_for_function(
        "n => document.querySelector('[data-testid=card-health-value]')?.innerText.trim() === n",
        arg=str(round(by_model["health"]["score"])),
    )
    assert _column(page, "top-agents", "data-agent") == [agent]
    assert _column(page, "slow-traces", "data-trace-id") == [
        t["trace_id"] for t in by_model["slow_traces"]
    ]
    page.assert_clean()


def test_firing_alerts_are_listed_and_link_to_their_page(overview: Seeded, page: Watched) -> None:
    api = overview.api("/api/v1/overview", window=WINDOW)
    items = api["alerts"]["items"]
    assert {(a["rule"], a["agent"]) for a in items} >= {
        ("Errors (overview test)", "support-bot"),
        ("Busy (overview test)", "support-bot"),
        ("Busy (overview test)", "burst-agent"),
    }
    _goto_overview(page, overview)
    listed = page.page.get_by_test_id("firing-alerts")
    listed.wait_for()
    assert _column(page, "firing-alerts", "data-alert-id") == [str(a["id"]) for a in items]
    first = listed.locator("tbody tr").first
    assert "sev-critical" in str(first.locator(".badge").get_attribute("class"))
    assert "support-bot" in first.inner_text() and "ago" in first.inner_text()
    busy = next(a for a in items if a["severity"] == "warning")
    warning = listed.locator(f'tr[data-alert-id="{busy["id"]}"] .badge')
    assert "sev-warning" in str(warning.get_attribute("class"))
    page.shot("overview-firing-alerts")
    first.get_by_test_id("firing-alert-link").click()
    page.page.wait_for_url(f"**/alerts/{items[0]['id']}")
    page.page.get_by_test_id("page-alert").wait_for()
    assert page.page.get_by_test_id("alert-state").inner_text() == "firing"
    page.assert_clean()


FIT_CHECK = """() => [...document.querySelectorAll('[data-testid=summary-cards] .stat')]
 .flatMap(card => [card, ...card.querySelectorAll('.stat-label, .stat-value, .stat-sub, .trend')]
    .filter(el => el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1)
    .map(el => `${card.dataset.testid} ${el.className}: "${el.innerText}"`
      + ` ${el.scrollWidth}x${el.scrollHeight} in ${el.clientWidth}x${el.clientHeight}`))"""

ONE_LINE = """() => [...document.querySelectorAll(
  '[data-testid=summary-cards] .stat-label, [data-testid=summary-cards] .stat-value')]
  .filter(el => el.getClientRects().length !== 1
    || el.offsetHeight > 1.5 * parseFloat(getComputedStyle(el).lineHeight))
  .map(el => `${el.closest('.stat').dataset.testid}: "${el.innerText}" wraps`)"""

CHART_ROWS = """() => {
  const rows = {};
  for (const f of document.querySelectorAll('[data-testid=charts] > figure')) {
    const top = Math.round(f.getBoundingClientRect().top);
    rows[top] = (rows[top] || 0) + 1;
  }
  return Object.values(rows);
}"""


@pytest.mark.parametrize(("width", "height"), [(1280, 800), (1440, 900)])
def test_stat_cards_fit_and_charts_fill_their_rows(
    overview: Seeded, page: Watched, width: int, height: int
) -> None:
    page.page.set_viewport_size({"width": width, "height": height})
    _goto_overview(page, overview)
    page.page.get_by_test_id("card-throughput-trend").wait_for()
    assert "/min" in page.page.get_by_test_id("card-throughput-value").inner_text()
    assert page.page.locator("[data-testid=card-health] .stat-sub").count() >= 2  # a reason too
    cut = page.page.evaluate(FIT_CHECK)
    assert cut == [], cut
    wrapped = page.page.evaluate(ONE_LINE)  # a label or figure broken over two lines
    assert wrapped == [], wrapped
    cards = page.page.locator("[data-testid=summary-cards] .stat")
    tops = {round(cards.nth(i).bounding_box()["y"]) for i in range(cards.count())}
    assert len(tops) == 1, f"the stat cards take {len(tops)} rows at {width}x{height}"
    rows = page.page.evaluate(CHART_ROWS)
    assert len(rows) >= 2 and len(set(rows)) == 1, rows  # every row of charts is full
    # The errors count beside the error rate, with the API's total.
    errors = page.page.get_by_test_id("chart-error-count")
    assert errors.locator("figcaption").inner_text() == "Errors"
    assert "errors" in errors.locator(".u-legend").inner_text()
    series = overview.api("/api/v1/metrics/timeseries", metric="errors", window=WINDOW)
    assert (
        sum(series["series"][0]["values"])
        == overview.api("/api/v1/metrics/summary", window=WINDOW)["errors"]
        > 0
    )
    page.shot(f"overview-{width}x{height}")
    page.assert_clean()


PIXELS = """([id, colours]) => {
  const canvas = document.querySelector(`[data-testid=${id}] canvas`);
  const ctx = canvas.getContext('2d');
  const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
  return colours.map(([r, g, b]) => {
    let n = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 40) n++;
    }
    return n;
  });
}"""
P50, P95, P99 = (0x60, 0xA5, 0xFA), (0xF5, 0x9E, 0x0B), (0x34, 0xD3, 0x99)


def test_latency_percentiles_stay_visible_when_equal(overview: Seeded, page: Watched) -> None:
    series = {
        m: overview.api(
            "/api/v1/metrics/timeseries", metric=m, window=WINDOW, agent="steady-agent"
        )["series"][0]["values"]
        for m in ("latency_p50", "latency_p95", "latency_p99")
    }
    equal = [
        i
        for i, v in enumerate(series["latency_p95"])
        if v is not None and v == series["latency_p99"][i] == series["latency_p50"][i]
    ]
    assert len(equal) >= 40  # one run a minute: the three coincide in (nearly) every bucket
    _goto_overview(page, overview, "&agent=steady-agent")
    chart = page.page.get_by_test_id("chart-latency")
    chart.locator("canvas").wait_for()
    page.page.wait_for_timeout(300)  # uPlot draws on the next frame
    p50, p95, p99 = page.page.evaluate(PIXELS, ["chart-latency", [P50, P95, P99]])
    assert min(p50, p95, p99) > 100, (p50, p95, p99)
    markers = chart.locator(".u-legend .u-marker").evaluate_all(
        "ms => ms.map(m => getComputedStyle(m).borderTopStyle)"
    )
    labels = chart.locator(".u-legend .u-label").all_inner_texts()
    assert [lbl.rstrip(":") for lbl in labels[1:]] == ["p50", "p95", "p99"]
    assert markers[-1] == "dashed" and markers[-2] == "solid"
    page.shot("overview-latency-equal")
    page.assert_clean()


def test_every_agent_has_a_sparkline(overview: Seeded, page: Watched) -> None:
    table = overview.api("/api/v1/agents", window=WINDOW)["items"]
    assert len(table) > 20
    page.page.goto(f"{overview.server.url}/agents?range={WINDOW}")
    page.page.get_by_test_id("agents-table").wait_for()
    page.page.wait_for_load_state("networkidle")
    rows = page.page.locator("[data-testid=agents-table] tbody tr")
    assert rows.count() == len(table)
    blank: list[Any] = [
        rows.nth(i).get_attribute("data-agent")
        for i in range(rows.count())
        if rows.nth(i).locator("td.spark polyline").count() != 1
    ]
    assert blank == [], f"agents without a sparkline: {blank}"
    page.assert_clean()


def test_the_range_picker_shows_only_where_it_applies(overview: Seeded, page: Watched) -> None:
    base = overview.server.url
    alert = overview.api("/api/v1/alerts", state="firing")["items"][0]
    for path, ready, shown in (
        ("/", "page-overview", True),
        ("/agents", "page-agents", True),
        ("/alerts", "page-alerts", False),
        (f"/alerts/{alert['id']}", "page-alert", False),
        ("/settings", "page-settings", False),
    ):
        page.page.goto(base + path)
        page.page.get_by_test_id(ready).wait_for()
        assert page.page.get_by_test_id("custom-range").count() == (1 if shown else 0), path
        assert page.page.get_by_role("group", name="Time range").count() == (1 if shown else 0)
    page.assert_clean()
