"""The report room's own SQL: the alerts that fired in a window. Every other figure comes from
the other rooms' functions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from pharos.server.db.schema import alert_events, alerts


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
