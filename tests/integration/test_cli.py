"""The `pharos` command as a user runs it."""

from __future__ import annotations

from sqlalchemy import func, inspect, select
from typer.testing import CliRunner

from pharos.cli import app
from pharos.server.db.engine import make_engine
from pharos.server.db.schema import logs, spans
from tests.conftest import RunningServer

runner = CliRunner()


def test_db_upgrade_and_current(db_url: str) -> None:
    result = runner.invoke(app, ["db", "upgrade", "--database-url", db_url])
    assert result.exit_code == 0, result.output
    engine = make_engine(db_url)
    assert {"spans", "traces"} <= set(inspect(engine).get_table_names())
    engine.dispose()
    current = runner.invoke(app, ["db", "current", "--database-url", db_url])
    assert current.exit_code == 0 and "up to date" in current.output


def test_serve_refuses_public_bind_without_keys(sqlite_url: str) -> None:
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--database-url", sqlite_url])
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0" in result.output
    assert "--insecure" in result.output


def test_invalid_configuration_is_reported(sqlite_url: str) -> None:
    result = runner.invoke(app, ["serve", "--database-url", "mysql://nope"])
    assert result.exit_code == 2
    assert "database_url" in result.output


def test_demo_sends_traffic_to_a_running_server(server: RunningServer) -> None:
    result = runner.invoke(app, ["demo", "--url", server.url, "--traces", "50", "--hours", "1"])
    assert result.exit_code == 0, result.output
    assert "sent" in result.output
    engine = make_engine(server.settings.database_url)
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(spans)).scalar_one()
        stored_logs = conn.execute(select(func.count()).select_from(logs)).scalar_one()
    engine.dispose()
    assert stored > 50 * 3
    assert stored_logs > 50  # a line per run at least, plus tool results, errors, warnings
    assert f"sent {stored} spans and {stored_logs} logs" in result.output
    # Same seed again: exporter-style resend, nothing duplicated.
    again = runner.invoke(app, ["demo", "--url", server.url, "--traces", "50", "--hours", "1"])
    assert again.exit_code == 0
    engine = make_engine(server.settings.database_url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(spans)).scalar_one() == stored
        # The logs are new lines: OTLP gives logs no id, and the second run's are dated now.
        assert conn.execute(select(func.count()).select_from(logs)).scalar_one() > stored_logs
    engine.dispose()


def test_demo_reports_unreachable_server() -> None:
    result = runner.invoke(app, ["demo", "--url", "http://127.0.0.1:9", "--traces", "1"])
    assert result.exit_code == 1
    assert "cannot reach" in result.output
