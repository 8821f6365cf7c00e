"""The engine with an explicit clock over real rollup rows, on both dialects: a flapping
condition with keep_firing_for notifies once and resolves once (also when the engine restarts
and loses its memory), repeats while firing, and silences mute without hiding."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, insert, select

from pharos.server.alerting import store
from pharos.server.alerting.engine import AlertEngine
from pharos.server.db.engine import make_engine
from pharos.server.db.migrate import upgrade
from pharos.server.db.schema import outbox, rollups_1m

NS = 1_000_000_000
T0 = 1_790_000_000 // 60 * 60  # a minute boundary


@pytest.fixture
def engines(db_url: str) -> Iterator[tuple[Engine, Engine]]:
    upgrade(db_url)
    read = make_engine(db_url, pool_size=2)
    write = make_engine(db_url, sqlite_begin="IMMEDIATE", pool_size=2)
    yield read, write
    read.dispose()
    write.dispose()


def _traffic(write: Engine, minutes: list[int], agent: str = "checkout") -> None:
    rows = [
        {
            "bucket_start": T0 + m * 60,
            "agent": agent,
            "model": "",
            "kind": "request",
            "count": 5,
            "errors": 0,
            "duration_sum_ms": 500.0,
            "duration_max_ms": 100.0,
            "input_tokens": 0,
            "output_tokens": 0,
            "cached_tokens": 0,
            "cost_nanousd": 0,
            "histogram": '{"500": 5}',
        }
        for m in minutes
    ]
    with write.begin() as conn:
        conn.execute(insert(rollups_1m), rows)


def _setup(write: Engine, **rule: object) -> None:
    with write.begin() as conn:
        store.create_channel(
            conn,
            {
                "name": "hook",
                "type": "webhook",
                "config": {"url": "http://127.0.0.1:9/x"},
                "severities": ["warning"],
            },
            0,
        )
        store.create_rule(
            conn,
            {
                "name": "busy",
                "expression": "requests(1m) > 0 by agent",
                "severity": "warning",
                **rule,
            },
            0,
        )


def _sent_events(read: Engine) -> list[str]:
    with read.connect() as conn:
        return [r[0] for r in conn.execute(select(outbox.c.event).order_by(outbox.c.id))]


def at(minute: int, second: int = 30) -> int:
    return (T0 + minute * 60 + second) * NS


def test_flapping_condition_notifies_once_even_across_engine_restarts(
    engines: tuple[Engine, Engine],
) -> None:
    read, write = engines
    _setup(write, keep_firing_for_s=300)
    _traffic(write, list(range(0, 20, 2)))  # traffic every other minute for 20 minutes
    engine = AlertEngine(read, write)
    for minute in range(0, 30):
        if minute == 10:
            engine = AlertEngine(read, write)  # a new leader: no memory of last-true times
        engine.run_cycle(at(minute))
    assert _sent_events(read) == ["firing", "resolved"]
    with read.connect() as conn:
        (alert,) = store.list_alerts(
            conn,
            states=None,
            severities=None,
            agent="checkout",
            rule_id=None,
            before_id=None,
            limit=10,
        )
    # Last true at minute 18; resolved once false for 5 minutes (the first cycle at >= 23:30).
    assert alert.state == "resolved" and alert.resolved_ns == at(23)


def test_without_damping_the_same_flapping_is_a_storm(engines: tuple[Engine, Engine]) -> None:
    read, write = engines
    _setup(write)
    _traffic(write, list(range(0, 20, 2)))
    engine = AlertEngine(read, write)
    for minute in range(0, 22):
        engine.run_cycle(at(minute))
    assert _sent_events(read) == ["firing", "resolved"] * 10


def test_repeat_and_silence(engines: tuple[Engine, Engine]) -> None:
    read, write = engines
    _setup(write, repeat_interval_s=600)
    _traffic(write, list(range(0, 60)))
    engine = AlertEngine(read, write)
    for minute in range(0, 21):
        engine.run_cycle(at(minute))
    assert _sent_events(read) == ["firing", "repeat", "repeat"]  # at 0, 10, 20
    from pharos.server.alerting.silences import Matcher

    with write.begin() as conn:
        store.create_silence(
            conn, [Matcher("agent", "=", "checkout")], at(21), at(45), "ana", "deploy", at(21)
        )
    for minute in range(21, 50):
        engine.run_cycle(at(minute))
    # Muted from 21 to 45 (the repeat due at 30 and 40 is not sent); at 45 it is due again.
    assert _sent_events(read) == ["firing", "repeat", "repeat", "repeat"]
    with read.connect() as conn:
        history = [h["event"] for h in store.alert_history(conn, 1)]
    assert "silenced" in history and "unsilenced" in history


def test_anomaly_is_a_z_score_against_the_previous_windows(engines: tuple[Engine, Engine]) -> None:
    read, write = engines
    _traffic(write, list(range(0, 60)))  # 5 requests a minute for an hour
    spike = [
        {
            "bucket_start": T0 + m * 60,
            "agent": "checkout",
            "model": "",
            "kind": "request",
            "count": 45,  # 50 a minute in the last five minutes
            "errors": 0,
            "duration_sum_ms": 0.0,
            "duration_max_ms": 0.0,
            "input_tokens": 0,
            "output_tokens": 0,
            "cached_tokens": 0,
            "cost_nanousd": 0,
            "histogram": "{}",
        }
        for m in range(55, 60)
    ]
    with write.begin() as conn:
        for row in spike:
            conn.execute(
                rollups_1m.update()
                .where(rollups_1m.c.bucket_start == row["bucket_start"])
                .values(count=rollups_1m.c.count + row["count"])
            )
        store.create_rule(
            conn,
            {
                "name": "spike",
                "expression": "anomaly(requests(5m)) > 3 by agent",
                "severity": "warning",
            },
            0,
        )
        store.create_rule(
            conn,
            {
                "name": "steady",
                "expression": "anomaly(requests(5m)) > 3 by agent",
                "severity": "info",
                "enabled": False,
            },
            0,
        )
    engine = AlertEngine(read, write)
    engine.run_cycle(at(50))  # before the spike: every window alike, no spread: no data
    assert engine.firing.total == 0
    engine.run_cycle(at(59))
    assert engine.firing.total == 1
    assert engine.firing.items[0]["rule"] == "spike"
    assert engine.firing.items[0]["value"] > 3
