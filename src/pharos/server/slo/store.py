"""The SQL of the SLO room: the ``slos`` table, and each SLO's status read from the rollups
(through the analytics room's ``fetch_rollups`` and ``aggregate``: the dashboard's numbers)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from pharos.server.analytics import store as rollup_store
from pharos.server.analytics.rollups import REQUEST
from pharos.server.analytics.summary import Aggregate, aggregate
from pharos.server.db.schema import slos
from pharos.server.slo.core import WINDOWS, SloDef, slo_json, status


def _def(row: Row[Any]) -> SloDef:
    return SloDef(
        id=int(row.id),
        name=row.name,
        agent=row.agent,
        kind=row.kind,
        objective=float(row.objective),
        threshold_ms=None if row.threshold_ms is None else float(row.threshold_ms),
        period_days=int(row.period_days),
        description=row.description or "",
    )


def list_defs(conn: Connection, agent: str | None = None) -> list[SloDef]:
    stmt = select(slos).order_by(slos.c.agent, slos.c.name)
    if agent is not None:
        stmt = stmt.where(slos.c.agent == agent)
    return [_def(r) for r in conn.execute(stmt)]


def get_def(conn: Connection, slo_id: int) -> SloDef | None:
    row = conn.execute(select(slos).where(slos.c.id == slo_id)).first()
    return None if row is None else _def(row)


def name_taken(conn: Connection, name: str, except_id: int | None = None) -> bool:
    stmt = select(slos.c.id).where(slos.c.name == name)
    if except_id is not None:
        stmt = stmt.where(slos.c.id != except_id)
    return conn.execute(stmt).first() is not None


def create(conn: Connection, values: Mapping[str, Any], now_ns: int) -> int:
    result = conn.execute(insert(slos).values(**values, created_ns=now_ns, updated_ns=now_ns))
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


def update_slo(conn: Connection, slo_id: int, values: Mapping[str, Any], now_ns: int) -> bool:
    result = conn.execute(
        update(slos).where(slos.c.id == slo_id).values(**values, updated_ns=now_ns)
    )
    return bool(result.rowcount)


def delete_slo(conn: Connection, slo_id: int) -> bool:
    return bool(conn.execute(delete(slos).where(slos.c.id == slo_id)).rowcount)


def window_aggregates(
    conn: Connection, defs: Iterable[SloDef], end_s: int
) -> dict[tuple[str, str], Aggregate]:
    """(agent, window label) -> the agent's request aggregate over that window ending at
    ``end_s``, for every window an SLO status needs."""
    wanted: dict[str, dict[str, int]] = {}
    for d in defs:
        windows = wanted.setdefault(d.agent, dict(WINDOWS))
        windows[d.period_label] = d.period_s
    out: dict[tuple[str, str], Aggregate] = {}
    for agent, windows in wanted.items():
        for label, seconds in windows.items():
            rows = rollup_store.fetch_rollups(
                conn, end_s - seconds, end_s, agent=agent, kinds=(REQUEST,)
            )
            out[(agent, label)] = aggregate(rows)
    return out


def statuses(conn: Connection, defs: list[SloDef], end_s: int) -> list[dict[str, Any]]:
    """Each SLO with its status at ``end_s`` (seconds, minute-aligned)."""
    aggs = window_aggregates(conn, defs, end_s)
    out = []
    for d in defs:
        mine = {label: agg for (agent, label), agg in aggs.items() if agent == d.agent}
        out.append({**slo_json(d), "status": status(d, mine)})
    return out
