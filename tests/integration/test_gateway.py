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

from tests.conftest import RunningServer, ServerFactory, free_port, run_server
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


def test_gateway_spans_are_committed_in_groups_and_kept_on_shutdown(
    db_url: str, upstream: Upstream
) -> None:
    """The gateway hands its spans to the writer in groups (SPAN_FLUSH_SECONDS), not one
    commit per call; spans of calls answered just before a shutdown are still stored."""
    with run_server(db_url) as srv:
        _register(srv, "grouped", upstream.url + "/echo")
        stats = srv.app.state.writer.stats
        before = stats.transactions
        with ThreadPoolExecutor(8) as pool:
            codes = list(
                pool.map(lambda i: srv.post(f"/gateway/agents/grouped/{i}").status_code, range(40))
            )
        assert codes == [200] * 40
        assert len(_spans(srv, "grouped", want=40)) == 40
        assert stats.transactions - before <= 20  # 40 spans, far fewer commits
        for i in range(5):  # answered, then the server stops at once
            assert srv.post(f"/gateway/agents/grouped/last/{i}").status_code == 200
    with run_server(db_url) as again:
        assert len(_spans(again, "grouped", want=45)) == 45


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
    for agent, message, error_type in (
        ("down", "unreachable", "httpx.ConnectError"),
        ("slowpoke", "timed out", "httpx.ReadTimeout"),
    ):
        span = _spans(srv, agent)[0]
        assert span["status"] == "error" and message in span["status_message"], span
        assert span["attributes"]["error.type"] == error_type, span
        assert "http.response.status_code" not in span["attributes"]
    # An HTTP error status: the span is an error, error.type is the status code and (OTel: the
    # reason can be inferred from http.response.status_code) no status description.
    span = _spans(srv, "broken")[0]
    assert span["status"] == "error" and not span["status_message"], span
    assert span["attributes"]["error.type"] == "500"
    assert span["attributes"]["http.response.status_code"] == 500


def test_upstream_4xx_is_an_error_span(server: RunningServer, upstream: Upstream) -> None:
    """OTel HTTP conventions, CLIENT side: 4xx and 5xx answers are errors; 1xx-3xx are not."""
    _register(server, "picky", upstream.url)
    for code in (404, 429, 302):
        r = server.post(f"/gateway/agents/picky/status/{code}", follow_redirects=False)
        assert r.status_code == code  # returned faithfully
    spans = {s["attributes"]["http.response.status_code"]: s for s in _spans(server, "picky", 3)}
    for code in (404, 429):
        assert spans[code]["status"] == "error", spans[code]
        assert spans[code]["attributes"]["error.type"] == str(code)
    assert spans[302]["status"] == "ok" and "error.type" not in spans[302]["attributes"]
    agent_span = spans[404]
    assert agent_span["attributes"]["http.request.method"] == "POST"
    assert agent_span["attributes"]["server.address"] == "127.0.0.1"
    assert agent_span["attributes"]["server.port"] == int(upstream.url.rsplit(":", 1)[1])


def _raw_headers(url: str, path: str, body: bytes = b"") -> tuple[int, list[tuple[str, str]]]:
    """Status and every header line as sent (http.client keeps repeated fields)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.request("POST", path, body=body)
        resp = conn.getresponse()
        resp.read()
        return resp.status, [(k.lower(), v) for k, v in resp.getheaders()]
    finally:
        conn.close()


def test_gateway_response_has_one_date_and_server_header(
    server: RunningServer, upstream: Upstream
) -> None:
    _register(server, "headed", upstream.url + "/echo")
    direct, up_headers = _raw_headers(upstream.url, "/echo/x", b"hi")
    assert direct == 200 and [k for k, _ in up_headers].count("date") == 1  # upstream sends them
    assert [k for k, _ in up_headers].count("server") == 1
    status, headers = _raw_headers(server.url, "/gateway/agents/headed/x", b"hi")
    names = [k for k, _ in headers]
    assert status == 200
    for name in ("date", "server", "content-length", "content-type", "traceparent"):
        assert names.count(name) == 1, (name, headers)
    assert ("x-upstream", "yes") in headers
    assert dict(headers)["via"] == "1.1 pharos"
    forwarded = upstream.seen[-1]["headers"]
    assert forwarded["via"] == "1.1 pharos"  # and the upstream learns of the hop too
    # nothing the caller did not send is made up (an HTTP client's defaults: user-agent,
    # accept-encoding gzip — which would get the caller a compressed answer it did not ask for)
    assert "user-agent" not in forwarded and forwarded["accept-encoding"] == "identity"


def test_gateway_keeps_no_cookies_between_clients(
    server: RunningServer, upstream: Upstream
) -> None:
    """The gateway is one HTTP client for many callers: a cookie the upstream sets for one
    caller goes back to that caller, never with another caller's request."""
    _register(server, "cookies", upstream.url)
    first = server.get("/gateway/agents/cookies/cookie", params={"who": "alice"})
    assert first.status_code == 200 and first.json() == {"got": None}
    assert "upstream_session=for-alice" in first.headers["set-cookie"]  # relayed to alice
    second = server.get("/gateway/agents/cookies/cookie", params={"who": "bob"})
    assert second.json() == {"got": None}  # bob's request does not carry alice's cookie
    assert upstream.seen[-1]["headers"].get("cookie") is None


def test_gateway_request_size_limit(make_server: ServerFactory, upstream: Upstream) -> None:
    limit = 256 * 1024
    srv = make_server(gateway_max_body_bytes=limit, llm_upstream_url=upstream.url + "/v1")
    _register(srv, "sizer", upstream.url)
    ok = srv.post("/gateway/agents/sizer/sink", content=b"x" * limit)  # exactly the limit
    assert ok.status_code == 200 and ok.json() == {"received": limit}
    seen = len(upstream.seen)
    # A Content-Length over the limit: refused before anything is forwarded.
    r = srv.post("/gateway/agents/sizer/sink", content=b"x" * (limit + 1))
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert error["code"] == "payload_too_large" and str(limit) in error["message"]
    assert len(upstream.seen) == seen
    r = srv.post(
        "/gateway/openai/v1/chat/completions",
        content=b"{" + b" " * (limit + 1) + b"}",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert len(upstream.seen) == seen

    # A chunked body (no Content-Length) is counted while it streams upstream and cut off
    # with 413 as soon as it passes the limit; the upstream never gets a whole request.
    def chunks(total: int) -> Iterator[bytes]:
        sent = 0
        while sent < total:
            yield b"y" * 65536
            sent += 65536

    r = srv.post("/gateway/agents/sizer/sink", content=chunks(limit * 4))
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "payload_too_large"
    assert all(s.get("size", 0) <= limit for s in upstream.seen[seen:])
    small = srv.post("/gateway/agents/sizer/sink", content=chunks(limit // 2))
    assert small.status_code == 200 and small.json() == {"received": limit // 2}
    counts = srv.get("/metrics").text
    assert 'pharos_gateway_requests_total{route="agent",status="413"} 2.0' in counts


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
        assert s["name"] == "chat gpt-4o-mini"  # {gen_ai.operation.name} {request model}
        assert s["attributes"]["gen_ai.operation.name"] == "chat"
        assert s["attributes"]["gen_ai.request.model"] == "gpt-4o-mini"
        assert s["attributes"]["gen_ai.response.model"] == MODEL
        assert s["attributes"]["openai.api.type"] == "chat_completions"
    emb = [s for s in spans if s["kind"] == "embedding"]
    assert emb and emb[0]["tokens"]["input"] == 5
    assert emb[0]["name"] == "embeddings text-embedding-3-small"
    assert emb[0]["attributes"]["gen_ai.operation.name"] == "embeddings"
    no_upstream = make_server()
    r = no_upstream.post("/gateway/openai/v1/chat/completions", json=body)
    assert r.status_code == 503 and "PHAROS_LLM_UPSTREAM_URL" in r.json()["error"]["message"]


def test_llm_proxy_responses_api(make_server: ServerFactory, upstream: Upstream) -> None:
    """``/v1/responses``, plain and streamed: tokens (input/output/cached), model and cost from
    ``usage`` (streamed: the ``response.completed`` event) land on an LLM span."""
    srv = make_server(llm_upstream_url=upstream.url + "/v1")
    body = {"model": "gpt-4o-mini", "input": "hi", "max_output_tokens": 50}
    headers = {"x-pharos-agent": "responder"}
    r = srv.post("/gateway/openai/v1/responses", json=body, headers=headers)
    assert r.status_code == 200 and r.json()["usage"]["total_tokens"] == 22
    upstream.stream_gate = True
    with (
        srv.client() as c,
        c.stream(
            "POST", "/gateway/openai/v1/responses", json={**body, "stream": True}, headers=headers
        ) as resp,
    ):
        assert resp.headers["content-type"].startswith("text/event-stream")
        chunks = resp.iter_bytes()
        first = b""
        while b"output_text.delta" not in first:  # streamed through as it comes
            first += next(chunks)
        assert b"response.completed" not in first
        upstream.release.set()
        rest = b"".join(chunks)
    assert b"response.completed" in rest
    assert b"stream_options" not in upstream.seen[-1]["body"]  # not a chat completions field
    spans = _spans(srv, "responder", want=2)
    assert len(spans) == 2
    for s in spans:
        assert s["kind"] == "llm" and s["model"] == MODEL, s
        assert (s["tokens"]["input"], s["tokens"]["output"], s["tokens"]["cached"]) == (13, 9, 4)
        assert s["cost_usd"] and s["cost_usd"] > 0
        assert s["name"] == "chat gpt-4o-mini"
        assert s["attributes"]["gen_ai.operation.name"] == "chat"
        assert s["attributes"]["openai.api.type"] == "responses"
        assert s["attributes"]["gen_ai.request.max_tokens"] == 50
    assert {s["attributes"].get("gen_ai.request.stream", False) for s in spans} == {True, False}


def _namespace(srv: RunningServer) -> str:
    """The install's Redis namespace (the real bucket keys are ``pharos:rl:<ns>:…``)."""
    from pharos.server.db.engine import make_engine
    from pharos.server.ops.redis_link import namespace

    engine = make_engine(srv.settings.database_url)
    try:
        return namespace(engine)
    finally:
        engine.dispose()


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
    bucket = f"pharos:rl:{_namespace(a)}:agent:{name}:rpm"
    assert redis.Redis.from_url(REDIS_URL).delete(bucket) == 1  # the very bucket both used
    _allowed(codes, started, 60)


def test_queued_requests_are_served_in_order(server: RunningServer, upstream: Upstream) -> None:
    # 12 rpm: after the burst, one token every 5 s (the burst itself must take less than
    # that, or the first "queued" request would find a token: 12 small calls take well under
    # a second, even on a loaded machine)
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


def _new_key(srv: RunningServer, name: str, **limits: object) -> tuple[str, dict]:
    """An ingest key made through the API with the admin key."""
    headers = {"x-api-key": _admin(srv)}
    deadline = time.monotonic() + 10
    while True:  # the admin key is known within the key cache time
        r = srv.post(
            "/api/v1/keys", json={"name": name, "scopes": ["ingest"], **limits}, headers=headers
        )
        if r.status_code != 401 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert r.status_code == 201, r.text
    return r.json()["key"], r.json()


def test_per_key_rpm_queues_then_refuses(make_server: ServerFactory, upstream: Upstream) -> None:
    """A key's own rpm (set at creation, changed later) with the agents' FIFO queue in front:
    over the limit a request waits up to PHAROS_KEY_MAX_WAIT_SECONDS, then gets 429."""
    srv = make_server(key_rpm=1000, key_max_queue=2, key_max_wait_seconds=30)
    _register(srv, "keyed", upstream.url + "/echo")
    key, created = _new_key(srv, "ci-30", rpm=30)
    assert created["rpm"] == 30 and created["rate_limits"]["rpm"]["limit"] == 30
    plain, _ = _new_key(srv, "ci-default")
    bucket = f"key:{key[:12]}:rpm"
    headers = {"x-api-key": key}
    deadline = time.monotonic() + 10
    while srv.post("/gateway/agents/keyed/x", headers=headers).status_code == 401:
        assert time.monotonic() < deadline  # the key cache: the new key is known within 1 s
        time.sleep(0.1)
    admin = {"x-api-key": _admin(srv)}

    def waited() -> int:
        stats = srv.get("/api/v1/gateway/queues", headers=admin).json()["buckets"]
        return int(stats[bucket]["waited_total"])

    # The burst (30 tokens) passes; then the bucket is empty and a request waits in the queue
    # for the next token (one every 2 s at 30 rpm) instead of being refused. However slow the
    # machine, requests take tokens faster than they refill: one of the first ~60 must wait.
    codes = []
    while waited() == 0 and len(codes) < 100:
        codes.append(srv.post("/gateway/agents/keyed/x", headers=headers).status_code)
    assert set(codes) == {200} and 30 <= len(codes) < 100, codes
    assert waited() == 1
    listed = {
        k["name"]: k
        for k in srv.get("/api/v1/keys", headers={"x-api-key": _admin(srv)}).json()["items"]
    }
    limits = listed["ci-30"]["rate_limits"]
    assert limits["rpm"]["limit"] == 30 and limits["rpm"]["source"] == "key"
    assert limits["rpm"]["waited_total"] >= 1 and limits["rpm"]["max_queue"] == 2
    default = listed["ci-default"]["rate_limits"]["rpm"]
    assert (default["limit"], default["source"]) == (1000, "default")
    assert (
        listed["ci-default"]["rpm"] is None and listed["ci-default"]["rate_limits"]["tpm"] is None
    )
    metrics = srv.get("/metrics", headers={"x-api-key": _admin(srv)}).text
    assert f'pharos_gateway_queue_waits_total{{bucket="{bucket}"}}' in metrics
    assert f'pharos_gateway_rate_limit_per_minute{{bucket="{bucket}"}} 30.0' in metrics
    # Lower the key's limit through the API: it applies within the key cache time.
    r = srv.client().patch(
        f"/api/v1/keys/{created['id']}", json={"rpm": 1}, headers={"x-api-key": _admin(srv)}
    )
    assert r.status_code == 200 and r.json()["rpm"] == 1, r.text
    deadline = time.monotonic() + 10
    while True:  # the bucket holds at most 1 token now: a second request must wait ~60 s
        r = srv.post("/gateway/agents/keyed/x", headers=headers)
        if r.status_code == 429:
            break
        assert time.monotonic() < deadline, r.status_code
    assert "key:" in r.json()["error"]["message"] and int(r.headers["retry-after"]) >= 1
    assert plain not in r.text and key not in r.text
    assert srv.post("/gateway/agents/keyed/x", headers={"x-api-key": plain}).status_code == 200


def _admin(srv: RunningServer) -> str:
    """An admin key for ``srv`` (made once, straight in the database)."""
    key = getattr(srv, "_admin_key", None)
    if key is None:
        from pharos.server.access.keys import create_key, parse_scopes
        from pharos.server.db.engine import make_engine

        engine = make_engine(srv.settings.database_url)
        try:
            key = create_key(engine, "admin", parse_scopes("admin"))[0]
        finally:
            engine.dispose()
        srv._admin_key = key  # type: ignore[attr-defined]
    return key


def test_per_key_tpm_on_the_llm_proxy(make_server: ServerFactory, upstream: Upstream) -> None:
    """tpm per key: the tokens the upstream reports are charged to the key's bucket."""
    srv = make_server(llm_upstream_url=upstream.url + "/v1", key_max_queue=0)
    key, created = _new_key(srv, "tokened", tpm=20)
    assert created["tpm"] == 20
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-api-key": key}
    deadline = time.monotonic() + 10
    while True:
        r = srv.post("/gateway/openai/v1/chat/completions", json=chat, headers=headers)
        if r.status_code != 401:
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert r.status_code == 200  # 18 tokens used: 2 left of 20
    r = srv.post("/gateway/openai/v1/chat/completions", json=chat, headers=headers)
    assert r.status_code == 200  # 1 token asked before the call; 17 more charged after: debt
    r = srv.post("/gateway/openai/v1/chat/completions", json=chat, headers=headers)
    assert r.status_code == 429, r.text
    assert f"key:{key[:12]}:tpm" in r.json()["error"]["message"]


@pytest.mark.skipif(not REDIS_URL, reason="PHAROS_TEST_REDIS_URL is not set")
def test_per_key_limit_shared_by_two_instances_through_redis(
    make_server: ServerFactory, upstream: Upstream
) -> None:
    import redis

    a = make_server(redis_url=REDIS_URL, key_max_queue=0)
    b = make_server(redis_url=REDIS_URL, key_max_queue=0)
    name = f"shared-key-{uuid.uuid4().hex[:8]}"
    _register(a, "via-key", upstream.url + "/echo")
    key, _ = _new_key(a, name, rpm=30)
    for srv in (a, b):  # both instances know the key (the key cache)
        deadline = time.monotonic() + 10
        while srv.get("/api/v1/traces", headers={"x-api-key": key}).status_code != 403:
            assert time.monotonic() < deadline
            time.sleep(0.1)

    def one(i: int) -> int:
        with httpx.Client(timeout=60) as c:
            url = (a, b)[i % 2].url + "/gateway/agents/via-key/x"
            return c.post(url, content=b"x", headers={"x-api-key": key}).status_code

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(pool.map(one, range(60)))
    bucket = f"pharos:rl:{_namespace(a)}:key:{key[:12]}:rpm"
    assert redis.Redis.from_url(REDIS_URL).delete(bucket) == 1
    _allowed(codes, started, 30)
