"""Demo budgets (``pharos serve --demo``): one global monthly budget and one agent's daily
budget sized so that the demo fleet's spend gives a forecast and a burn status worth seeing."""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from pharos.server.cost import store
from pharos.server.db.engine import writing
from pharos.server.db.schema import budgets

NANO = 1_000_000_000

DEMO_BUDGETS = (
    # The demo fleet spends about 33 USD a day, research-agent about 13.5 USD of it.
    {
        "name": "All agents, monthly",
        "agent": None,
        "period": "monthly",
        "limit_nanousd": 1000 * NANO,
        "soft_limit_nanousd": 750 * NANO,
    },
    {
        "name": "research-agent, daily",
        "agent": "research-agent",
        "period": "daily",
        "limit_nanousd": 12 * NANO,
        "soft_limit_nanousd": 9 * NANO,
    },
)


def ensure_demo_budgets(engine: Engine) -> int:
    """Create the demo budgets when no budget exists yet; returns how many were created."""
    with writing(engine).begin() as conn:
        if conn.execute(select(func.count()).select_from(budgets)).scalar_one():
            return 0
        for values in DEMO_BUDGETS:
            store.create_budget(conn, dict(values))
    return len(DEMO_BUDGETS)
