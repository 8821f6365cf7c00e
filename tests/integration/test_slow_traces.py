"""Bottlenecks in the trace detail and the slow-trace list, against both dialects."""

from __future__ import annotations

import time
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from pharos.server.query.traces import list_slow_traces
from tests.conftest import RunningServer
from tests.otlp_helpers import PROTOBUF, T0, request, span

MS = 1_000_000
MINUTE_NS = 60 * 1000 * MS

AGENT = "gen_ai.agent.name"
OP = "gen_ai.operation.name"

# Trace ids of the hand-made traces (10 minutes ago unless said otherwise).
PIPELINE = 0xA1  # alpha, 3000 ms: plan, two tools side by side, answer
ASYNC = 0xB2  # beta, root 4000 ms + a fire-and-forget child ending at 5000 ms
EXACT = 0xC3  # alpha, exactly 2000 ms
FAST = 0xD4  # alpha, 1999 ms
OLD = 0xE5  # beta, 10000 ms, started 2 hours ago


def _ago(spans: list[Span], minutes: int) -> list[Span]:
    """Move hand-made spans (built around T0) to ``minutes`` before now, keeping exact ns."""
    shift = time.time_ns() - minutes * MINUTE_NS - T0
    shift -= shift % MS
    for s in spans:
        s.start_time_unix_nano += shift
        s.end_time_unix_nano += shift
    return spans


def _pipeline() -> list[Span]:
    t = PIPELINE
    return [
        # Children first: exporters send them before their parent.
        span(t, 2, 1, name="plan", start_ms=0, duration_ms=500, attrs={OP: "chat"}),
        span(t, 3, 1, name="search", start_ms=500, duration_ms=2000, attrs={OP: "execute_tool"}),
        span(t, 4, 1, name="fetch", start_ms=600, duration_ms=900, attrs={OP: "execute_tool"}),
        span(t, 5, 1, name="answer", start_ms=2500, duration_ms=400, attrs={OP: "chat"}),
        span(t, 1, name="run", duration_ms=3000, attrs={AGENT: "alpha", OP: "invoke_agent"}),
    ]


def _seed(server: RunningServer) -> None:
    recent = [
        *_pipeline(),
        span(ASYNC, 1, name="handle", duration_ms=4000, attrs={AGENT: "beta"}),
        span(ASYNC, 2, 1, name="notify", start_ms=3000, duration_ms=2000),
        span(EXACT, 1, name="exact", duration_ms=2000, attrs={AGENT: "alpha"}),
        span(FAST, 1, name="fast", duration_ms=1999, attrs={AGENT: "alpha"}),
    ]
    old = [span(OLD, 1, name="old", duration_ms=10_000, attrs={AGENT: "beta"})]
    body = request([*_ago(recent, 10), *_ago(old, 120)]).SerializeToString()
    resp = server.post("/v1/traces", content=body, headers=PROTOBUF)
    assert resp.status_code == 200, resp.text


@pytest.fixture
def seeded(server: RunningServer) -> RunningServer:
    _seed(server)
    return server


def _sid(n: int) -> str:
    return f"{n:016x}"


def _tid(n: int) -> str:
    return f"{n:032x}"


def _top(span_n: int, name: str, kind: str, agent: str, self_ms: float, share: float) -> dict:
    return {
        "span_id": _sid(span_n),
        "name": name,
        "kind": kind,
        "agent": agent,
        "self_ms": self_ms,
        "share": share,
    }


PIPELINE_TOP = [
    _top(3, "search", "tool", "alpha", 2000.0, 0.6667),
    _top(4, "fetch", "tool", "alpha", 900.0, 0.3),
    _top(2, "plan", "llm", "alpha", 500.0, 0.1667),
    _top(5, "answer", "llm", "alpha", 400.0, 0.1333),
    _top(1, "run", "agent", "alpha", 100.0, 0.0333),
]


def test_detail_bottlenecks(seeded: RunningServer) -> None:
    detail = seeded.get(f"/api/v1/traces/{_tid(PIPELINE)}").json()
    assert detail["bottlenecks"] == {
        # run's last 100 ms, then answer, then search (fetch ran in its shadow), then plan.
        "critical_path": [_sid(1), _sid(5), _sid(3), _sid(2)],
        "critical_path_steps": [
            {"span_id": _sid(1), "self_ms": 100.0},
            {"span_id": _sid(5), "self_ms": 400.0},
            {"span_id": _sid(3), "self_ms": 2000.0},
            {"span_id": _sid(2), "self_ms": 500.0},
        ],
        "top": PIPELINE_TOP,
        "trace_duration_ms": 3000.0,
    }
    by_name = {s["name"]: s for s in detail["spans"]}
    assert {n: (s["self_ms"], s["on_critical_path"]) for n, s in by_name.items()} == {
        "run": (100.0, True),
        "plan": (500.0, True),
        "search": (2000.0, True),
        "fetch": (900.0, False),
        "answer": (400.0, True),
    }
    assert "start_ns" not in by_name["run"] and "end_ns" not in by_name["run"]


def test_detail_child_outliving_its_root(seeded: RunningServer) -> None:
    detail = seeded.get(f"/api/v1/traces/{_tid(ASYNC)}").json()
    assert detail["trace"]["duration_ms"] == 5000.0
    bottlenecks = detail["bottlenecks"]
    assert bottlenecks["trace_duration_ms"] == 5000.0
    # notify only hides the last second of handle; on the path it is clipped to handle's end.
    assert bottlenecks["top"] == [
        _top(1, "handle", "span", "beta", 3000.0, 0.6),
        _top(2, "notify", "span", "beta", 2000.0, 0.4),
    ]
    assert bottlenecks["critical_path_steps"] == [
        {"span_id": _sid(1), "self_ms": 3000.0},
        {"span_id": _sid(2), "self_ms": 1000.0},
    ]


def test_detail_truncated_trace_still_analysed(seeded: RunningServer) -> None:
    detail = seeded.get(f"/api/v1/traces/{_tid(PIPELINE)}", params={"max_spans": 2}).json()
    assert detail["truncated"] is True
    # The first two spans by start: run and plan.
    assert detail["bottlenecks"]["top"] == [
        _top(1, "run", "agent", "alpha", 2500.0, 0.8333),
        _top(2, "plan", "llm", "alpha", 500.0, 0.1667),
    ]


def _slow(server: RunningServer, **params: Any) -> dict:
    resp = server.get("/api/v1/traces/slow", params=params)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def _ids(page: dict) -> list[str]:
    return [item["trace_id"] for item in page["items"]]


def test_slow_list_filter_and_order(seeded: RunningServer) -> None:
    page = _slow(seeded)  # window 1h, threshold 2000 ms
    assert _ids(page) == [_tid(ASYNC), _tid(PIPELINE), _tid(EXACT)]
    assert page["window"] == "1h" and page["threshold_ms"] == 2000
    first, second, third = page["items"]
    assert first["duration_ms"] == 5000.0 and first["agent"] == "beta"
    assert first["name"] == "handle" and first["span_count"] == 2
    assert second["bottlenecks"] == PIPELINE_TOP[:3]
    assert second["bottlenecks_partial"] is False
    assert third["bottlenecks"] == [_top(1, "exact", "span", "alpha", 2000.0, 1.0)]

    assert _ids(_slow(seeded, agent="alpha")) == [_tid(PIPELINE), _tid(EXACT)]
    assert _ids(_slow(seeded, agent="")) == _ids(page)
    assert _ids(_slow(seeded, agent="nobody")) == []
    assert _ids(_slow(seeded, threshold_ms=4000)) == [_tid(ASYNC)]
    assert _ids(_slow(seeded, threshold_ms=1999)) == [
        _tid(ASYNC),
        _tid(PIPELINE),
        _tid(EXACT),
        _tid(FAST),
    ]
    assert _ids(_slow(seeded, limit=2)) == [_tid(ASYNC), _tid(PIPELINE)]
    assert _ids(_slow(seeded, window="3h")) == [
        _tid(OLD),
        _tid(ASYNC),
        _tid(PIPELINE),
        _tid(EXACT),
    ]
    assert _ids(_slow(seeded, window="5m")) == []


def test_slow_list_empty_database(server: RunningServer) -> None:
    assert _slow(server, window="7d")["items"] == []


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"window": "soon"}, "window"),
        ({"window": "0m"}, "window"),
        ({"window": "x" * 40}, "window"),
        ({"threshold_ms": "-1"}, "threshold_ms"),
        ({"threshold_ms": "slow"}, "threshold_ms"),
        ({"threshold_ms": "nan"}, "threshold_ms"),
        ({"limit": "0"}, "limit"),
        ({"limit": "51"}, "limit"),
        ({"agent": "a" * 513}, "agent"),
    ],
)
def test_slow_list_bad_parameters(server: RunningServer, params: dict[str, str], name: str) -> None:
    resp = server.get("/api/v1/traces/slow", params=params)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == "invalid_parameter"
    assert error["message"].startswith(f"{name}: ")


def test_slow_list_caps_spans_per_trace(seeded: RunningServer) -> None:
    # The cap is a window function over all listed traces' spans, on both dialects.
    items = list_slow_traces(
        seeded.app.state.engine,
        since_ns=0,
        threshold_ms=2000,
        agent="alpha",
        limit=5,
        max_spans_per_trace=2,
    )
    assert [i["trace_id"] for i in items] == [_tid(PIPELINE), _tid(EXACT)]
    assert [i["bottlenecks_partial"] for i in items] == [True, False]
    assert items[0]["bottlenecks"] == [
        _top(1, "run", "agent", "alpha", 2500.0, 0.8333),
        _top(2, "plan", "llm", "alpha", 500.0, 0.1667),
    ]
