"""A NUL character in any request input is a clear 400 naming it, on SQLite and PostgreSQL.

PostgreSQL text cannot hold a NUL (psycopg.DataError: a 500 before), SQLite's FTS5 read
``q=zz%00zz`` as an unterminated string (a false 503 "database unavailable") and its LIKE
stopped at the NUL (``q=%00`` listed every log). Every read endpoint and each of its
parameters is taken from the app's own OpenAPI document, so a new endpoint is covered too;
JSON bodies of the write endpoints are checked the same way.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from pharos.server.app import create_app
from pharos.server.settings import Settings
from tests.conftest import RunningServer, postgres_database, run_server
from tests.log_helpers import log_record, logs_request

NUL = "\x00"


def _read_parameters() -> list[tuple[str, str, str, list[str]]]:
    """(path template, parameter, where, required query parameters) of every GET /api/v1."""
    spec = create_app(Settings()).openapi()
    out = []
    for template, operations in spec["paths"].items():
        get = operations.get("get")
        if not template.startswith("/api/") or get is None:
            continue
        params = get.get("parameters", [])
        required = [p["name"] for p in params if p["in"] == "query" and p.get("required")]
        for p in params:
            out.append((template, p["name"], p["in"], required))
    return out


READ_PARAMETERS = _read_parameters()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def nul_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('nul') / 'pharos.db'}"
        else:
            url = stack.enter_context(postgres_database())
        server = stack.enter_context(run_server(url, retention_enabled=False))
        records = [log_record(b) for b in ("zz needle zz", "plain line", "another line")]
        resp = server.post(
            "/v1/logs",
            content=logs_request(records).SerializeToString(),
            headers={"content-type": "application/x-protobuf"},
        )
        assert resp.status_code == 200, resp.text
        yield server


def _refused(resp: httpx.Response, name: str) -> None:
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "invalid_parameter"
    assert error["message"] == f"{name}: must not contain a NUL character", error


def test_every_read_endpoint_has_parameters_to_check() -> None:
    templates = {t for t, *_ in READ_PARAMETERS}
    assert {"/api/v1/logs", "/api/v1/traces", "/api/v1/metrics/series", "/api/v1/costs"} <= (
        templates
    )
    assert ("/api/v1/errors/{fingerprint}", "fingerprint", "path", []) in READ_PARAMETERS


@pytest.mark.parametrize(
    ("template", "name", "where", "required"),
    READ_PARAMETERS,
    ids=[f"{t}:{n}" for t, n, _, _ in READ_PARAMETERS],
)
def test_a_nul_in_any_read_parameter_is_a_400_naming_it(
    nul_server: RunningServer, template: str, name: str, where: str, required: list[str]
) -> None:
    path = template
    for other in (p for t, p, w, _ in READ_PARAMETERS if t == template and w == "path"):
        path = path.replace("{" + other + "}", "a%00b" if other == name else "abc")
    params = {r: "x" for r in required if r != name}
    if where == "query":
        params[name] = f"zz{NUL}zz"
    _refused(nul_server.get(path, params=params), name)


@pytest.mark.parametrize("q", [f"zz{NUL}zz", NUL, f"needle{NUL}"])
def test_log_text_search_with_a_nul_is_refused_not_an_outage_or_everything(
    nul_server: RunningServer, q: str
) -> None:
    _refused(nul_server.get("/api/v1/logs", params={"q": q}), "q")
    # The text "%00" itself (sent as %2500) is an ordinary search; so is the neighbour text.
    assert nul_server.get("/api/v1/logs", params={"q": "%00"}).json()["items"] == []
    found = nul_server.get("/api/v1/logs", params={"q": "needle"}).json()["items"]
    assert [item["body"] for item in found] == ["zz needle zz"]


def test_metric_attribute_filters_and_names_with_a_nul(nul_server: RunningServer) -> None:
    series = "/api/v1/metrics/series"
    _refused(nul_server.get(series, params={"name": "x", "attr.host": f"a{NUL}"}), "attr.host")
    resp = nul_server.get(series, params={"name": "x", f"attr.a{NUL}": "v"})
    _refused(resp, "attr.a\\u0000 (a parameter name)")
    assert nul_server.get(series, params={"name": "x", "attr.host": "a"}).status_code == 404


def test_a_nul_in_a_path_is_refused_naming_the_path_parameter(nul_server: RunningServer) -> None:
    _refused(nul_server.get("/api/v1/agents/registry/bot%00"), "name")
    _refused(nul_server.post("/api/v1/errors/ab%00cd/resolve"), "fingerprint")
    with nul_server.client() as client:
        _refused(client.delete("/api/v1/keys/k%00"), "key_id")
    _refused(nul_server.get("/api/v1/no/such%00route"), "path")  # no template to name it
    _refused(nul_server.post("/v1/traces?x=%00", content=b""), "x")


def test_the_live_websocket_refuses_a_nul_parameter(nul_server: RunningServer) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    url = nul_server.url.replace("http", "ws") + "/api/v1/live?window=1h" + quote(NUL)
    with pytest.raises(InvalidStatus) as info:
        connect(url, open_timeout=10).close()
    assert info.value.response.status_code == 403  # closed before the handshake completed


# (path, a valid body, where the NUL goes) for the write endpoints that store text.
BODIES: list[tuple[str, dict[str, Any], str]] = [
    (
        "/api/v1/alerts/rules",
        {
            "name": "Errors",
            "expression": "error_rate(5m) > 5",
            "severity": "critical",
            "labels": {"team": "payments"},
        },
        "labels.team",
    ),
    (
        "/api/v1/alerts/rules",
        {"name": "Busy", "expression": "requests(5m) > 1", "severity": "info"},
        "name",
    ),
    (
        "/api/v1/alerts/channels",
        {
            "name": "ops",
            "type": "slack",
            "config": {"url": "https://hooks.slack.com/services/T0/B0/X"},
            "matchers": [{"name": "team", "op": "=", "value": "payments"}],
        },
        "matchers.0.value",
    ),
    (
        "/api/v1/silences",
        {
            "matchers": [{"name": "agent", "op": "=", "value": "checkout"}],
            "duration": "1h",
            "created_by": "ana",
            "comment": "deploying",
        },
        "comment",
    ),
    ("/api/v1/slos", {"name": "avail", "agent": "a", "kind": "success", "objective": 99}, "name"),
    (
        "/api/v1/agents/registry",
        {"name": "bot", "upstream_url": "http://127.0.0.1:9/", "labels": {"team": "care"}},
        "labels.team",
    ),
    (
        "/api/v1/prices",
        {"model": "my-llm", "input": "1", "output": "2", "effective_from": "always"},
        "model",
    ),
    ("/api/v1/budgets", {"name": "daily", "limit_usd": 1}, "name"),
    ("/api/v1/keys", {"name": "ci", "scopes": ["read"]}, "name"),
]


def _with_nul(body: Any, where: list[str]) -> Any:
    if not where:
        return f"x{NUL}y"
    head, *rest = where
    if isinstance(body, list):
        return [_with_nul(v, rest) if str(i) == head else v for i, v in enumerate(body)]
    return {k: (_with_nul(v, rest) if k == head else v) for k, v in body.items()}


@pytest.mark.parametrize(("path", "body", "where"), BODIES, ids=[f"{p}:{w}" for p, _, w in BODIES])
def test_a_nul_in_a_json_body_is_a_400_naming_the_field(
    nul_server: RunningServer, path: str, body: dict[str, Any], where: str
) -> None:
    _refused(nul_server.post(path, json=_with_nul(body, where.split("."))), where)
    # ... and a NUL in a key
    keyed = {**body, "labels": {f"te{NUL}am": "x"}}
    _refused(nul_server.post(path, json=keyed), "labels.te\\u0000am (a key)")


def test_json_bodies_without_a_nul_still_work(nul_server: RunningServer) -> None:
    """The guard reads the body and hands it on unchanged (the same bodies succeed). Runs last:
    the new API key ends the server's open mode."""
    # an escaped backslash followed by u0000 is plain text, not a NUL
    text = nul_server.post(
        "/api/v1/budgets",
        content=b'{"name": "back\\\\u0000slash", "limit_usd": 1}',
        headers={"content-type": "application/json"},
    )
    assert text.status_code == 201, text.text
    assert text.json()["name"] == "back\\u0000slash"
    for path, body, _ in BODIES:  # /api/v1/keys last
        if "name" in body:  # unique, as the module's server keeps what each test made
            body = {**body, "name": f"{body['name']}-{time.time_ns() % 10**9}"}
        resp = nul_server.post(path, json=body)
        assert resp.status_code in (200, 201), (path, resp.text)
