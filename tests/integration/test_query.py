"""The trace list (filters, cursor paging) and trace detail against both dialects."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.conftest import RunningServer
from tests.otlp_helpers import PROTOBUF, T0, request, span

AGENTS = ("alpha", "beta", "gamma")


def _seed(server: RunningServer, n: int = 120) -> None:
    batch = []
    for i in range(n):
        agent = AGENTS[i % 3]
        failed = i % 10 == 0
        root = span(
            0x1000 + i,
            1,
            name=f"run {agent} #{i}",
            start_ms=i * 1000,
            duration_ms=100 + i * 10,
            attrs={"gen_ai.agent.name": agent, "gen_ai.operation.name": "invoke_agent"},
            error="Timeout talking to billing" if failed else None,
        )
        child = span(
            0x1000 + i,
            2,
            1,
            name="chat",
            start_ms=i * 1000 + 1,
            duration_ms=50,
            attrs={
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 10,
                "gen_ai.usage.output_tokens": 5,
            },
        )
        batch += [root, child]
    resp = server.post("/v1/traces", content=request(batch).SerializeToString(), headers=PROTOBUF)
    assert resp.status_code == 200


def _all_pages(server: RunningServer, **params: object) -> list[dict]:
    items: list[dict] = []
    cursor = None
    for _ in range(100):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        page = server.get("/api/v1/traces", params=query).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items
    raise AssertionError("paging did not end")


@pytest.fixture
def seeded(server: RunningServer) -> RunningServer:
    _seed(server)
    return server


def test_newest_first_and_cursor_paging_is_complete(seeded: RunningServer) -> None:
    items = _all_pages(seeded, limit=50)
    assert len(items) == 120
    assert len({i["trace_id"] for i in items}) == 120
    starts = [i["start_time"] for i in items]
    assert starts == sorted(starts, reverse=True)
    first = seeded.get("/api/v1/traces", params={"limit": 50}).json()
    assert len(first["items"]) == 50 and first["next_cursor"]
    last = seeded.get("/api/v1/traces", params={"limit": 200}).json()
    assert last["next_cursor"] is None


def test_filters(seeded: RunningServer) -> None:
    beta = _all_pages(seeded, agent="beta")
    assert len(beta) == 40 and {i["agent"] for i in beta} == {"beta"}

    errors = _all_pages(seeded, status="error")
    assert len(errors) == 12 and all(i["error_count"] == 1 for i in errors)
    assert len(_all_pages(seeded, status="ok")) == 108

    slow = _all_pages(seeded, min_duration_ms=1000)
    assert len(slow) == 30  # durations 100 + 10 i >= 1000 for i >= 90
    assert all(i["duration_ms"] >= 1000 for i in slow)

    since = datetime.fromtimestamp((T0 + 100 * 10**9) / 1e9, UTC).isoformat()
    until = datetime.fromtimestamp((T0 + 110 * 10**9) / 1e9, UTC).isoformat()
    window = _all_pages(seeded, since=since, until=until)
    assert len(window) == 10
    assert _all_pages(seeded, since=since.replace("+00:00", "Z"), until=until) == window

    assert len(_all_pages(seeded, q="BILLING")) == 12  # error message, case-insensitive
    assert len(_all_pages(seeded, q="run gamma")) == 40  # root name
    assert len(_all_pages(seeded, q=f"{0x1000 + 7:032x}"[:20])) >= 1  # trace id prefix
    assert _all_pages(seeded, q="100%") == []  # LIKE wildcards are escaped
    combined = _all_pages(seeded, agent="alpha", status="error", limit=3)
    assert len(combined) == 4 and all(i["agent"] == "alpha" for i in combined)


def test_relative_since(seeded: RunningServer) -> None:
    # The seeded spans are in 2026-09 and "now" is later: nothing started in the last hour.
    assert seeded.get("/api/v1/traces", params={"since": "1h"}).json()["items"] == []


def test_trace_detail_shape(seeded: RunningServer) -> None:
    trace_id = f"{0x1000 + 10:032x}"
    detail = seeded.get(f"/api/v1/traces/{trace_id.upper()}").json()
    assert detail["trace"]["trace_id"] == trace_id
    assert detail["trace"]["status"] == "error"
    root, child = detail["spans"]
    assert root["offset_ms"] == 0 and child["offset_ms"] == 1.0
    assert root["children"] == [child["span_id"]]
    assert child["parent_span_id"] == root["span_id"]
    assert child["agent"] == "beta"  # inherited from the agent span at read time
    assert child["tokens"] == {"input": 10, "output": 5, "cached": None, "total": 15}
    assert root["status_message"] == "Timeout talking to billing"
    assert detail["truncated"] is False
    capped = seeded.get(f"/api/v1/traces/{trace_id}", params={"max_spans": 1}).json()
    assert capped["truncated"] is True and len(capped["spans"]) == 1
