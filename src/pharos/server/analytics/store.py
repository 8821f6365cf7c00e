"""Read rollup rows for a time range (the only SQL of the analytics room)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Select, and_, exists, func, select, union_all

from pharos.server.analytics.rollups import REQUEST, RESOLUTIONS, cover
from pharos.server.analytics.summary import LATENCY_COLUMNS, LatencyRow, RollupRow
from pharos.server.db.schema import ROLLUP_TABLES, spans, traces


def fetch_rollups(
    conn: Connection,
    start_s: int,
    end_s: int,
    *,
    agent: str | None = None,
    model: str | None = None,
    kinds: Iterable[str] | None = None,
    resolution: str | None = None,
) -> list[RollupRow]:
    """Rollup rows covering [start_s, end_s) (minute-aligned), from the coarsest tables that
    tile the range, or from one ``resolution`` when the caller buckets by time itself."""
    rows = _fetch(conn, start_s, end_s, agent, model, kinds, resolution, None)
    return list(map(RollupRow._make, rows))


def fetch_latency_rows(
    conn: Connection,
    start_s: int,
    end_s: int,
    *,
    agent: str | None = None,
    model: str | None = None,
    kinds: Iterable[str] | None = None,
    resolution: str | None = None,
) -> list[LatencyRow]:
    """As fetch_rollups, with only the columns a latency percentile needs: a latency chart
    reads thousands of rows and building each Python row is most of its cost."""
    rows = _fetch(conn, start_s, end_s, agent, model, kinds, resolution, LATENCY_COLUMNS)
    return list(map(LatencyRow._make, rows))


def _fetch(
    conn: Connection,
    start_s: int,
    end_s: int,
    agent: str | None,
    model: str | None,
    kinds: Iterable[str] | None,
    resolution: str | None,
    columns: Sequence[str] | None,
) -> list[Any]:
    blocks = [(resolution, start_s, end_s)] if resolution is not None else cover(start_s, end_s)
    kind_list = list(kinds) if kinds is not None else None
    selects = []
    for name, lo, hi in blocks:
        if resolution is not None and (lo % RESOLUTIONS[name] or hi % RESOLUTIONS[name]):
            raise ValueError(f"range not aligned to {name}")
        t = ROLLUP_TABLES[name]
        conds = [t.c.bucket_start >= lo, t.c.bucket_start < hi]
        if agent is not None:
            conds.append(t.c.agent == agent)
        if model is not None:
            conds.append(t.c.model == model)
        if kind_list is not None:
            conds.append(t.c.kind.in_(kind_list))
        picked = list(t.c) if columns is None else [t.c[c] for c in columns]
        selects.append(select(*picked).where(and_(*conds)))
    if not selects:
        return []
    stmt = selects[0] if len(selects) == 1 else union_all(*selects)
    # Straight through the DBAPI cursor: thousands of narrow rows per dashboard call, and
    # SQLAlchemy's Row processing would cost more than the query itself.
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


def _scoped(stmt: Select[Any], agent: str | None, model: str | None) -> Select[Any]:
    """Traces of ``agent`` (the trace's agent) and/or with a span of ``model``."""
    if agent is not None:
        stmt = stmt.where(traces.c.agent == agent)
    if model is not None:
        # One seek per candidate trace on the (trace_id, span_id) unique index.
        stmt = stmt.where(
            exists().where(spans.c.trace_id == traces.c.trace_id, spans.c.model == model)
        )
    return stmt


def recent_error_traces(
    conn: Connection,
    since_ns: int,
    limit: int,
    *,
    agent: str | None = None,
    model: str | None = None,
) -> list[Any]:
    """The newest failed traces started since ``since_ns`` (walks the failed-traces index
    newest first)."""
    stmt = select(traces).where(traces.c.status == "error", traces.c.start_ns >= since_ns)
    stmt = _scoped(stmt, agent, model).order_by(traces.c.start_ns.desc()).limit(limit)
    return list(conn.execute(stmt))


def slowest_traces(
    conn: Connection,
    since_ns: int,
    limit: int,
    *,
    agent: str | None = None,
    model: str | None = None,
) -> list[Any]:
    stmt = _scoped(select(traces).where(traces.c.start_ns >= since_ns), agent, model)
    stmt = stmt.order_by(traces.c.duration_ms.desc(), traces.c.trace_id).limit(limit)
    return list(conn.execute(stmt))


def last_seen_ns(conn: Connection, agents: Iterable[str]) -> dict[str, int]:
    """Start of each agent's newest trace (one index seek per agent)."""
    out: dict[str, int] = {}
    for agent in agents:
        value = conn.execute(
            select(func.max(traces.c.start_ns)).where(traces.c.agent == agent)
        ).scalar()
        if value is not None:
            out[agent] = int(value)
    return out


def known_agents(conn: Connection, since_s: int) -> list[str]:
    """Agents that ran requests since ``since_s`` (read from the small daily table)."""
    t = ROLLUP_TABLES["1d"]
    since_day = since_s // 86400 * 86400
    stmt = select(t.c.agent).where(t.c.bucket_start >= since_day, t.c.kind == REQUEST).distinct()
    return sorted(r[0] for r in conn.execute(stmt))
