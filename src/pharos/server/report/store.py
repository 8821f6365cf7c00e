"""The report room's own SQL: the failed traces of a window grouped by error message, and the
alerts that fired in it. Every other figure comes from the other rooms' functions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select

from pharos.server.db.schema import alert_events, alerts, traces


def top_errors(conn: Connection, start_ns: int, end_ns: int, limit: int) -> list[dict[str, Any]]:
    """Failed traces started in [start_ns, end_ns), grouped by their error message (the most
    frequent first), with how many, the agents and the newest trace."""
    t = traces.c
    message = func.coalesce(t.error_message, "(no message)")
    stmt = (
        select(
            message.label("message"),
            func.count().label("count"),
            func.max(t.start_ns).label("last_ns"),
        )
        .where(t.status == "error", t.start_ns >= start_ns, t.start_ns < end_ns)
        .group_by(message)
        .order_by(func.count().desc(), message)
        .limit(limit)
    )
    out = []
    for message_text, count, last_ns in conn.execute(stmt):
        sample = conn.execute(
            select(t.trace_id, t.agent)
            .where(
                t.status == "error",
                t.start_ns == last_ns,
                func.coalesce(t.error_message, "(no message)") == message_text,
            )
            .limit(1)
        ).first()
        agents = [
            r[0]
            for r in conn.execute(
                select(t.agent)
                .where(
                    t.status == "error",
                    t.start_ns >= start_ns,
                    t.start_ns < end_ns,
                    func.coalesce(t.error_message, "(no message)") == message_text,
                )
                .distinct()
                .order_by(t.agent)
                .limit(10)
            )
        ]
        out.append(
            {
                "message": message_text,
                "count": int(count),
                "agents": agents,
                "last_ns": int(last_ns),
                "trace_id": sample.trace_id if sample is not None else None,
            }
        )
    return out


def alerts_fired(conn: Connection, start_ns: int, end_ns: int) -> list[dict[str, Any]]:
    """Firing events in [start_ns, end_ns) by rule and severity: how many, and the agents."""
    e, a = alert_events.c, alerts.c
    stmt = (
        select(a.rule_name, a.severity, a.labels, e.at_ns)
        .select_from(alert_events.join(alerts, alerts.c.id == e.alert_id))
        .where(e.event == "firing", e.at_ns >= start_ns, e.at_ns < end_ns)
    )
    return [
        {"rule": r.rule_name, "severity": r.severity, "labels": r.labels, "at_ns": int(r.at_ns)}
        for r in conn.execute(stmt)
    ]
