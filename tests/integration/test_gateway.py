"""The gateway against a real local upstream: forwarding, traceparent, recorded spans, the LLM
proxy (JSON and SSE streamed without buffering, usage → tokens and cost), upstream down, slow
and 5xx, rate limits with the queue (in-process and Redis shared by two instances), budgets."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import RunningServer, ServerFactory, free_port
from tests.fake_upstream import MODEL, Upstream, fake_upstream

REDIS_URL = os.environ.get("PHAROS_TEST_REDIS_URL")


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with fake_upstream() as up:
        yield up


def _register(srv: RunningServer, name: str, upstream: str, **fields: object) -> None:
    r = srv.post("/api/v1/agents/registry", json={"name": name, "upstream_url": upstream, **fields})
    assert r.status_code == 201, r.text


def _spans(srv: RunningServer, agent: str, want: int = 1) -> list[dict]:
    deadline = time.monotonic() + 15
    while True:
        traces = srv.get("/api/v1/traces", params={"agent": agent, "limit": 100}).json()["items"]
        spans = []
        for t in traces:
            got = srv.get(f"/api/v1/traces/{t['trace_id']}").json()["spans"]
            spans += [{**sp, "trace_id": t["trace_id"]} for sp in got]
        if len(spans) >= want or time.monotonic() > deadline:
            return spans
        time.sleep(0.1)


def test_agent_gateway_forwards_and_records_a_span(
    server: RunningServer, upstream: Upstream
) -> None:
    _register(server, "echoer", upstream.url + "/echo")
    parent_trace = uuid.uuid4().hex
    r = server.post(
        "/gateway/agents/echoer/run/1?x=2",
        content=b"hello body",
        headers={"traceparent": f"00-{parent_trace}-{'ab' * 8}-01", "x-custom": "kept"},
    )
    assert r.status_code == 200 and r.content == b"hello body"
    assert r.headers["x-upstream"] == "yes"
    seen = upstream.seen[-1]
    assert seen["path"] == "/echo/run/1" and seen["query"] == "x=2"
    assert seen["headers"]["x-custom"] == "kept"
    tp = seen["headers"]["traceparent"].split("-")
    assert tp[1] == parent_trace and tp[2] != "ab" * 8  # continued, with the gateway span
    spans = _spans(server, "echoer")
    span = spans[0]
    assert span["trace_id"] == parent_trace and span["span_id"] == tp[2]
    assert span["status"] == "ok" and span["agent"] == "echoer"
    assert span["attributes"]["http.response.status_code"] == 200
    assert span["attributes"]["http.request.body.size"] == len(b"hello body")
    assert span["attributes"]["http.response.body.size"] == len(b"hello body")
    # a new trace without traceparent
    r = server.post("/gateway/agents/echoer/x", content=b"")
    assert len(upstream.seen[-1]["headers"]["traceparent"]) == 55
    assert server.post("/gateway/agents/nobody/x").status_code == 404


def test_upstream_down_slow_and_5xx_are_recorded_and_returned(
    make_server: ServerFactory, upstream: Upstream
) -> None:
    srv = make_server(gateway_timeout_seconds=0.5)
    _register(srv, "down", f"http://127.0.0.1:{free_port()}")
    _register(srv, "slowpoke", upstream.url)
    _register(srv, "broken", upstream.url)
    r = srv.post("/gateway/agents/down/x")
    assert r.status_code == 502 and r.json()["error"]["code"] == "bad_gateway"
    r = srv.get("/gateway/agents/slowpoke/slow", params={"s": "3"})
    assert r.status_code == 504 and r.json()["error"]["code"] == "upstream_timeout"
    r = srv.post("/gateway/agents/broken/fail")
    assert r.status_code == 500 and r.json() == {"error": {"message": "upstream broke"}}
    for agent, message in (("down", "unreachable"), ("slowpoke", "timed out"), ("broken", "500")):
        span = _spans(srv, agent)[0]
        assert span["status"] == "error" and message in span["status_message"], span


def test_llm_proxy_json_and_stream(make_server: ServerFactory, upstream: Upstream) -> None:
    srv = make_server(llm_upstream_url=upstream.url + "/v1", llm_upstream_api_key="sk-up")
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    r = srv.post(
        "/gateway/openai/v1/chat/completions", json=body, headers={"x-pharos-agent": "chatty"}
    )
    assert r.status_code == 200 and r.json()["usage"]["total_tokens"] == 18
    assert upstream.seen[-1]["headers"]["authorization"] == "Bearer sk-up"
    # streaming: the first chunk arrives before the upstream is allowed to send the second
    upstream.stream_gate = True
    with (
        srv.client() as c,
        c.stream(
            "POST",
            "/gateway/openai/v1/chat/completions",
            json={**body, "stream": True},
            headers={"x-pharos-agent": "chatty"},
        ) as resp,
    ):
        assert resp.headers["content-type"].startswith("text/event-stream")
        chunks = resp.iter_bytes()
        first = next(chunks)
        assert b"Hel" in first and b"lo" not in first.replace(b"Hel", b"")
        upstream.release.set()
        rest = b"".join(chunks)
    assert b"[DONE]" in rest and b'"usage"' in rest
    sent = upstream.seen[-1]["body"]
    assert b'"include_usage":true' in sent  # asked for the usage chunk
    r = srv.post(
        "/gateway/openai/v1/embeddings",
        json={"model": "text-embedding-3-small", "input": "x"},
        headers={"x-pharos-agent": "chatty"},
    )
    assert r.status_code == 200
    spans = _spans(srv, "chatty", want=3)
    llm = [s for s in spans if s["kind"] == "llm"]
    assert len(llm) == 2
    for s in llm:
        assert s["model"] == MODEL
        assert (s["tokens"]["input"], s["tokens"]["output"]) == (11, 7)
        assert s["cost_usd"] and s["cost_usd"] > 0  # priced by the writer's price book
    emb = [s for s in spans if s["kind"] == "embedding"]
    assert emb and emb[0]["tokens"]["input"] == 5
    no_upstream = make_server()
    r = no_upstream.post("/gateway/openai/v1/chat/completions", json=body)
    assert r.status_code == 503 and "PHAROS_LLM_UPSTREAM_URL" in r.json()["error"]["message"]


def _burst(srv_urls: list[str], path: str, n: int) -> list[int]:
    def one(i: int) -> int:
        with httpx.Client(timeout=60) as c:
            return c.post(srv_urls[i % len(srv_urls)] + path, content=b"x").status_code

    with ThreadPoolExecutor(max_workers=min(n, 32)) as pool:
        return list(pool.map(one, range(n)))


def _allowed(codes: list[int], started: float, rpm: int) -> None:
    elapsed = time.monotonic() - started
    ok = codes.count(200)
    # a bucket of `rpm` tokens refilling rpm/60 per second: exactly rpm in a burst, plus at most
    # what refilled while the burst ran
    assert rpm <= ok <= rpm + int(elapsed * rpm / 60) + 1, (ok, elapsed)
    assert codes.count(429) == len(codes) - ok


def test_rate_limit_exact_in_process(server: RunningServer, upstream: Upstream) -> None:
    _register(server, "limited", upstream.url + "/echo", rpm=60, max_queue=0, max_wait=0)
    started = time.monotonic()
    codes = _burst([server.url], "/gateway/agents/limited/x", 90)
    _allowed(codes, started, 60)
    metrics = server.get("/metrics").text
    assert 'pharos_gateway_rate_limited_total{bucket="agent:limited:rpm"}' in metrics
    assert "pharos_gateway_queue_length" in metrics
    stats = server.get("/api/v1/gateway/queues").json()["buckets"]["agent:limited:rpm"]
    assert stats["refused_total"] == codes.count(429)
    # One request a minute: the second is refused, however slow this machine is.
    _register(server, "slow", upstream.url + "/echo", rpm=1, max_queue=0, max_wait=0)
    assert server.post("/gateway/agents/slow/x").status_code == 200
    r = server.post("/gateway/agents/slow/x")
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert r.json()["error"]["code"] == "rate_limited"


@pytest.mark.skipif(not REDIS_URL, reason="PHAROS_TEST_REDIS_URL is not set")
def test_rate_limit_shared_by_two_instances_through_redis(
    make_server: ServerFactory, upstream: Upstream
) -> None:
    import redis

    # A name of its own: the other dialect's run of this test may share the Redis server now.
    name = f"shared-{uuid.uuid4().hex[:8]}"
    a = make_server(redis_url=REDIS_URL)
    b = make_server(redis_url=REDIS_URL)
    _register(a, name, upstream.url + "/echo", rpm=60, max_queue=0, max_wait=0)
    started = time.monotonic()
    codes = _burst([a.url, b.url], f"/gateway/agents/{name}/x", 100)
    redis.Redis.from_url(REDIS_URL).delete(f"pharos:rl:agent:{name}:rpm")
    _allowed(codes, started, 60)


def test_queued_requests_are_served_in_order(server: RunningServer, upstream: Upstream) -> None:
    # 12 rpm: after the burst, one token every 5 s
    _register(server, "queued", upstream.url + "/echo", rpm=12, max_queue=3, max_wait="60s")
    for _ in range(12):  # the burst: the bucket is empty afterwards (or nearly)
        assert server.post("/gateway/agents/queued/x").status_code == 200
    base = server.get("/api/v1/gateway/queues").json()["buckets"]["agent:queued:rpm"]
    order: list[int] = []
    lock = threading.Lock()
    results: dict[int, int] = {}

    def one(i: int) -> None:
        with httpx.Client(timeout=90) as c:
            code = c.post(server.url + "/gateway/agents/queued/x").status_code
        with lock:
            order.append(i)
            results[i] = code

    def entered() -> int:
        s = server.get("/api/v1/gateway/queues").json()["buckets"]["agent:queued:rpm"]
        return int(s["queued"] + s["waited_total"] - base["waited_total"])

    threads = []
    for i in range(3):
        t = threading.Thread(target=one, args=(i,))
        t.start()
        threads.append(t)
        deadline = time.monotonic() + 10
        while entered() < i + 1:  # each one queued before the next starts
            assert time.monotonic() < deadline
            time.sleep(0.01)
    for t in threads:
        t.join(90)
    assert results == {0: 200, 1: 200, 2: 200}
    assert order == [0, 1, 2]  # FIFO
    stats = server.get("/api/v1/gateway/queues").json()["buckets"]["agent:queued:rpm"]
    assert stats["waited_total"] - base["waited_total"] == 3 and stats["queued"] == 0


def test_disconnect_while_queued_frees_the_place(server: RunningServer, upstream: Upstream) -> None:
    _register(server, "leaver", upstream.url + "/echo", rpm=1, max_queue=1, max_wait="60s")
    assert server.post("/gateway/agents/leaver/x").status_code == 200  # the one token
    leaving = httpx.Client(timeout=httpx.Timeout(60, read=1.0))
    with pytest.raises(httpx.ReadTimeout), leaving as c:
        c.post(server.url + "/gateway/agents/leaver/x")  # queued, then the client leaves
    deadline = time.monotonic() + 10
    while server.get("/api/v1/gateway/queues").json()["buckets"]["agent:leaver:rpm"]["queued"]:
        assert time.monotonic() < deadline, "the place of a gone client was not freed"
        time.sleep(0.05)
    # the place is free again: a new request queues (not refused as queue full)
    again = httpx.Client(timeout=httpx.Timeout(60, read=1.0))
    with pytest.raises(httpx.ReadTimeout), again as c:
        c.post(server.url + "/gateway/agents/leaver/x")


@pytest.mark.parametrize("source", ["registry", "budgets"])
def test_budget_exhausted_is_refused_with_402(
    make_server: ServerFactory, upstream: Upstream, source: str
) -> None:
    srv = make_server(llm_upstream_url=upstream.url + "/v1", budget_cache_seconds=0.2)
    if source == "registry":  # pharos agents add spender --budget 0.000002
        _register(srv, "spender", upstream.url, budget_usd="0.000002")
    else:  # a hard budget from the cost API (cost/budgets.py)
        r = srv.post(
            "/api/v1/budgets",
            json={
                "name": "spender-daily",
                "agent": "spender",
                "period": "daily",
                "limit_usd": "0.000002",
                "soft_limit_usd": "0.000001",
            },
        )
        assert r.status_code == 201, r.text
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-pharos-agent": "spender"}
    r = srv.post("/gateway/openai/v1/chat/completions", json=chat, headers=headers)
    assert r.status_code == 200  # this call spends ~$0.0000058: the budget is gone
    deadline = time.monotonic() + 20
    while True:
        r = srv.post("/gateway/openai/v1/chat/completions", json=chat, headers=headers)
        if r.status_code == 402 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert r.status_code == 402, r.text
    err = r.json()["error"]
    assert err["code"] == "budget_exceeded" and "exhausted" in err["message"]
    assert err["budget"]["period"] == "daily" and err["budget"]["spend_usd"] > 0
    assert err["budget"]["limit_usd"] == pytest.approx(0.000002)
    assert err["budget"]["resets_at"].endswith("Z") and int(r.headers["retry-after"]) >= 1


def test_soft_budget_warns_and_per_key_rate_limit(
    make_server: ServerFactory, upstream: Upstream
) -> None:
    from pharos.server.access.keys import create_key, parse_scopes
    from pharos.server.db.engine import make_engine

    srv = make_server(llm_upstream_url=upstream.url + "/v1", budget_cache_seconds=0.2, key_rpm=5)
    r = srv.post(
        "/api/v1/budgets",
        json={
            "name": "soft-one",
            "agent": "warned",
            "period": "monthly",
            "limit_usd": "100",
            "soft_limit_usd": "0.000001",
        },
    )
    assert r.status_code == 201, r.text
    engine = make_engine(srv.settings.database_url)
    try:
        key = create_key(engine, "warned", parse_scopes("ingest"))[0]
    finally:
        engine.dispose()
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-api-key": key}  # the agent is the key's name
    deadline = time.monotonic() + 20
    codes = []
    while True:
        r = srv.post("/gateway/openai/v1/chat/completions", json=chat, headers=headers)
        codes.append(r.status_code)
        if "x-pharos-budget-warning" in r.headers or r.status_code != 200:
            break
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert r.status_code == 200, codes  # warned before the per-key limit (5/min) is reached
    assert "soft-one" in r.headers["x-pharos-budget-warning"]
    # 5 requests per minute per key: the 6th within the minute is refused (no queue per key)
    while r.status_code == 200:
        r = srv.post("/gateway/openai/v1/chat/completions", json=chat, headers=headers)
        codes.append(r.status_code)
    assert r.status_code == 429 and "key:" in r.json()["error"]["message"]
    assert codes.count(200) >= 5
