"""Partial updates of the agent registry on SQLite and PostgreSQL: ``pharos agents update`` and
``PATCH /api/v1/agents/registry/{name}`` change only what they are given."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from typer.testing import CliRunner

from pharos.cli import app
from tests.conftest import RunningServer

runner = CliRunner()
FULL = [
    "--upstream",
    "http://127.0.0.1:9001",
    "--rpm",
    "60",
    "--tpm",
    "100000",
    "--max-queue",
    "5",
    "--max-wait",
    "3s",
    "--budget",
    "25",
    "--budget-period",
    "monthly",
    "--label",
    "team=care",
    "--label",
    "environment=prod",
]


def agents(args: list[str], db_url: str) -> tuple[int, Any, str]:
    result = runner.invoke(app, ["agents", *args, "--database-url", db_url])
    try:
        data = json.loads(result.stdout)
    except ValueError:
        data = None
    return result.exit_code, data, " ".join(result.output.split())


def test_cli_update_changes_only_the_given_fields(db_url: str) -> None:
    code, added, text = agents(["add", "bot", *FULL], db_url)
    assert code == 0, text
    code, got, text = agents(["update", "bot", "--rpm", "120"], db_url)
    assert code == 0, text
    assert got["rpm"] == 120
    for field in ("upstream_url", "tpm", "max_queue", "max_wait_seconds", "budget", "labels"):
        assert got[field] == added[field], field
    assert got["updated_ns"] > added["updated_ns"]

    code, got, text = agents(
        ["update", "bot", "--label", "environment=staging", "--remove-label", "team"], db_url
    )
    assert code == 0, text
    assert got["labels"] == {"environment": "staging"}
    code, got, _ = agents(["update", "bot", "--budget", "40"], db_url)
    assert got["budget"] == {"limit_usd": 40.0, "period": "monthly"}  # the period stays
    code, got, _ = agents(["update", "bot", "--max-wait", "1.5s", "--max-queue", "0"], db_url)
    assert (got["max_wait_seconds"], got["max_queue"]) == (1.5, 0)
    code, got, text = agents(
        [
            "update",
            "bot",
            "--rpm",
            "none",
            "--tpm",
            "off",
            "--budget",
            "none",
            "--upstream",
            "none",
        ],
        db_url,
    )
    assert code == 0, text
    assert (got["rpm"], got["tpm"], got["budget"], got["upstream_url"]) == (None, None, None, None)
    assert got["labels"] == {"environment": "staging"} and got["max_queue"] == 0

    # the registry keeps what the last update said
    code, listed, _ = agents(["list", "--json"], db_url)
    assert [a["name"] for a in listed] == ["bot"]
    assert {k: v for k, v in listed[0].items() if k != "updated_ns"} == {
        k: v for k, v in got.items() if k != "updated_ns"
    }


def test_cli_update_refuses_what_it_cannot_do(db_url: str) -> None:
    assert agents(["add", "bot", "--rpm", "60"], db_url)[0] == 0
    code, _, text = agents(["update", "nobody", "--rpm", "5"], db_url)
    assert code == 1 and "not registered" in text
    code, _, text = agents(["update", "bot"], db_url)
    assert code == 2 and "nothing to change" in text
    for bad, word in (
        (["--rpm", "abc"], "--rpm"),
        (["--rpm", "0"], "rpm"),
        (["--max-wait", "forever"], "max_wait"),
        (["--budget", "-3"], "budget"),
        (["--budget-period", "weekly", "--budget", "5"], "budget_period"),
        (["--budget-period", "monthly"], "no budget"),  # bot has none
        (["--upstream", "ftp://x"], "upstream_url"),
        (["--label", "novalue"], "KEY=VALUE"),
    ):
        code, _, text = agents(["update", "bot", *bad], db_url)
        assert code == 2 and word in text, (bad, text)
    code, got, _ = agents(["list", "--json"], db_url)
    assert got[0]["rpm"] == 60 and got[0]["budget"] is None  # nothing changed


def test_patch_changes_only_the_fields_sent(server: RunningServer) -> None:
    with server.client() as c:
        body = {
            "name": "support-bot",
            "upstream_url": "http://127.0.0.1:9999",
            "rpm": 60,
            "tpm": 100000,
            "max_queue": 5,
            "max_wait": "2s",
            "budget_usd": "25",
            "labels": {"team": "care", "environment": "prod"},
        }
        added = c.post("/api/v1/agents/registry", json=body).json()
        r = c.patch("/api/v1/agents/registry/support-bot", json={"rpm": 120})
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["rpm"] == 120
        for field in ("upstream_url", "tpm", "max_queue", "max_wait_seconds", "budget", "labels"):
            assert got[field] == added[field], field

        patch = {"tpm": None, "budget_usd": None, "labels": {"team": None, "tier": "gold"}}
        got = c.patch("/api/v1/agents/registry/support-bot", json=patch).json()
        assert (got["tpm"], got["budget"]) == (None, None)
        assert got["labels"] == {"environment": "prod", "tier": "gold"}
        got = c.patch(
            "/api/v1/agents/registry/support-bot", json={"max_queue": None, "max_wait": None}
        ).json()
        assert (got["max_queue"], got["max_wait_seconds"]) == (20, 10)  # the defaults
        assert c.get("/api/v1/agents/registry/support-bot").json() == got

        for bad in (
            {"rpm": 0},
            {"max_wait": "forever"},
            {"budget_usd": "x"},
            {"budget_period": "monthly"},  # no budget to have a period
            {"labels": {"team": 3}},
            {"name": "renamed"},
            {"surprise": 1},
        ):
            r = c.patch("/api/v1/agents/registry/support-bot", json=bad)
            assert r.status_code == 400, (bad, r.text)
            assert r.json()["error"]["message"]
        assert c.get("/api/v1/agents/registry/support-bot").json() == got
        assert c.patch("/api/v1/agents/registry/nope", json={"rpm": 1}).status_code == 404


def test_concurrent_patches_of_different_fields_all_land(server: RunningServer) -> None:
    assert server.post("/api/v1/agents/registry", json={"name": "busy"}).status_code == 201

    def patch(i: int) -> int:
        with server.client() as c:
            r = c.patch("/api/v1/agents/registry/busy", json={"labels": {f"k{i}": str(i)}})
            return r.status_code

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(patch, range(16))) == [200] * 16
    labels = server.get("/api/v1/agents/registry/busy").json()["labels"]
    assert labels == {f"k{i}": str(i) for i in range(16)}
