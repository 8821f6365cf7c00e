"""`pharos db upgrade` (the real CLI, a subprocess) on a database a real server is ingesting
into, on SQLite and PostgreSQL: the upgrade succeeds, ingest goes on, nothing acknowledged is
lost.

The database starts where a rolling upgrade does: at the previous release's schema, under a
server that runs on it (the last migrations only add indexes, so this server's code works
either way). It is put there by downgrading under the running (idle) server; then, while
clients keep exporting, `pharos db upgrade` builds the missing indexes (CONCURRENTLY on
PostgreSQL) — and runs a second time, as every deploy script does, with nothing left to do.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from pharos.server.db.engine import make_engine
from pharos.server.db.migrate import current_revision, downgrade, head_revision, upgrade
from pharos.server.demo import demo_requests
from tests.ops_helpers import IngestLoad, start_server, stop_server, stored_span_counts

pytestmark = pytest.mark.slow

#: The release before the latest index migrations (0009 ops indexes, 0010 rollup indexes).
PREVIOUS = "0008"


def _revision(db_url: str) -> str | None:
    engine = make_engine(db_url)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()


def _pharos_db_upgrade(db_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pharos.cli", "db", "upgrade", "--database-url", db_url],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _wait_for_acks(load: IngestLoad, more_than: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while load.acked_count() <= more_than:
        assert time.monotonic() < deadline, (load.outcomes, load.errors[:5])
        time.sleep(0.05)


def test_db_upgrade_while_a_server_ingests(db_url: str, tmp_path: Path) -> None:
    upgrade(db_url)
    server = start_server(db_url, tmp_path / "server.log", env={"PHAROS_RETENTION_ENABLED": "0"})
    # The previous release's schema under the running server (before the load: a downgrade
    # dropping indexes of several tables is not meant to run beside ingest, an upgrade is).
    downgrade(db_url, PREVIOUS)
    assert _revision(db_url) == PREVIOUS
    requests = list(demo_requests(20_000, seed=41, max_spans=64))
    load = IngestLoad([server.url], requests, threads=3).start()
    try:
        _wait_for_acks(load, 10_000)  # it ingests on the old schema

        before = load.acked_count()
        started = time.monotonic()
        upgraded = _pharos_db_upgrade(db_url)
        ended = time.monotonic()
        with load.lock:
            during = sum(1 for t, _ in load.acked_at if started <= t <= ended)
        assert during > 0, "no export was acknowledged while `pharos db upgrade` ran"
        assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
        assert "is at revision head" in " ".join((upgraded.stdout + upgraded.stderr).split())
        assert _revision(db_url) == head_revision()
        _wait_for_acks(load, before)  # ingest goes on once the upgrade is done
        again = _pharos_db_upgrade(db_url)  # the next deploy: nothing to do
        assert again.returncode == 0, again.stdout + again.stderr
        _wait_for_acks(load, load.acked_count() + 1000)
        assert server.proc.poll() is None, server.output()
    finally:
        load.stop()
        stop_server(server)
    assert load.outcomes["cut"] == 0, (load.outcomes, load.errors[:5])
    # 503 (writer waiting on a lock held by the migration) is retried by clients, as exporters do
    assert set(load.outcomes) <= {"200", "503"}, (load.outcomes, load.errors[:5])
    keys, rows = stored_span_counts(db_url)
    missing = load.acked - keys
    assert not missing, f"{len(missing)} acknowledged spans lost"
    assert rows == len(keys)  # and none stored twice
    assert _revision(db_url) == head_revision()
