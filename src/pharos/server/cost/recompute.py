"""``pharos prices recompute --since``: re-price stored model calls with today's price table.

Spans are read in batches (by primary key) and, in the same transaction per batch, every
changed span's cost difference is applied to its trace summary, its rollup rows (minute, hour,
day: the same rows the writer added it to) and its ``llm_usage_daily`` row. Rollups therefore
stay equal to the sum of their spans. A cost sent by the client (still in the span's
attributes) is kept; a span whose model has no price keeps no cost. Spans already pruned by
retention cannot be re-priced; their rollups are left as they are.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, and_, bindparam, func, select, update

from pharos.server.analytics.rollups import REQUEST, RESOLUTIONS
from pharos.server.cost.book import PriceBook
from pharos.server.cost.usage import PROMPT_KEYS, prompt_hash
from pharos.server.db.engine import writing
from pharos.server.db.schema import ROLLUP_TABLES, llm_usage_daily, spans, traces
from pharos.server.ingest.normalize import COST_KEYS, MODEL_CALL_KINDS, _cost_nanousd

NS = 1_000_000_000
DAY_S = 86400


@dataclass
class RecomputeResult:
    scanned: int = 0
    changed: int = 0
    delta_nanousd: int = 0


def count_calls(engine: Engine, since_ns: int, until_ns: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(
                    spans.c.start_ns >= since_ns,
                    spans.c.start_ns < until_ns,
                    spans.c.kind.in_(sorted(MODEL_CALL_KINDS)),
                )
            ).scalar_one()
        )


def _new_cost(book: PriceBook, row: Any) -> int | None:
    attrs_text: str = row.attributes or ""
    attrs: dict[str, Any] | None = None
    if any(key in attrs_text for key in COST_KEYS):
        attrs = orjson.loads(attrs_text)
        client = _cost_nanousd(attrs)
        if client is not None:
            return client
    return book.table_cost(
        row.kind, row.model, row.start_ns, row.input_tokens, row.output_tokens, row.cached_tokens
    )


def _prompt_hash(row: Any) -> str | None:
    text: str = row.attributes or ""
    if not any(key in text for key in PROMPT_KEYS):
        return None
    attrs = orjson.loads(text)
    return prompt_hash(attrs) if isinstance(attrs, dict) else None


def recompute(
    engine: Engine,
    book: PriceBook,
    *,
    since_ns: int,
    until_ns: int,
    batch_size: int = 2000,
    on_batch: Callable[[int], None] | None = None,
) -> RecomputeResult:
    result = RecomputeResult()
    last_id = 0
    cols = (
        spans.c.id,
        spans.c.trace_id,
        spans.c.parent_span_id,
        spans.c.kind,
        spans.c.agent,
        spans.c.model,
        spans.c.start_ns,
        spans.c.status,
        spans.c.input_tokens,
        spans.c.output_tokens,
        spans.c.cached_tokens,
        spans.c.cost_nanousd,
        spans.c.attributes,
    )
    span_update = (
        update(spans)
        .where(spans.c.id == bindparam("b_id"))
        .values(cost_nanousd=bindparam("b_cost"))
    )
    trace_update = (
        update(traces)
        .where(traces.c.trace_id == bindparam("b_trace"))
        .values(cost_nanousd=traces.c.cost_nanousd + bindparam("b_delta"))
    )
    rollup_updates = {
        name: update(t)
        .where(
            and_(
                t.c.bucket_start == bindparam("b_bucket"),
                t.c.agent == bindparam("b_agent"),
                t.c.model == bindparam("b_model"),
                t.c.kind == bindparam("b_kind"),
            )
        )
        .values(cost_nanousd=t.c.cost_nanousd + bindparam("b_delta"))
        for name, t in ROLLUP_TABLES.items()
    }
    u = llm_usage_daily
    usage_update = (
        update(u)
        .where(
            and_(
                u.c.day == bindparam("b_day"),
                u.c.agent == bindparam("b_agent"),
                u.c.model == bindparam("b_model"),
                u.c.prompt_hash == bindparam("b_hash"),
            )
        )
        .values(
            cost_nanousd=u.c.cost_nanousd + bindparam("b_delta"),
            error_cost_nanousd=u.c.error_cost_nanousd + bindparam("b_error_delta"),
        )
    )
    while True:
        with writing(engine).begin() as conn:
            rows = conn.execute(
                select(*cols)
                .where(
                    spans.c.id > last_id,
                    spans.c.start_ns >= since_ns,
                    spans.c.start_ns < until_ns,
                    spans.c.kind.in_(sorted(MODEL_CALL_KINDS)),
                )
                .order_by(spans.c.id)
                .limit(batch_size)
            ).all()
            if not rows:
                break
            last_id = rows[-1].id
            span_rows: list[dict[str, Any]] = []
            trace_delta: dict[str, int] = defaultdict(int)
            rollup_delta: dict[str, dict[tuple[int, str, str, str], int]] = {
                name: defaultdict(int) for name in RESOLUTIONS
            }
            usage_delta: dict[tuple[int, str, str, str], list[int]] = defaultdict(lambda: [0, 0])
            for row in rows:
                new = _new_cost(book, row)
                old = row.cost_nanousd
                if new == old:
                    continue
                delta = (new or 0) - (old or 0)
                span_rows.append({"b_id": row.id, "b_cost": new})
                result.changed += 1
                result.delta_nanousd += delta
                if not delta:
                    continue
                trace_delta[row.trace_id] += delta
                start_s = row.start_ns // NS
                keys = [(row.kind, row.model or "")]
                if row.parent_span_id is None or row.kind == "agent":
                    keys.append((REQUEST, ""))
                for name, seconds in RESOLUTIONS.items():
                    bucket = start_s // seconds * seconds
                    for kind, model in keys:
                        rollup_delta[name][(bucket, row.agent, model, kind)] += delta
                ukey = (
                    start_s // DAY_S * DAY_S,
                    row.agent,
                    row.model or "",
                    _prompt_hash(row) or "",
                )
                usage_delta[ukey][0] += delta
                if row.status == "error":
                    usage_delta[ukey][1] += delta
            result.scanned += len(rows)
            if span_rows:
                conn.execute(span_update, span_rows)
            if trace_delta:
                conn.execute(
                    trace_update,
                    [{"b_trace": k, "b_delta": v} for k, v in sorted(trace_delta.items()) if v],
                )
            for name, deltas in rollup_delta.items():
                params = [
                    {"b_bucket": b, "b_agent": a, "b_model": m, "b_kind": k, "b_delta": v}
                    for (b, a, m, k), v in sorted(deltas.items())
                    if v
                ]
                if params:
                    conn.execute(rollup_updates[name], params)
            usage_params = [
                {
                    "b_day": d,
                    "b_agent": a,
                    "b_model": m,
                    "b_hash": h,
                    "b_delta": v[0],
                    "b_error_delta": v[1],
                }
                for (d, a, m, h), v in sorted(usage_delta.items())
                if v[0] or v[1]
            ]
            if usage_params:
                conn.execute(usage_update, usage_params)
        if on_batch is not None:
            on_batch(len(rows))
    return result
