"""The SQL of the forwarding queue (``forward_queue``): enqueue in the ingest transaction, lease
due rows to one worker, delete them once sent, bound each target's backlog."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, or_, select, update

from pharos.server.db.schema import forward_queue as fq


def enqueue(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(fq), list(rows))


def _unleased(now_ns: int) -> Any:
    return or_(fq.c.locked_until_ns.is_(None), fq.c.locked_until_ns < now_ns)


def claim(
    conn: Connection, target: str, holder: str, now_ns: int, lease_ns: int, limit: int
) -> list[Row[Any]]:
    """Lease up to ``limit`` due rows of ``target``, oldest first, to ``holder`` (a conditional
    update: two instances never hold the same row). Commit before sending."""
    ids = [
        int(r[0])
        for r in conn.execute(
            select(fq.c.id)
            .where(fq.c.target == target, fq.c.next_attempt_ns <= now_ns, _unleased(now_ns))
            .order_by(fq.c.id)
            .limit(limit)
        )
    ]
    if not ids:
        return []
    until = now_ns + lease_ns
    conn.execute(
        update(fq)
        .where(fq.c.id.in_(ids), _unleased(now_ns))
        .values(locked_by=holder, locked_until_ns=until)
    )
    return list(
        conn.execute(
            select(fq)
            .where(fq.c.id.in_(ids), fq.c.locked_by == holder, fq.c.locked_until_ns == until)
            .order_by(fq.c.id)
        )
    )


def remove(conn: Connection, ids: Iterable[int], holder: str) -> int:
    """Delete rows this holder still leases (sent, or given up on); returns how many."""
    id_list = list(ids)
    if not id_list:
        return 0
    result = conn.execute(delete(fq).where(fq.c.id.in_(id_list), fq.c.locked_by == holder))
    return int(result.rowcount or 0)


def retry_later(
    conn: Connection, ids: Iterable[int], holder: str, *, error: str, next_attempt_ns: int
) -> None:
    id_list = list(ids)
    if not id_list:
        return
    conn.execute(
        update(fq)
        .where(fq.c.id.in_(id_list), fq.c.locked_by == holder)
        .values(
            attempts=fq.c.attempts + 1,
            next_attempt_ns=next_attempt_ns,
            last_error=error[:1000],
            locked_until_ns=None,
        )
    )


def release(conn: Connection, holder: str) -> None:
    """Give back a stopping worker's leases (its rows are sent at once elsewhere, or later)."""
    conn.execute(update(fq).where(fq.c.locked_by == holder).values(locked_until_ns=None))


def depths(conn: Connection) -> dict[str, int]:
    stmt = select(fq.c.target, func.count()).group_by(fq.c.target)
    return {str(t): int(n) for t, n in conn.execute(stmt)}


def trim(conn: Connection, target: str, keep: int, now_ns: int) -> int:
    """Delete ``target``'s oldest rows beyond the newest ``keep`` (not those being sent now);
    returns how many were dropped."""
    cut = conn.execute(
        select(fq.c.id).where(fq.c.target == target).order_by(fq.c.id.desc()).offset(keep).limit(1)
    ).scalar()
    if cut is None:
        return 0
    result = conn.execute(
        delete(fq).where(fq.c.target == target, fq.c.id <= int(cut), _unleased(now_ns))
    )
    return int(result.rowcount or 0)


def drop_target(conn: Connection, target: str) -> int:
    """Delete every row of a target that is no longer configured."""
    result = conn.execute(delete(fq).where(fq.c.target == target))
    return int(result.rowcount or 0)
