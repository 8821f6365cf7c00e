"""`pharos backup` / `pharos restore` on SQLite while ingest runs, and `pharos db upgrade` run by
several processes at once (a migration lock on both dialects)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from pharos.cli import app
from pharos.server.db.engine import make_engine
from pharos.server.db.migrate import current_revision, head_revision
from pharos.server.demo import demo_requests
from tests.conftest import run_server
from tests.ops_helpers import IngestLoad, stored_span_counts

runner = CliRunner()


def test_backup_while_ingesting_then_restore(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    url = f"sqlite:///{db}"
    copy = tmp_path / "backups" / "pharos-backup.db"
    requests = list(demo_requests(6000, seed=11, max_spans=64))
    with run_server(url) as server:
        load = IngestLoad([server.url], requests, threads=3).start()
        try:
            deadline = time.monotonic() + 60
            while load.acked_count() < 8000:  # a database worth copying, ingest in full flow
                assert time.monotonic() < deadline, "ingest too slow"
                time.sleep(0.05)
            before = load.snapshot()  # acknowledged before the backup started
            result = runner.invoke(app, ["backup", str(copy), "--database-url", url])
            during = load.acked_count()
        finally:
            load.stop()
    assert result.exit_code == 0, result.output
    assert "integrity_check ok" in result.output
    assert during > len(before), "ingest kept going while the backup ran"
    assert not load.errors, load.errors[:3]
    assert not copy.with_name(copy.name + ".partial").exists()

    restored = tmp_path / "restored.db"
    done = runner.invoke(app, ["restore", str(copy), "--database-url", f"sqlite:///{restored}"])
    assert done.exit_code == 0, done.output
    with sqlite3.connect(restored) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    keys, rows = stored_span_counts(f"sqlite:///{restored}")
    missing = before - keys
    assert not missing, f"{len(missing)} spans acknowledged before the backup are missing"
    assert rows == len(keys)  # each once
    # The restored file is a working Pharos database at the current revision.
    engine = make_engine(f"sqlite:///{restored}")
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
    # A second restore over it needs --force; a damaged backup is refused.
    again = runner.invoke(app, ["restore", str(copy), "--database-url", f"sqlite:///{restored}"])
    assert again.exit_code == 2 and "--force" in again.output
    broken = tmp_path / "broken.db"
    data = bytearray(copy.read_bytes())
    data[200_000:260_000] = b"\xff" * 60_000
    broken.write_bytes(bytes(data))
    bad = runner.invoke(
        app, ["restore", str(broken), "--database-url", f"sqlite:///{tmp_path / 'x.db'}"]
    )
    assert bad.exit_code == 2 and "restore failed" in bad.output


def test_backup_names_pg_dump_for_postgresql(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["backup", str(tmp_path / "x"), "--database-url", "postgresql://u@127.0.0.1:1/pharos"],
    )
    assert result.exit_code == 2
    assert "pg_dump" in result.output


def test_concurrent_db_upgrades_wait_for_each_other(db_url: str) -> None:
    """Three instances starting at once each run `pharos db upgrade`: one migrates, the others
    wait for its lock and find nothing left to do; none fails."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pharos.cli", "db", "upgrade", "--database-url", db_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
