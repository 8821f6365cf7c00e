"""How a cycle persists, on both dialects: every state change in a few statements with each
optimistic check kept (one lost to an operator loses alone, with its history and notifications),
outbox rows once per key, the engine's copy of the active alerts following every writer, and
latency histograms carried between cycles that follow a rewritten past minute."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, bindparam, insert, select, update

from pharos.server.alerting import store
from pharos.server.alerting.engine import AlertEngine, _Change
from pharos.server.alerting.rules import RuleDef
from pharos.server.alerting.silences import ActiveSilence
from pharos.server.alerting.state import Timing
from pharos.server.analytics import store as rollup_store
from pharos.server.db.engine import make_engine
from pharos.server.db.migrate import upgrade
from pharos.server.db.schema import alert_events, alerts, outbox, rollups_1m

NS = 1_000_000_000
T0 = 1_790_000_000 // 60 * 60


@pytest.fixture
def engines(db_url: str) -> Iterator[tuple[Engine, Engine]]:
    upgrade(db_url)
    read = make_engine(db_url, pool_size=2)
    write = make_engine(db_url, sqlite_begin="IMMEDIATE", pool_size=2)
    yield read, write
    read.dispose()
    write.dispose()


def _new(fp: str, state: str = "firing", at: int = 1000) -> store.AlertWrite:
    return store.AlertWrite(
        None,
        None,
        {
            "rule_id": 1,
            "fingerprint": fp,
            "labels": store.dumps({"agent": fp}),
            "state": state,
            "value": 1.5,
            "message": f"m {fp}",
            "episode": 1,
            "pending_since_ns": at,
            "fired_ns": at,
            "last_true_ns": at,
            "resolved_ns": None,
            "last_notified_ns": at,
            "silenced_by": None,
            "severity": "warning",
            "rule_name": "r",
            "last_eval_ns": at,
            "updated_ns": at,
            "acked_by": None,
            "acked_ns": None,
            "ack_comment": None,
        },
    )


def _db_rows(read: Engine) -> dict[int, store.AlertRow]:
    columns = [alerts.c[name] for name in store.AlertRow._fields]
    with read.connect() as conn:
        return {int(r[0]): store.AlertRow(*r) for r in conn.execute(select(*columns))}


def _operator_resolves(write: Engine, alert_id: int, at: int) -> None:
    with write.begin() as conn:  # what POST /alerts/{id}/resolve writes
        conn.execute(
            update(alerts)
            .where(alerts.c.id == alert_id)
            .values(state="resolved", resolved_ns=at, pending_since_ns=None, updated_ns=at)
        )


def test_save_alerts_inserts_and_updates_at_once_and_a_lost_check_loses_alone(
    engines: tuple[Engine, Engine],
) -> None:
    read, write = engines
    with write.begin() as conn:
        ids = store.save_alerts(conn, [_new(f"fp{i}") for i in range(5)])
    rows = _db_rows(read)
    assert sorted(i for i in ids if i is not None) == sorted(rows)
    assert [rows[i].fingerprint for i in ids if i is not None] == [f"fp{i}" for i in range(5)]

    def resolve(row: store.AlertRow) -> store.AlertWrite:
        values = {"state": "resolved", "resolved_ns": 2000, "last_eval_ns": 2000}
        return store.AlertWrite(row.id, row.updated_ns, {**values, "updated_ns": 2000})

    first, second, third = (rows[i] for i in ids[:3] if i is not None)
    _operator_resolves(write, second.id, 1500)  # between the engine's read and its write
    with write.begin() as conn:
        saved = store.save_alerts(
            conn, [resolve(first), resolve(second), resolve(third), _new("fp9")]
        )
    assert saved[:3] == [first.id, None, third.id] and saved[3] is not None
    after = _db_rows(read)
    assert after[first.id].resolved_ns == after[third.id].resolved_ns == 2000
    assert after[second.id].resolved_ns == 1500 and after[second.id].updated_ns == 1500
    assert after[saved[3]].fingerprint == "fp9"


def test_an_executemany_update_reports_every_row_it_matched(
    engines: tuple[Engine, Engine],
) -> None:
    """What save_alerts relies on to skip the row-by-row path: the DBAPI's rowcount of an
    executemany is the sum over its rows (sqlite3, psycopg 3)."""
    _, write = engines
    with write.begin() as conn:
        ids = store.save_alerts(conn, [_new(f"fp{i}") for i in range(3)])
        stmt = (
            update(alerts)
            .where(alerts.c.id == bindparam("b_id"), alerts.c.updated_ns == bindparam("b_u"))
            .values(value=bindparam("value"))
        )
        params = [{"b_id": i, "b_u": 1000, "value": 2.0} for i in ids]
        assert conn.execute(stmt, params).rowcount == 3
        assert conn.execute(stmt, [*params[:2], {**params[2], "b_u": 1}]).rowcount == 2


def test_enqueue_many_adds_each_key_once(engines: tuple[Engine, Engine]) -> None:
    read, write = engines

    def row(key: str) -> dict[str, Any]:
        return store.outbox_row(
            key=key, channel_id=1, alert_id=7, event="firing", payload={"k": key}, now_ns=5
        )

    with write.begin() as conn:
        assert store.enqueue_many(conn, [row("k1"), row("k2"), row("k1")]) == 2
        assert store.enqueue_many(conn, [row("k2"), row("k3")]) == 1
        assert store.enqueue_many(conn, []) == 0
        assert not store.enqueue(
            conn, key="k3", channel_id=1, alert_id=7, event="x", payload={}, now_ns=6
        )
    with read.connect() as conn:
        keys = [r[0] for r in conn.execute(select(outbox.c.idempotency_key).order_by(outbox.c.id))]
    assert keys == ["k1", "k2", "k3"]


def test_the_copy_of_active_alerts_follows_every_writer(engines: tuple[Engine, Engine]) -> None:
    read, write = engines
    with write.begin() as conn:
        ids = store.save_alerts(conn, [_new("a"), _new("b"), _new("c", "pending"), _new("d")])
        conn.execute(update(alerts).where(alerts.c.id == ids[3]).values(state="resolved"))
    one, two, three, _ = ids
    copy = store.ActiveAlerts()
    with read.connect() as conn:
        assert set(copy.sync(conn)) == {(1, "a"), (1, "b"), (1, "c")}
        assert copy.reads == 3
        copy.sync(conn)
    assert copy.reads == 3  # nothing changed: nothing read again

    with write.begin() as conn:  # an ack (POST /ack writes no updated_ns), a resolve, a refresh
        conn.execute(update(alerts).where(alerts.c.id == one).values(acked_by="ana", acked_ns=3000))
        conn.execute(
            update(alerts)
            .where(alerts.c.id == three)
            .values(value=9.0, message="nine", last_true_ns=3000, last_eval_ns=3000)
        )
    assert two is not None
    _operator_resolves(write, two, 3000)
    with read.connect() as conn:
        active = copy.sync(conn)
    assert copy.reads == 5 and set(active) == {(1, "a"), (1, "c")}
    db = _db_rows(read)
    assert copy.rows == {i: db[i] for i in (one, three)}
    assert copy.rows[one].acked_by == "ana" and copy.rows[three].value == 9.0

    # The engine's own writes go into the copy without reading them again.
    row = copy.rows[three]
    refresh = {
        "b_id": three,
        "b_updated": row.updated_ns,
        "value": 4.0,
        "message": "four",
        "last_true_ns": 4000,
        "last_eval_ns": 4000,
    }
    change = store.AlertWrite(
        one, copy.rows[one].updated_ns, {"state": "resolved", "resolved_ns": 4000, "updated_ns": 4}
    )
    with write.begin() as conn:
        conn.execute(
            update(alerts)
            .where(alerts.c.id == bindparam("b_id"), alerts.c.updated_ns == bindparam("b_updated"))
            .values(
                value=bindparam("value"),
                message=bindparam("message"),
                last_true_ns=bindparam("last_true_ns"),
                last_eval_ns=bindparam("last_eval_ns"),
            ),
            [refresh],
        )
        new = _new("e")
        saved = store.save_alerts(conn, [change, new])
    copy.refreshed([refresh])
    copy.written([(change, saved[0], copy.rows[one]), (new, saved[1], None)])
    db = _db_rows(read)
    assert set(copy.rows) == {three, saved[1]}  # the resolved one left
    assert copy.rows == {i: db[i] for i in copy.rows}
    with read.connect() as conn:
        copy.sync(conn)
    assert copy.reads == 5
    assert copy.labels(copy.rows[three]) == {"agent": "c"}
    assert copy.labels(copy.rows[three]) is copy.labels(copy.rows[three])


class _Racing(AlertEngine):
    """An engine whose cycle an operator overtakes: the first firing alert it is about to
    resolve gets resolved by hand between the cycle's read and its write."""

    raced: int | None = None

    def _plan(
        self,
        rule: RuleDef,
        labels: dict[str, str],
        fp: str,
        row: Any,
        active: bool,
        value: float | None,
        now_ns: int,
        silences: list[ActiveSilence],
        timing: Timing,
    ) -> _Change | None:
        change = super()._plan(rule, labels, fp, row, active, value, now_ns, silences, timing)
        if change is not None and row is not None and self.raced is None:
            self.raced = int(row.id)
            _operator_resolves(self.write_engine, self.raced, now_ns - 1)
        return change


def _traffic(write: Engine, agent: str, minutes: range, histogram: str = '{"500": 5}') -> None:
    rows = [
        {
            "bucket_start": T0 + m * 60,
            "agent": agent,
            "model": "",
            "kind": "request",
            "count": 5,
            "errors": 0,
            "duration_sum_ms": 500.0,
            "duration_max_ms": 100000.0,
            "input_tokens": 0,
            "output_tokens": 0,
            "cached_tokens": 0,
            "cost_nanousd": 0,
            "histogram": histogram,
        }
        for m in minutes
    ]
    with write.begin() as conn:
        conn.execute(insert(rollups_1m), rows)


def _rule_and_channel(write: Engine, expression: str) -> None:
    with write.begin() as conn:
        store.create_channel(
            conn,
            {"name": "hook", "type": "webhook", "config": {"url": "http://127.0.0.1:9/x"}},
            0,
        )
        store.create_rule(
            conn,
            {"name": "busy", "expression": expression, "severity": "warning", "channels": ["hook"]},
            0,
        )


def test_an_operators_resolve_during_a_cycle_wins_and_the_others_go_on(
    engines: tuple[Engine, Engine],
) -> None:
    read, write = engines
    _rule_and_channel(write, "requests(5m) > 0 by agent")
    for agent in ("a", "b", "c"):
        _traffic(write, agent, range(0, 3))
    engine = _Racing(read, write)
    assert engine.run_cycle((T0 + 150) * NS).transitions == 6  # pending + firing each
    # Ten minutes later the traffic is gone: all three resolve, but one was resolved by hand.
    result = engine.run_cycle((T0 + 750) * NS)
    assert engine.raced is not None
    assert result.transitions == 2 and result.notifications == 2
    with read.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(alerts))}
        events = [(r.alert_id, r.event) for r in conn.execute(select(alert_events))]
        sent = [(r.alert_id, r.event) for r in conn.execute(select(outbox))]
    assert rows[engine.raced].resolved_ns == (T0 + 750) * NS - 1
    assert all(r.state == "resolved" for r in rows.values())
    assert (engine.raced, "resolved") not in events + sent
    assert sorted(e for a, e in sent if a != engine.raced) == ["firing"] * 2 + ["resolved"] * 2
    assert engine.firing.total == 0
    assert engine.run_cycle((T0 + 780) * NS).transitions == 0  # nothing left to redo


def test_carried_histograms_follow_a_rewritten_past_minute(
    engines: tuple[Engine, Engine],
) -> None:
    read, write = engines
    _rule_and_channel(write, "p95(latency, 10m) > 5000 by agent")
    _traffic(write, "a", range(0, 10))  # 5 requests a minute at ~500 ms
    engine = AlertEngine(read, write)
    engine.run_cycle((T0 + 9 * 60 + 10) * NS)
    assert engine.firing.total == 0 and len(engine._histograms) == 1
    with write.begin() as conn:  # late spans: minute 3 turns out to have been slow
        conn.execute(
            update(rollups_1m)
            .where(rollups_1m.c.bucket_start == T0 + 180)
            .values(count=40, histogram='{"900": 40}')
        )
    engine.run_cycle((T0 + 9 * 60 + 40) * NS)
    assert engine.firing.total == 1
    assert engine.firing.items[0]["value"] > 5000
    with write.begin() as conn:  # and back
        conn.execute(
            update(rollups_1m)
            .where(rollups_1m.c.bucket_start == T0 + 180)
            .values(count=5, histogram='{"500": 5}')
        )
    engine.run_cycle((T0 + 9 * 60 + 50) * NS)
    assert engine.firing.total == 0


def test_the_engines_rollup_read_is_fetch_rollups_as_plain_tuples(
    engines: tuple[Engine, Engine],
) -> None:
    read, write = engines
    _traffic(write, "a", range(0, 5))
    _traffic(write, "b", range(3, 9), '{"700": 5}')
    with read.connect() as conn:
        got = store.rollup_tuples(conn, "1m", T0 + 120, T0 + 420)
        want = rollup_store.fetch_rollups(conn, T0 + 120, T0 + 420, resolution="1m")
    assert len(got) == 7 and sorted(got) == sorted(tuple(r) for r in want)
    assert all(type(r) is tuple for r in got)
