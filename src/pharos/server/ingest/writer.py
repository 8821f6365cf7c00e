"""The group-commit writer: one thread per process drains a bounded queue of ingest requests
and commits several of them per transaction (DESIGN §2).

A request's future resolves only after the transaction holding its spans has committed, so the
HTTP handler acknowledges durable data only. When the queue is full, :meth:`submit` raises
:class:`Overloaded` at once (the handler answers 503 with Retry-After); nothing is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection, Engine, and_, case, func, literal_column
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError

from pharos.server.analytics import histogram as hist
from pharos.server.analytics.rollups import (
    RESOLUTIONS,
    PackedDeltas,
    add_packed,
    moved_deltas,
    pack,
    packed_deltas,
)
from pharos.server.db.schema import ROLLUP_TABLES, spans, traces
from pharos.server.ingest.adopt import Moved, adopt_descendants, traces_seen_before
from pharos.server.ingest.derive import Derived, trace_rows
from pharos.server.ingest.normalize import RANK_EXPLICIT, SpanRecord
from pharos.server.ingest.pg_copy import SpanCopier

if TYPE_CHECKING:
    from pharos.server.cost.book import CostHook

#: ``spans`` columns in table order (``id`` is assigned by the database).
SPAN_COLUMNS = tuple(c.name for c in spans.columns if c.name != "id")
TRACE_COLUMNS = tuple(c.name for c in traces.columns)
ROLLUP_KEY = ("bucket_start", "agent", "model", "kind")
ROLLUP_VALUES = (
    "count",
    "errors",
    "duration_sum_ms",
    "duration_max_ms",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost_nanousd",
    "histogram",
)
_span_tuple = operator.attrgetter(*SPAN_COLUMNS)

log = logging.getLogger("pharos.writer")


class Overloaded(Exception):
    """The writer's queue is full: try again later."""


class Unavailable(Exception):
    """The writer cannot commit right now (stopped, or the database is unreachable)."""


@dataclass(slots=True)
class WriteResult:
    stored: int  # spans stored for the first time
    duplicates: int  # spans that were already stored (a resend) and were skipped
    #: Per other signal (``logs``, ``metric_points``): records stored for the first time.
    extra_stored: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Job:
    records: Sequence[SpanRecord]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[WriteResult]
    #: Records of other signals, by store name (see ``GroupCommitWriter.stores``).
    extras: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    enqueued: float = field(default_factory=time.monotonic)
    #: Passed to ``request_steps`` (forwarding: the request to send on, forward/).
    context: Any = None
    #: What the records add to summaries and rollups, computed when parsed (ingest/derive.py).
    derived: Derived | None = None

    @property
    def size(self) -> int:
        return len(self.records) + sum(len(v) for v in self.extras.values())


@dataclass
class WriterStats:
    transactions: int = 0
    requests: int = 0
    spans_stored: int = 0
    spans_duplicate: int = 0
    rejected_overloaded: int = 0
    #: Records of other signals (by store name: ``logs``, ``metric_points``) stored for the
    #: first time, and re-sent ones skipped.
    extra_stored: Counter[str] = field(default_factory=Counter)
    extra_duplicate: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    #: Transactions PostgreSQL rolled back to break a deadlock, and the writer ran again.
    deadlocks_retried: int = 0
    last_commit_seconds: float = 0.0
    last_error: str | None = None


class GroupCommitWriter:
    def __init__(self, engine: Engine, *, queue_size: int = 256, batch_spans: int = 4096) -> None:
        self._engine = engine
        self.cost: CostHook | None = None  # prices model calls, counts usage (cost/book.py)
        #: Store steps for other signals (logs, metric points), by name: called inside the
        #: group's transaction with one request's records; returns how many were new.
        self.stores: dict[str, Callable[[Connection, Sequence[Any]], int]] = {}
        #: Called inside the transaction with the spans stored for the first time (error
        #: groups from exception events, ...), after traces and rollups.
        self.span_steps: list[Callable[[Connection, Sequence[SpanRecord]], None]] = []
        #: Called inside the transaction once per request, after its spans and other signals
        #: are stored: (conn, the request's ``context``, its spans stored for the first time,
        #: records of each other signal stored for the first time). Forwarding queues there.
        self.request_steps: list[
            Callable[[Connection, Any, Sequence[SpanRecord], Mapping[str, int]], None]
        ] = []
        #: Called inside the transaction when stored spans were given another agent (their
        #: ancestor naming it arrived later: ingest/adopt.py), with the spans before and after.
        self.move_steps: list[
            Callable[[Connection, Sequence[SpanRecord], Sequence[SpanRecord]], None]
        ] = []
        #: Called on the event loop after a request's spans are committed (live/ events).
        self.on_commit: Callable[[Sequence[SpanRecord], WriteResult], None] | None = None
        #: By store name: called on the event loop after a request's records of that signal
        #: are committed, with the records and how many were new (live ``log`` events).
        self.on_commit_extras: dict[str, Callable[[Sequence[Any], int], None]] = {}
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=queue_size)
        self._batch_spans = batch_spans
        self._thread: threading.Thread | None = None
        self._accepting = False
        self.stats = WriterStats()
        self._sqlite = engine.dialect.name == "sqlite"
        self._insert: Any = sqlite.insert if self._sqlite else postgresql.insert
        self._least: Any = func.min if self._sqlite else func.least
        self._greatest: Any = func.max if self._sqlite else func.greatest
        self._traces_upsert = self._build_traces_upsert()
        # SQLite: the statements compiled once to plain SQL, run with executemany over tuples
        # (the single writer holds BEGIN IMMEDIATE, so learning which spans were new from the
        # ids cannot race). PostgreSQL: INSERT .. ON CONFLICT DO NOTHING
        # RETURNING, which stays right with several instances writing at once.
        dialect = engine.dialect
        self._sqlite_span_insert = (
            str(spans.insert().compile(dialect=dialect, column_keys=list(SPAN_COLUMNS)))
            + " ON CONFLICT (trace_id, span_id) DO NOTHING"
        )
        self._sqlite_traces_upsert = str(self._traces_upsert.compile(dialect=dialect))
        self._rollup_upserts = {  # SQLite's (PostgreSQL: see _merge_rollups)
            name: _rollup_upsert(table.name) for name, table in ROLLUP_TABLES.items()
        }
        self._pg_copier = SpanCopier(SPAN_COLUMNS)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._accepting = True
        self._thread = threading.Thread(target=self._run, name="pharos-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop accepting, commit everything already queued, then end the thread."""
        self._accepting = False
        if self._thread is None:
            return
        self._queue.put(None)  # blocks only if full; the thread is draining it
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("writer did not drain within %.0fs", timeout)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._accepting and self._thread is not None and self._thread.is_alive()

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    @property
    def queue_capacity(self) -> int:
        return self._queue.maxsize

    # --- submitting ---------------------------------------------------------------------------

    async def write(
        self,
        records: Sequence[SpanRecord] = (),
        extras: Mapping[str, Sequence[Any]] | None = None,
        context: Any = None,
        derived: Derived | None = None,
    ) -> WriteResult:
        """Queue spans (and records of other signals, by store name) and wait until they are
        committed, all in one transaction. ``derived``: the spans' summary and rollup deltas
        and their pricing, computed from exactly these records (ingest/derive.py)."""
        extras = {name: items for name, items in (extras or {}).items() if items}
        for name in extras:
            if name not in self.stores:
                raise ValueError(f"no store for {name!r}")
        if not records and not extras:
            return WriteResult(0, 0)
        if not self.running:
            raise Unavailable("the writer is not running")
        loop = asyncio.get_running_loop()
        job = _Job(records, loop, loop.create_future(), extras, context=context, derived=derived)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self.stats.rejected_overloaded += 1
            raise Overloaded("ingest queue is full") from None
        # shield: a client that disconnects must not cancel the bookkeeping of a commit.
        result = await asyncio.shield(job.future)
        if self.on_commit is not None and records:
            self.on_commit(records, result)
        for name, items in extras.items():
            hook = self.on_commit_extras.get(name)
            if hook is not None:
                hook(items, result.extra_stored.get(name, 0))
        return result

    # --- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while True:
            try:
                first = self._queue.get(timeout=0.5)
            except queue.Empty:
                if stopping:
                    return
                continue
            if first is None:
                stopping = True
                if self._queue.empty():
                    return
                continue
            jobs = [first]
            spans_in_group = first.size
            while spans_in_group < self._batch_spans:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    continue
                jobs.append(nxt)
                spans_in_group += nxt.size
            self._commit_jobs(jobs)
            if stopping and self._queue.empty():
                return

    def _commit_jobs(self, jobs: list[_Job]) -> None:
        try:
            results = self._transaction_retrying(jobs)
        except Exception as exc:  # one bad request must not fail the others: retry alone
            if len(jobs) > 1 and not _is_unavailable(exc):
                for job in jobs:
                    self._commit_jobs([job])
                return
            self._fail(jobs, exc)
            return
        for job, result in zip(jobs, results, strict=True):
            _resolve(job, result)

    def _transaction_retrying(self, jobs: list[_Job], attempts: int = 4) -> list[WriteResult]:
        """:meth:`_transaction`, again when PostgreSQL chose it as a deadlock's victim (two
        instances adding to the same rollup rows, each already holding one the other needs):
        the rolled-back transaction is simply run again, so the exporters never see it."""
        for attempt in range(1, attempts + 1):
            try:
                return self._transaction(jobs)
            except DBAPIError as exc:
                if attempt == attempts or not _is_deadlock(exc):
                    raise
                self.stats.deadlocks_retried += 1
                time.sleep(0.005 * attempt)
        raise AssertionError("unreachable")

    def _fail(self, jobs: list[_Job], exc: BaseException) -> None:
        reason = "database_unavailable" if _is_unavailable(exc) else type(exc).__name__
        self.stats.failures[reason] += len(jobs)
        self.stats.last_error = f"{reason}: {exc}"[:500]
        log.error("writer: %d request(s) not stored (%s): %s", len(jobs), reason, exc)
        error: Exception = (
            Unavailable(f"database unavailable: {_short(exc)}")
            if _is_unavailable(exc)
            else RuntimeError(f"could not store spans: {_short(exc)}")
        )
        for job in jobs:
            _reject(job, error)

    def _transaction(self, jobs: list[_Job]) -> list[WriteResult]:
        started = time.perf_counter()
        rows: list[tuple[Any, ...]] = []
        owners: dict[tuple[str, str], int] = {}  # first job that sent each span in the group
        per_job_dupes = [0] * len(jobs)
        candidates: list[SpanRecord] = []
        if self.cost is not None:  # table prices, before rows and deltas are built
            self.cost.book.table()  # re-read the overrides when due (workers use a snapshot)
            self.cost.price(r for job in jobs if job.derived is None for r in job.records)
        for index, job in enumerate(jobs):
            for record in job.records:
                key = (record.trace_id, record.span_id)
                if key in owners:
                    per_job_dupes[index] += 1
                    continue
                owners[key] = index
                candidates.append(record)
                rows.append(_span_tuple(record))
        extra_stored: list[dict[str, int]] = [{} for _ in jobs]
        new: list[SpanRecord] = []
        stored = [0] * len(jobs)
        with self._engine.begin() as conn:
            inherited: set[int] = set()  # jobs whose spans took an agent here
            if candidates:
                changed = self._inherit_agents(conn, candidates)
                if changed:
                    rows = [_span_tuple(r) for r in candidates]
                    inherited = {owners[(r.trace_id, r.span_id)] for r in changed}
                new = self._store_spans(conn, candidates, rows)
            if new:
                for record in new:
                    stored[owners[(record.trace_id, record.span_id)]] += 1
                # A request parsed with its deltas (ingest/derive.py) whose spans were all
                # stored as parsed uses them; the others' are computed from what was stored.
                ready = [
                    job.derived
                    for index, job in enumerate(jobs)
                    if job.derived is not None
                    and index not in inherited
                    and not per_job_dupes[index]
                    and stored[index] == len(job.records)
                ]
                if len(ready) == len(jobs):
                    rest: list[SpanRecord] = []
                else:
                    usable = {id(d) for d in ready}
                    rest = [
                        r
                        for r in new
                        if id(jobs[owners[(r.trace_id, r.span_id)]].derived) not in usable
                    ]
                seen_before = traces_seen_before(conn, new)  # before their summaries change
                self._upsert_traces(conn, ready, rest, new)
                # The rows every instance adds to, always in this order (rollups, daily usage,
                # error groups; each statement's keys sorted): on PostgreSQL two instances then
                # take their row locks in one order and cannot deadlock.
                self._upsert_rollups(conn, ready, rest)
                if self.cost is not None:
                    self.cost.record(conn, new)
                moved = adopt_descendants(
                    conn, new, seen_before
                )  # children sent before their agent
                if moved is not None:
                    self._move_rollups(conn, moved)
                    if self.cost is not None:
                        self.cost.move(conn, moved.before, moved.after)
                    for move in self.move_steps:
                        move(conn, moved.before, moved.after)
                for step in self.span_steps:
                    step(conn, new)
            for index, job in enumerate(jobs):
                for name, items in job.extras.items():
                    extra_stored[index][name] = self.stores[name](conn, items)
            if self.request_steps:
                fresh: list[list[SpanRecord]] = [[] for _ in jobs]
                for record in new:
                    fresh[owners[(record.trace_id, record.span_id)]].append(record)
                for index, job in enumerate(jobs):
                    for request_step in self.request_steps:
                        request_step(conn, job.context, fresh[index], extra_stored[index])
        results = []
        for index, job in enumerate(jobs):
            dupes = len(job.records) - stored[index]
            results.append(WriteResult(stored[index], dupes, extra_stored[index]))
        self.stats.transactions += 1
        self.stats.requests += len(jobs)
        self.stats.spans_stored += len(new)
        self.stats.spans_duplicate += len(rows) - len(new) + sum(per_job_dupes)
        for index, job in enumerate(jobs):
            for name, items in job.extras.items():
                n = extra_stored[index].get(name, 0)
                self.stats.extra_stored[name] += n
                self.stats.extra_duplicate[name] += len(items) - n
        self.stats.last_commit_seconds = time.perf_counter() - started
        self.stats.last_error = None  # /readyz shows a writer error only while it lasts
        return results

    def _inherit_agents(self, conn: Connection, candidates: list[SpanRecord]) -> list[SpanRecord]:
        """A span with no agent of its own whose parent was stored by an earlier request takes
        that parent's agent (when the parent's agent is not just its service name), so a trace
        split across export requests is still counted under its agent. Returns those changed."""
        in_batch = {(r.trace_id, r.span_id) for r in candidates}
        orphans = [
            r
            for r in candidates
            if r.agent_rank < RANK_EXPLICIT
            and r.parent_span_id is not None
            and (r.trace_id, r.parent_span_id) not in in_batch
        ]
        if not orphans:
            return []
        parents: dict[tuple[str, str], str] = {}
        keys = sorted({(r.trace_id, r.parent_span_id) for r in orphans if r.parent_span_id})
        for start in range(0, len(keys), 400):
            chunk = keys[start : start + 400]
            values = ",".join("(?,?)" if self._sqlite else "(%s,%s)" for _ in chunk)
            found = conn.exec_driver_sql(
                f"WITH k(t, s) AS (VALUES {values}) SELECT spans.trace_id, spans.span_id, "
                "spans.agent, spans.service FROM k JOIN spans ON spans.trace_id = k.t "
                "AND spans.span_id = k.s",
                tuple(v for key in chunk for v in key),
            )
            for trace_id, span_id, agent, service in found:
                if agent != service and agent:
                    parents[(trace_id, span_id)] = agent
        changed: list[SpanRecord] = []
        for r in orphans:
            agent = parents.get((r.trace_id, r.parent_span_id or ""))
            if agent is not None:
                r.agent, r.agent_rank = agent, RANK_EXPLICIT
                changed.append(r)
        # Spans of this batch below a re-attributed span follow it.
        if changed:
            by_key = {(r.trace_id, r.span_id): r for r in candidates}
            for r in candidates:
                if r.agent_rank >= RANK_EXPLICIT:
                    continue
                parent = by_key.get((r.trace_id, r.parent_span_id or ""))
                hops = 0
                while parent is not None and parent.agent_rank < RANK_EXPLICIT and hops < 256:
                    parent = by_key.get((parent.trace_id, parent.parent_span_id or ""))
                    hops += 1
                if parent is not None and parent.agent_rank >= RANK_EXPLICIT:
                    r.agent, r.agent_rank = parent.agent, RANK_EXPLICIT
                    changed.append(r)
        return changed

    def _store_spans(
        self, conn: Connection, candidates: list[SpanRecord], rows: list[tuple[Any, ...]]
    ) -> list[SpanRecord]:
        """Insert the spans not stored yet; return those (a resent span is stored once)."""
        if self._sqlite:
            # One pass: insert, letting the unique index skip spans stored before. Ids grow
            # (the rowid of a new row is above every existing one) and this writer holds the
            # only write lock, so when some were skipped the new ones are those above the
            # largest id from before. A resend is rare: the usual batch costs no lookup query.
            cursor = conn.connection.cursor()
            try:
                cursor.execute("SELECT max(id) FROM spans")
                top = cursor.fetchone()
                before = (top[0] if top is not None else None) or 0
                cursor.executemany(self._sqlite_span_insert, rows)
                count = cursor.rowcount
                if count == len(rows):
                    return candidates
                if count <= 0:
                    return []
                cursor.execute("SELECT trace_id, span_id FROM spans WHERE id > ?", (before,))
                fresh = set(cursor.fetchall())
            finally:
                cursor.close()
            return [r for r in candidates if (r.trace_id, r.span_id) in fresh]
        # PostgreSQL: COPY into a temp table, then one INSERT .. SELECT .. ON CONFLICT DO NOTHING
        # RETURNING to learn which spans were new (ingest/pg_copy.py; bench/scale.py measures).
        copied = self._pg_copier.insert(conn, rows)
        return [r for r in candidates if (r.trace_id, r.span_id) in copied]

    def _upsert_traces(
        self,
        conn: Connection,
        ready: Sequence[Derived],
        rest: Sequence[SpanRecord],
        new: Sequence[SpanRecord],
    ) -> None:
        """Add the ``new`` spans to their traces' summary rows: the ``ready`` requests' rows
        as derived when parsed, the ``rest`` folded here (all of ``new`` folded here when a
        trace has spans in several requests of the group: one row per trace)."""
        parts = [d.traces for d in ready]
        if rest:
            parts.append(trace_rows(rest))
        if len(parts) == 1:
            deltas = parts[0]
        else:
            deltas = sorted((r for part in parts for r in part), key=lambda r: str(r[0]))
            if len({r[0] for r in deltas}) < len(deltas):
                deltas = trace_rows(new)
        now = time.time_ns()
        rows = [(*r, now) for r in deltas]
        if self._sqlite:
            conn.exec_driver_sql(self._sqlite_traces_upsert, rows)
        else:
            conn.execute(
                self._traces_upsert, [dict(zip(TRACE_COLUMNS, r, strict=True)) for r in rows]
            )

    def _upsert_rollups(
        self, conn: Connection, ready: Sequence[Derived], rest: Sequence[SpanRecord]
    ) -> None:
        """Add the new spans to the minute, hour and day rollups (same transaction): the
        ``ready`` requests' deltas as derived when parsed, the ``rest`` folded here."""
        computed = packed_deltas(rest) if rest else None
        for name in RESOLUTIONS:
            parts = [d.rollups[name] for d in ready]
            if computed is not None:
                parts.append(computed[name])
            if not parts:
                continue
            deltas = parts[0]
            if len(parts) > 1:
                deltas = dict(deltas)
                for part in parts[1:]:
                    add_packed(deltas, part)
            if deltas:
                self._merge_rollups(conn, name, deltas)

    def _move_rollups(self, conn: Connection, moved: Moved) -> None:
        """Move re-attributed spans' counts between agents' rollup rows (same transaction)."""
        for name, seconds in RESOLUTIONS.items():
            deltas = moved_deltas(moved.before, moved.after, seconds)
            if not deltas:
                continue
            self._merge_rollups(conn, name, pack(deltas))
            emptied = sorted(key for key, delta in deltas.items() if delta.count < 0)
            if emptied:  # a row that only held the moved spans goes
                mark = "?" if self._sqlite else "%s"
                conn.exec_driver_sql(
                    f"DELETE FROM {ROLLUP_TABLES[name].name} WHERE "
                    + " AND ".join(f"{c} = {mark}" for c in ROLLUP_KEY)
                    + " AND count <= 0",
                    emptied,
                )

    def _merge_rollups(self, conn: Connection, name: str, deltas: PackedDeltas) -> None:
        """Add the deltas to their rollup rows in one statement: the database adds the counts
        and merges the histograms (JSON objects of bucket counts) itself, so nothing is read
        back — on SQLite in C without the GIL, on PostgreSQL with the row locks held for one
        statement (then the commit), not for a read, a merge here and a write. Keys go in
        sorted, so concurrent writers (PostgreSQL) lock rows in one order."""
        keys = sorted(deltas)
        table = ROLLUP_TABLES[name].name
        if self._sqlite:
            rows = [(*key, *deltas[key][:8], hist.dumps(deltas[key][8])) for key in keys]
            conn.exec_driver_sql(self._rollup_upserts[name], rows)
            return
        rows = [(*key, *deltas[key][:8], hist.dumps(deltas[key][8])) for key in keys]
        cursor = conn.connection.cursor()
        try:
            cursor.execute(_PG_ROLLUP_UPSERT.format(table=table), (orjson.dumps(rows).decode(),))
        finally:
            cursor.close()

    def _build_traces_upsert(self) -> Any:
        stmt = self._insert(traces)
        ex, t = stmt.excluded, traces.c
        start = self._least(t.start_ns, ex.start_ns)
        end = self._greatest(t.end_ns, ex.end_ns)
        # Constants are literal SQL so the compiled statement only has the row's placeholders.
        error: Any = literal_column("'error'")
        ok: Any = literal_column("'ok'")
        return stmt.on_conflict_do_update(
            index_elements=["trace_id"],
            set_={
                "root_span_id": func.coalesce(ex.root_span_id, t.root_span_id),
                "name": case(
                    (ex.root_span_id.is_not(None), ex.name),
                    (and_(t.root_span_id.is_(None), ex.start_ns < t.start_ns), ex.name),
                    else_=t.name,
                ),
                "agent": case((ex.agent_rank > t.agent_rank, ex.agent), else_=t.agent),
                "agent_rank": self._greatest(t.agent_rank, ex.agent_rank),
                "start_ns": start,
                "end_ns": end,
                "duration_ms": (end - start) / literal_column("1000000.0"),
                "span_count": t.span_count + ex.span_count,
                "error_count": t.error_count + ex.error_count,
                "llm_calls": t.llm_calls + ex.llm_calls,
                "tool_calls": t.tool_calls + ex.tool_calls,
                "input_tokens": t.input_tokens + ex.input_tokens,
                "output_tokens": t.output_tokens + ex.output_tokens,
                "cached_tokens": t.cached_tokens + ex.cached_tokens,
                "cost_nanousd": t.cost_nanousd + ex.cost_nanousd,
                "status": case(
                    (t.error_count + ex.error_count > literal_column("0"), error), else_=ok
                ),
                "error_message": func.coalesce(t.error_message, ex.error_message),
                "updated_ns": ex.updated_ns,
            },
        )


def _rollup_upsert(table: str) -> str:
    """SQLite: the statement adding delta rows to a rollup table. Counts, sums and tokens add
    up, the max duration is the larger one, histograms merge bucket by bucket (zero counts,
    left by moving spans to another agent, are dropped). Rows: key columns, then values."""
    sets = [
        f"{c} = {table}.{c} + excluded.{c}" for c in ROLLUP_VALUES[:8] if c != "duration_max_ms"
    ]
    sets.append(f"duration_max_ms = max({table}.duration_max_ms, excluded.duration_max_ms)")
    sets.append(
        "histogram = (SELECT json_group_object(key, total) FROM (SELECT key, sum(value) AS "
        f"total FROM (SELECT key, value FROM json_each({table}.histogram) UNION ALL SELECT "
        "key, value FROM json_each(excluded.histogram)) GROUP BY key HAVING sum(value) <> 0))"
    )
    columns = ROLLUP_KEY + ROLLUP_VALUES
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)}) "
        f"ON CONFLICT ({', '.join(ROLLUP_KEY)}) DO UPDATE SET {', '.join(sets)}"
    )


_PG_ROLLUP_TYPES = (
    "bigint", "text", "text", "text", "bigint", "bigint", "float8", "float8",
    "bigint", "bigint", "bigint", "bigint", "text",
)  # fmt: skip
#: PostgreSQL: rows in as one JSON array parameter (orjson writes it in C; a text array
#: parameter is escaped element by element in Python and cost more than the merge itself).
_PG_ROLLUP_UPSERT = (
    "INSERT INTO {table} ("
    + ", ".join(ROLLUP_KEY + ROLLUP_VALUES)
    + ") SELECT "
    + ", ".join(f"(e->>{i})::{t}" for i, t in enumerate(_PG_ROLLUP_TYPES))
    + " FROM json_array_elements(%s::json) AS e ON CONFLICT ("
    + ", ".join(ROLLUP_KEY)
    + ") DO UPDATE SET "
    + ", ".join(
        f"{c} = {{table}}.{c} + excluded.{c}"
        for c in ROLLUP_VALUES
        if c not in ("duration_max_ms", "histogram")
    )
    + ", duration_max_ms = greatest({table}.duration_max_ms, excluded.duration_max_ms), "
    "histogram = (SELECT coalesce(jsonb_object_agg(key, total), '{{}}'::jsonb)::text FROM "
    "(SELECT key, sum(value::bigint) AS total FROM (SELECT * FROM "
    "json_each_text({table}.histogram::json) UNION ALL SELECT * FROM "
    "json_each_text(excluded.histogram::json)) u GROUP BY key "
    "HAVING sum(value::bigint) <> 0) x)"
)


_NOT_TRANSIENT = ("no such table", "no such column", "has no column", "readonly database")


def _pg_executemany(conn: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """psycopg's pipelined executemany of one prepared statement (positional ``%s``)."""
    cursor = conn.connection.cursor()
    try:
        cursor.executemany(sql, rows)
    finally:
        cursor.close()


def _is_deadlock(exc: DBAPIError) -> bool:
    """PostgreSQL broke a deadlock (SQLSTATE 40P01) or a serialization failure (40001) by
    rolling this transaction back: running it again is the fix."""
    return getattr(exc.orig, "sqlstate", None) in ("40P01", "40001")


def database_unavailable(exc: BaseException) -> bool:
    """Public name of :func:`_is_unavailable` for the HTTP error handlers (503, not 500)."""
    return _is_unavailable(exc)


def _is_unavailable(exc: BaseException) -> bool:
    """Worth retrying (the database is down, locked or restarting), as opposed to a schema or
    data problem that a retry cannot fix (e.g. a database that was never migrated)."""
    if isinstance(exc, OperationalError):
        message = str(exc.orig).lower()
        return not any(part in message for part in _NOT_TRANSIENT)
    if _raw_operational(exc):  # from a raw DBAPI cursor (fast read paths), not wrapped
        message = str(exc).lower()
        return not any(part in message for part in _NOT_TRANSIENT)
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def _raw_operational(exc: BaseException) -> bool:
    import sqlite3

    import psycopg

    return isinstance(exc, psycopg.OperationalError | sqlite3.OperationalError)


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _resolve(job: _Job, result: WriteResult) -> None:
    def _set() -> None:
        if not job.future.done():
            job.future.set_result(result)

    with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
        job.loop.call_soon_threadsafe(_set)


def _reject(job: _Job, error: Exception) -> None:
    def _set() -> None:
        if not job.future.done():
            job.future.set_exception(error)

    with contextlib.suppress(RuntimeError):
        job.loop.call_soon_threadsafe(_set)
