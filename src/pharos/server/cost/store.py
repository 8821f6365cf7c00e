"""SQL of the cost room's own tables: price overrides and budgets."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from pharos.server.cost.usage import USAGE_VALUES
from pharos.server.db.schema import budget_events, budgets, llm_usage_daily, model_prices


def upsert_price(
    conn: Connection,
    *,
    model: str,
    input_micro: int,
    output_micro: int,
    cached_micro: int | None,
    effective_from_ns: int,
    note: str | None = None,
) -> tuple[int, bool]:
    """Add a price override, or replace the one for the same model and effective instant.
    Returns (id, created)."""
    key = model.strip().lower()
    values = {
        "input_microusd_per_mtok": input_micro,
        "output_microusd_per_mtok": output_micro,
        "cached_microusd_per_mtok": cached_micro,
        "note": note,
        "created_ns": time.time_ns(),
    }
    existing = conn.execute(
        select(model_prices.c.id).where(
            model_prices.c.model == key, model_prices.c.effective_from_ns == effective_from_ns
        )
    ).scalar()
    if existing is not None:
        conn.execute(update(model_prices).where(model_prices.c.id == existing).values(**values))
        return int(existing), False
    result = conn.execute(
        insert(model_prices).values(model=key, effective_from_ns=effective_from_ns, **values)
    )
    pk = result.inserted_primary_key
    assert pk is not None
    return int(pk[0]), True


def delete_price(conn: Connection, price_id: int) -> bool:
    return conn.execute(delete(model_prices).where(model_prices.c.id == price_id)).rowcount == 1


def get_budget(conn: Connection, budget_id: int) -> Row[Any] | None:
    return conn.execute(select(budgets).where(budgets.c.id == budget_id)).first()


def budget_named(conn: Connection, name: str) -> Row[Any] | None:
    return conn.execute(select(budgets).where(budgets.c.name == name)).first()


def create_budget(conn: Connection, values: dict[str, Any]) -> int:
    now = time.time_ns()
    result = conn.execute(
        insert(budgets).values(status="ok", created_ns=now, updated_ns=now, **values)
    )
    pk = result.inserted_primary_key
    assert pk is not None
    return int(pk[0])


def update_budget(conn: Connection, budget_id: int, values: dict[str, Any]) -> None:
    conn.execute(
        update(budgets).where(budgets.c.id == budget_id).values(updated_ns=time.time_ns(), **values)
    )


def delete_budget(conn: Connection, budget_id: int) -> bool:
    conn.execute(delete(budget_events).where(budget_events.c.budget_id == budget_id))
    return conn.execute(delete(budgets).where(budgets.c.id == budget_id)).rowcount == 1


#: Usage rows kept (days), like the rollups.
USAGE_RETENTION_DAYS = 90


def prune_usage(conn: Connection, now_s: int) -> int:
    """Keep ``llm_usage_daily`` small: a prompt seen once on a finished day cannot be a repeat
    worth caching, so its row is folded into the day's no-prompt row (``prompt_hash = ''``:
    totals stay the same) and deleted; rows older than ``USAGE_RETENTION_DAYS`` are deleted.
    DELETE .. RETURNING makes each row folded exactly once, even with a writer or another
    instance at work. Returns the rows removed."""
    u = llm_usage_daily
    today = now_s // 86400 * 86400
    removed = conn.execute(delete(u).where(u.c.day < today - USAGE_RETENTION_DAYS * 86400)).rowcount
    folded = conn.execute(
        delete(u)
        .where(and_(u.c.day < today, u.c.calls == 1, u.c.prompt_hash != ""))
        .returning(u.c.day, u.c.agent, u.c.model, *(u.c[c] for c in USAGE_VALUES))
    ).all()
    if not folded:
        return int(removed or 0)
    sums: dict[tuple[int, str, str], list[int]] = defaultdict(lambda: [0] * len(USAGE_VALUES))
    for row in folded:
        target = sums[(row[0], row[1], row[2])]
        for i, value in enumerate(row[3:]):
            target[i] += value
    insert_fn: Any = sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert
    stmt = insert_fn(u)
    upsert = stmt.on_conflict_do_update(
        index_elements=["day", "agent", "model", "prompt_hash"],
        set_={c: u.c[c] + stmt.excluded[c] for c in USAGE_VALUES},
    )
    conn.execute(
        upsert,
        [
            {"day": d, "agent": a, "model": m, "prompt_hash": ""}
            | dict(zip(USAGE_VALUES, v, strict=True))
            for (d, a, m), v in sorted(sums.items())
        ],
    )
    return int(removed or 0) + len(folded)
