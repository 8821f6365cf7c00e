"""The CLI commands that talk to a running server (``pharos alerts``, ``slo``, ``report``,
``demo``) against a real server that has API keys, on SQLite and PostgreSQL: without a key they
say how to pass one, with ``--key`` or ``PHAROS_API_KEY`` they work, a key without the scope
gets a clear 403, and ``pharos demo`` also takes the OTEL_EXPORTER_OTLP_HEADERS an exporter
would."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import Result
from sqlalchemy import func, select
from typer.testing import CliRunner

from pharos.cli import app
from pharos.server.access.keys import create_key, parse_scopes
from pharos.server.db.engine import make_engine
from pharos.server.db.schema import spans
from tests.conftest import RunningServer, ServerFactory

ROOT = Path(__file__).resolve().parents[2]
WRONG_KEY = "phk_" + "x" * 43
#: No key or server from the environment the tests run in.
CLEAN = {"PHAROS_API_KEY": None, "PHAROS_URL": None, "OTEL_EXPORTER_OTLP_HEADERS": None}
runner = CliRunner(env={"COLUMNS": "250", **CLEAN})


class Protected:
    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.url = server.url
        engine = make_engine(server.settings.database_url)
        try:
            self.keys = {
                s: create_key(engine, f"cli-{s}", parse_scopes(s))[0]
                for s in ("ingest", "read", "admin")
            }
        finally:
            engine.dispose()
        deadline = time.monotonic() + 10  # the open-mode answer is cached for a moment
        while server.get("/api/v1/alerts").status_code != 401:
            assert time.monotonic() < deadline, "the server stayed open after a key was created"
            time.sleep(0.05)

    def spans(self) -> int:
        engine = make_engine(self.server.settings.database_url)
        try:
            with engine.connect() as conn:
                return int(conn.execute(select(func.count()).select_from(spans)).scalar_one())
        finally:
            engine.dispose()


@pytest.fixture
def protected(make_server: ServerFactory) -> Protected:
    return Protected(make_server(key_cache_seconds=0.2))


def run(args: list[str], **env: str) -> tuple[Result, str]:
    """The result and its output (stdout + stderr) with whitespace runs made single spaces."""
    result = runner.invoke(app, args, env=env or None)
    return result, " ".join(result.output.split())


def assert_needs_key(result: Result, text: str) -> None:
    assert result.exit_code == 1, text
    assert "401" in text and "needs an API key" in text, text
    assert "--key" in text and "PHAROS_API_KEY" in text, text


def test_alerts_cli_with_and_without_a_key(protected: Protected) -> None:
    url, keys = protected.url, protected.keys
    result, text = run(["alerts", "--url", url, "list"])
    assert_needs_key(result, text)
    result, text = run(["alerts", "--url", url, "--key", keys["read"], "list"])
    assert result.exit_code == 0, text
    result, text = run(["alerts", "--url", url, "summary"], PHAROS_API_KEY=keys["read"])
    assert result.exit_code == 0, text

    rule = ["rules", "add", "cli-slow", "p95(latency, 10m) > 1500", "--severity", "warning"]
    result, text = run(["alerts", "--url", url, *rule], PHAROS_API_KEY=keys["read"])
    assert result.exit_code == 1, text
    assert "403" in text and "lacks the admin scope" in text and "--key" in text, text
    result, text = run(["alerts", "--url", url, "--key", keys["admin"], *rule])
    assert result.exit_code == 0 and "cli-slow" in text, text
    result, text = run(["alerts", "--url", url, "rules", "list"], PHAROS_API_KEY=keys["admin"])
    assert result.exit_code == 0 and "cli-slow" in text, text

    result, text = run(["alerts", "--url", url, "--key", WRONG_KEY, "list"])
    assert result.exit_code == 1, text
    assert "401" in text and "was refused" in text and "--key" in text, text
    assert WRONG_KEY not in text
    # the flag wins over the environment
    result, text = run(
        ["alerts", "--url", url, "--key", keys["read"], "list"], PHAROS_API_KEY=WRONG_KEY
    )
    assert result.exit_code == 0, text


def test_slo_cli_with_and_without_a_key(protected: Protected) -> None:
    url, keys = protected.url, protected.keys
    result, text = run(["slo", "--url", url, "list"])
    assert_needs_key(result, text)
    create = ["create", "--name", "cli-ok", "--agent", "checkout", "--objective", "99.5"]
    result, text = run(["slo", "--url", url, "--key", keys["admin"], *create])
    assert result.exit_code == 0 and "cli-ok" in text, text
    result, text = run(["slo", "--url", url, "list"], PHAROS_API_KEY=keys["read"])
    assert result.exit_code == 0 and "cli-ok" in text, text
    result, text = run(["slo", "--url", url, "--key", keys["ingest"], "list"])
    assert result.exit_code == 1 and "403" in text and "read scope" in text, text


def test_report_cli_with_and_without_a_key(protected: Protected, tmp_path: Path) -> None:
    url, keys = protected.url, protected.keys
    result, text = run(["report", "--url", url])
    assert_needs_key(result, text)
    out = tmp_path / "r.html"
    result, text = run(["report", "--url", url, "--key", keys["read"], "--html", str(out)])
    assert result.exit_code == 0, text
    assert out.read_text().startswith("<!")
    result, text = run(["report", "--url", url, "--send"], PHAROS_API_KEY=keys["read"])
    assert result.exit_code == 1, text
    assert "403" in text and "admin scope" in text and "PHAROS_API_KEY" in text, text


def test_demo_with_a_key_or_the_otlp_headers(protected: Protected) -> None:
    url, keys = protected.url, protected.keys
    demo = ["demo", "--url", url, "--traces", "5", "--hours", "1"]
    result, text = run(demo)
    assert_needs_key(result, text)
    assert "--scopes ingest" in text
    assert protected.spans() == 0

    result, text = run(demo, PHAROS_API_KEY=keys["read"])
    assert result.exit_code == 1 and "403" in text and "ingest scope" in text, text

    result, text = run([*demo, "--key", keys["ingest"]])
    assert result.exit_code == 0, text
    stored = protected.spans()
    assert stored > 5 and f"sent {stored} spans" in text

    # as an OTLP exporter is configured: a bearer token, or x-api-key
    for headers in (f"authorization=Bearer%20{keys['ingest']}", f"x-api-key={keys['admin']}"):
        result, text = run(
            ["demo", "--url", url, "--traces", "5", "--seed", "8"],
            **{"OTEL_EXPORTER_OTLP_HEADERS": headers},
        )
        assert result.exit_code == 0, text
    assert protected.spans() > stored

    bad = f"authorization={quote('Bearer ' + WRONG_KEY)}"
    result, text = run(demo, OTEL_EXPORTER_OTLP_HEADERS=bad)
    assert result.exit_code == 1, text
    assert "401" in text and "OTEL_EXPORTER_OTLP_HEADERS" in text and "was refused" in text
    # --key replaces the headers' key
    result, text = run([*demo, "--key", keys["ingest"]], OTEL_EXPORTER_OTLP_HEADERS=bad)
    assert result.exit_code == 0, text


def test_demo_sdk_passes_the_key_to_the_example(protected: Protected) -> None:
    env = {k: v for k, v in os.environ.items() if k not in CLEAN}
    env["PYTHONPATH"] = str(ROOT / "src")
    base = [sys.executable, "-m", "pharos.cli", "demo", "--sdk", "--url", protected.url]
    base += ["--traces", "2"]

    def sdk(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *extra], env=env, capture_output=True, text=True, timeout=120, check=False
        )

    refused = sdk()
    assert refused.returncode == 1
    text = " ".join(refused.stderr.split())
    assert "needs an API key" in text and "--key" in text, text
    done = sdk("--key", protected.keys["ingest"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "handled 2 tickets" in done.stderr
    assert protected.spans() > 2
