"""Reads of OTLP metrics: the names known, and the series and points of one metric.

The arithmetic (rates, quantiles, buckets) is in :mod:`pharos.server.query.metric_math`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, and_, func, select

from pharos.server.db.schema import metric_points, metric_series
from pharos.server.query.metric_math import PointRow, SeriesInfo
from pharos.server.timeparse import iso_from_ns

MAX_NAMES = 1000
#: Series read for one chart at most (the rest are left out and the answer says so).
MAX_SERIES_READ = 2000
#: Data points read for one chart at most.
MAX_POINTS_READ = 1_000_000


def metric_names(conn: Connection, agent: str | None = None) -> list[dict[str, Any]]:
    """Every metric name with its type, unit, description, agents, series count, last seen."""
    s = metric_series.c
    query = select(
        s.name,
        s.type,
        s.temporality,
        s.monotonic,
        s.unit,
        s.description,
        s.agent,
        func.count().label("series"),
        func.max(s.last_seen_ns).label("last_seen_ns"),
    ).group_by(s.name, s.type, s.temporality, s.monotonic, s.unit, s.description, s.agent)
    if agent is not None:
        query = query.where(s.agent == agent)
    by_name: dict[str, dict[str, Any]] = {}
    for row in conn.execute(query):
        entry = by_name.get(row.name)
        if entry is None:
            entry = by_name[row.name] = {
                "name": row.name,
                "type": row.type,
                "temporality": row.temporality or None,
                "monotonic": bool(row.monotonic),
                "unit": row.unit,
                "description": row.description,
                "agents": set(),
                "series_count": 0,
                "last_seen_ns": 0,
            }
        if row.last_seen_ns > entry["last_seen_ns"]:  # the newest series describes the metric
            entry.update(
                type=row.type,
                temporality=row.temporality or None,
                monotonic=bool(row.monotonic),
                unit=row.unit,
                description=row.description,
                last_seen_ns=row.last_seen_ns,
            )
        entry["agents"].add(row.agent)
        entry["series_count"] += row.series
    out = []
    for name in sorted(by_name)[:MAX_NAMES]:
        entry = by_name[name]
        last = entry.pop("last_seen_ns")
        entry["agents"] = sorted(entry["agents"])
        entry["last_seen"] = iso_from_ns(last)
        out.append(entry)
    return out


def metric_series_infos(conn: Connection, name: str, agent: str | None = None) -> list[SeriesInfo]:
    """The series of metric ``name`` (of its newest type), newest first."""
    s = metric_series.c
    query = select(
        s.series_key,
        s.type,
        s.temporality,
        s.monotonic,
        s.agent,
        s.attributes,
        s.resource,
        s.unit,
        s.description,
        s.last_seen_ns,
    ).where(s.name == name)
    if agent is not None:
        query = query.where(s.agent == agent)
    rows = conn.execute(query.order_by(s.last_seen_ns.desc()).limit(MAX_SERIES_READ)).all()
    if not rows:
        return []
    kind = (rows[0].type, rows[0].temporality, bool(rows[0].monotonic))
    return [
        SeriesInfo(
            key=r.series_key,
            type=r.type,
            temporality=r.temporality,
            monotonic=bool(r.monotonic),
            agent=r.agent,
            attributes=orjson.loads(r.attributes),
            resource=orjson.loads(r.resource),
            unit=r.unit,
            description=r.description,
        )
        for r in rows
        if (r.type, r.temporality, bool(r.monotonic)) == kind
    ]


class TooManyPoints(Exception):
    """More points than one answer may read (MAX_POINTS_READ)."""


def metric_points_of(
    conn: Connection,
    keys: Sequence[str],
    from_ns: int,
    to_ns: int,
    max_points: int = MAX_POINTS_READ,
) -> dict[str, list[PointRow]]:
    """The points of the given series in ``[from_ns, to_ns)``, by series, oldest first.
    Raises :class:`TooManyPoints` past ``max_points`` (memory stays bounded)."""
    p = metric_points.c
    out: dict[str, list[PointRow]] = {k: [] for k in keys}
    read = 0
    for start in range(0, len(keys), 500):
        chunk = list(keys[start : start + 500])
        query = (
            select(
                p.series_key,
                p.time_ns,
                p.start_ns,
                p.value,
                p.count,
                p.sum,
                p.min,
                p.max,
                p.bounds,
                p.counts,
            )
            .where(and_(p.series_key.in_(chunk), p.time_ns >= from_ns, p.time_ns < to_ns))
            .order_by(p.series_key, p.time_ns)
        )
        for key, t, start_ns, value, count, total, lo, hi, bounds, counts in conn.execute(
            query.limit(max_points - read + 1)
        ):
            read += 1
            if read > max_points:
                raise TooManyPoints(f"more than {max_points} data points")
            out[key].append(
                PointRow(
                    time_ns=t,
                    start_ns=start_ns,
                    value=value,
                    count=count,
                    sum=total,
                    min=lo,
                    max=hi,
                    bounds=tuple(orjson.loads(bounds)) if bounds else (),
                    counts=tuple(orjson.loads(counts)) if counts else (),
                )
            )
    return out
