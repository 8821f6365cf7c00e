"""The ingest writer runs a transaction PostgreSQL chose as a deadlock victim again."""

from __future__ import annotations

import pytest


def test_the_writer_runs_a_deadlocked_transaction_again() -> None:
    """PostgreSQL rolls one transaction of a deadlock back (SQLSTATE 40P01): the writer runs it
    again instead of failing the requests (exporters would see 503s); other errors are not
    retried, and a deadlock that keeps happening fails after a few tries."""
    import psycopg
    from sqlalchemy import create_engine
    from sqlalchemy.exc import OperationalError as SAOperationalError

    from pharos.server.ingest.writer import GroupCommitWriter, WriteResult

    writer = GroupCommitWriter(create_engine("sqlite://"))
    calls: list[int] = []

    def deadlock() -> SAOperationalError:
        return SAOperationalError("INSERT ...", {}, psycopg.errors.DeadlockDetected("deadlock"))

    def flaky(jobs: object) -> list[WriteResult]:
        calls.append(1)
        if len(calls) < 3:
            raise deadlock()
        return [WriteResult(1, 0)]

    writer._transaction = flaky  # type: ignore[method-assign]
    assert writer._transaction_retrying([]) == [WriteResult(1, 0)]
    assert len(calls) == 3 and writer.stats.deadlocks_retried == 2

    def always(jobs: object) -> list[WriteResult]:
        raise deadlock()

    writer._transaction = always  # type: ignore[method-assign]
    with pytest.raises(SAOperationalError):
        writer._transaction_retrying([])

    def other(jobs: object) -> list[WriteResult]:
        calls.append(1)
        raise SAOperationalError("INSERT ...", {}, psycopg.errors.UniqueViolation("dup"))

    calls.clear()
    writer._transaction = other  # type: ignore[method-assign]
    with pytest.raises(SAOperationalError):
        writer._transaction_retrying([])
    assert len(calls) == 1
