"""PostgreSQL fast path of the writer: the group's spans go in with ``COPY`` (one round trip,
no per-row statement) into a session temp table, then one ``INSERT .. SELECT .. ON CONFLICT
(trace_id, span_id) DO NOTHING RETURNING`` moves the new ones into ``spans``.

``COPY`` cannot skip duplicates itself, hence the temp table; the insert walks rows in key order
so several instances inserting overlapping spans lock them in the same order (no deadlock).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

TEMP = "pharos_spans_in"
_READY = "pharos_spans_in_ready"  # flag in the DBAPI connection's info: temp table created


class SpanCopier:
    def __init__(self, columns: Sequence[str]) -> None:
        cols = ", ".join(columns)
        self._create = (
            f"CREATE TEMP TABLE IF NOT EXISTS {TEMP} ON COMMIT DELETE ROWS AS "
            f"SELECT {cols} FROM spans WITH NO DATA"
        )
        self._copy = f"COPY {TEMP} ({cols}) FROM STDIN"
        self._move = (
            f"INSERT INTO spans ({cols}) SELECT {cols} FROM {TEMP} ORDER BY trace_id, span_id "
            "ON CONFLICT (trace_id, span_id) DO NOTHING RETURNING trace_id, span_id"
        )

    def insert(self, conn: Connection, rows: Sequence[Sequence[Any]]) -> set[tuple[str, str]]:
        """Insert ``rows`` (in ``columns`` order) unless already stored; return the new keys."""
        import psycopg

        proxied = conn.connection
        cursor = proxied.cursor()
        try:
            if not proxied.info.get(_READY):
                cursor.execute(self._create)
                proxied.info[_READY] = True
            with cursor.copy(self._copy) as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(self._move)
            return {(t, s) for t, s in cursor.fetchall()}
        except BaseException as exc:
            # The transaction is lost, and with it a temp table created in it: create again.
            proxied.info.pop(_READY, None)
            if isinstance(exc, psycopg.OperationalError):  # as SQLAlchemy would raise it,
                raise OperationalError(self._copy, None, exc) from exc  # so 503 + retry
            raise
        finally:
            cursor.close()
