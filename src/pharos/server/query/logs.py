"""Log queries: the explorer's paged list (newest first) and the logs of one trace.

Text search (``q``) is a case-insensitive substring match over the body:

- **SQLite**: the FTS5 trigram index ``logs_fts`` (migration 0003). A query of 3 characters or
  more first asks the index how many logs contain it, up to :data:`FTS_SMALL`; when that is all
  of them, those rows are read through the index and sorted by time. A more common text is
  found faster by walking the time index newest first and testing each body with ``LIKE``
  (with at least one match in :data:`FTS_SMALL` / N logs, a page of 100 fills within
  100 N / FTS_SMALL rows). The threshold balances the two (reading a match through the
  index costs a few walked rows; bench/logs.py measured the costs over 5 million logs).
  Texts shorter than 3 characters cannot use trigrams and always take the ``LIKE`` walk.
  ``LIKE`` folds ASCII letters only; the index folds all of Unicode.
- **PostgreSQL**: ``ILIKE``, walking the newest logs or through the pg_trgm GIN index
  ``ix_logs_body_trgm`` (migration 0007), whichever is predicted cheaper from a first short walk
  (:func:`_postgresql_text`). The planner's own choice between the two, from its estimate of
  how many rows match, is often the costly one (bench/logs.py).

A **level** filter on SQLite has the same trade-off: when few logs are that severe (at most
:data:`RARE_LEVEL`, counted in the severity index), they are read through that index and sorted,
rather than walking the time index past every less severe log.

Logs link to their trace at query time (``traces`` is looked up for the page's trace ids), so a
log that arrived before its trace links up as soon as the trace is stored.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, and_, column, func, or_, select, text, tuple_

from pharos.server.db.schema import logs, traces
from pharos.server.timeparse import iso_from_ns

#: Above this many FTS matches, SQLite walks the time index instead (see the module doc).
FTS_SMALL = 10_000
#: At most this many logs at or above a level: read them through the severity index (SQLite).
RARE_LEVEL = 10_000
#: PostgreSQL text search reads the newest this many logs (of the other filters) first.
PG_WALK = 10_000
#: Reading one match through the pg_trgm index costs about as much as walking this many logs.
PG_INDEX_COST = 4.0
#: Trigram search needs at least this many characters.
TRIGRAM = 3


class BadCursor(ValueError):
    pass


class BadFilter(ValueError):
    """A filter no log can match and no database can take (a NUL character)."""


@dataclass(frozen=True, slots=True)
class LogFilter:
    min_severity: int | None = None
    agent: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    q: str | None = None


def encode_cursor(time_ns: int, row_id: int) -> str:
    raw = orjson.dumps([time_ns, row_id])
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        time_ns, row_id = orjson.loads(raw)
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
        raise BadCursor("cursor is not one this server returned") from None
    if type(time_ns) is not int or type(row_id) is not int:
        raise BadCursor("cursor is not one this server returned")
    return time_ns, row_id


def like_pattern(text: str) -> str:
    """``%text%`` with LIKE's wildcards escaped (escape character ``\\``)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def fts_phrase(text: str) -> str:
    """An FTS5 query matching ``text`` as a substring (trigram tokenizer): one quoted phrase.

    Any text makes a valid phrase except one with a NUL, where SQLite stops reading the query
    ("unterminated string"): refused (:class:`BadFilter`) rather than sent."""
    if "\x00" in text:
        raise BadFilter("q: must not contain a NUL character")
    return '"' + text.replace('"', '""') + '"'


def check_filter(flt: LogFilter) -> None:
    """Refuse text filters with a NUL: PostgreSQL cannot compare text with one, and SQLite's
    LIKE and FTS5 stop reading the pattern there (``q=%00`` matched every log)."""
    for name in ("agent", "trace_id", "span_id", "q"):
        value = getattr(flt, name)
        if value is not None and "\x00" in value:
            raise BadFilter(f"{name}: must not contain a NUL character")


def trace_path(trace_id: str) -> str:
    return f"/api/v1/traces/{trace_id}"


def log_out(row: Any, existing_traces: set[str]) -> dict[str, Any]:
    body: Any = row.body
    if row.body_json:
        try:
            body = orjson.loads(row.body)
        except orjson.JSONDecodeError:
            body = row.body
    trace = None
    if row.trace_id:
        exists = row.trace_id in existing_traces
        trace = {
            "trace_id": row.trace_id,
            "exists": exists,
            "path": trace_path(row.trace_id) if exists else None,
        }
    return {
        "log_id": row.log_id,
        "time": iso_from_ns(row.time_ns),
        "observed_time": iso_from_ns(row.observed_ns),
        "level": row.level,
        "severity_number": row.severity_number,
        "severity_text": row.severity_text,
        "body": body,
        "body_type": "json" if row.body_json else "string",
        "agent": row.agent,
        "service": row.service,
        "scope": row.scope,
        "trace_id": row.trace_id,
        "span_id": row.span_id,
        "trace": trace,
        "attributes": orjson.loads(row.attributes),
        "resource": orjson.loads(row.resource),
    }


def existing_trace_ids(conn: Connection, trace_ids: set[str]) -> set[str]:
    """Which of ``trace_ids`` have a ``traces`` row (spans stored)."""
    if not trace_ids:
        return set()
    found = conn.execute(
        select(traces.c.trace_id).where(traces.c.trace_id.in_(sorted(trace_ids)))
    ).scalars()
    return set(found)


def _conditions(flt: LogFilter) -> list[Any]:
    c = logs.c
    out: list[Any] = []
    if flt.min_severity is not None:
        out.append(c.severity_number >= flt.min_severity)
    if flt.agent:
        out.append(c.agent == flt.agent)
    if flt.trace_id:
        out.append(c.trace_id == flt.trace_id)
    if flt.span_id:
        out.append(c.span_id == flt.span_id)
    if flt.since_ns is not None:
        out.append(c.time_ns >= flt.since_ns)
    if flt.until_ns is not None:
        out.append(c.time_ns < flt.until_ns)
    return out


def _fts_matches(conn: Connection, q: str) -> bool:
    """True if at most FTS_SMALL logs contain ``q`` (then the index path is the fast one)."""
    if len(q) < TRIGRAM:
        return False
    matches = conn.exec_driver_sql(
        "SELECT count(*) FROM (SELECT rowid FROM logs_fts WHERE logs_fts MATCH ? LIMIT ?)",
        (fts_phrase(q), FTS_SMALL + 1),
    ).scalar_one()
    return bool(matches <= FTS_SMALL)


def _rare_level(conn: Connection, min_severity: int) -> bool:
    found = conn.exec_driver_sql(
        "SELECT count(*) FROM (SELECT 1 FROM logs WHERE severity_number >= ? LIMIT ?)",
        (min_severity, RARE_LEVEL + 1),
    ).scalar_one()
    return bool(found <= RARE_LEVEL)


def list_logs(engine: Engine, flt: LogFilter, *, limit: int, cursor: str | None) -> dict[str, Any]:
    check_filter(flt)
    c = logs.c
    conditions = _conditions(flt)
    if cursor:
        c_time, c_id = decode_cursor(cursor)
        conditions.append(tuple_(c.time_ns, c.id) < tuple_(c_time, c_id))
    order: tuple[Any, ...] = (c.time_ns.desc(), c.id.desc())
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            through_fts = bool(flt.q) and _fts_matches(conn, flt.q or "")
            if through_fts:
                fts = text("SELECT rowid FROM logs_fts WHERE logs_fts MATCH :phrase")
                phrase = fts_phrase(flt.q or "")
                conditions.append(c.id.in_(fts.bindparams(phrase=phrase).columns(column("rowid"))))
            elif flt.q:
                conditions.append(c.body.like(like_pattern(flt.q), escape="\\"))
            narrow = flt.agent or flt.trace_id or flt.span_id
            if (
                not through_fts
                and not narrow
                and flt.min_severity is not None
                and _rare_level(conn, flt.min_severity)
            ):
                # "+ 0": the time index cannot serve the order, so SQLite reads the few severe
                # logs through the severity index and sorts them.
                order = ((c.time_ns + 0).desc(), (c.id + 0).desc())
        elif flt.q:
            return _page(conn, _postgresql_text(conn, conditions, flt.q, limit), limit)
        stmt = select(logs).where(and_(True, *conditions)).order_by(*order).limit(limit + 1)
        return _page(conn, list(conn.execute(stmt).all()), limit)


def _walk(
    conn: Connection, conditions: list[Any], match: Any, limit: int, budget: int
) -> tuple[list[Any], Any]:
    """Walk the newest ``budget`` logs of ``conditions``, newest first: the first ``limit + 1``
    matches, and the ``budget``-th log (None when the walk ran out of logs first). One query;
    it stops as soon as it has a page."""
    c = logs.c
    newest = (
        select(logs)
        .where(and_(True, *conditions))
        .order_by(c.time_ns.desc(), c.id.desc())
        .limit(budget)
        .subquery()
    )
    rank = func.row_number().over(order_by=(newest.c.time_ns.desc(), newest.c.id.desc()))
    ranked = select(newest, rank.label("walk_rank")).subquery()
    hit = match(ranked.c.body)
    found = conn.execute(
        select(ranked, hit.label("walk_hit"))
        .where(or_(hit, ranked.c.walk_rank == budget))
        # The walk's own order (PostgreSQL knows the subquery is sorted so): no sort, so the
        # walk stops as soon as the page is full.
        .order_by(ranked.c.time_ns.desc(), ranked.c.id.desc())
        .limit(limit + 2)
    ).all()
    hits = [r for r in found if r.walk_hit]
    last = next((r for r in found if r.walk_rank == budget), None)
    return hits[: limit + 1], last


def _postgresql_text(conn: Connection, conditions: list[Any], q: str, limit: int) -> list[Any]:
    """Text search on PostgreSQL: walk the newest logs, or ask the trigram index.

    The newest PG_WALK logs (of the other filters) are tested first, newest first; the walk
    stops as soon as it has a page, so a common text costs a few hundred rows. Otherwise the
    share of matches it saw predicts what finishing the page costs each way: walking on (the
    rows still needed at that rate) or reading every match through the pg_trgm GIN index
    (about PG_INDEX_COST walked rows per match, from bench/logs.py); the cheaper is taken, and a
    text not seen at all goes to the index. (The planner's own choice between the two, from its
    estimate of how many rows match, is often the costly one.)
    """
    c = logs.c
    pattern = like_pattern(q)

    def match(body: Any) -> Any:
        return body.ilike(pattern, escape="\\")

    hits, last = _walk(conn, conditions, match, limit, PG_WALK)
    if len(hits) > limit or last is None:  # a full page, or every log was walked
        return hits
    if hits:
        rate = len(hits) / PG_WALK
        still = (limit + 1 - len(hits)) / rate  # logs to walk for the rest of the page
        total = conn.exec_driver_sql(
            "SELECT reltuples FROM pg_class WHERE oid = 'logs'::regclass"
        ).scalar_one()
        if still <= rate * max(float(total), PG_WALK) * PG_INDEX_COST:
            after = tuple_(c.time_ns, c.id) < tuple_(last.time_ns, last.id)
            budget = int(1.5 * still) + 1
            more, end = _walk(conn, [*conditions, after], match, limit - len(hits), budget)
            if len(hits) + len(more) > limit or end is None:
                return hits + more
    conn.exec_driver_sql("SET LOCAL enable_indexscan = off")  # this transaction only:
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a bitmap scan of the index
    return list(
        conn.execute(
            select(logs)
            .where(and_(True, *conditions, match(c.body)))
            .order_by(c.time_ns.desc(), c.id.desc())
            .limit(limit + 1)
        ).all()
    )


def _page(conn: Connection, rows: list[Any], limit: int) -> dict[str, Any]:
    """One page of ``limit`` (of the ``limit + 1`` rows read) with its trace links."""
    more = len(rows) > limit
    rows = rows[:limit]
    existing = existing_trace_ids(conn, {r.trace_id for r in rows if r.trace_id})
    next_cursor = encode_cursor(rows[-1].time_ns, rows[-1].id) if more and rows else None
    return {"items": [log_out(r, existing) for r in rows], "next_cursor": next_cursor}


def logs_of_trace(conn: Connection, trace_id: str, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """The first ``limit`` logs of a trace in time order, and whether there were more."""
    rows = conn.execute(
        select(logs)
        .where(logs.c.trace_id == trace_id)
        .order_by(logs.c.time_ns, logs.c.id)
        .limit(limit + 1)
    ).all()
    return [log_out(r, {trace_id}) for r in rows[:limit]], len(rows) > limit
