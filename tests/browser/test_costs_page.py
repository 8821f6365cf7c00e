"""The costs page in Chromium: its "Cost over time" chart follows the table's grouping (a series
per agent, per model, or one total by day, in day buckets over a week or more), updates live, and
every row of the table has a share bar as wide as its share."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.browser import seed
from tests.browser.conftest import Seeded, Watched
from tests.conftest import run_server

WINDOW = "1h"
AGENTS = ("alpha-agent", "beta-agent")
MODELS = ("gpt-4o", "gpt-4o-mini")
LIVE_TIMEOUT_MS = 15_000  # generous: a live update normally lands within 2 s

# The labels of a chart's legend, without the first row (the time axis).
LEGEND = """id => [...document.querySelectorAll(`[data-testid=${id}] .u-legend .u-label`)]
  .slice(1).map(el => el.textContent.replace(/:$/, ''))"""
LEGEND_IS = f"""([id, want]) => {{
  const got = ({LEGEND})(id);
  return JSON.stringify([...got].sort()) === JSON.stringify([...want].sort());
}}"""
# Each table row: its name, the share bar's fill and track widths, and the share's text.
BARS = """() => [...document.querySelectorAll('[data-testid=costs-table] tbody tr')].map(tr => {
  const fill = tr.querySelector('.sharebar-fill');
  const track = tr.querySelector('.sharebar-track');
  return {
    name: tr.cells[0].textContent,
    fill: fill ? fill.getBoundingClientRect().width : 0,
    track: track.getBoundingClientRect().width,
    text: tr.querySelector('.sharebar-text').textContent,
    cell: tr.cells[2].textContent,
  };
})"""


def _runs(agent: str, model: str, n: int, *, steps: int, start_s: float) -> list[Span]:
    out: list[Span] = []
    for i in range(n):
        _tid, spans = seed.agent_run(agent, model=model, steps=steps, ago_s=start_s + 90 * i)
        out += spans
    return out


def _seed(s: Seeded) -> None:
    # alpha spends most (gpt-4o only); beta mostly on the cheap model, a little on gpt-4o: by
    # agent and by model are different splits.
    spans = _runs("alpha-agent", "gpt-4o", 14, steps=3, start_s=120)
    spans += _runs("beta-agent", "gpt-4o-mini", 16, steps=2, start_s=150)
    spans += _runs("beta-agent", "gpt-4o", 3, steps=1, start_s=200)
    s.post(spans)


def _seeded(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Seeded]:
    db = tmp_path_factory.mktemp(name) / "pharos.db"
    with run_server(f"sqlite:///{db}", live_summary_seconds=0.5, live_heartbeat_seconds=2) as srv:
        s = Seeded(srv)
        _seed(s)
        yield s


@pytest.fixture(scope="module")
def costs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    yield from _seeded(tmp_path_factory, "browser-costs")


def _goto_costs(w: Watched, s: Seeded, range_: str = WINDOW) -> None:
    w.page.goto(f"{s.server.url}/costs?range={range_}")
    w.page.get_by_test_id("page-costs").wait_for()
    w.page.locator("[data-testid=chart-costs] canvas").wait_for()
    w.page.wait_for_load_state("networkidle")


def _wait_legend(w: Watched, names: list[str] | tuple[str, ...], timeout: int = 10_000) -> None:
    w.page.wait_for_function(LEGEND_IS, arg=["chart-costs", list(names)], timeout=timeout)


def _chart_requests(w: Watched) -> list[dict[str, list[str]]]:
    """The query of every cost time series the page asks for, from now on."""
    seen: list[dict[str, list[str]]] = []

    def record(req: Any) -> None:
        url = urlparse(req.url)
        query = parse_qs(url.query)
        if url.path.endswith("/metrics/timeseries") and query.get("metric") == ["cost"]:
            seen.append(query)

    w.page.on("request", record)
    return seen


def _total(series: dict[str, Any]) -> float:
    return sum(v or 0 for v in series["values"])


def test_the_chart_follows_the_grouping(costs: Seeded, page: Watched) -> None:
    by_agent = costs.api("/api/v1/costs", window=WINDOW, group_by="agent")["groups"]
    by_model = costs.api("/api/v1/costs", window=WINDOW, group_by="model")["groups"]
    assert [g["agent"] for g in by_agent] == list(AGENTS)  # alpha spends more
    assert [g["model"] for g in by_model] == list(MODELS)
    # The chart's data is the table's money, split the same way.
    for group, rows in (("agent", by_agent), ("model", by_model)):
        ts = costs.api("/api/v1/metrics/timeseries", metric="cost", window=WINDOW, group_by=group)[
            "series"
        ]
        assert {s["name"]: pytest.approx(_total(s), rel=1e-3) for s in ts} == {
            g[group]: g["cost_usd"] for g in rows
        }

    requests = _chart_requests(page)
    _goto_costs(page, costs)
    chart = page.page.get_by_test_id("chart-costs")
    _wait_legend(page, AGENTS)
    assert chart.locator("figcaption").inner_text() == "Cost over time by agent"
    # Values are in USD (the legend under the cursor; the axes are drawn on the canvas).
    over = chart.locator(".u-over")
    box = over.bounding_box()
    assert box is not None
    over.hover(position={"x": box["width"] * 0.9, "y": box["height"] / 2})  # the seeded spend
    values = chart.locator(".u-legend .u-value").all_inner_texts()[1:]
    assert len(values) == len(AGENTS) and all(v.startswith("$") for v in values), values
    page.page.mouse.move(0, 0)
    assert requests[-1]["group_by"] == ["agent"] and requests[-1]["window"] == [WINDOW]
    page.shot("costs-chart-by-agent")

    page.page.get_by_role("button", name="by model").click()
    _wait_legend(page, MODELS)
    assert chart.locator("figcaption").inner_text() == "Cost over time by model"
    assert requests[-1]["group_by"] == ["model"]
    page.page.locator("[data-testid=costs-table] th", has_text="model").wait_for()
    page.shot("costs-chart-by-model")

    # By day: one total, with the server's buckets under a week...
    page.page.get_by_role("button", name="by day").click()
    _wait_legend(page, ["cost"])
    assert chart.locator("figcaption").inner_text() == "Cost over time"
    assert "group_by" not in requests[-1] and "interval" not in requests[-1]
    assert chart.locator(".chart-note").count() == 0  # not "No data in this window"
    page.assert_clean()


def test_a_week_by_day_is_in_day_buckets(costs: Seeded, page: Watched) -> None:
    requests = _chart_requests(page)
    _goto_costs(page, costs, "7d")
    page.page.get_by_role("button", name="by day").click()
    _wait_legend(page, ["cost"])
    page.page.wait_for_load_state("networkidle")
    assert requests[-1]["interval"] == ["1d"] and requests[-1]["window"] == ["7d"]
    assert "group_by" not in requests[-1]
    ts = costs.api("/api/v1/metrics/timeseries", metric="cost", window="7d", interval="1d")
    assert ts["interval_seconds"] == 86400 and len(ts["timestamps"]) == 7
    total = costs.api("/api/v1/costs", window="7d", group_by="day")["total"]["cost_usd"]
    assert _total(ts["series"][0]) == pytest.approx(total, rel=1e-3)
    page.shot("costs-chart-by-day-7d")
    page.assert_clean()


def _pct(p: float) -> str:  # format.ts fmtPct
    return f"{p:.2f}".rstrip("0").rstrip(".") + "%"


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_share_bars_are_as_wide_as_the_shares(costs: Seeded, page: Watched, theme: str) -> None:
    page.page.add_init_script(f"localStorage.setItem('pharos-theme', '{theme}')")
    for group in ("agent", "model"):
        rows = costs.api("/api/v1/costs", window=WINDOW, group_by=group)["groups"]
        _goto_costs(page, costs)
        if group == "model":
            page.page.get_by_role("button", name="by model").click()
        page.page.wait_for_function(
            "want => [...document.querySelectorAll('[data-testid=costs-table] tbody tr')]"
            ".map(tr => tr.cells[0].textContent).join('|') === want",
            arg="|".join(g[group] for g in rows),
        )
        bars = page.page.evaluate(BARS)
        assert [b["name"] for b in bars] == [g[group] for g in rows]
        for bar, g in zip(bars, rows, strict=True):
            share = g["share_percent"]
            assert bar["track"] > 50, bar
            assert bar["fill"] == pytest.approx(bar["track"] * share / 100, abs=2), (bar, share)
            # The figure is kept as text beside the bar.
            assert bar["text"] == bar["cell"] == _pct(share), (bar, share)
        assert bars[0]["fill"] > bars[1]["fill"] + 10, bars  # the biggest spender stands out
        assert sum(g["share_percent"] for g in rows) == pytest.approx(100, abs=0.05)
        # The fill is the theme's accent and stands out from its track.
        colours = page.page.evaluate(
            """() => {
              const f = document.querySelector('[data-testid=costs-table] .sharebar-fill');
              const t = document.querySelector('[data-testid=costs-table] .sharebar-track');
              const probe = document.createElement('span');
              probe.style.color = 'var(--accent)';
              document.body.append(probe);
              const accent = getComputedStyle(probe).color;
              probe.remove();
              return [getComputedStyle(f).backgroundColor, getComputedStyle(t).backgroundColor,
                      accent, document.documentElement.dataset.theme];
            }"""
        )
        fill, track, accent, shown = colours
        assert shown == theme and fill == accent and fill != track, colours
        page.shot(f"costs-share-bars-{group}-{theme}")
    page.assert_clean()


@pytest.fixture
def live_costs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    yield from _seeded(tmp_path_factory, "browser-costs-live")


def test_the_chart_updates_live_and_shows_names_as_text(live_costs: Seeded, page: Watched) -> None:
    _goto_costs(page, live_costs)
    _wait_legend(page, AGENTS)
    page.page.locator('[data-testid=connection][data-mode="websocket"]').wait_for(
        timeout=LIVE_TIMEOUT_MS
    )
    # A new agent spends: its line joins the chart without a reload.
    hostile = f"{seed.HOSTILE['img']}{seed.HOSTILE['rtl']}"
    _tid, spans = seed.agent_run(hostile, model="gpt-4o", steps=4, ago_s=5)
    live_costs.post(spans)
    shown = hostile.replace("\u202e", "[U+202E]")
    _wait_legend(page, [*AGENTS, shown], timeout=LIVE_TIMEOUT_MS)
    page.page.locator("[data-testid=costs-table] tbody tr", has_text=shown).wait_for(
        timeout=LIVE_TIMEOUT_MS
    )
    assert page.page.evaluate(f"() => window.{seed.XSS_FLAG}") is None
    assert page.page.locator("[data-testid=page-costs] img").count() == 0
    page.shot("costs-live-new-agent")
    page.assert_clean()
