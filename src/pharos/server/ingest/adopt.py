"""Spans stored before the ancestor that names their agent are moved to that agent.

OTel exporters send a span when it ends, so the model and tool calls of a long agent run often
reach Pharos in an earlier request than the ``invoke_agent`` span that carries
``gen_ai.agent.name``. Until then such a child only knows its ``service.name`` and is stored,
and counted in the rollups and the usage table, under it. When the ancestor arrives, this step
(inside the writer's transaction) finds the stored descendants that still carry their service
name, gives them the ancestor's agent, and returns them so the writer can move their counts from
the old agent's rollup rows to the new one's: per-agent tokens and cost then agree with the
trace, whatever order the spans came in.

A stored span is taken to have no agent of its own when its agent equals its service name and it
is not itself an agent span (the ``spans`` table keeps no rank); a child whose explicit agent
happens to equal its service name would be moved too, which is the documented price of that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection

from pharos.server.cost.usage import prompt_hash
from pharos.server.ingest.normalize import MODEL_CALL_KINDS, RANK_EXPLICIT, SpanRecord

#: How deep below a newly arrived agent span stored descendants are searched.
MAX_DEPTH = 32
_CHUNK = 300
_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "kind",
    "span_kind",
    "agent",
    "model",
    "service",
    "start_ns",
    "end_ns",
    "duration_ms",
    "status",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost_nanousd",
    "attributes",
    "events",
)


@dataclass(slots=True)
class Moved:
    """Stored spans given a new agent: each as it was counted, and as it counts now."""

    before: list[SpanRecord]
    after: list[SpanRecord]


def _names_an_agent(r: SpanRecord) -> bool:
    return r.agent_rank >= RANK_EXPLICIT and r.agent != r.service


def traces_seen_before(conn: Connection, new: Sequence[SpanRecord]) -> set[str]:
    """The traces of ``new``'s agent-naming spans that already had a ``traces`` row: only they
    can have descendants stored by an earlier request. Call it before this batch's trace
    summaries are written; it turns the usual case (a whole run in one request) into one probe
    of the traces' primary key."""
    ids = sorted({r.trace_id for r in new if _names_an_agent(r)})
    mark = "?" if conn.dialect.name == "sqlite" else "%s"
    seen: set[str] = set()
    for start in range(0, len(ids), _CHUNK * 3):
        chunk = ids[start : start + _CHUNK * 3]
        values = ",".join(f"({mark})" for _ in chunk)
        rows = conn.exec_driver_sql(
            f"WITH k(t) AS (VALUES {values}) SELECT k.t FROM k "
            "JOIN traces ON traces.trace_id = k.t",
            tuple(chunk),
        )
        seen.update(t for (t,) in rows)
    return seen


def adopt_descendants(
    conn: Connection, new: Sequence[SpanRecord], seen_before: set[str]
) -> Moved | None:
    """Re-attribute stored descendants of the spans in ``new`` that name an agent, in the
    traces of ``seen_before`` (:func:`traces_seen_before`)."""
    frontier = {
        (r.trace_id, r.span_id): r.agent
        for r in new
        if r.trace_id in seen_before and _names_an_agent(r)
    }
    if not frontier:
        return None
    just_stored = {(r.trace_id, r.span_id) for r in new}
    mark = "?" if conn.dialect.name == "sqlite" else "%s"
    before: list[SpanRecord] = []
    after: list[SpanRecord] = []
    seen: set[tuple[str, str]] = set()
    for _ in range(MAX_DEPTH):
        found: dict[tuple[str, str], str] = {}
        keys = sorted(frontier.items())
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            values = ",".join(f"({mark},{mark},{mark})" for _ in chunk)
            rows = conn.exec_driver_sql(
                f"WITH k(t, p, a) AS (VALUES {values}) "
                f"SELECT {', '.join('s.' + c for c in _COLUMNS)}, k.a FROM k "
                "JOIN spans s ON s.trace_id = k.t AND s.parent_span_id = k.p "
                "WHERE s.agent = s.service AND s.kind <> 'agent' AND s.agent <> k.a",
                tuple(v for (trace, span), agent in chunk for v in (trace, span, agent)),
            )
            for row in rows:
                key = (row[0], row[1])
                if key in just_stored or key in seen:
                    continue
                seen.add(key)
                values_by_name = dict(zip(_COLUMNS, row[: len(_COLUMNS)], strict=True))
                old = _record(values_by_name)
                before.append(old)
                moved = _record(values_by_name)
                moved.agent, moved.agent_rank = row[len(_COLUMNS)], RANK_EXPLICIT
                after.append(moved)
                found[key] = moved.agent
        if not found:
            break
        frontier = found
    if not after:
        return None
    conn.exec_driver_sql(
        f"UPDATE spans SET agent = {mark} WHERE trace_id = {mark} AND span_id = {mark}",
        [(r.agent, r.trace_id, r.span_id) for r in after],
    )
    return Moved(before, after)


def _record(v: Mapping[str, Any]) -> SpanRecord:
    record = SpanRecord(
        trace_id=v["trace_id"],
        span_id=v["span_id"],
        parent_span_id=v["parent_span_id"],
        name=v["name"],
        kind=v["kind"],
        span_kind=v["span_kind"] or 0,
        agent=v["agent"],
        agent_rank=0,
        model=v["model"],
        service=v["service"],
        start_ns=v["start_ns"],
        end_ns=v["end_ns"],
        duration_ms=v["duration_ms"],
        status=v["status"],
        status_message=None,
        input_tokens=v["input_tokens"],
        output_tokens=v["output_tokens"],
        cached_tokens=v["cached_tokens"],
        cost_nanousd=v["cost_nanousd"],
        attributes="{}",
        events=v["events"] or "[]",
        links="[]",
        resource="{}",
        scope=None,
    )
    if record.kind in MODEL_CALL_KINDS:  # the usage table keys model calls by prompt hash
        try:
            attributes = orjson.loads(v["attributes"] or "{}")
        except orjson.JSONDecodeError:
            attributes = None
        if isinstance(attributes, dict):
            record.prompt_hash = prompt_hash(attributes)
    return record
