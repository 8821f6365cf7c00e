"""SLOs over real ingested traffic on both dialects: the API's numbers from the rollups, CRUD and
clear 4xx, alert rules with slo_burn()/slo_attainment(), and the CLI."""

from __future__ import annotations

import time
from typing import Any

import pytest
from typer.testing import CliRunner

from pharos.cli import app
from tests.conftest import RunningServer, ServerFactory
from tests.otlp_helpers import PROTOBUF, request, span

NS = 1_000_000_000
QUIET = {"alert_default_rules": False, "alert_eval_interval_seconds": 3600.0, "ingest_workers": 0}


def send_runs(
    server: RunningServer, agent: str, *, fast: int, slow: int, errors: int, seed: int = 0
) -> None:
    """fast runs of 100 ms and slow ones of 500 ms (the first ``errors`` fail), 2 min ago."""
    now = time.time_ns() - 120 * NS
    spans = []
    for i in range(fast + slow):
        s = span(
            seed * 10_000 + i + 1,
            1,
            name="run",
            duration_ms=100.0 if i < fast else 500.0,
            attrs={"gen_ai.agent.name": agent, "gen_ai.operation.name": "invoke_agent"},
            error="boom" if i < errors else None,
        )
        s.start_time_unix_nano = now + i * 1000
        s.end_time_unix_nano = s.start_time_unix_nano + (100 if i < fast else 500) * 1_000_000
        spans.append(s)
    resp = server.post("/v1/traces", content=request(spans).SerializeToString(), headers=PROTOBUF)
    assert resp.status_code == 200, resp.text


def _create(server: RunningServer, **body: Any) -> dict[str, Any]:
    resp = server.post("/api/v1/slos", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_slo_status_alerts_and_crud(make_server: ServerFactory) -> None:
    server = make_server(**QUIET)
    send_runs(server, "checkout", fast=90, slow=10, errors=3)
    success = _create(
        server, name="checkout-success", agent="checkout", kind="success", objective=99
    )
    assert success["target"] == "99% of requests succeed"
    st = success["status"]
    assert st["attainment"] == 97.0 and st["met"] is False
    assert st["burn_rates"] == {"1h": 3.0, "6h": 3.0, "24h": 3.0, "30d": 3.0}
    assert st["error_budget_remaining"] == -200.0
    assert st["state"] == "breached"
    assert st["windows"]["1h"] == {
        "requests": 100,
        "good": 97,
        "bad": 3,
        "attainment": 97.0,
        "burn_rate": 3.0,
    }
    fast = _create(
        server,
        name="checkout-fast",
        agent="checkout",
        kind="latency",
        objective=95,
        threshold_ms=200,
        period_days=7,
        description="p95 under 200 ms",
    )
    assert fast["target"] == "95% of requests within 200 ms"
    assert fast["status"]["windows"]["7d"]["good"] == 90
    assert fast["status"]["burn_rates"]["7d"] == 2.0

    items = server.get("/api/v1/slos", params={"agent": "checkout"}).json()["items"]
    assert [s["name"] for s in items] == ["checkout-fast", "checkout-success"]
    assert server.get("/api/v1/slos", params={"agent": "nobody"}).json()["items"] == []

    # Alert rules read the same numbers.
    for name, expr in [
        ("Burn", 'slo_burn(agent="checkout", 1h) > 2.5'),
        ("Fast burn", 'slo_burn(1h, slo="checkout-fast") > 2.5'),
        ("Attainment", "slo_attainment(1h) < 95 by agent"),
    ]:
        r = server.post(
            "/api/v1/alerts/rules", json={"name": name, "expression": expr, "severity": "critical"}
        )
        assert r.status_code == 201, r.text
    cycle = server.post("/api/v1/alerts/evaluate").json()
    assert cycle["errors"] == []
    firing = {
        a["rule"]: a
        for a in server.get("/api/v1/alerts", params={"state": "firing"}).json()["items"]
    }
    assert set(firing) == {"Burn", "Attainment"}
    assert firing["Burn"]["value"] == pytest.approx(3.0)
    assert firing["Attainment"]["value"] == pytest.approx(90.0)
    assert firing["Attainment"]["labels"]["agent"] == "checkout"

    # Change, then delete.
    with server.client() as c:
        changed = c.patch(f"/api/v1/slos/{success['id']}", json={"objective": 95.0})
        assert changed.status_code == 200, changed.text
        assert changed.json()["status"]["burn_rates"]["1h"] == 0.6
        assert changed.json()["status"]["state"] == "ok"
        assert c.delete(f"/api/v1/slos/{fast['id']}").status_code == 204
        assert c.get(f"/api/v1/slos/{fast['id']}").status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"name": "x", "agent": "a", "kind": "latency", "objective": 95}, 400, "threshold_ms"),
        ({"name": "x", "agent": "a", "kind": "success", "objective": 100}, 400, "objective"),
        ({"name": "x", "agent": "a", "kind": "success", "objective": 0}, 400, "objective"),
        ({"name": "x", "agent": "a", "kind": "weird", "objective": 99}, 400, "kind"),
        ({"name": "x", "agent": "a"}, 400, "missing: kind, objective"),
        ({"name": "x", "agent": "a", "kind": "success", "objective": 99, "extra": 1}, 400, "extra"),
        (
            {"name": "x", "agent": "a", "kind": "success", "objective": 99, "threshold_ms": 5},
            400,
            "only a latency SLO",
        ),
    ],
)
def test_bad_slo_input_is_a_clear_4xx(
    server: RunningServer, body: dict[str, Any], status: int, message: str
) -> None:
    r = server.post("/api/v1/slos", json=body)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]["message"]


def test_duplicates_unknown_ids_and_the_cli(server: RunningServer) -> None:
    _create(server, name="dup", agent="a", kind="success", objective=99.9)
    r = server.post(
        "/api/v1/slos", json={"name": "dup", "agent": "b", "kind": "success", "objective": 99}
    )
    assert r.status_code == 409 and "exists" in r.json()["error"]["message"]
    with server.client() as c:
        assert c.patch("/api/v1/slos/999", json={"objective": 90}).status_code == 404
        assert c.delete("/api/v1/slos/999").status_code == 404
        assert c.patch("/api/v1/slos/1", json={"kind": None}).status_code == 400

    runner = CliRunner(env={"COLUMNS": "200"})
    created = runner.invoke(
        app,
        [
            "slo",
            "--url",
            server.url,
            "create",
            "--name",
            "cli-fast",
            "--agent",
            "a",
            "--objective",
            "95",
            "--latency-ms",
            "250",
        ],
    )
    assert created.exit_code == 0, created.output
    assert "95% of requests within 250 ms" in created.output
    listed = runner.invoke(app, ["slo", "--url", server.url, "list"])
    assert listed.exit_code == 0, listed.output
    assert "cli-fast" in listed.output and "no_data" in listed.output
    sid = server.get("/api/v1/slos").json()["items"][1]["id"]
    assert (
        runner.invoke(
            app, ["slo", "--url", server.url, "update", str(sid), "--objective", "90"]
        ).exit_code
        == 0
    )
    shown = runner.invoke(app, ["slo", "--url", server.url, "show", str(sid)])
    assert '"objective": 90' in shown.output
    assert runner.invoke(app, ["slo", "--url", server.url, "delete", str(sid)]).exit_code == 0
    bad = runner.invoke(app, ["slo", "--url", server.url, "show", str(sid)])
    assert bad.exit_code == 1 and "not found" in bad.output


def test_slo_writes_wait_for_the_sqlite_write_lock(sqlite_url: str) -> None:
    """Creating, changing and deleting an SLO while another connection (the ingest writer, the
    alert engine) holds SQLite's write lock waits for it instead of failing with a 503
    ("database is locked": a deferred transaction that reads first cannot wait in WAL mode)."""
    import sqlite3
    import threading

    from tests.conftest import run_server

    with run_server(sqlite_url, **QUIET, retention_enabled=False) as server:

        def locked(call: Any) -> Any:
            lock = sqlite3.connect(
                sqlite_url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False
            )
            lock.execute("BEGIN IMMEDIATE")
            release = threading.Timer(0.5, lock.commit)
            release.start()
            try:
                return call()
            finally:
                release.join()
                lock.close()

        created = locked(
            lambda: server.post(
                "/api/v1/slos",
                json={"name": "held", "agent": "a", "kind": "success", "objective": 99},
            )
        )
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        with server.client() as c:
            changed = locked(lambda: c.patch(f"/api/v1/slos/{sid}", json={"objective": 95}))
            assert changed.status_code == 200, changed.text
            assert changed.json()["objective"] == 95
            gone = locked(lambda: c.delete(f"/api/v1/slos/{sid}"))
            assert gone.status_code == 204, gone.text
