"""API keys and scopes against a real server on SQLite and PostgreSQL: the matrix
(no key / wrong key / revoked / each scope x each endpoint group), the dashboard cookie, the
open mode, the public-bind rule, OTLP/gRPC, the agent registry, headers and body caps."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import httpx
import pytest
from typer.testing import CliRunner

from pharos.cli import app as cli_app
from pharos.server.access.keys import create_key, parse_scopes, revoke_key
from pharos.server.access.startup import PublicBindRefused, check_public_bind
from pharos.server.db.engine import make_engine
from pharos.server.db.migrate import upgrade
from pharos.server.settings import Settings
from tests.conftest import RunningServer, ServerFactory, run_server

EMPTY_TRACES = {"resourceSpans": []}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
OTLP_GRPC = "/opentelemetry.proto.collector.{}/Export"
#: One request per endpoint group: (scope it needs, method, path, body). ``WS`` and ``SSE`` are
#: the live endpoints, ``GRPC`` an OTLP/gRPC export (empty request: an empty export).
#: ``{n}`` in a body is made unique per call.
GROUPS: list[tuple[str, str, str, object]] = [
    ("ingest", "POST", "/v1/traces", EMPTY_TRACES),
    ("ingest", "POST", "/v1/logs", {"resourceLogs": []}),
    ("ingest", "POST", "/v1/metrics", {"resourceMetrics": []}),
    ("ingest", "GRPC", OTLP_GRPC.format("trace.v1.TraceService"), None),
    ("ingest", "GRPC", OTLP_GRPC.format("logs.v1.LogsService"), None),
    ("ingest", "GRPC", OTLP_GRPC.format("metrics.v1.MetricsService"), None),
    ("ingest", "POST", "/gateway/agents/matrix/echo/x", {"hello": "{n}"}),
    ("ingest", "GET", "/gateway/agents/matrix/echo/x", None),
    ("ingest", "POST", "/gateway/openai/v1/chat/completions", CHAT),
    ("ingest", "POST", "/gateway/openai/v1/embeddings", {"model": "e", "input": "x"}),
    ("ingest", "POST", "/gateway/openai/v1/responses", {"model": "gpt-4o-mini", "input": "x"}),
    ("read", "GET", "/api/v1/traces", None),
    ("read", "GET", "/api/v1/agents/registry", None),
    ("read", "GET", "/metrics", None),
    ("read", "GET", "/api/v1/slos", None),
    ("read", "GET", "/api/v1/reports", None),
    ("read", "GET", "/api/v1/budgets", None),
    ("read", "GET", "/api/v1/prices", None),
    ("read", "GET", "/api/v1/gateway/queues", None),
    ("read", "WS", "/api/v1/live", None),
    ("read", "SSE", "/api/v1/stream", None),
    ("admin", "POST", "/api/v1/agents/registry", {"name": "a-{n}"}),
    ("admin", "GET", "/api/v1/keys", None),
    ("admin", "POST", "/api/v1/alerts/rules/validate", {"expression": "error_rate > 5"}),
    (
        "admin",
        "POST",
        "/api/v1/slos",
        {"name": "slo-{n}", "agent": "matrix", "kind": "success", "objective": 99},
    ),
    ("admin", "POST", "/api/v1/budgets", {"name": "b-{n}", "agent": "b-{n}", "limit_usd": "9"}),
    ("admin", "POST", "/api/v1/prices", {"model": "m-{n}", "input": "1", "output": "2"}),
    ("admin", "POST", "/api/v1/reports/send", {"channels": ["matrix-hook"]}),
]
SCOPES = ["ingest", "read", "admin"]


def _keys(srv: RunningServer) -> dict[str, str]:
    engine = make_engine(srv.settings.database_url)
    try:
        return {s: create_key(engine, f"k-{s}", parse_scopes(s))[0] for s in SCOPES}
    finally:
        engine.dispose()


def _fill(body: object, n: int) -> object:
    if isinstance(body, dict):
        return {k: _fill(v, n) for k, v in body.items()}
    return body.replace("{n}", str(n)) if isinstance(body, str) else body


def _call(
    client: httpx.Client, method: str, path: str, body: object, n: int, **headers: str
) -> httpx.Response:
    return client.request(method, path, json=_fill(body, n), headers=headers)


GRPC_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
}


def _status(
    srv: RunningServer,
    client: httpx.Client,
    group: tuple[str, str, str, object],
    n: int,
    headers: dict[str, str],
) -> tuple[int, str]:
    """(HTTP status, body text) of one call of ``group`` (a WebSocket that opens: 101; gRPC
    codes mapped to 200/401/403)."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    _, method, path, body = group
    if method == "GRPC":
        metadata = tuple((k, v) for k, v in headers.items() if k != "cookie")
        with grpc.insecure_channel(srv.grpc_target) as channel:
            call = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
            try:
                answer = call(b"", timeout=30, metadata=metadata or None)
            except grpc.RpcError as exc:
                return GRPC_STATUS.get(exc.code(), 500), str(exc.details())
            assert isinstance(answer, bytes)  # the (empty) Export*ServiceResponse
            return 200, ""
    if method == "WS":
        url = srv.url.replace("http://", "ws://") + path
        try:
            with connect(url, additional_headers=headers, open_timeout=10) as ws:
                assert "hello" in str(ws.recv(timeout=10))
                return 101, ""
        except InvalidStatus as exc:
            return exc.response.status_code, exc.response.body.decode() if exc.response.body else ""
    if method == "SSE":
        with client.stream("GET", path, headers=headers) as resp:
            if resp.status_code == 200:
                assert resp.headers["content-type"].startswith("text/event-stream")
                return 200, ""
            resp.read()
            return resp.status_code, resp.text
    r = _call(client, method, path, body, n, **headers)
    return r.status_code, r.text


def _credentials(keys: dict[str, str], revoked: str) -> list[tuple[str, dict[str, str]]]:
    """Every way to present (or not) a key: (who, headers)."""
    wrong = "phk_" + "x" * 43
    out: list[tuple[str, dict[str, str]]] = [
        ("none", {}),
        ("wrong", {"authorization": f"Bearer {wrong}"}),
        ("wrong", {"x-api-key": wrong}),
        ("revoked", {"authorization": f"Bearer {revoked}"}),
        ("revoked", {"x-api-key": revoked}),
        ("revoked", {"cookie": f"pharos_session={revoked}"}),
    ]
    for scope, key in keys.items():
        out += [
            (scope, {"authorization": f"Bearer {key}"}),
            (scope, {"x-api-key": key}),
            (scope, {"cookie": f"pharos_session={key}"}),
        ]
    return out


def _wait_for_auth(srv: RunningServer) -> None:
    """The key cache lives PHAROS_KEY_CACHE_SECONDS: wait until the server is closed."""
    deadline = time.monotonic() + 10
    while srv.get("/api/v1/traces").status_code != 401:
        assert time.monotonic() < deadline, "the server stayed open after a key was created"
        time.sleep(0.1)


def test_open_mode_without_keys(server: RunningServer) -> None:
    assert server.get("/api/v1/traces").status_code == 200
    assert server.post("/v1/traces", json=EMPTY_TRACES).status_code == 200
    session = server.get("/api/v1/auth/session").json()
    assert session == {"open": True, "authenticated": False, "key": None}


def test_scope_matrix(make_server: ServerFactory) -> None:
    """Every endpoint group x {no key, wrong key, revoked key, each scope (as Bearer,
    x-api-key and the session cookie)} -> 401 / 403 / 2xx."""
    from tests.fake_upstream import fake_upstream

    with fake_upstream() as upstream:
        server = make_server(llm_upstream_url=upstream.url + "/v1")
        # set up while open: an agent for the gateway and a channel for reports
        r = server.post(
            "/api/v1/agents/registry", json={"name": "matrix", "upstream_url": upstream.url}
        )
        assert r.status_code == 201, r.text
        r = server.post(
            "/api/v1/alerts/channels",
            json={"name": "matrix-hook", "type": "webhook", "config": {"url": upstream.url}},
        )
        assert r.status_code == 201, r.text
        keys = _keys(server)
        engine = make_engine(server.settings.database_url)
        try:
            revoked, record = create_key(engine, "k-revoked", parse_scopes("admin"))
            revoke_key(engine, str(record.id))
        finally:
            engine.dispose()
        _wait_for_auth(server)
        n = 0
        seen: dict[tuple[str, str], set[int]] = {}
        with server.client() as client:
            for group in GROUPS:
                needed, method, path, _ = group
                for who, headers in _credentials(keys, revoked):
                    if method == "GRPC" and "cookie" in headers:
                        continue  # gRPC has no cookies
                    n += 1
                    client.cookies.clear()
                    status, text = _status(server, client, group, n, headers)
                    seen.setdefault((method, path), set()).add(status)
                    where = (who, headers.keys(), method, path, status, text[:300])
                    if who in ("none", "wrong", "revoked"):
                        assert status == 401, where
                        if method not in ("GRPC",):
                            assert '"unauthorized"' in text, where
                    elif who == "admin" or who == needed:
                        assert 200 <= status < 300 or (method == "WS" and status == 101), where
                    else:
                        assert status == 403, where
                        if method != "GRPC":
                            assert '"forbidden"' in text and who in ("ingest", "read"), where
                    for key in (*keys.values(), revoked):
                        assert key not in text and key[12:] not in text, where
            # public routes stay public
            for path in ("/healthz", "/readyz", "/api/v1/auth/session", "/openapi.json"):
                assert client.get(path).status_code == 200, path
    assert all(len(codes) == 3 for codes in seen.values()), seen  # 401, 403 and a 2xx each


def test_revocation_takes_effect_within_the_cache_time(make_server: ServerFactory) -> None:
    first = make_server()
    second = make_server()  # another instance on the same database
    keys = _keys(first)
    _wait_for_auth(first)
    _wait_for_auth(second)
    header = {"x-api-key": keys["read"]}
    for srv in (first, second):
        assert srv.get("/api/v1/traces", headers=header).status_code == 200
    # revoke through the API of the first instance (with the admin key)
    prefix = keys["read"][:12]
    r = first.client().delete(f"/api/v1/keys/{prefix}", headers={"x-api-key": keys["admin"]})
    assert r.status_code == 200 and r.json()["revoked"] is True
    assert first.get("/api/v1/traces", headers=header).status_code == 401  # at once here
    deadline = time.monotonic() + 10
    while second.get("/api/v1/traces", headers=header).status_code != 401:
        assert time.monotonic() < deadline, "the other instance kept accepting a revoked key"
        time.sleep(0.1)
    listed = first.get("/api/v1/keys", headers={"x-api-key": keys["admin"]}).json()["items"]
    by_prefix = {k["prefix"]: k for k in listed}
    assert by_prefix[prefix]["revoked"] is True
    assert by_prefix[keys["admin"][:12]]["last_used_ns"] is not None
    assert all("hash" not in k and "key" not in k for k in listed)


def test_dashboard_login_sets_an_httponly_strict_cookie(server: RunningServer) -> None:
    keys = _keys(server)
    _wait_for_auth(server)
    with server.client() as client:
        bad = client.post("/api/v1/auth/login", json={"key": "phk_nope_nope_nope_nope"})
        assert bad.status_code == 401
        r = client.post("/api/v1/auth/login", json={"key": keys["read"]})
        assert r.status_code == 200
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
        assert client.get("/api/v1/traces").status_code == 200  # the cookie carries the key
        assert client.get("/api/v1/auth/session").json()["authenticated"] is True
        assert client.post("/api/v1/prices", json={}).status_code == 403  # read only
        assert client.post("/api/v1/auth/logout").status_code == 204
        client.cookies.clear()
        assert client.get("/api/v1/traces").status_code == 401


def test_websocket_needs_read(server: RunningServer) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    keys = _keys(server)
    _wait_for_auth(server)
    ws_url = server.url.replace("http://", "ws://") + "/api/v1/live"
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url, open_timeout=10).close()
    assert refused.value.response.status_code == 401  # as HTTP says: no key is 401
    assert b'"unauthorized"' in refused.value.response.body
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url, additional_headers={"x-api-key": keys["ingest"]}, open_timeout=10).close()
    assert refused.value.response.status_code == 403  # a key without the scope is 403
    assert b"lacks the read scope" in refused.value.response.body
    with connect(ws_url, additional_headers={"x-api-key": keys["read"]}, open_timeout=10) as ws:
        assert "hello" in str(ws.recv(timeout=10))


def test_grpc_ingest_needs_the_ingest_scope(server: RunningServer) -> None:
    keys = _keys(server)
    _wait_for_auth(server)
    method = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
    with grpc.insecure_channel(server.grpc_target) as channel:
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as exc:
            call(b"", timeout=30)
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as exc:
            call(b"", timeout=30, metadata=(("x-api-key", keys["read"]),))
        assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # an empty export is answered with an (empty) ExportTraceServiceResponse
        answer = call(b"", timeout=30, metadata=(("authorization", f"Bearer {keys['ingest']}"),))
        assert answer == b""
        assert call(b"", timeout=30, metadata=(("x-api-key", keys["admin"]),)) == b""
        with pytest.raises(grpc.RpcError) as exc:  # a non-Bearer authorization is no key
            call(b"", timeout=30, metadata=(("authorization", keys["ingest"]),))
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_public_bind_needs_a_key_or_insecure(db_url: str) -> None:
    from pharos.server.access.keys import KeyStore

    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        store = KeyStore(engine)
        public = Settings(database_url=db_url, host="0.0.0.0", grpc_enabled=False)
        with pytest.raises(PublicBindRefused, match="no API keys exist"):
            check_public_bind(public, store)
        check_public_bind(public.model_copy(update={"insecure": True}), store)
        check_public_bind(Settings(database_url=db_url), store)  # loopback: open is fine
        _, record = create_key(engine, "admin", parse_scopes("admin"))
        store.invalidate()
        check_public_bind(public, store)  # a key exists: allowed
        revoke_key(engine, str(record.id))
        store.invalidate()
        with pytest.raises(PublicBindRefused):
            check_public_bind(public, store)
    finally:
        engine.dispose()
    result = CliRunner().invoke(
        cli_app, ["serve", "--host", "0.0.0.0", "--database-url", db_url, "--port", "0"]
    )
    assert result.exit_code == 2


def test_headers_body_cap_and_cors_off(server: RunningServer) -> None:
    r = server.get("/api/v1/traces")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    big = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    r = server.post("/api/v1/prices", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"

    def chunks() -> object:
        yield b"{"
        for _ in range(40):
            yield b" " * 65536
        yield b"}"

    r = server.post(
        "/api/v1/prices", content=chunks(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413
    pre = server.client().options(
        "/api/v1/traces",
        headers={"origin": "https://evil.example", "access-control-request-method": "GET"},
    )
    assert "access-control-allow-origin" not in pre.headers


def test_cors_allows_configured_origins(make_server: ServerFactory) -> None:
    srv = make_server(cors_origins=["https://app.example"])
    r = srv.get("/api/v1/traces", headers={"origin": "https://app.example"})
    assert r.headers["access-control-allow-origin"] == "https://app.example"
    r = srv.get("/api/v1/traces", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers


def test_agent_registry_crud_and_validation(server: RunningServer) -> None:
    with server.client() as c:
        body = {
            "name": "support-bot",
            "upstream_url": "http://127.0.0.1:9999/",
            "rpm": 60,
            "tpm": 100000,
            "max_queue": 5,
            "max_wait": "2s",
            "budget_usd": "25",
            "labels": {"team": "care", "environment": "prod"},
        }
        r = c.post("/api/v1/agents/registry", json=body)
        assert r.status_code == 201, r.text
        got = r.json()
        assert got["upstream_url"] == "http://127.0.0.1:9999"
        assert got["max_wait_seconds"] == 2 and got["budget"] == {
            "limit_usd": 25.0,
            "period": "daily",
        }
        assert c.post("/api/v1/agents/registry", json=body).status_code == 409
        assert c.get("/api/v1/agents/registry").json()["items"][0]["name"] == "support-bot"
        assert c.get("/api/v1/agents").status_code == 200  # the analytics table is untouched
        r = c.put("/api/v1/agents/registry/support-bot", json={**body, "rpm": 120})
        assert r.status_code == 200 and r.json()["rpm"] == 120
        for bad in (
            {"name": "bad name"},
            {"name": "x", "upstream_url": "ftp://x"},
            {"name": "x", "rpm": 0},
            {"name": "x", "max_wait": "forever"},
            {"name": "x", "budget_usd": "-1"},
            {"name": "x", "labels": {"team": 3}},
            {},
        ):
            r = c.post("/api/v1/agents/registry", json=bad)
            assert r.status_code == 400, (bad, r.text)
            assert r.json()["error"]["message"]
        assert c.get("/api/v1/agents/registry/nope").status_code == 404
        assert c.delete("/api/v1/agents/registry/support-bot").status_code == 204
        assert c.delete("/api/v1/agents/registry/support-bot").status_code == 404


def test_cli_keys_and_agents(db_url: str) -> None:
    runner = CliRunner()
    r = runner.invoke(
        cli_app, ["keys", "create", "--name", "ci", "--scopes", "ingest", "--database-url", db_url]
    )
    assert r.exit_code == 0, r.output
    key = r.stdout.strip().splitlines()[-1]
    assert key.startswith("phk_")
    r = runner.invoke(cli_app, ["keys", "list", "--json", "--database-url", db_url])
    assert key[:12] in r.stdout and key not in r.stdout
    assert (
        runner.invoke(cli_app, ["keys", "revoke", key[:12], "--database-url", db_url]).exit_code
        == 0
    )
    assert (
        runner.invoke(cli_app, ["keys", "revoke", "999", "--database-url", db_url]).exit_code == 1
    )
    bad = runner.invoke(
        cli_app, ["keys", "create", "--name", "x", "--scopes", "root", "--database-url", db_url]
    )
    assert bad.exit_code == 2
    r = runner.invoke(
        cli_app,
        [
            "agents",
            "add",
            "bot",
            "--upstream",
            "http://127.0.0.1:1",
            "--rpm",
            "60",
            "--max-wait",
            "10s",
            "--budget",
            "5",
            "--label",
            "team=x",
            "--database-url",
            db_url,
        ],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli_app, ["agents", "list", "--json", "--database-url", db_url])
    assert '"bot"' in r.stdout
    assert (
        runner.invoke(cli_app, ["agents", "remove", "bot", "--database-url", db_url]).exit_code == 0
    )
    with run_server(db_url) as srv:  # the revoked key counts as none: open again
        assert srv.get("/api/v1/traces").status_code == 200


def _send_trace(srv: RunningServer, agent: str, **headers: str) -> None:
    now = time.time_ns()
    span = {
        "traceId": uuid.uuid4().hex,
        "spanId": uuid.uuid4().hex[:16],
        "name": "run",
        "startTimeUnixNano": str(now - 5_000_000),
        "endTimeUnixNano": str(now),
    }
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": agent}}]
                },
                "scopeSpans": [{"spans": [span]}],
            }
        ]
    }
    r = srv.post("/v1/traces", json=body, headers=headers)
    assert r.status_code == 200, r.text


def test_registry_lists_agents_seen_in_telemetry(server: RunningServer) -> None:
    """Agents appear in the registry when they send telemetry (registered: false, first and
    last seen); PUT registers one."""
    _send_trace(server, "seen-bot")
    _send_trace(server, "seen-bot")
    r = server.post("/api/v1/agents/registry", json={"name": "set-up", "rpm": 5})
    assert r.status_code == 201
    items = {a["name"]: a for a in server.get("/api/v1/agents/registry").json()["items"]}
    seen = items["seen-bot"]
    assert seen["registered"] is False and seen["upstream_url"] is None and seen["rpm"] is None
    assert seen["first_seen"].endswith("Z") and seen["last_seen"].endswith("Z")
    assert seen["first_seen"] <= seen["last_seen"]
    assert items["set-up"]["registered"] is True and items["set-up"]["last_seen"] is None
    one = server.get("/api/v1/agents/registry/seen-bot")
    assert one.status_code == 200 and one.json()["registered"] is False
    assert server.get("/api/v1/agents/registry/never-seen").status_code == 404
    # registering it (PUT on its name) keeps its history
    with server.client() as c:
        r = c.put(
            "/api/v1/agents/registry/seen-bot",
            json={"upstream_url": "http://127.0.0.1:9", "rpm": 60, "labels": {"team": "a"}},
        )
        assert r.status_code == 201, r.text
        assert r.json()["registered"] is True and r.json()["rpm"] == 60
        r = c.put("/api/v1/agents/registry/seen-bot", json={"rpm": 30})
        assert r.status_code == 200 and r.json()["rpm"] == 30
    items = {a["name"]: a for a in server.get("/api/v1/agents/registry").json()["items"]}
    assert items["seen-bot"]["registered"] is True
    assert items["seen-bot"]["first_seen"] == seen["first_seen"]
    assert list(items) == sorted(items)  # one list, by name


def test_key_limits_through_api_and_cli(db_url: str) -> None:
    runner = CliRunner()
    r = runner.invoke(
        cli_app,
        [
            "keys",
            "create",
            "--name",
            "lim",
            "--scopes",
            "ingest",
            "--rpm",
            "7",
            "--tpm",
            "900",
            "--database-url",
            db_url,
        ],
    )
    assert r.exit_code == 0, r.output
    key = r.stdout.strip().splitlines()[-1]
    r = runner.invoke(cli_app, ["keys", "list", "--json", "--database-url", db_url])
    listed = {k["prefix"]: k for k in json.loads(r.stdout)}
    assert (listed[key[:12]]["rpm"], listed[key[:12]]["tpm"]) == (7, 900)
    r = runner.invoke(
        cli_app,
        ["keys", "update", key[:12], "--rpm", "0", "--tpm", "1000", "--database-url", db_url],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli_app, ["keys", "list", "--json", "--database-url", db_url])
    listed = {k["prefix"]: k for k in json.loads(r.stdout)}
    assert (listed[key[:12]]["rpm"], listed[key[:12]]["tpm"]) == (None, 1000)  # 0: the default
    assert key not in r.stdout
    bad = runner.invoke(
        cli_app, ["keys", "update", "phk_nothing1", "--rpm", "3", "--database-url", db_url]
    )
    assert bad.exit_code == 1
    with run_server(db_url, key_rpm=50) as srv:
        engine = make_engine(db_url)
        try:
            admin = create_key(engine, "admin", parse_scopes("admin"))[0]
        finally:
            engine.dispose()
        h = {"x-api-key": admin}
        with srv.client() as c:
            for bad_body in ({"rpm": 0}, {"tpm": -1}, {"rpm": "x"}):
                r = c.patch(f"/api/v1/keys/{key[:12]}", json=bad_body, headers=h)
                assert r.status_code == 400, (bad_body, r.text)
            r = c.post("/api/v1/keys", json={"name": "x", "scopes": ["read"], "rpm": 0}, headers=h)
            assert r.status_code == 400
            r = c.patch(f"/api/v1/keys/{key[:12]}", json={"rpm": 12}, headers=h)
            assert r.status_code == 200 and r.json()["rpm"] == 12 and r.json()["tpm"] == 1000
            r = c.patch(f"/api/v1/keys/{key[:12]}", json={"tpm": None}, headers=h)
            assert r.json()["rpm"] == 12 and r.json()["tpm"] is None
            assert r.json()["rate_limits"]["rpm"]["limit"] == 12
            assert c.patch("/api/v1/keys/99999", json={"rpm": 3}, headers=h).status_code == 404
            items = {k["name"]: k for k in c.get("/api/v1/keys", headers=h).json()["items"]}
            assert items["admin"]["rate_limits"]["rpm"]["limit"] == 50  # PHAROS_KEY_RPM
            assert items["admin"]["rate_limits"]["rpm"]["source"] == "default"
            assert "key" not in items["lim"] and "hash" not in items["lim"]


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = f"{record.name} {record.getMessage()}"
        if record.exc_info:
            text += " " + logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)


@contextmanager
def _debug_server(db_url: str, **overrides: object) -> Iterator[RunningServer]:
    """A real server as ``pharos serve --log-level debug`` runs it (uvicorn at debug with its
    access log on); the test client side uses only http.client, which logs nothing."""
    import socket
    import threading

    import uvicorn

    from pharos.server.app import create_app

    settings = Settings(database_url=db_url, port=0, grpc_port=0, log_level="debug", **overrides)
    app = create_app(settings)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="debug", access_log=True, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.02)
    try:
        yield RunningServer(f"http://127.0.0.1:{sock.getsockname()[1]}", settings, app, server)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def _raw(srv: RunningServer, method: str, path: str, body: object = None, **headers: str) -> int:
    import http.client

    port = int(srv.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        payload = None if body is None else json.dumps(body).encode()
        hdrs = {"content-type": "application/json", **headers} if payload else headers
        conn.request(method, path, body=payload, headers=hdrs)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def test_keys_are_never_logged(db_url: str) -> None:
    """Every logger at DEBUG (uvicorn's access and error logs, websockets, SQLAlchemy, httpx,
    Pharos) while keys are created, used every way, used wrongly and revoked: no full key and
    no secret part of one is in any record."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    from tests.fake_upstream import fake_upstream

    capture = _Capture()
    root = logging.getLogger()
    quiet = logging.getLogger("test.client")  # the test's own websocket client logs here
    quiet.propagate = False
    with (
        fake_upstream() as upstream,
        _debug_server(db_url, llm_upstream_url=upstream.url + "/v1") as srv,
    ):
        watched = [
            root,
            *(logging.getLogger(n) for n in ("uvicorn", "uvicorn.access", "uvicorn.error")),
        ]
        levels = {name: logging.getLogger(name).level for name in ("", "sqlalchemy")}
        for logger in watched:
            logger.addHandler(capture)
        for name in levels:  # SQLAlchemy sets its own logger to WARNING when unset
            logging.getLogger(name).setLevel(logging.DEBUG)
        keys: list[str] = []
        try:
            assert (
                _raw(
                    srv,
                    "POST",
                    "/api/v1/agents/registry",
                    {"name": "logbot", "upstream_url": upstream.url + "/echo"},
                )
                == 201
            )
            runner = CliRunner()
            r = runner.invoke(
                cli_app,
                ["keys", "create", "--name", "cli", "--scopes", "admin", "--database-url", db_url],
            )
            admin = r.stdout.strip().splitlines()[-1]
            keys.append(admin)
            deadline = time.monotonic() + 10
            while _raw(srv, "GET", "/api/v1/traces") != 401:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            ingest = _post_key(srv, admin, "ingest")
            read = _post_key(srv, admin, "read")
            keys += [ingest, read]
            for key in (admin, ingest, read):
                for h in (
                    {"authorization": f"Bearer {key}"},
                    {"x-api-key": key},
                    {"cookie": f"pharos_session={key}"},
                ):
                    _raw(srv, "GET", "/api/v1/traces", **h)
                    _raw(srv, "POST", "/v1/traces", EMPTY_TRACES, **h)
                    _raw(srv, "POST", "/gateway/agents/logbot/x", {"a": 1}, **h)
                    _raw(srv, "POST", "/gateway/openai/v1/chat/completions", CHAT, **h)
                    _raw(srv, "GET", "/api/v1/keys", **h)  # 403 for two of them
                    try:
                        with connect(
                            srv.url.replace("http", "ws") + "/api/v1/live",
                            additional_headers=h,
                            open_timeout=10,
                            logger=quiet,
                        ):
                            pass
                    except InvalidStatus:
                        pass
            assert _raw(srv, "POST", "/api/v1/auth/login", {"key": read}) == 200
            assert _raw(srv, "POST", "/api/v1/auth/login", {"key": read + "x"}) == 401
            assert _raw(srv, "POST", "/api/v1/auth/login", {"key": read * 7}) == 400  # too long
            wrong = read[:-3] + "zzz"  # the right prefix, a wrong secret
            assert _raw(srv, "GET", "/api/v1/traces", **{"x-api-key": wrong}) == 401
            assert _raw(srv, "GET", "/api/v1/traces", authorization=f"Basic {read}") == 401
            with grpc.insecure_channel(srv.grpc_target) as channel:
                call = channel.unary_unary(OTLP_GRPC.format("trace.v1.TraceService"))
                call(b"", timeout=30, metadata=(("authorization", f"Bearer {ingest}"),))
                with pytest.raises(grpc.RpcError):
                    call(b"", timeout=30, metadata=(("x-api-key", read),))
            assert _raw(srv, "DELETE", f"/api/v1/keys/{read[:12]}", **{"x-api-key": admin}) == 200
            assert _raw(srv, "GET", "/api/v1/traces", **{"x-api-key": read}) == 401
            keys.append(wrong)
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)
            for logger in watched:
                logger.removeHandler(capture)
    text = "\n".join(capture.lines)
    assert "uvicorn.access" in text and "/api/v1/traces" in text  # the access log was on
    assert "sqlalchemy.engine" in text  # and every other logger too
    for key in keys:
        assert key not in text and key[12:] not in text, key[:12]


def _post_key(srv: RunningServer, admin: str, scope: str) -> str:
    import http.client

    port = int(srv.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        body = json.dumps({"name": f"api-{scope}", "scopes": [scope]}).encode()
        conn.request(
            "POST",
            "/api/v1/keys",
            body=body,
            headers={"x-api-key": admin, "content-type": "application/json"},
        )
        resp = conn.getresponse()
        assert resp.status == 201
        return str(json.loads(resp.read())["key"])
    finally:
        conn.close()
