"""The traces list with thousands of traces: only the rows in view are in the DOM, scrolling
loads further pages by cursor until the oldest trace is reached, and the keyboard moves through
the list and opens a trace."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from tests.browser import seed
from tests.browser.conftest import Seeded, Watched
from tests.conftest import run_server

TRACES = 3000
MAX_ROWS = 40  # rows in view at 1280x800 (about 11) plus overscan, with room to spare


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    db = tmp_path_factory.mktemp("browser-traces") / "pharos.db"
    with run_server(f"sqlite:///{db}", live_summary_seconds=0.5, live_heartbeat_seconds=2) as srv:
        s = Seeded(srv)
        now = time.time_ns()
        spans = []
        for i in range(TRACES):  # one root span each, a second apart: trace 0 is the newest
            trace_id = seed.new_trace_id()
            spans.append(
                seed.make_span(
                    trace_id,
                    1,
                    None,
                    f"run {i:04d}",
                    now - (60 + i) * 1_000_000_000,
                    20.0 + i % 50,
                    {
                        "gen_ai.agent.name": f"agent-{i % 7}",
                        "gen_ai.operation.name": "invoke_agent",
                    },
                    error="failed" if i % 13 == 0 else None,
                )
            )
            s.traces[f"run {i:04d}"] = trace_id.hex()
        for i in range(0, len(spans), 500):
            s.post(spans[i : i + 500])
        yield s


ROWS = "[data-testid=traces-table] tbody tr[data-trace-id]"


def _rendered(w: Watched) -> int:
    return int(w.page.locator(ROWS).count())


def test_only_visible_rows_are_rendered_and_scrolling_reaches_the_last(
    many: Seeded, page: Watched
) -> None:
    page.page.goto(f"{many.server.url}/traces?range=24h")
    table = page.page.get_by_test_id("traces-table")
    table.wait_for()
    page.page.locator(ROWS).first.wait_for()
    assert page.page.locator(ROWS).first.get_attribute("data-trace-id") == many.traces["run 0000"]
    assert _rendered(page) <= MAX_ROWS
    page.shot("traces-virtual-top")
    last = many.traces[f"run {TRACES - 1:04d}"]
    last_row = page.page.locator(f'{ROWS}[data-trace-id="{last}"]')
    for _ in range(60):  # each scroll to the end loads (at most) one more page
        if last_row.count():
            break
        loaded = int(table.get_attribute("data-loaded") or 0)
        table.evaluate("el => { el.scrollTop = el.scrollHeight; }")
        page.page.wait_for_function(
            "([el, n, id]) => Number(el.dataset.loaded) > n"
            " || el.querySelector(`tr[data-trace-id='${id}']`)",
            arg=[table.element_handle(), loaded, last],
        )
        assert _rendered(page) <= MAX_ROWS, _rendered(page)
    last_row.wait_for()
    assert table.get_attribute("data-loaded") == str(TRACES)
    box, row = table.bounding_box(), last_row.bounding_box()
    assert (
        box
        and row
        and box["y"] <= row["y"]
        and row["y"] + row["height"] <= box["y"] + box["height"] + 1
    )
    assert "run 2999" in last_row.inner_text()
    assert _rendered(page) <= MAX_ROWS
    assert page.page.get_by_test_id("traces-count").inner_text().startswith("3,000 traces")
    page.shot("traces-virtual-bottom")
    page.assert_clean()


def test_the_list_is_keyboard_navigable(many: Seeded, page: Watched) -> None:
    page.page.goto(f"{many.server.url}/traces?range=24h")
    table = page.page.get_by_test_id("traces-table")
    page.page.locator(ROWS).first.wait_for()
    table.focus()
    page.page.keyboard.press("ArrowDown")
    active = page.page.locator(f'{ROWS}[aria-selected="true"]')
    assert active.get_attribute("data-index") == "0"
    assert table.get_attribute("aria-activedescendant") == f"trace-row-{many.traces['run 0000']}"
    page.page.keyboard.press("PageDown")
    page.page.keyboard.press("PageDown")
    index = int(active.get_attribute("data-index") or 0)
    assert index > 10
    row, box = active.bounding_box(), table.bounding_box()
    assert row and box and box["y"] < row["y"] < box["y"] + box["height"]  # scrolled into view
    page.page.keyboard.press("Home")
    page.page.keyboard.press("ArrowDown")
    page.page.keyboard.press("ArrowDown")
    assert active.get_attribute("data-index") == "2"
    page.page.keyboard.press("Enter")
    page.page.wait_for_url(re.compile(f"/traces/{many.traces['run 0002']}"))
    page.page.get_by_test_id("waterfall").wait_for()
    page.assert_clean()
