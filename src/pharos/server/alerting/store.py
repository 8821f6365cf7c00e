"""The SQL of the alerting room: rules, alerts + history, silences, channels, outbox, leases."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, Row, and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from pharos.server.alerting.rules import RuleDef
from pharos.server.alerting.silences import ActiveSilence, Matcher, parse_matchers
from pharos.server.db.schema import (
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
    exists = conn.execute(select(outbox.c.id).where(outbox.c.idempotency_key == key)).first()
    if exists is not None:
        return False
    conn.execute(
        insert(outbox).values(
            idempotency_key=key,
            channel_id=channel_id,
            alert_id=alert_id,
            event=event,
            payload=dumps(payload),
            status="pending",
            attempts=0,
            next_attempt_ns=now_ns,
            created_ns=now_ns,
        )
    )
    return True


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
