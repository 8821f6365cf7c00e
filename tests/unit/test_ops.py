"""The operations room's pure parts: retention cutoffs, the Redis link's warn-once/retry logic,
and the listening-socket filter that makes a graceful shutdown refuse (not reset) connections."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path

import pytest

from pharos.server.ops.redis_link import RedisLink
from pharos.server.ops.retention import DAY_NS, HOUR_NS, NS, check_order, plan
from pharos.server.ops.shutdown import refuse_new_connections
from pharos.server.settings import Settings

NOW = 1_800_000_000 * NS


def test_plan_cutoffs_follow_settings_in_each_columns_unit() -> None:
    settings = Settings(retention_spans_hours=72, retention_rollups_1m_days=14)
    targets = {(t.signal, t.table): t for t in plan(settings, NOW)}
    spans = targets[("spans", "traces")]
    assert (spans.column, spans.cutoff) == ("start_ns", NOW - 72 * HOUR_NS)
    logs = targets[("logs", "logs")]
    assert logs.cutoff == NOW - 24 * HOUR_NS
    assert targets[("metrics", "metric_points")].cutoff == NOW - 7 * DAY_NS
    minute = targets[("rollups_1m", "rollups_1m")]
    assert minute.column == "bucket_start" and minute.cutoff == (NOW - 14 * DAY_NS) // NS
    hour = targets[("rollups", "rollups_1h")]
    assert hour.cutoff == (NOW - 90 * DAY_NS) // NS and hour.cutoff_ns == NOW - 90 * DAY_NS
    assert targets[("rollups", "llm_usage_daily")].column == "day"
    assert targets[("alerts", "outbox")].only == "delivered"
    assert targets[("alerts", "alerts")].only == "settled"
    # Raw data goes before the summaries computed from it; rollups outlive spans by default.
    order = [t.table for t in plan(settings, NOW)]
    assert order.index("traces") < order.index("rollups_1m") < order.index("rollups_1h")
    assert hour.cutoff * NS < spans.cutoff


def test_check_order_warns_when_summaries_would_die_first() -> None:
    assert check_order(Settings()) == []
    short = Settings(retention_rollups_days=1, retention_spans_hours=72)
    assert "shorter than the raw data" in check_order(short)[0]
    odd = Settings(retention_rollups_1m_days=100, retention_rollups_days=90)
    assert "retention_rollups_1m_days" in check_order(odd)[0]


def test_redis_link_warns_once_retries_sparingly_and_says_when_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    link = RedisLink("rate limits", logging.getLogger("t"), retry_seconds=1.0, clock=lambda: now[0])
    caplog.set_level(logging.WARNING)
    assert link.should_try()
    for _ in range(50):
        link.failed(ConnectionError("refused"))
    assert not link.up and link.outages == 1
    assert [r.getMessage() for r in caplog.records].count(
        "Redis unreachable (ConnectionError: refused): rate limits fall back to this "
        "instance only until it is back"
    ) == 1
    assert not link.should_try()  # within retry_seconds: straight to the local fallback
    now[0] = 1.5
    assert link.should_try()  # one probe
    assert not link.should_try()  # and not another until the next second
    link.ok()
    assert link.up and link.should_try()
    assert any("reachable again" in r.getMessage() for r in caplog.records)
    assert link.state() == "ok"


def test_refuse_new_connections_drops_new_attempts_keeps_established() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    served, _ = listener.accept()
    try:
        assert refuse_new_connections(listener)
        client.sendall(b"ping")  # an established connection carries on
        assert served.recv(4) == b"ping"
        with pytest.raises(TimeoutError):  # a new attempt gets no SYN-ACK at all
            socket.create_connection(("127.0.0.1", port), timeout=0.3)
        outcome: list[BaseException] = []

        def late() -> None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=10).close()
            except OSError as exc:
                outcome.append(exc)

        t = threading.Thread(target=late)
        t.start()
        time.sleep(0.2)
        listener.close()  # ... and once the socket is closed, its retry is refused
        t.join(15)
        assert outcome and isinstance(outcome[0], ConnectionRefusedError)
    finally:
        client.close()
        served.close()
        listener.close()


def test_refuse_new_connections_ignores_unix_sockets(tmp_path: object) -> None:
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        assert refuse_new_connections(unix) is False
    finally:
        unix.close()


def test_sqlite_page_cache_is_bounded_per_connection(tmp_path: Path) -> None:
    """Readers get a small page cache (a pool of them each fills its own), the writer's one
    connection a larger one (db/engine.py: READER_CACHE_MIB, WRITER_CACHE_MIB)."""
    from sqlalchemy import text

    from pharos.server.db.engine import (
        READER_CACHE_MIB,
        WRITER_CACHE_MIB,
        make_engine,
        make_writer_engine,
    )

    url = f"sqlite:///{tmp_path / 'c.db'}"
    for engine, mib in (
        (make_engine(url), READER_CACHE_MIB),
        (make_writer_engine(url), WRITER_CACHE_MIB),
    ):
        try:
            with engine.connect() as conn:
                assert conn.execute(text("PRAGMA cache_size")).scalar_one() == -mib * 1024
        finally:
            engine.dispose()
    assert READER_CACHE_MIB * 16 <= 256  # the whole reader pool (8 + 8 overflow)
