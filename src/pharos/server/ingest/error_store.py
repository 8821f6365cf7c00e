"""Store error occurrences in the writer's transaction: upsert ``error_groups`` (count, first
and last seen, latest message and stack trace, agents, recent traces, regression) and add to
``error_occurrences`` per minute, fingerprint and agent.

Called with the spans and error logs stored for the *first* time, so a resent request counts
nothing twice. Several instances may write the same groups at once (PostgreSQL): the rows are
created if missing, then locked in fingerprint order, merged (ingest/exceptions.py) and
written back.

A failure recorded on its span and logged in it counts once (ingest/exceptions.py): with the
group rows locked, the new spans' exception events look for ERROR logs of the same span and
fingerprint already stored (and take back what those counted), and new error logs look for the
stored span's exception events. The lock orders two transactions that store the two halves at
once: the second one's queries see what the first committed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, delete, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from pharos.server.db.schema import error_groups, error_occurrences, logs, spans
from pharos.server.ingest.exceptions import (
    LOG,
    ErrorOccurrence,
    GroupState,
    OccurrenceKey,
    event_occurrences,
    group_by_fingerprint,
    log_occurrences,
    log_share,
    merge_group,
    minute_counts,
    new_group,
    occurrence,
    span_occurrences,
    stood_for_by_spans,
)
from pharos.server.ingest.logs import ERROR_SEVERITY, LogRecord, error_fields
from pharos.server.ingest.normalize import SpanRecord

_GROUP_COLUMNS = tuple(c.name for c in error_groups.columns)
_CHUNK = 400  # (trace_id, span_id) pairs per lookup


def group_from_row(row: Any) -> GroupState:
    values = dict(zip(_GROUP_COLUMNS, row, strict=True))
    values["recent_traces"] = orjson.loads(values["recent_traces"])
    values["agents"] = orjson.loads(values["agents"])
    return GroupState(**values)


#: Called once the groups are locked: (occurrences that count, occurrences taken back).
Settle = Callable[[Connection], tuple[Sequence[ErrorOccurrence], Sequence[ErrorOccurrence]]]


def record_errors(
    conn: Connection, occurrences: Sequence[ErrorOccurrence], settle: Settle | None = None
) -> None:
    """Add ``occurrences`` to their groups. With ``settle``, what counts (and what earlier
    occurrences to take back) is decided once the groups are locked."""
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
    counted, taken_back = settle(conn) if settle is not None else (occurrences, ())
    adding = group_by_fingerprint(counted)
    removing = Counter(o.fingerprint for o in taken_back)
    merged = []
    for row in rows:
        if row.fingerprint not in adding and row.fingerprint not in removing:
            continue
        state = merge_group(group_from_row(row), adding.get(row.fingerprint, []))
        state.count = max(0, state.count - removing[row.fingerprint])
        merged.append(state.as_row())
    columns = [c for c in _GROUP_COLUMNS if c != "fingerprint"]
    if merged:
        conn.execute(
            update(error_groups)
            .where(g.fingerprint == bindparam("b_fingerprint"))
            .values({c: bindparam(f"b_{c}") for c in columns}),
            [{f"b_{k}": v for k, v in row.items()} for row in merged],
        )
    counts = minute_counts(counted)
    counts.subtract(minute_counts(taken_back))
    changes = [
        {"bucket_start": b, "fingerprint": fp, "agent": agent, "count": n}
        for (b, fp, agent), n in sorted(counts.items())
        if n
    ]
    stmt = insert(error_occurrences)
    if changes:
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["bucket_start", "fingerprint", "agent"],
                set_={"count": error_occurrences.c.count + stmt.excluded.count},
            ),
            changes,
        )
    if taken_back:
        _forget_emptied(conn, taken_back)


def _forget_emptied(conn: Connection, taken_back: Sequence[ErrorOccurrence]) -> None:
    """After taking occurrences back: drop emptied per-minute rows, and the agents that have
    no occurrence of the group left from the group's agent list."""
    o = error_occurrences.c
    fingerprints = sorted({t.fingerprint for t in taken_back})
    conn.execute(delete(error_occurrences).where(o.count <= 0, o.fingerprint.in_(fingerprints)))
    left = {
        (fp, agent)
        for fp, agent in conn.execute(
            select(o.fingerprint, o.agent).where(o.fingerprint.in_(fingerprints)).distinct()
        )
    }
    lost = {(t.fingerprint, t.agent) for t in taken_back} - left
    if not lost:
        return
    g = error_groups.c
    updates = []
    for fingerprint, agents_json in conn.execute(
        select(g.fingerprint, g.agents).where(g.fingerprint.in_(sorted({f for f, _ in lost})))
    ):
        agents = [a for a in orjson.loads(agents_json) if (fingerprint, a) not in lost]
        updates.append({"b_fp": fingerprint, "b_agents": orjson.dumps(agents).decode()})
    conn.execute(
        update(error_groups)
        .where(g.fingerprint == bindparam("b_fp"))
        .values(agents=bindparam("b_agents")),
        updates,
    )


def record_span_errors(conn: Connection, spans: Sequence[SpanRecord]) -> None:
    """The writer's span step: exception events of newly stored spans. They all count; ERROR
    logs of the same span and fingerprint stored before them are taken back (one failure)."""
    found = span_occurrences(spans)

    def settle(c: Connection) -> tuple[Sequence[ErrorOccurrence], Sequence[ErrorOccurrence]]:
        pairs = {(o.trace_id, o.span_id) for o in found if o.trace_id and o.span_id}
        logged = _stored_log_occurrences(c, pairs, exclude=set())
        return found, stood_for_by_spans(found, logged)

    record_errors(conn, found, settle)


def record_log_errors(conn: Connection, records: Sequence[LogRecord]) -> None:
    """The log store's error step: ERROR-or-worse logs stored for the first time (already in
    ``logs``). A log whose span is stored counts only beyond that span's exception events."""
    found = log_occurrences(records)

    def settle(c: Connection) -> tuple[Sequence[ErrorOccurrence], Sequence[ErrorOccurrence]]:
        pairs = {(o.trace_id, o.span_id) for o in found if o.trace_id and o.span_id}
        if not pairs:
            return found, ()
        exclude = {r.log_id for r in records}
        before = {
            key: len(items)
            for key, items in _stored_log_occurrences(c, pairs, exclude=exclude).items()
        }
        return log_share(found, before, _stored_span_events(c, pairs)), ()

    record_errors(conn, found, settle)


def _stored_log_occurrences(
    conn: Connection, pairs: set[tuple[Any, Any]], exclude: set[str]
) -> dict[OccurrenceKey, list[ErrorOccurrence]]:
    """Stored ERROR-or-worse logs of these (trace_id, span_id) pairs (but ``exclude``'s log
    ids), as occurrences by identity; their fingerprints are recomputed as at ingest."""
    out: dict[OccurrenceKey, list[ErrorOccurrence]] = {}
    c = logs.c
    ordered = sorted(pairs)
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        found = conn.execute(
            select(
                c.log_id, c.trace_id, c.span_id, c.time_ns, c.level, c.body, c.attributes, c.agent
            ).where(
                c.trace_id.in_(sorted({t for t, _ in chunk})),
                c.severity_number >= ERROR_SEVERITY,
                c.span_id.in_(sorted({s for _, s in chunk})),
            )
        )
        wanted = set(chunk)
        for row in found:
            if row.log_id in exclude or (row.trace_id, row.span_id) not in wanted:
                continue
            try:
                attrs = orjson.loads(row.attributes)
            except orjson.JSONDecodeError:
                attrs = {}
            exc_type, message, stack, _ = error_fields(
                attrs if isinstance(attrs, dict) else {}, row.body, row.level
            )
            o = occurrence(
                exc_type,
                message,
                stack,
                source=LOG,
                time_ns=row.time_ns,
                agent=row.agent,
                trace_id=row.trace_id,
                span_id=row.span_id,
                group_key=f"log:{row.level}",
            )
            out.setdefault((row.trace_id, row.span_id, o.fingerprint), []).append(o)
    return out


def _stored_span_events(conn: Connection, pairs: set[tuple[Any, Any]]) -> Counter[OccurrenceKey]:
    """Exception events of the stored spans among these (trace_id, span_id), by identity."""
    out: Counter[OccurrenceKey] = Counter()
    c = spans.c
    ordered = sorted(pairs)
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        found = conn.execute(
            select(c.trace_id, c.span_id, c.events, c.end_ns, c.agent).where(
                tuple_(c.trace_id, c.span_id).in_(chunk)
            )
        )
        for row in found:
            for o in event_occurrences(
                row.events,
                end_ns=row.end_ns,
                agent=row.agent,
                trace_id=row.trace_id,
                span_id=row.span_id,
            ):
                out[(row.trace_id, row.span_id, o.fingerprint)] += 1
    return out


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
