"""The SQL of the alerting room: rules, alerts + history, silences, channels, outbox, leases."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from sqlalchemy import (
    Connection,
    Row,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from pharos.server.alerting.rules import RuleDef
from pharos.server.alerting.silences import ActiveSilence, Matcher, parse_matchers
from pharos.server.db.schema import (
    ROLLUP_TABLES,
    alert_events,
    alert_rules,
    alerting_leases,
    alerts,
    channels,
    outbox,
    silences,
    traces,
)
from pharos.server.timeparse import iso_from_ns

ACTIVE_STATES = ("pending", "firing")


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def loads(text: str | None, default: Any = None) -> Any:
    if not text:
        return default
    return orjson.loads(text)


def iso(ns: int | None) -> str | None:
    return None if ns is None else iso_from_ns(ns)


def duration_text(seconds: int) -> str:
    """60 -> "1m", 5400 -> "90m", 0 -> "0s"."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# --- rules ---------------------------------------------------------------------------------------


def rule_def(row: Row[Any]) -> RuleDef:
    return RuleDef(
        id=int(row.id),
        name=row.name,
        expression=row.expression,
        severity=row.severity,
        for_s=int(row.for_s),
        keep_firing_for_s=int(row.keep_firing_for_s),
        repeat_interval_s=int(row.repeat_interval_s),
        labels=loads(row.labels, {}),
        message=row.message,
        channels=tuple(loads(row.channels, [])),
        enabled=bool(row.enabled),
    )


def rule_json(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": int(row.id),
        "name": row.name,
        "expression": row.expression,
        "for": duration_text(int(row.for_s)),
        "for_seconds": int(row.for_s),
        "keep_firing_for_seconds": int(row.keep_firing_for_s),
        "repeat_interval_seconds": int(row.repeat_interval_s),
        "severity": row.severity,
        "labels": loads(row.labels, {}),
        "message": row.message,
        "channels": loads(row.channels, []),
        "enabled": bool(row.enabled),
        "created_at": iso(row.created_ns),
        "updated_at": iso(row.updated_ns),
    }


def list_rules(conn: Connection, *, enabled_only: bool = False) -> list[Row[Any]]:
    stmt = select(alert_rules).order_by(alert_rules.c.id)
    if enabled_only:
        stmt = stmt.where(alert_rules.c.enabled.is_(True))
    return list(conn.execute(stmt))


def get_rule(conn: Connection, rule_id: int) -> Row[Any] | None:
    return conn.execute(select(alert_rules).where(alert_rules.c.id == rule_id)).first()


def rule_values(data: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(data)
    if "labels" in out:
        out["labels"] = dumps(out["labels"])
    if "channels" in out:
        out["channels"] = dumps(list(out["channels"]))
    return out


def create_rule(conn: Connection, data: Mapping[str, Any], now_ns: int) -> int:
    values = {
        "for_s": 0,
        "keep_firing_for_s": 0,
        "repeat_interval_s": 14400,
        "labels": {},
        "message": "",
        "channels": [],
        "enabled": True,
        **data,
    }
    result = conn.execute(
        insert(alert_rules).values(**rule_values(values), created_ns=now_ns, updated_ns=now_ns)
    )
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


def update_rule(conn: Connection, rule_id: int, data: Mapping[str, Any], now_ns: int) -> bool:
    result = conn.execute(
        update(alert_rules)
        .where(alert_rules.c.id == rule_id)
        .values(**rule_values(data), updated_ns=now_ns)
    )
    return result.rowcount > 0


def delete_rule(conn: Connection, rule_id: int) -> bool:
    return conn.execute(delete(alert_rules).where(alert_rules.c.id == rule_id)).rowcount > 0


# --- alerts --------------------------------------------------------------------------------------


def active_alerts(conn: Connection) -> list[Row[Any]]:
    return list(conn.execute(select(alerts).where(alerts.c.state.in_(ACTIVE_STATES))))


def alerts_by_fingerprint(conn: Connection, keys: Iterable[tuple[int, str]]) -> list[Row[Any]]:
    wanted = set(keys)
    if not wanted:
        return []
    out: list[Row[Any]] = []
    fps = sorted({fp for _, fp in wanted})
    for i in range(0, len(fps), 500):
        chunk = fps[i : i + 500]
        for row in conn.execute(select(alerts).where(alerts.c.fingerprint.in_(chunk))):
            if (int(row.rule_id), row.fingerprint) in wanted:
                out.append(row)
    return out


class AlertRow(NamedTuple):
    """An ``alerts`` row (as the engine keeps it between cycles)."""

    id: int
    rule_id: int
    rule_name: str
    fingerprint: str
    labels: str
    severity: str
    state: str
    value: float | None
    message: str
    episode: int
    pending_since_ns: int | None
    fired_ns: int | None
    last_true_ns: int | None
    resolved_ns: int | None
    last_notified_ns: int | None
    acked_by: str | None
    acked_ns: int | None
    ack_comment: str | None
    silenced_by: int | None
    last_eval_ns: int
    updated_ns: int


def _raw(conn: Connection, stmt: Any) -> list[tuple[Any, ...]]:
    """Rows as plain tuples straight from the DBAPI cursor (thousands of narrow rows)."""
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params: Any = compiled.params
    if compiled.positiontup is not None:
        params = tuple(params[name] for name in compiled.positiontup)
    cursor = conn.connection.cursor()
    try:
        cursor.execute(str(compiled), params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def rollup_tuples(
    conn: Connection, resolution: str, start_s: int, end_s: int
) -> list[tuple[Any, ...]]:
    """The rows of one rollup table for [start_s, end_s), as plain tuples in the columns' order
    (``summary.RollupRow``'s): ``analytics.store.fetch_rollups`` for one resolution, without an
    object per row (the engine reads thousands every cycle; see ``figures.Row``)."""
    t = ROLLUP_TABLES[resolution]
    return _raw(conn, select(*t.c).where(t.c.bucket_start >= start_s, t.c.bucket_start < end_s))


class ActiveAlerts:
    """The engine's copy of every pending or firing alert, kept between cycles and checked at
    the start of each against a narrow query: (id, updated_ns, last_eval_ns, acked_ns) of the
    active rows. Every writer of an alert row changes one of those (a transition: updated_ns and
    last_eval_ns; a value refresh: last_eval_ns; an ack: acked_ns; a manual resolve: updated_ns
    and the state), on whichever instance, so a copy whose four match is the row; the others
    are read again, and rows that left the active states are dropped. Only the lease holder
    evaluates, but it may lose the lease and get it back: nothing here assumes it wrote last."""

    def __init__(self) -> None:
        self.rows: dict[int, AlertRow] = {}
        self.reads = 0  # rows read again in all (for tests and the benchmark)
        self._labels: dict[int, tuple[str, dict[str, str]]] = {}

    def sync(self, conn: Connection, *, keyed: bool = True) -> dict[tuple[int, str], AlertRow]:
        """Bring the copy up to date; returns it by (rule id, fingerprint) (``keyed=False``:
        returns nothing)."""
        versions = _raw(
            conn,
            select(
                alerts.c.id, alerts.c.updated_ns, alerts.c.last_eval_ns, alerts.c.acked_ns
            ).where(alerts.c.state.in_(ACTIVE_STATES)),
        )
        kept: dict[int, AlertRow] = {}
        stale: list[int] = []
        for alert_id, updated_ns, last_eval_ns, acked_ns in versions:
            row = self.rows.get(alert_id)
            if (
                row is not None
                and row.updated_ns == updated_ns
                and row.last_eval_ns == last_eval_ns
                and row.acked_ns == acked_ns
            ):
                kept[alert_id] = row
            else:
                stale.append(int(alert_id))
        columns = [alerts.c[name] for name in AlertRow._fields]
        stale.sort()
        for i in range(0, len(stale), 500):
            stmt = select(*columns).where(alerts.c.id.in_(stale[i : i + 500]))
            for values in _raw(conn, stmt):
                row = AlertRow._make(values)
                if row.state in ACTIVE_STATES:  # it may have changed since the narrow query
                    kept[row.id] = row
            self.reads += len(stale[i : i + 500])
        self.rows = kept
        if len(self._labels) > 2 * len(kept) + 1000:
            self._labels = {i: v for i, v in self._labels.items() if i in kept}
        if not keyed:
            return {}
        return {(int(r.rule_id), r.fingerprint): r for r in kept.values()}

    def labels(self, row: AlertRow) -> dict[str, str]:
        """A row's labels, parsed once (read-only: shared between calls)."""
        found = self._labels.get(row.id)
        if found is not None and found[0] == row.labels:
            return found[1]
        parsed: dict[str, str] = loads(row.labels, {})
        self._labels[row.id] = (row.labels, parsed)
        return parsed

    def refreshed(self, changes: Iterable[Mapping[str, Any]]) -> None:
        """Apply the value refreshes just committed (the engine's ``b_id``/``b_updated`` rows)
        to the copy, so they need not be read again; one that did not hold (the row changed in
        between) no longer matches the database and is read again next time anyway."""
        for change in changes:
            row = self.rows.get(int(change["b_id"]))
            if row is not None and row.updated_ns == change["b_updated"]:
                # (positionally: NamedTuple._replace costs several times more)
                self.rows[row.id] = AlertRow._make(
                    (
                        *row[:7],
                        change["value"],
                        change["message"],
                        *row[9:12],
                        change["last_true_ns"],
                        *row[13:19],
                        change["last_eval_ns"],
                        row[20],
                    )
                )

    def written(self, writes: Iterable[tuple[AlertWrite, int | None, Any]]) -> None:
        """Apply the changes just committed (each with the id ``save_alerts`` gave, None where
        it did not hold, and the row it was based on, None for a new one) to the copy."""
        for write, alert_id, base in writes:
            if alert_id is None:
                continue
            if base is None:
                values = {**write.values, "id": alert_id}
                if not all(name in values for name in AlertRow._fields):
                    continue  # read next time
                row = AlertRow(*(values[name] for name in AlertRow._fields))
            else:
                if not isinstance(base, AlertRow):
                    base = AlertRow(*(getattr(base, name) for name in AlertRow._fields))
                row = base._replace(**write.values)
            if row.state in ACTIVE_STATES:
                self.rows[alert_id] = row
            else:
                self.rows.pop(alert_id, None)

    def firing(self) -> list[AlertRow]:
        return [r for r in self.rows.values() if r.state == "firing"]


@dataclass(frozen=True, slots=True)
class AlertWrite:
    """A state change of one alert: a new row (``alert_id`` None: ``values`` hold every column)
    or an update of ``alert_id`` that holds only if the row still has ``updated_ns`` (an
    operator's ack or resolve since the engine read it wins; the engine retries next cycle)."""

    alert_id: int | None
    updated_ns: int | None
    values: Mapping[str, Any]


def save_alerts(conn: Connection, writes: Sequence[AlertWrite]) -> list[int | None]:
    """Write every change in the caller's transaction; returns each one's alert id, or None
    where the optimistic check failed. One executemany INSERT (then the new ids, by rule and
    fingerprint, 500 a query: psycopg parses a multi-row INSERT .. RETURNING of thousands of
    rows for seconds) and one executemany UPDATE per set of columns; when an UPDATE matches
    fewer rows than it was given (a concurrent write), it is rolled back to a savepoint and
    redone row by row to learn which lost."""
    ids: list[int | None] = [None] * len(writes)
    inserts: dict[tuple[str, ...], list[int]] = {}
    updates: dict[tuple[str, ...], list[int]] = {}
    for i, w in enumerate(writes):
        (inserts if w.alert_id is None else updates).setdefault(tuple(w.values), []).append(i)
    for indexes in inserts.values():
        conn.execute(insert(alerts), [dict(writes[i].values) for i in indexes])
        new = {
            (int(writes[i].values["rule_id"]), str(writes[i].values["fingerprint"])): i
            for i in indexes
        }
        fps = sorted({fp for _, fp in new})
        for k in range(0, len(fps), 500):
            query = select(alerts.c.id, alerts.c.rule_id, alerts.c.fingerprint).where(
                alerts.c.fingerprint.in_(fps[k : k + 500])
            )
            for alert_id, rule_id, fp in conn.execute(query):
                found = new.get((int(rule_id), fp))
                if found is not None:
                    ids[found] = int(alert_id)
    for columns, indexes in updates.items():
        stmt = (
            update(alerts)
            .where(alerts.c.id == bindparam("b_id"), alerts.c.updated_ns == bindparam("b_updated"))
            .values({c: bindparam(c) for c in columns})
        )
        params = [
            {"b_id": writes[i].alert_id, "b_updated": writes[i].updated_ns, **writes[i].values}
            for i in indexes
        ]
        savepoint = conn.begin_nested()
        matched = conn.execute(stmt, params).rowcount
        if matched == len(params):
            savepoint.commit()
            for i in indexes:
                ids[i] = writes[i].alert_id
            continue
        savepoint.rollback()
        for i, one in zip(indexes, params, strict=True):
            if conn.execute(stmt, one).rowcount:
                ids[i] = writes[i].alert_id
    return ids


def alert_json(row: Row[Any], rule_expression: str | None = None) -> dict[str, Any]:
    out = {
        "id": int(row.id),
        "rule_id": int(row.rule_id),
        "rule": row.rule_name,
        "fingerprint": row.fingerprint,
        "labels": loads(row.labels, {}),
        "severity": row.severity,
        "state": row.state,
        "value": row.value,
        "message": row.message,
        "pending_since": iso(row.pending_since_ns),
        "fired_at": iso(row.fired_ns),
        "resolved_at": iso(row.resolved_ns),
        "last_notified_at": iso(row.last_notified_ns),
        "acknowledged": row.acked_by is not None,
        "acked_by": row.acked_by,
        "acked_at": iso(row.acked_ns),
        "ack_comment": row.ack_comment,
        "silenced": row.silenced_by is not None,
        "silenced_by": row.silenced_by,
        "updated_at": iso(row.updated_ns),
    }
    if rule_expression is not None:
        out["expression"] = rule_expression
    return out


def list_alerts(
    conn: Connection,
    *,
    states: Sequence[str] | None,
    severities: Sequence[str] | None,
    agent: str | None,
    rule_id: int | None,
    before_id: int | None,
    limit: int,
) -> list[Row[Any]]:
    conds: list[Any] = []
    if states:
        conds.append(alerts.c.state.in_(states))
    else:
        conds.append(alerts.c.state != "inactive")
    if severities:
        conds.append(alerts.c.severity.in_(severities))
    if rule_id is not None:
        conds.append(alerts.c.rule_id == rule_id)
    if before_id is not None:
        conds.append(alerts.c.id < before_id)
    stmt = select(alerts).where(and_(*conds)).order_by(alerts.c.id.desc())
    if agent is None:
        return list(conn.execute(stmt.limit(limit)))
    # The agent is inside the labels JSON: filter in Python, reading in pages.
    out: list[Row[Any]] = []
    for row in conn.execute(stmt):
        if loads(row.labels, {}).get("agent") == agent:
            out.append(row)
            if len(out) >= limit:
                break
    return out


def get_alert(conn: Connection, alert_id: int) -> Row[Any] | None:
    return conn.execute(select(alerts).where(alerts.c.id == alert_id)).first()


def alert_history(conn: Connection, alert_id: int, limit: int = 100) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(alert_events)
        .where(alert_events.c.alert_id == alert_id)
        .order_by(alert_events.c.at_ns.desc(), alert_events.c.id.desc())
        .limit(limit)
    )
    return [
        {
            "at": iso(r.at_ns),
            "event": r.event,
            "state": r.state,
            "value": r.value,
            "who": r.who,
            "comment": r.comment,
        }
        for r in rows
    ]


def add_event(
    conn: Connection,
    alert_id: int,
    at_ns: int,
    event: str,
    state: str,
    value: float | None = None,
    who: str | None = None,
    comment: str | None = None,
) -> None:
    conn.execute(
        insert(alert_events).values(
            alert_id=alert_id,
            at_ns=at_ns,
            event=event,
            state=state,
            value=value,
            who=who,
            comment=comment,
        )
    )


def summary(conn: Connection) -> dict[str, Any]:
    stmt = (
        select(alerts.c.state, alerts.c.severity, func.count())
        .where(alerts.c.state != "inactive")
        .group_by(alerts.c.state, alerts.c.severity)
    )
    by_state: dict[str, int] = {s: 0 for s in ("pending", "firing", "resolved")}
    matrix: dict[str, dict[str, int]] = {}
    for state, severity, count in conn.execute(stmt):
        by_state[state] = by_state.get(state, 0) + int(count)
        matrix.setdefault(severity, {})[state] = int(count)
    unacked = conn.execute(
        select(func.count()).where(alerts.c.state == "firing", alerts.c.acked_by.is_(None))
    ).scalar_one()
    silenced = conn.execute(
        select(func.count()).where(alerts.c.state == "firing", alerts.c.silenced_by.is_not(None))
    ).scalar_one()
    return {
        "by_state": by_state,
        "by_severity": {
            sev: matrix.get(sev, {}) for sev in ("critical", "error", "warning", "info")
        },
        "firing_unacknowledged": int(unacked),
        "firing_silenced": int(silenced),
    }


def firing_snapshot(conn: Connection) -> list[Row[Any]]:
    """Every firing alert (the few columns the overview and the counters need)."""
    stmt = select(
        alerts.c.id,
        alerts.c.rule_name,
        alerts.c.severity,
        alerts.c.labels,
        alerts.c.value,
        alerts.c.message,
        alerts.c.fired_ns,
        alerts.c.acked_by,
        alerts.c.silenced_by,
    ).where(alerts.c.state == "firing")
    return list(conn.execute(stmt))


def trace_for_alert(
    conn: Connection, agent: str | None, since_ns: int, until_ns: int, prefer: str
) -> str | None:
    """The trace a notification links to, of ``agent`` (None: any) started in [since, until):
    ``slowest`` (longest), ``costliest`` (most spent, else the slowest), ``failing`` (the most
    recent failed one, else the slowest)."""
    conds = [traces.c.start_ns >= since_ns, traces.c.start_ns < until_ns]
    if agent is not None:
        conds.append(traces.c.agent == agent)
    base = select(traces.c.trace_id).where(*conds).limit(1)
    if prefer == "failing":
        found = conn.execute(
            base.where(traces.c.status == "error").order_by(traces.c.start_ns.desc())
        ).scalar()
        if found is not None:
            return str(found)
    if prefer == "costliest":
        found = conn.execute(
            base.where(traces.c.cost_nanousd > 0).order_by(
                traces.c.cost_nanousd.desc(), traces.c.start_ns.desc()
            )
        ).scalar()
        if found is not None:
            return str(found)
    found = conn.execute(
        base.order_by(traces.c.duration_ms.desc(), traces.c.start_ns.desc())
    ).scalar()
    return None if found is None else str(found)


# --- silences ------------------------------------------------------------------------------------


def silence_json(row: Row[Any], now_ns: int) -> dict[str, Any]:
    status = "active"
    if row.ends_ns <= now_ns:
        status = "expired"
    elif row.starts_ns > now_ns:
        status = "pending"
    return {
        "id": int(row.id),
        "matchers": loads(row.matchers, []),
        "starts_at": iso(row.starts_ns),
        "ends_at": iso(row.ends_ns),
        "created_by": row.created_by,
        "comment": row.comment,
        "created_at": iso(row.created_ns),
        "status": status,
    }


def active_silences(conn: Connection, now_ns: int) -> list[ActiveSilence]:
    rows = conn.execute(
        select(silences).where(silences.c.ends_ns > now_ns, silences.c.starts_ns <= now_ns)
    )
    out = []
    for r in rows:
        matchers = tuple(parse_matchers(loads(r.matchers, []), allow_empty=True))
        out.append(ActiveSilence(int(r.id), matchers, int(r.starts_ns), int(r.ends_ns)))
    return out


def list_silences(
    conn: Connection, now_ns: int, *, include_expired: bool, limit: int
) -> list[Row[Any]]:
    stmt = select(silences).order_by(silences.c.id.desc()).limit(limit)
    if not include_expired:
        stmt = stmt.where(silences.c.ends_ns > now_ns)
    return list(conn.execute(stmt))


def create_silence(
    conn: Connection,
    matchers: Sequence[Matcher],
    starts_ns: int,
    ends_ns: int,
    created_by: str,
    comment: str,
    now_ns: int,
) -> int:
    result = conn.execute(
        insert(silences).values(
            matchers=dumps([m.as_dict() for m in matchers]),
            starts_ns=starts_ns,
            ends_ns=ends_ns,
            created_by=created_by,
            comment=comment,
            created_ns=now_ns,
        )
    )
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


def expire_silence(conn: Connection, silence_id: int, now_ns: int) -> Row[Any] | None:
    conn.execute(
        update(silences)
        .where(silences.c.id == silence_id, silences.c.ends_ns > now_ns)
        .values(ends_ns=now_ns)
    )
    return conn.execute(select(silences).where(silences.c.id == silence_id)).first()


# --- channels ------------------------------------------------------------------------------------

SECRET_KEYS = frozenset({"url", "routing_key", "secret", "password"})


def channel_json(row: Row[Any]) -> dict[str, Any]:
    config = loads(row.config, {})
    shown = {k: ("***" if k in SECRET_KEYS and v else v) for k, v in config.items()}
    if row.type in ("slack", "webhook") and config.get("url"):
        # Show where it goes without the secret part of a Slack webhook path.
        url = str(config["url"])
        shown["url"] = url.split("//", 1)[-1].split("/", 1)[0] + "/***"
    return {
        "id": int(row.id),
        "name": row.name,
        "type": row.type,
        "config": shown,
        "severities": loads(row.severities, []),
        "matchers": loads(row.matchers, []),
        "enabled": bool(row.enabled),
        "created_at": iso(row.created_ns),
        "updated_at": iso(row.updated_ns),
    }


def list_channels(conn: Connection, *, enabled_only: bool = False) -> list[Row[Any]]:
    stmt = select(channels).order_by(channels.c.id)
    if enabled_only:
        stmt = stmt.where(channels.c.enabled.is_(True))
    return list(conn.execute(stmt))


def get_channel(conn: Connection, channel_id: int) -> Row[Any] | None:
    return conn.execute(select(channels).where(channels.c.id == channel_id)).first()


def channel_values(data: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(data)
    for key in ("config", "severities", "matchers"):
        if key in out:
            out[key] = dumps(out[key])
    return out


def create_channel(conn: Connection, data: Mapping[str, Any], now_ns: int) -> int:
    values = {"config": {}, "severities": [], "matchers": [], "enabled": True, **data}
    result = conn.execute(
        insert(channels).values(**channel_values(values), created_ns=now_ns, updated_ns=now_ns)
    )
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


def update_channel(conn: Connection, channel_id: int, data: Mapping[str, Any], now_ns: int) -> bool:
    result = conn.execute(
        update(channels)
        .where(channels.c.id == channel_id)
        .values(**channel_values(data), updated_ns=now_ns)
    )
    return result.rowcount > 0


def delete_channel(conn: Connection, channel_id: int) -> bool:
    return conn.execute(delete(channels).where(channels.c.id == channel_id)).rowcount > 0


def upsert_channel(conn: Connection, data: Mapping[str, Any], now_ns: int) -> None:
    """Create or refresh a channel by name (the channels configured in settings)."""
    existing = conn.execute(select(channels.c.id).where(channels.c.name == data["name"])).first()
    if existing is None:
        create_channel(conn, data, now_ns)
    else:
        update_channel(conn, int(existing[0]), data, now_ns)


# --- outbox --------------------------------------------------------------------------------------


def enqueue(
    conn: Connection,
    *,
    key: str,
    channel_id: int,
    alert_id: int | None,
    event: str,
    payload: Mapping[str, Any],
    now_ns: int,
) -> bool:
    """Add a notification unless one with this idempotency key exists (then False)."""
    row = outbox_row(
        key=key,
        channel_id=channel_id,
        alert_id=alert_id,
        event=event,
        payload=payload,
        now_ns=now_ns,
    )
    return enqueue_many(conn, [row]) == 1


def outbox_row(
    *,
    key: str,
    channel_id: int,
    alert_id: int | None,
    event: str,
    payload: Mapping[str, Any],
    now_ns: int,
) -> dict[str, Any]:
    """A notification as :func:`enqueue_many` writes it."""
    return {
        "idempotency_key": key,
        "channel_id": channel_id,
        "alert_id": alert_id,
        "event": event,
        "payload": dumps(payload),
        "status": "pending",
        "attempts": 0,
        "next_attempt_ns": now_ns,
        "created_ns": now_ns,
    }


def enqueue_many(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
    """Add the notifications of :func:`outbox_row` whose idempotency key is new (the first of
    a key given twice); returns how many were added. One look-up per 500 keys and one
    multi-row insert, in the caller's transaction."""
    if not rows:
        return 0
    keys = sorted({r["idempotency_key"] for r in rows})
    taken: set[str] = set()
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        stmt = select(outbox.c.idempotency_key).where(outbox.c.idempotency_key.in_(chunk))
        taken.update(r[0] for r in conn.execute(stmt))
    new: list[Mapping[str, Any]] = []
    for row in rows:
        if row["idempotency_key"] not in taken:
            taken.add(row["idempotency_key"])
            new.append(row)
    if new:
        conn.execute(insert(outbox), new)
    return len(new)


def claim_due(
    conn: Connection, holder: str, now_ns: int, lease_ns: int, limit: int, scan: int = 0
) -> list[Row[Any]]:
    """Lease up to ``limit`` due notifications to ``holder`` (a conditional update, so two
    instances never send the same row at once), looking at the ``max(scan, limit)`` oldest due
    rows (some wait behind one of their alert's in flight). Commit before sending."""
    due = [
        (int(r[0]), r[1], int(r[2]))
        for r in conn.execute(
            select(outbox.c.id, outbox.c.alert_id, outbox.c.channel_id)
            .where(
                outbox.c.status == "pending",
                outbox.c.next_attempt_ns <= now_ns,
                or_(outbox.c.locked_until_ns.is_(None), outbox.c.locked_until_ns < now_ns),
            )
            .order_by(outbox.c.next_attempt_ns, outbox.c.id)
            .limit(max(scan, limit))
        )
    ]
    # One alert's notifications reach a channel in order (PagerDuty must see trigger before
    # acknowledge and resolve): only the oldest pending row of each (alert, channel) goes.
    alert_ids = sorted({a for _, a, _ in due if a is not None})
    first: dict[tuple[int, int], int] = {}
    for i in range(0, len(alert_ids), 500):
        stmt = (
            select(outbox.c.alert_id, outbox.c.channel_id, func.min(outbox.c.id))
            .where(outbox.c.status == "pending", outbox.c.alert_id.in_(alert_ids[i : i + 500]))
            .group_by(outbox.c.alert_id, outbox.c.channel_id)
        )
        for alert_id, channel_id, min_id in conn.execute(stmt):
            first[(int(alert_id), int(channel_id))] = int(min_id)
    ids = [
        row_id
        for row_id, alert_id, channel_id in due
        if alert_id is None or first.get((int(alert_id), channel_id)) == row_id
    ][:limit]
    if not ids:
        return []
    until = now_ns + lease_ns
    conn.execute(
        update(outbox)
        .where(
            outbox.c.id.in_(ids),
            outbox.c.status == "pending",
            or_(outbox.c.locked_until_ns.is_(None), outbox.c.locked_until_ns < now_ns),
        )
        .values(locked_until_ns=until, locked_by=holder)
    )
    return list(
        conn.execute(
            select(outbox)
            .where(
                outbox.c.id.in_(ids),
                outbox.c.locked_by == holder,
                outbox.c.locked_until_ns == until,
            )
            .order_by(outbox.c.id)
        )
    )


def mark_sent(conn: Connection, outbox_id: int, holder: str, now_ns: int) -> None:
    conn.execute(
        update(outbox)
        .where(outbox.c.id == outbox_id, outbox.c.locked_by == holder)
        .values(
            status="sent",
            sent_ns=now_ns,
            attempts=outbox.c.attempts + 1,
            locked_until_ns=None,
            last_error=None,
        )
    )


def mark_failed_attempt(
    conn: Connection,
    outbox_id: int,
    holder: str,
    *,
    error: str,
    next_attempt_ns: int,
    give_up: bool,
) -> None:
    conn.execute(
        update(outbox)
        .where(outbox.c.id == outbox_id, outbox.c.locked_by == holder)
        .values(
            status="failed" if give_up else "pending",
            attempts=outbox.c.attempts + 1,
            next_attempt_ns=next_attempt_ns,
            locked_until_ns=None,
            last_error=error[:1000],
        )
    )


def release(conn: Connection, holder: str) -> None:
    """Give back the leases of a stopping worker (its rows are retried at once elsewhere)."""
    conn.execute(
        update(outbox)
        .where(outbox.c.locked_by == holder, outbox.c.status == "pending")
        .values(locked_until_ns=None)
    )


def outbox_json(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": int(row.id),
        "idempotency_key": row.idempotency_key,
        "channel_id": int(row.channel_id),
        "alert_id": row.alert_id,
        "event": row.event,
        "status": row.status,
        "attempts": int(row.attempts),
        "next_attempt_at": iso(row.next_attempt_ns),
        "last_error": row.last_error,
        "created_at": iso(row.created_ns),
        "sent_at": iso(row.sent_ns),
    }


def list_outbox(
    conn: Connection, *, status: str | None, before_id: int | None, limit: int
) -> list[Row[Any]]:
    stmt = select(outbox).order_by(outbox.c.id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(outbox.c.status == status)
    if before_id is not None:
        stmt = stmt.where(outbox.c.id < before_id)
    return list(conn.execute(stmt))


def outbox_counts(conn: Connection) -> dict[str, int]:
    stmt = select(outbox.c.status, func.count()).group_by(outbox.c.status)
    return {str(s): int(c) for s, c in conn.execute(stmt)}


# --- leases and flags ----------------------------------------------------------------------------


def try_lease(conn: Connection, name: str, holder: str, now_ns: int, ttl_ns: int) -> bool:
    """Take or renew the lease ``name`` for ``holder`` (works on SQLite and PostgreSQL: a
    conditional update, or an insert that loses to a concurrent one). Commits."""
    result = conn.execute(
        update(alerting_leases)
        .where(
            alerting_leases.c.name == name,
            or_(alerting_leases.c.holder == holder, alerting_leases.c.expires_ns < now_ns),
        )
        .values(holder=holder, expires_ns=now_ns + ttl_ns)
    )
    if result.rowcount:
        conn.commit()
        return True
    exists = conn.execute(
        select(alerting_leases.c.name).where(alerting_leases.c.name == name)
    ).first()
    if exists is not None:
        conn.rollback()
        return False
    try:
        conn.execute(
            insert(alerting_leases).values(name=name, holder=holder, expires_ns=now_ns + ttl_ns)
        )
        conn.commit()
        return True
    except IntegrityError:
        conn.rollback()
        return False


def drop_lease(conn: Connection, name: str, holder: str) -> None:
    conn.execute(
        delete(alerting_leases).where(
            alerting_leases.c.name == name, alerting_leases.c.holder == holder
        )
    )


def set_flag_once(conn: Connection, name: str, now_ns: int) -> bool:
    """True the first time ``name`` is set (forever after False)."""
    try:
        with conn.begin_nested():
            conn.execute(
                insert(alerting_leases).values(name=name, holder="done", expires_ns=now_ns)
            )
        return True
    except IntegrityError:
        return False
