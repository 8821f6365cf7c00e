"""The Logs and Errors screens in Chromium against a real server: they load cleanly, show the
API's rows and numbers, tail new logs live, link logs to traces, resolve and reopen error
groups, and render hostile log bodies and exception messages as inert text."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.browser import seed
from tests.browser.conftest import Seeded, Watched
from tests.browser.test_dashboard import HOSTILE_CHECK
from tests.conftest import run_server
from tests.log_helpers import log_record, logs_request
from tests.otlp_helpers import PROTOBUF, kv

LIVE_TIMEOUT_MS = 15_000
S = 1_000_000_000


def _post_logs(seeded: Seeded, records: list[Any], service: str = "browser-logs") -> None:
    body = logs_request(records, service).SerializeToString()
    r = seeded.server.post("/v1/logs", content=body, headers=PROTOBUF)
    assert r.status_code == 200, r.text


def _ids(span: Span) -> tuple[int, int]:
    return int.from_bytes(span.trace_id, "big"), int.from_bytes(span.span_id, "big")


@pytest.fixture(scope="module")
def logs_seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    db = tmp_path_factory.mktemp("browser-logs") / "pharos.db"
    with run_server(f"sqlite:///{db}", live_summary_seconds=0.5, live_heartbeat_seconds=2) as srv:
        s = Seeded(srv)
        now = time.time_ns()
        for i in range(6):
            agent = "support-bot" if i % 2 else "research-agent"
            tid, spans = seed.agent_run(agent, steps=2, fail=i % 3 == 2, ago_s=600 - 60 * i)
            s.post(spans)
            s.traces[f"run{i}"] = tid.hex()
            trace, root = _ids(spans[0])
            _post_logs(
                s,
                [
                    log_record(
                        f"run {i} started for user-{i}",
                        time_ns=spans[0].start_time_unix_nano + S // 100,
                        trace=trace,
                        span_id=root,
                        attrs={"gen_ai.agent.name": agent},
                    ),
                    log_record(
                        f"tool search_{i} returned {i} results",
                        level="debug",
                        time_ns=spans[0].start_time_unix_nano + S // 50,
                        trace=trace,
                        attrs={"gen_ai.agent.name": agent},
                    ),
                ],
            )
        # Logs of a trace that has not arrived, and lines outside any run.
        _post_logs(
            s,
            [
                log_record(
                    "waiting for a trace", level="warn", time_ns=now - 120 * S, trace=0xFEED
                ),
                log_record("cache refreshed: 42 entries", time_ns=now - 100 * S),
                log_record("Lost connection to 10.0.3.7:6333", level="error", time_ns=now - 90 * S),
                log_record("Lost connection to 10.0.3.9:6333", level="error", time_ns=now - 80 * S),
                log_record({"event": "quota", "used_pct": 93}, level="warn", time_ns=now - 70 * S),
            ],
        )
        yield s


def _goto(w: Watched, url: str, ready: str) -> None:
    w.page.goto(url)
    w.page.get_by_test_id(ready).wait_for()


def _rows(w: Watched, table: str) -> list[str | None]:
    """The rows' log ids, read in one go (the table may re-render between two reads)."""
    rows = w.page.locator(f"[data-testid={table}] tbody tr[data-log-id]")
    ids: list[str | None] = rows.evaluate_all("rows => rows.map(r => r.dataset.logId)")
    return ids


def test_logs_page_shows_the_api_rows_and_filters(logs_seeded: Seeded, page: Watched) -> None:
    base = logs_seeded.server.url
    _goto(page, base + "/logs", "logs-table")
    page.page.wait_for_load_state("networkidle")
    api = logs_seeded.api("/api/v1/logs", since="1h", limit=100)["items"]
    assert _rows(page, "logs-table") == [i["log_id"] for i in api]  # newest first, same rows
    assert len(api) == 17
    page.shot("logs")
    page.assert_clean()

    # Level filter (minimum level), from the select: the URL keeps it.
    page.page.get_by_test_id("logs-level").select_option("error")
    page.page.wait_for_url("**level=error**")
    page.page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=logs-table] tr[data-log-id]').length === 2"
    )
    levels = page.page.locator("[data-testid=logs-table] tr[data-log-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.level)"
    )
    assert levels == ["error", "error"]
    # Text search.
    page.page.get_by_test_id("logs-level").select_option("")
    page.page.get_by_test_id("logs-search").fill("RETURNED 3")
    page.page.keyboard.press("Enter")
    page.page.wait_for_url("**q=RETURNED**")
    # The previous rows stay until the search answers: wait for the filtered table.
    page.page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=logs-table] tr[data-log-id]').length === 1"
    )
    page.page.get_by_text("tool search_3 returned 3 results").wait_for()
    assert len(_rows(page, "logs-table")) == 1
    # A structured body shows as its JSON text, and opens to its details.
    page.page.goto(base + "/logs?q=quota")
    page.page.get_by_test_id("logs-table").wait_for()
    assert (
        page.page.get_by_test_id("log-body").first.inner_text() == '{"event":"quota","used_pct":93}'
    )
    page.page.get_by_test_id("log-toggle").first.click()
    page.page.locator(".log-details").get_by_text("browser-logs").wait_for()  # the resource
    page.shot("logs-structured-open")
    # A log whose trace is stored links to it; the other says it is pending.
    page.page.goto(base + "/logs?q=waiting")
    page.page.get_by_text("(pending)").wait_for()
    page.page.goto(base + "/logs?q=run%202%20started")
    page.page.get_by_test_id("log-trace-link").click()
    page.page.get_by_test_id("waterfall").wait_for()
    assert page.page.url.startswith(base + "/traces/" + logs_seeded.traces["run2"])
    # The trace page lists its logs, in time order.
    logs_section = page.page.get_by_test_id("trace-logs-table")
    logs_section.wait_for()
    assert logs_section.get_by_test_id("log-body").all_inner_texts() == [
        "run 2 started for user-2",
        "tool search_2 returned 2 results",
    ]
    # A log's span is named, and selects that span in the waterfall.
    detail = logs_seeded.api(f"/api/v1/traces/{logs_seeded.traces['run2']}")
    page.page.locator(f'[data-span-id="{detail["spans"][-1]["span_id"]}"]').click()
    logs_section.get_by_test_id("log-span").click()
    page.page.get_by_test_id("span-details").get_by_role(
        "heading", name="invoke_agent research-agent"
    ).wait_for()
    page.page.wait_for_load_state("networkidle")
    page.shot("trace-with-logs")
    page.assert_clean()


def test_live_tail_shows_new_logs_without_reload(logs_seeded: Seeded, page: Watched) -> None:
    _goto(page, logs_seeded.server.url + "/logs", "logs-table")
    page.page.locator('[data-testid=connection][data-mode="websocket"]').wait_for(
        timeout=LIVE_TIMEOUT_MS
    )
    marker = f"live tail line {time.time_ns()}"
    _post_logs(logs_seeded, [log_record(marker, level="warn")])
    row = page.page.locator("[data-testid=logs-table] tr[data-log-id]").first
    page.page.get_by_text(marker).wait_for(timeout=LIVE_TIMEOUT_MS)
    assert marker in row.inner_text()  # on top: newest first
    # Paused, the list stays as it is.
    page.page.get_by_test_id("logs-tail").uncheck()
    paused = f"paused line {time.time_ns()}"
    _post_logs(logs_seeded, [log_record(paused)])
    page.page.wait_for_timeout(2500)
    assert page.page.get_by_text(paused).count() == 0
    page.page.get_by_test_id("logs-tail").check()
    page.page.get_by_text(paused).wait_for(timeout=LIVE_TIMEOUT_MS)
    page.shot("logs-live")
    page.assert_clean()


def _exception_span(message: str, t_ns: int, exc_type: str = "ToolError") -> Span:
    _, spans = seed.agent_run("support-bot", steps=1, ago_s=(time.time_ns() - t_ns) / S)
    s = spans[2]  # the tool span
    s.status.code = s.status.STATUS_CODE_ERROR
    ev = s.events.add()
    ev.name = "exception"
    ev.time_unix_nano = s.end_time_unix_nano
    ev.attributes.extend(
        [
            kv("exception.type", exc_type),
            kv("exception.message", message),
            kv(
                "exception.stacktrace",
                f"Traceback (most recent call last):\n  boom\n{exc_type}: {message}",
            ),
        ]
    )
    return s


def test_errors_page_numbers_resolve_and_reopen(logs_seeded: Seeded, page: Watched) -> None:
    base = logs_seeded.server.url
    _goto(page, base + "/errors?range=1h", "errors-table")
    page.page.wait_for_load_state("networkidle")
    api = logs_seeded.api("/api/v1/errors", window="1h", status="open")["items"]
    assert len(api) == 2  # the runs' tool timeouts (spans) and the lost connections (logs)
    for g in api:
        row = page.page.locator(f'tr[data-fingerprint="{g["fingerprint"]}"]')
        assert row.get_by_test_id("error-count").inner_text() == str(g["count"])
        assert row.get_by_test_id("group-state").inner_text() == "open"
    timeouts = next(g for g in api if g["type"] == "TimeoutError")
    assert timeouts["count"] == 2
    page.shot("errors")
    page.assert_clean()

    # The group page: numbers, chart, stack trace, recent traces linking to their traces.
    page.page.locator(f'tr[data-fingerprint="{timeouts["fingerprint"]}"]').get_by_test_id(
        "error-link"
    ).click()
    page.page.get_by_test_id("error-chart").wait_for()
    detail = logs_seeded.api(f"/api/v1/errors/{timeouts['fingerprint']}", window="1h")
    assert (
        page.page.get_by_test_id("error-window-count").inner_text().startswith(str(detail["count"]))
    )
    assert page.page.get_by_test_id("error-total").inner_text() == str(detail["total_count"])
    assert 'File "agent.py", line 42' in page.page.get_by_test_id("error-stack").inner_text()
    traces = page.page.locator("[data-testid=error-traces] tr[data-trace-id]")
    assert traces.evaluate_all("rows => rows.map(r => r.dataset.traceId)") == [
        t["trace_id"] for t in detail["recent_traces"]
    ]
    page.page.wait_for_load_state("networkidle")
    page.shot("error-group")
    page.assert_clean()

    # Resolve from the group page; the list's "open" view no longer shows it.
    page.page.get_by_test_id("resolve").click()
    page.page.get_by_test_id("reopen").wait_for()
    assert page.page.get_by_test_id("group-state").inner_text() == "resolved"
    assert logs_seeded.api(f"/api/v1/errors/{timeouts['fingerprint']}")["status"] == "resolved"
    page.page.get_by_role("link", name="← Errors").click()
    page.page.get_by_test_id("errors-table").wait_for()
    page.page.wait_for_load_state("networkidle")
    assert page.page.locator(f'tr[data-fingerprint="{timeouts["fingerprint"]}"]').count() == 0

    # It happens again: a regression, shown as such without a reload.
    again = _exception_span("tool timed out after 30 s", time.time_ns(), "TimeoutError")
    logs_seeded.post([again])
    regressed = page.page.locator(f'tr[data-fingerprint="{timeouts["fingerprint"]}"]')
    regressed.wait_for(timeout=LIVE_TIMEOUT_MS)
    assert regressed.get_by_test_id("group-state").inner_text() == "regression"
    page.shot("errors-regression")
    # Resolve again from the list, then reopen from the "resolved" view.
    regressed.get_by_test_id("resolve").click()
    regressed.wait_for(state="detached")
    page.page.get_by_test_id("errors-status").select_option("resolved")
    row = page.page.locator(f'tr[data-fingerprint="{timeouts["fingerprint"]}"]')
    row.get_by_test_id("reopen").click()
    row.wait_for(state="detached")
    assert logs_seeded.api(f"/api/v1/errors/{timeouts['fingerprint']}")["status"] == "open"
    page.assert_clean()


def test_overview_lists_the_top_errors(logs_seeded: Seeded, page: Watched) -> None:
    _goto(page, logs_seeded.server.url + "/?range=1h", "top-errors")
    page.page.wait_for_load_state("networkidle")
    api = logs_seeded.api("/api/v1/overview", window="1h")["top_errors"]
    rows = page.page.locator("[data-testid=top-errors] tbody tr")
    shown = rows.evaluate_all("rows => rows.map(r => r.dataset.fingerprint)")
    assert shown == [g["fingerprint"] for g in api] and shown
    page.assert_clean()


def test_hostile_logs_and_errors_stay_inert(logs_seeded: Seeded, page: Watched) -> None:
    h = seed.HOSTILE
    now = time.time_ns()
    hostile_bodies = [h["script"], h["img"], h["svg"], h["link"], h["rtl"], h["long"]]
    _post_logs(
        logs_seeded,
        [
            log_record(
                body + " hostile-log",
                level="error",
                time_ns=now - i * S,
                attrs={
                    "exception.type": h["img"],
                    "exception.message": body,
                    "exception.stacktrace": h["script"] + h["long"],
                    h["script"]: h["link"],
                },
            )
            for i, body in enumerate(hostile_bodies)
        ],
        service=h["svg"] + h["rtl"],
    )
    logs_seeded.post([_exception_span(h["svg"] + h["long"], now - 5 * S, exc_type=h["script"])])
    fps = [g["fingerprint"] for g in logs_seeded.api("/api/v1/errors", window="1h")["items"]]
    base = logs_seeded.server.url
    visits = [
        ("hostile-logs", "/logs?q=hostile-log", "logs-table"),
        ("hostile-errors", "/errors?range=1h", "errors-table"),
        *[(f"hostile-error-{i}", f"/errors/{fp}", "error-stack") for i, fp in enumerate(fps)],
        ("hostile-overview-errors", "/?range=1h", "top-errors"),
    ]
    for name, path, ready in visits:
        _goto(page, base + path, ready)
        page.page.wait_for_load_state("networkidle")
        if name == "hostile-logs":
            for toggle in page.page.get_by_test_id("log-toggle").all():
                toggle.click()  # every row open: attributes, resource, the whole body
            text = page.page.get_by_test_id("logs-table").inner_text()
            assert h["script"] in text and h["link"] in text
            assert "[U+202E]" in text and "\u202e" not in text
        page.shot(name)
        result = page.page.evaluate(HOSTILE_CHECK)
        assert result["flag"] is None, f"script ran on {path}"
        assert result["scripts"] == 0 and result["imgs"] == 0 and result["jsLinks"] == 0, result
        assert result["overflow"] <= 1, f"{path} overflows horizontally by {result['overflow']}px"
        page.assert_clean()


def test_empty_logs_page_shows_how_to_send_logs(
    page: Watched, tmp_path_factory: pytest.TempPathFactory
) -> None:
    db = tmp_path_factory.mktemp("empty-logs") / "pharos.db"
    with run_server(f"sqlite:///{db}") as server:
        _goto(page, server.url + "/logs", "logs-empty")
        snippet = page.page.get_by_test_id("logs-empty").locator("pre").inner_text()
        assert f'OTLPLogExporter(endpoint="{server.url}/v1/logs")' in snippet
        _goto(page, server.url + "/errors", "errors-empty")
        page.page.wait_for_load_state("networkidle")
        page.shot("empty-errors")
        page.assert_clean()
