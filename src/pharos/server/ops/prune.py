"""The SQL of retention: count what would go, delete it in small batches, hold the job's lease.

Every batch is its own short transaction (``batch_rows`` rows at most), so the ingest writer
never waits long for a lock: on SQLite it waits for one batch at most, on PostgreSQL batches
only lock the rows they delete. Traces go whole: a batch picks old ``traces`` rows by
``start_ns`` (btree) and deletes their spans by ``trace_id`` (the unique index), then the rows.
Deletes of ``logs`` on SQLite fire the triggers that keep ``logs_fts`` in step.

Why not daily partitions on PostgreSQL: see docs/deployment.md ("Retention and volume").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, Table, and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from pharos.server.db.engine import writing
from pharos.server.db.schema import alerting_leases, alerts, metadata, outbox, spans, traces
from pharos.server.ops.retention import Target

LEASE = "retention"


@dataclass(slots=True)
class Pruned:
    target: Target
    rows: int = 0  # rows of target.table deleted (traces: trace rows)
    spans: int = 0  # for the traces target: spans deleted with them
    batches: int = 0
    seconds: float = 0.0
    longest_batch_seconds: float = 0.0


def _table(target: Target) -> Table:
    return metadata.tables[target.table]


def _condition(target: Target) -> object:
    table = _table(target)
    cond = table.c[target.column] < target.cutoff
    if target.only == "delivered":  # notifications done with: sent, or given up on
        cond = and_(cond, outbox.c.status.in_(("sent", "failed")))
    elif target.only == "settled":  # alerts that are over: nothing left to evaluate or send
        cond = and_(cond, alerts.c.state.in_(("resolved", "inactive")))
    return cond


def count(engine: Engine, target: Target) -> tuple[int, int]:
    """Rows that would go, and (for traces) the spans that would go with them."""
    with engine.connect() as conn:
        if target.table == "traces":
            n, span_sum = conn.execute(
                select(func.count(), func.coalesce(func.sum(traces.c.span_count), 0)).where(
                    _condition(target)  # type: ignore[arg-type]
                )
            ).one()
            return int(n), int(span_sum)
        n = conn.execute(
            select(func.count()).select_from(_table(target)).where(_condition(target))  # type: ignore[arg-type]
        ).scalar_one()
        return int(n), 0


def prune(
    engine: Engine,
    target: Target,
    batch_rows: int,
    *,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> Pruned:
    """Delete ``target``'s old rows in batches until none is left (or ``should_stop()``).

    ``progress(rows, spans)`` is called after each batch with what it deleted."""
    result = Pruned(target)
    started = time.perf_counter()
    write = writing(engine)
    while not should_stop():
        batch_started = time.perf_counter()
        with write.begin() as conn:
            if target.table == "traces":
                rows, span_rows = _prune_traces(conn, target, batch_rows)
            else:
                rows, span_rows = _prune_rows(conn, target, batch_rows), 0
        took = time.perf_counter() - batch_started
        if rows == 0:
            break
        result.rows += rows
        result.spans += span_rows
        result.batches += 1
        result.longest_batch_seconds = max(result.longest_batch_seconds, took)
        if progress is not None:
            progress(rows, span_rows)
    result.seconds = time.perf_counter() - started
    return result


def _prune_rows(conn: Connection, target: Target, batch_rows: int) -> int:
    table = _table(target)
    cond = _condition(target)
    if conn.dialect.name == "sqlite":
        # rowid, or the primary key of a WITHOUT ROWID table (the rollups: migration 0012)
        if table.dialect_options["sqlite"]["with_rowid"]:
            key = picked = "rowid"
        else:
            picked = ", ".join(c.name for c in table.primary_key.columns)
            key = f"({picked})"
        sql = (
            f"DELETE FROM {table.name} WHERE {key} IN (SELECT {picked} FROM {table.name} "
            f"WHERE {_sql(conn, cond)} LIMIT {int(batch_rows)})"
        )
    else:  # ctid: the physical row, whatever the table's key
        sql = (
            f"DELETE FROM {table.name} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table.name} "
            f"WHERE {_sql(conn, cond)} LIMIT {int(batch_rows)}))"
        )
    return int(conn.exec_driver_sql(sql).rowcount or 0)


def _sql(conn: Connection, cond: object) -> str:
    """A condition compiled with its literal values (all are ints and fixed strings)."""
    compiled = cond.compile(  # type: ignore[attr-defined]
        dialect=conn.dialect, compile_kwargs={"literal_binds": True}
    )
    return str(compiled)


def _prune_traces(conn: Connection, target: Target, batch_rows: int) -> tuple[int, int]:
    """One batch of whole traces: pick the oldest, delete their spans, then their rows."""
    budget = max(1, batch_rows // 10)  # traces average several spans; keep batches small
    ids = [
        row[0]
        for row in conn.execute(
            select(traces.c.trace_id)
            .where(_condition(target))  # type: ignore[arg-type]
            .order_by(traces.c.start_ns)
            .limit(budget)
        )
    ]
    if not ids:
        return 0, 0
    span_rows = conn.execute(delete(spans).where(spans.c.trace_id.in_(ids))).rowcount or 0
    rows = (
        conn.execute(
            delete(traces).where(traces.c.trace_id.in_(ids), _condition(target))  # type: ignore[arg-type]
        ).rowcount
        or 0
    )
    return int(rows), int(span_rows)


# --- the job's lease (one instance prunes at a time) --------------------------------------------


def take_lease(engine: Engine, holder: str, now_ns: int, ttl_ns: int) -> bool:
    """Take or renew the retention lease (a row in ``alerting_leases``, the leases table)."""
    leases = alerting_leases
    with writing(engine).begin() as conn:
        taken = conn.execute(
            update(leases)
            .where(
                leases.c.name == LEASE,
                or_(leases.c.holder == holder, leases.c.expires_ns < now_ns),
            )
            .values(holder=holder, expires_ns=now_ns + ttl_ns)
        ).rowcount
        if taken:
            return True
        if conn.execute(select(leases.c.name).where(leases.c.name == LEASE)).first() is not None:
            return False
    try:
        with writing(engine).begin() as conn:
            conn.execute(
                insert(leases).values(name=LEASE, holder=holder, expires_ns=now_ns + ttl_ns)
            )
        return True
    except IntegrityError:  # another instance inserted it first
        return False


def drop_lease(engine: Engine, holder: str) -> None:
    with writing(engine).begin() as conn:
        conn.execute(
            delete(alerting_leases).where(
                alerting_leases.c.name == LEASE, alerting_leases.c.holder == holder
            )
        )
