"""Store error occurrences in the writer's transaction: upsert ``error_groups`` (count, first
and last seen, latest message and stack trace, agents, recent traces, regression) and add to
``error_occurrences`` per minute, fingerprint and agent.

Called with the spans and error logs stored for the *first* time, so a resent request counts
nothing twice. Several instances may write the same groups at once (PostgreSQL): the rows are
created if missing, then locked in fingerprint order, merged (ingest/exceptions.py) and
written back.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from pharos.server.db.schema import error_groups, error_occurrences
from pharos.server.ingest.exceptions import (
    ErrorOccurrence,
    GroupState,
    group_by_fingerprint,
    log_occurrences,
    merge_group,
    minute_counts,
    new_group,
    span_occurrences,
)
from pharos.server.ingest.logs import LogRecord
from pharos.server.ingest.normalize import SpanRecord

_GROUP_COLUMNS = tuple(c.name for c in error_groups.columns)


def group_from_row(row: Any) -> GroupState:
    values = dict(zip(_GROUP_COLUMNS, row, strict=True))
    values["recent_traces"] = orjson.loads(values["recent_traces"])
    values["agents"] = orjson.loads(values["agents"])
    return GroupState(**values)


def record_errors(conn: Connection, occurrences: Sequence[ErrorOccurrence]) -> None:
    if not occurrences:
        return
    insert: Any = sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert
    by_fp = group_by_fingerprint(occurrences)
    keys = sorted(by_fp)
    first = {fp: min(by_fp[fp], key=lambda o: o.time_ns) for fp in keys}
    conn.execute(
        insert(error_groups).on_conflict_do_nothing(index_elements=["fingerprint"]),
        [new_group(first[fp]).as_row() for fp in keys],
    )
    g = error_groups.c
    rows = conn.execute(
        select(error_groups)
        .where(g.fingerprint.in_(keys))
        .order_by(g.fingerprint)
        .with_for_update()
    ).all()
    merged = [merge_group(group_from_row(row), by_fp[row.fingerprint]).as_row() for row in rows]
    columns = [c for c in _GROUP_COLUMNS if c != "fingerprint"]
    conn.execute(
        update(error_groups)
        .where(g.fingerprint == bindparam("b_fingerprint"))
        .values({c: bindparam(f"b_{c}") for c in columns}),
        [{f"b_{k}": v for k, v in row.items()} for row in merged],
    )
    counts = minute_counts(occurrences)
    stmt = insert(error_occurrences)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["bucket_start", "fingerprint", "agent"],
            set_={"count": error_occurrences.c.count + stmt.excluded.count},
        ),
        [
            {"bucket_start": b, "fingerprint": fp, "agent": agent, "count": n}
            for (b, fp, agent), n in sorted(counts.items())
        ],
    )


def record_span_errors(conn: Connection, spans: Sequence[SpanRecord]) -> None:
    """The writer's span step: exception events of newly stored spans."""
    record_errors(conn, span_occurrences(spans))


def record_log_errors(conn: Connection, records: Sequence[LogRecord]) -> None:
    """The log store's error step: ERROR-or-worse logs stored for the first time."""
    record_errors(conn, log_occurrences(records))


def move_span_errors(
    conn: Connection, before: Sequence[SpanRecord], after: Sequence[SpanRecord]
) -> None:
    """Stored spans given another agent (ingest/adopt.py): their exception events' per-minute
    counts move to that agent, and the groups list it (and no longer list the old agent when
    none of its occurrences is left)."""
    old = minute_counts(span_occurrences(before))
    if not old:
        return
    new = minute_counts(span_occurrences(after))
    delta: Counter[tuple[int, str, str]] = Counter(new)
    delta.subtract(old)
    insert: Any = sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert
    o = error_occurrences.c
    stmt = insert(error_occurrences)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["bucket_start", "fingerprint", "agent"],
            set_={"count": o.count + stmt.excluded.count},
        ),
        [
            {"bucket_start": b, "fingerprint": fp, "agent": agent, "count": n}
            for (b, fp, agent), n in sorted(delta.items())
            if n
        ],
    )
    conn.execute(
        delete(error_occurrences).where(o.count <= 0, o.fingerprint.in_({k[1] for k in old}))
    )
    g = error_groups.c
    fingerprints = sorted({k[1] for k in old} | {k[1] for k in new})
    left = {
        (fp, agent)
        for fp, agent in conn.execute(
            select(o.fingerprint, o.agent).where(o.fingerprint.in_(fingerprints)).distinct()
        )
    }
    gained: dict[str, set[str]] = {}
    for _, fp, agent in new:
        gained.setdefault(fp, set()).add(agent)
    rows = conn.execute(
        select(g.fingerprint, g.agents)
        .where(g.fingerprint.in_(fingerprints))
        .order_by(g.fingerprint)
    ).all()
    updates = []
    for fingerprint, agents_json in rows:
        agents = [a for a in orjson.loads(agents_json) if (fingerprint, a) in left]
        agents += sorted(gained.get(fingerprint, set()) - set(agents))
        updates.append({"b_fp": fingerprint, "b_agents": orjson.dumps(agents).decode()})
    if updates:
        conn.execute(
            update(error_groups)
            .where(g.fingerprint == bindparam("b_fp"))
            .values(agents=bindparam("b_agents")),
            updates,
        )
