"""Store log records in the writer's transaction (``GroupCommitWriter.stores``).

A resent request stores each record once: ``log_id`` is a hash of the record's content
(ingest/logs.py) and unique, so the insert skips the records already stored. The records
stored for the first time are handed to the error-tracking step (ERROR and worse logs become
error occurrences), in the same transaction.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceResponse,
)
from sqlalchemy import Connection

from pharos.server.db.schema import logs
from pharos.server.ingest.logs import LogRecord, NormalizedLogs

#: The writer's store step name for log records (``GroupCommitWriter.stores``).
LOGS = "logs"
LOG_COLUMNS = tuple(c.name for c in logs.columns if c.name != "id")
_row = operator.attrgetter(*LOG_COLUMNS)
_COLUMNS_SQL = ", ".join(LOG_COLUMNS)
_SQLITE_INSERT = (
    f"INSERT INTO logs ({_COLUMNS_SQL}) VALUES ({', '.join('?' for _ in LOG_COLUMNS)}) "
    "ON CONFLICT (log_id) DO NOTHING"
)
_PG_INSERT = (
    f"INSERT INTO logs ({_COLUMNS_SQL}) VALUES ({', '.join('%s' for _ in LOG_COLUMNS)}) "
    "ON CONFLICT (log_id) DO NOTHING RETURNING log_id"
)
#: Called with the error logs (ERROR and worse, with a fingerprint) stored for the first time.
ErrorStep = Callable[[Connection, Sequence[LogRecord]], None]


def logs_response(batch: NormalizedLogs) -> ExportLogsServiceResponse:
    """The OTLP answer once ``batch``'s records are committed (partial_success if any were
    rejected)."""
    response = ExportLogsServiceResponse()
    if batch.rejected:
        response.partial_success.CopyFrom(
            ExportLogsPartialSuccess(
                rejected_log_records=batch.rejected, error_message=batch.error_message
            )
        )
    return response


class LogStore:
    """``store(conn, records) -> int`` for the writer: inserts the records not stored yet and
    returns how many were new; the new error logs go to ``on_errors``."""

    def __init__(self, on_errors: ErrorStep | None = None) -> None:
        self.on_errors = on_errors

    def __call__(self, conn: Connection, records: Sequence[LogRecord]) -> int:
        if not records:
            return 0
        unique: dict[str, LogRecord] = {}
        for record in records:  # two identical records in one request are one record
            unique.setdefault(record.log_id, record)
        todo = list(unique.values())
        errors = [r for r in todo if r.fingerprint is not None]
        if conn.dialect.name == "sqlite":
            stored, new_errors = self._sqlite(conn, todo, errors)
        else:
            stored, new_errors = self._postgresql(conn, todo, errors)
        if new_errors and self.on_errors is not None:
            self.on_errors(conn, new_errors)
        return stored

    @staticmethod
    def _sqlite(
        conn: Connection, todo: list[LogRecord], errors: list[LogRecord]
    ) -> tuple[int, list[LogRecord]]:
        # The writer holds SQLite's only write lock, so "which error logs exist" cannot change
        # between this check and the insert. Only error logs are checked (one index probe
        # each): the others need just the count, which the insert reports.
        existing: set[str] = set()
        for start in range(0, len(errors), 400):
            chunk = [r.log_id for r in errors[start : start + 400]]
            found = conn.exec_driver_sql(
                f"SELECT log_id FROM logs WHERE log_id IN ({', '.join('?' for _ in chunk)})",
                tuple(chunk),
            )
            existing.update(row[0] for row in found)
        cursor = conn.connection.cursor()
        try:
            cursor.executemany(_SQLITE_INSERT, [_row(r) for r in todo])
            stored = int(cursor.rowcount)  # summed over the rows for executemany
        finally:
            cursor.close()
        return stored, [r for r in errors if r.log_id not in existing]

    @staticmethod
    def _postgresql(
        conn: Connection, todo: list[LogRecord], errors: list[LogRecord]
    ) -> tuple[int, list[LogRecord]]:
        # Several instances may insert the same records at once: ON CONFLICT DO NOTHING
        # RETURNING says which rows this transaction inserted (psycopg's pipelined executemany).
        inserted: set[str] = set()
        cursor = conn.connection.cursor()
        try:
            cursor.executemany(  # type: ignore[call-arg]
                _PG_INSERT, [_row(r) for r in todo], returning=True
            )
            while True:
                inserted.update(row[0] for row in cursor.fetchall())
                if not cursor.nextset():
                    break
        finally:
            cursor.close()
        return len(inserted), [r for r in errors if r.log_id in inserted]
