"""Error group queries: the list with counts in a window and trends, one group's occurrences
over time and recent traces, and resolve / reopen.

Counts come from ``error_occurrences`` (per minute, fingerprint and agent), so a window's count,
the previous window's (for the trend) and the chart buckets are sums over a small table,
whatever the number of spans and logs behind them.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, and_, func, select, update

from pharos.server.analytics.summary import trend
from pharos.server.db.engine import writing
from pharos.server.db.schema import error_groups, error_occurrences
from pharos.server.ingest.exceptions import OPEN, RESOLVED
from pharos.server.query.logs import existing_trace_ids, trace_path
from pharos.server.timeparse import iso_from_ns

S = 1_000_000_000
#: Points of each group's sparkline in the list.
SPARK_POINTS = 24


def window_end_s(now_s: float) -> int:
    """Windows end at the end of the current minute (the newest occurrences are included)."""
    return (int(now_s) // 60 + 1) * 60


def _iso(ns: int | None) -> str | None:
    return None if ns is None else iso_from_ns(ns)


def title(exc_type: str | None, sample: str | None, message: str) -> str:
    text = (sample or message or "").split("\n", 1)[0].strip()
    if exc_type and text:
        return f"{exc_type}: {text}"
    return exc_type or text or "(no message)"


def group_out(row: Any, count: int, previous: int) -> dict[str, Any]:
    return {
        "fingerprint": row.fingerprint,
        "type": row.exc_type,
        "message": row.message,
        "sample_message": row.sample_message,
        "title": title(row.exc_type, row.sample_message, row.message),
        "source": row.source,
        "status": row.status,
        "regression": row.status == OPEN and row.regressed_at_ns is not None,
        "resolved_at": _iso(row.resolved_at_ns),
        "regressed_at": _iso(row.regressed_at_ns),
        "first_seen": iso_from_ns(row.first_seen_ns),
        "last_seen": iso_from_ns(row.last_seen_ns),
        "total_count": row.count,
        "count": count,
        "previous_count": previous,
        "trend": trend(count, previous),
        "agents": orjson.loads(row.agents),
        "sample_trace_id": row.sample_trace_id,
        "stacktrace": row.stacktrace,
    }


def _counts(
    conn: Connection, start_s: int, end_s: int, agent: str | None, fingerprints: list[str] | None
) -> dict[str, int]:
    o = error_occurrences.c
    conditions = [o.bucket_start >= start_s, o.bucket_start < end_s]
    if agent:
        conditions.append(o.agent == agent)
    if fingerprints is not None:
        conditions.append(o.fingerprint.in_(fingerprints))
    rows = conn.execute(
        select(o.fingerprint, func.sum(o.count)).where(and_(*conditions)).group_by(o.fingerprint)
    )
    return {fp: int(n) for fp, n in rows}


def _buckets(
    conn: Connection,
    fingerprints: list[str],
    start_s: int,
    end_s: int,
    step_s: int,
    agent: str | None,
) -> dict[str, list[int]]:
    """Occurrences per ``step_s`` bucket from ``start_s``, per fingerprint."""
    o = error_occurrences.c
    conditions = [
        o.fingerprint.in_(fingerprints),
        o.bucket_start >= start_s,
        o.bucket_start < end_s,
    ]
    if agent:
        conditions.append(o.agent == agent)
    n = max(1, -(-(end_s - start_s) // step_s))
    out = {fp: [0] * n for fp in fingerprints}
    rows = conn.execute(
        select(o.fingerprint, o.bucket_start, func.sum(o.count))
        .where(and_(*conditions))
        .group_by(o.fingerprint, o.bucket_start)
    )
    for fp, bucket, count in rows:
        out[fp][min(n - 1, (bucket - start_s) // step_s)] += int(count)
    return out


def list_errors(
    engine: Engine,
    *,
    window_s: int,
    agent: str | None,
    status: str | None,
    limit: int,
    now_s: float | None = None,
) -> dict[str, Any]:
    end_s = window_end_s(time.time() if now_s is None else now_s)
    start_s = end_s - window_s
    with engine.connect() as conn:
        current = _counts(conn, start_s, end_s, agent, None)
        if not current:
            return _list_page([], window_s, start_s, end_s)
        g = error_groups.c
        stmt = select(error_groups).where(g.fingerprint.in_(sorted(current)))
        if status:
            stmt = stmt.where(g.status == status)
        rows = sorted(
            conn.execute(stmt).all(),
            key=lambda r: (-current[r.fingerprint], -r.last_seen_ns, r.fingerprint),
        )[:limit]
        keys = [r.fingerprint for r in rows]
        previous = _counts(conn, start_s - window_s, start_s, agent, keys) if keys else {}
        step = max(60, -(-window_s // SPARK_POINTS // 60) * 60)
        spark = _buckets(conn, keys, start_s, end_s, step, agent) if keys else {}
    items = []
    for row in rows:
        item = group_out(row, current[row.fingerprint], previous.get(row.fingerprint, 0))
        item["sparkline"] = spark[row.fingerprint]
        items.append(item)
    return _list_page(items, window_s, start_s, end_s)


def _list_page(
    items: list[dict[str, Any]], window_s: int, start_s: int, end_s: int
) -> dict[str, Any]:
    return {
        "items": items,
        "window_seconds": window_s,
        "start": iso_from_ns(start_s * S),
        "end": iso_from_ns(end_s * S),
    }


def top_error_groups(
    conn: Connection, start_s: int, end_s: int, limit: int
) -> list[dict[str, Any]]:
    """The groups with the most occurrences in [start_s, end_s) (for the overview)."""
    current = _counts(conn, start_s, end_s, None, None)
    if not current:
        return []
    keys = sorted(current, key=lambda fp: (-current[fp], fp))[:limit]
    previous = _counts(conn, 2 * start_s - end_s, start_s, None, keys)
    rows = sorted(
        conn.execute(select(error_groups).where(error_groups.c.fingerprint.in_(keys))).all(),
        key=lambda r: (-current[r.fingerprint], r.fingerprint),
    )
    out = []
    for row in rows:
        item = group_out(row, current[row.fingerprint], previous.get(row.fingerprint, 0))
        item.pop("stacktrace")
        out.append(item)
    return out


def error_detail(
    engine: Engine,
    fingerprint: str,
    *,
    window_s: int,
    interval_s: int,
    agent: str | None,
    now_s: float | None = None,
) -> dict[str, Any] | None:
    end_s = window_end_s(time.time() if now_s is None else now_s)
    start_s = end_s - window_s
    with engine.connect() as conn:
        row = conn.execute(
            select(error_groups).where(error_groups.c.fingerprint == fingerprint)
        ).first()
        if row is None:
            return None
        count = _counts(conn, start_s, end_s, agent, [fingerprint]).get(fingerprint, 0)
        previous = _counts(conn, start_s - window_s, start_s, agent, [fingerprint]).get(
            fingerprint, 0
        )
        series = _buckets(conn, [fingerprint], start_s, end_s, interval_s, agent)[fingerprint]
        o = error_occurrences.c
        by_agent = {
            a: int(n)
            for a, n in conn.execute(
                select(o.agent, func.sum(o.count))
                .where(
                    o.fingerprint == fingerprint, o.bucket_start >= start_s, o.bucket_start < end_s
                )
                .group_by(o.agent)
            )
        }
        recent = orjson.loads(row.recent_traces)
        existing = existing_trace_ids(conn, {t[0] for t in recent})
    out = group_out(row, count, previous)
    out["window_seconds"] = window_s
    out["interval_seconds"] = interval_s
    out["timestamps"] = [iso_from_ns((start_s + i * interval_s) * S) for i in range(len(series))]
    out["occurrences"] = series
    out["by_agent"] = dict(sorted(by_agent.items(), key=lambda kv: (-kv[1], kv[0])))
    out["recent_traces"] = [
        {
            "trace_id": trace_id,
            "time": iso_from_ns(time_ns),
            "agent": trace_agent,
            "exists": trace_id in existing,
            "path": trace_path(trace_id) if trace_id in existing else None,
        }
        for trace_id, time_ns, trace_agent in recent
    ]
    return out


def set_status(engine: Engine, fingerprint: str, status: str, now_ns: int) -> bool:
    """Resolve (``resolved``) or re-open (``open``) a group; False if it does not exist.

    One UPDATE: the writer merging new occurrences into the same row waits for it (SQLite's
    write lock, PostgreSQL's row lock), so a regression after this resolve is never lost."""
    g = error_groups.c
    values: dict[str, Any]
    if status == RESOLVED:
        values = {"status": RESOLVED, "resolved_at_ns": now_ns}
    else:
        values = {"status": OPEN, "resolved_at_ns": None, "regressed_at_ns": None}
    with writing(engine).begin() as conn:
        result = conn.execute(
            update(error_groups).where(g.fingerprint == fingerprint).values(values)
        )
    return bool(result.rowcount)
