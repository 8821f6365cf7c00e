"""Live events over a real server: WS /api/v1/live and GET /api/v1/stream (SSE), on SQLite and
PostgreSQL, and fanned out across two instances through a real Redis."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.browser import seed
from tests.conftest import REQUIRE_SERVICES, RunningServer, ServerFactory

REDIS_URL = os.environ.get("PHAROS_TEST_REDIS_URL")


def _ws_url(server: RunningServer, window: str = "15m") -> str:
    return server.url.replace("http://", "ws://") + f"/api/v1/live?window={window}"


def _post_run(server: RunningServer, agent: str = "live-agent") -> str:
    trace_id, spans = seed.agent_run(agent, steps=1, ago_s=1)
    r = server.post(
        "/v1/traces",
        content=seed.request(spans),
        headers={"content-type": "application/x-protobuf"},
    )
    assert r.status_code == 200, r.text
    return trace_id.hex()


def _until(events: Iterator[dict[str, Any]], pred: Any, limit: int = 200) -> dict[str, Any]:
    for _, event in zip(range(limit), events, strict=False):
        if pred(event):
            return event
    raise AssertionError("the expected event never came")


def _ws_events(ws: Any) -> Iterator[dict[str, Any]]:
    while True:
        yield json.loads(ws.recv(timeout=20))


def test_websocket_sends_hello_trace_and_summary(make_server: ServerFactory) -> None:
    server = make_server(live_summary_seconds=0.2)
    with connect(_ws_url(server)) as ws:
        events = _ws_events(ws)
        hello = next(events)
        assert hello == {"type": "hello", "bus": "memory", "window": "15m", "heartbeat_s": 10.0}
        trace_id = _post_run(server)
        event = _until(events, lambda e: e["type"] == "trace")
        assert event["spans"] == 4 and event["stored"] == 4 and event["agents"] == ["live-agent"]
        assert event["traces"] == [
            {
                "trace_id": trace_id,
                "agent": "live-agent",
                "spans": 4,
                "errors": 0,
                "name": "invoke_agent live-agent",
            }
        ]
        # The summary numbers are the API's (same computation, same window).
        summary = _until(events, lambda e: e["type"] == "summary" and e["summary"]["requests"])
        api = server.get("/api/v1/metrics/summary", params={"window": "15m"}).json()
        assert summary["window"] == "15m"
        for key in ("requests", "errors", "error_rate", "tokens", "latency_ms", "cost_usd"):
            assert summary["summary"][key] == api[key], key
        assert summary["health"]["status"] in ("healthy", "degraded", "critical")


def test_sse_stream_sends_the_same_events(make_server: ServerFactory) -> None:
    server = make_server(live_summary_seconds=0.2)
    with (
        httpx.Client(base_url=server.url, timeout=20) as client,
        client.stream("GET", "/api/v1/stream", params={"window": "1h"}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"

        def events() -> Iterator[dict[str, Any]]:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    yield json.loads(line[6:])

        stream = events()
        assert next(stream)["type"] == "hello"
        trace_id = _post_run(server)
        event = _until(stream, lambda e: e["type"] == "trace")
        assert event["traces"][0]["trace_id"] == trace_id
        _until(stream, lambda e: e["type"] == "summary" and e["window"] == "1h")


def test_quiet_connections_get_heartbeats(make_server: ServerFactory) -> None:
    server = make_server(live_summary_seconds=3600, live_heartbeat_seconds=0.3)
    with connect(_ws_url(server)) as ws:
        events = _ws_events(ws)
        assert next(events)["heartbeat_s"] == 0.3
        beats = [next(events) for _ in range(3)]
        assert [e["type"] for e in beats] == ["heartbeat"] * 3


def test_live_windows_are_validated(server: RunningServer) -> None:
    r = server.get("/api/v1/stream", params={"window": "30d"})
    assert r.status_code == 400
    assert r.json()["error"] == {
        "code": "invalid_parameter",
        "message": "window: at most 7d for live summaries",
    }
    r = server.get("/api/v1/stream", params={"window": "soon"})
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("window:")
    with connect(_ws_url(server, "90s")) as ws:
        assert json.loads(ws.recv(timeout=10)) == {
            "type": "error",
            "error": {
                "code": "invalid_parameter",
                "message": "window: must be whole minutes, at least 1m",
            },
        }
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1008


def test_many_subscribers_and_disconnects_leave_no_subscription(server: RunningServer) -> None:
    bus = server.app.state.live_bus
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(connect(_ws_url(server))) for _ in range(5)]
        for ws in sockets:
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        assert bus.subscribers == 5
        _post_run(server)
        for ws in sockets:
            assert _until(_ws_events(ws), lambda e: e["type"] == "trace")
    deadline = time.monotonic() + 10
    while bus.subscribers and time.monotonic() < deadline:
        time.sleep(0.05)
    assert bus.subscribers == 0


def test_redis_fans_events_out_across_instances(make_server: ServerFactory) -> None:
    if not REDIS_URL:
        if REQUIRE_SERVICES:
            pytest.fail("PHAROS_TEST_REDIS_URL must be set when services are required (CI)")
        pytest.skip("PHAROS_TEST_REDIS_URL is not set: Redis tests skipped")
    a = make_server(redis_url=REDIS_URL)
    b = make_server(redis_url=REDIS_URL)
    with connect(_ws_url(a)) as ws:
        events = _ws_events(ws)
        assert next(events)["bus"] == "redis"
        trace_id = _post_run(b, agent="from-instance-b")  # ingested by the other instance
        # Only this trace's event: another test may publish on the same Redis at the same time.
        event = _until(
            events,
            lambda e: e["type"] == "trace" and e["traces"][0]["trace_id"] == trace_id,
        )
        assert event["agents"] == ["from-instance-b"]
