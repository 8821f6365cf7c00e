"""Budgets: spend so far in the period, forecast to its end, burn status, threshold crossings.

Public functions other rooms may call (the alerting room's ``budget_burn(agent="x")``):

- :func:`budget_burn` -> spend / hard limit of the budget(s) matching an agent (None if none);
- :func:`budget_forecast_burn` -> the same with the forecast for the end of the period;
- :func:`budget_statuses` -> every budget evaluated now (spend, forecast, status).

Status (docs/costs.md): ``exceeded`` when spend >= the hard limit; ``critical`` when the forecast
for the end of the period reaches the hard limit; ``warning`` when spend or forecast reaches the
soft limit; ``ok`` otherwise. Periods are UTC days or UTC calendar months. Spend is the cost of
model calls (llm, embedding) in the rollups, so it matches ``/api/v1/costs`` to the nano-dollar.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, insert, select, update

from pharos.server.analytics.store import fetch_rollups
from pharos.server.cost.forecast import HISTORY_HOURS, HOUR_NS, NS, Forecast, forecast
from pharos.server.db.schema import budget_events, budgets
from pharos.server.ingest.normalize import MODEL_CALL_KINDS

log = logging.getLogger("pharos.budgets")

PERIODS = ("daily", "monthly")
STATUSES = ("ok", "warning", "critical", "exceeded")
_SEVERITY = {s: i for i, s in enumerate(STATUSES)}


@dataclass(slots=True)
class BudgetState:
    """One budget evaluated at ``now``."""

    id: int
    name: str
    agent: str | None
    period: str
    limit_nanousd: int
    soft_limit_nanousd: int
    period_start_ns: int
    period_end_ns: int
    spend_nanousd: int
    forecast: Forecast
    status: str
    status_since_ns: int | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def burn(self) -> float:
        return self.spend_nanousd / self.limit_nanousd if self.limit_nanousd else 0.0


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * NS


def period_bounds(period: str, now: datetime) -> tuple[int, int]:
    """[start, end) of the UTC day or calendar month holding ``now``, in ns."""
    now = now.astimezone(UTC)
    if period == "daily":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return _ns(start), _ns(start) + 86400 * NS
    if period == "monthly":
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        nxt = (
            start.replace(year=start.year + 1, month=1)
            if start.month == 12
            else start.replace(month=start.month + 1)
        )
        return _ns(start), _ns(nxt)
    raise ValueError(f"period must be one of {', '.join(PERIODS)}")


def status_of(spend: int, projected: int, soft: int, hard: int) -> str:
    """Burn status from spend so far and the forecast for the end of the period."""
    if spend >= hard:
        return "exceeded"
    if projected >= hard:
        return "critical"
    if spend >= soft or projected >= soft:
        return "warning"
    return "ok"


def spend_nanousd(conn: Connection, start_s: int, end_s: int, agent: str | None) -> int:
    """Cost of model calls in [start_s, end_s) (minute-aligned), for one agent or all."""
    rows = fetch_rollups(conn, start_s, end_s, agent=agent, kinds=MODEL_CALL_KINDS)
    return sum(r.cost_nanousd for r in rows)


def hourly_spend(conn: Connection, end_hour_s: int, hours: int, agent: str | None) -> list[int]:
    """Spend per hour for the ``hours`` complete hours before ``end_hour_s``, oldest first."""
    start_s = end_hour_s - hours * 3600
    out = [0] * hours
    rows = fetch_rollups(
        conn, start_s, end_hour_s, agent=agent, kinds=MODEL_CALL_KINDS, resolution="1h"
    )
    for r in rows:
        out[(r.bucket_start - start_s) // 3600] += r.cost_nanousd
    return out


def evaluate(conn: Connection, row: Row[Any], now: datetime) -> BudgetState:
    """Spend, forecast and status of one ``budgets`` row at ``now``."""
    now_ns = int(now.timestamp() * NS)
    start_ns, end_ns = period_bounds(row.period, now)
    now_s = now_ns // NS
    end_minute_s = (now_s // 60 + 1) * 60  # the current minute included
    spend = spend_nanousd(conn, start_ns // NS, end_minute_s, row.agent)
    hour_s = now_s // 3600 * 3600
    hourly = hourly_spend(conn, hour_s, HISTORY_HOURS, row.agent)
    current = spend_nanousd(conn, hour_s, end_minute_s, row.agent)
    fc = forecast(
        hourly,
        history_end_ns=hour_s * NS,
        now_ns=now_ns,
        period_end_ns=end_ns,
        spend_nanousd=spend,
        limit_nanousd=row.limit_nanousd,
        current_hour_nanousd=current,
    )
    status = status_of(spend, fc.projected_nanousd, row.soft_limit_nanousd, row.limit_nanousd)
    return BudgetState(
        id=row.id,
        name=row.name,
        agent=row.agent,
        period=row.period,
        limit_nanousd=row.limit_nanousd,
        soft_limit_nanousd=row.soft_limit_nanousd,
        period_start_ns=start_ns,
        period_end_ns=end_ns,
        spend_nanousd=spend,
        forecast=fc,
        status=status,
        status_since_ns=row.status_since_ns if row.status == status else None,
    )


def budget_statuses(conn: Connection, now: datetime) -> list[BudgetState]:
    """Every budget evaluated at ``now`` (read only; see :func:`record_transitions`)."""
    rows = conn.execute(select(budgets).order_by(budgets.c.id)).all()
    return [evaluate(conn, row, now) for row in rows]


def budget_burn(conn: Connection, *, agent: str | None, now: datetime) -> float | None:
    """Spend so far / hard limit of the budget for ``agent`` (``None``: the global budgets);
    the highest when several match (a daily and a monthly one). None when there is none."""
    cond = budgets.c.agent.is_(None) if agent is None else budgets.c.agent == agent
    rows = conn.execute(select(budgets).where(cond)).all()
    if not rows:
        return None
    burns = []
    for row in rows:
        start_ns, _ = period_bounds(row.period, now)
        end_minute_s = (int(now.timestamp()) // 60 + 1) * 60
        spend = spend_nanousd(conn, start_ns // NS, end_minute_s, row.agent)
        burns.append(spend / row.limit_nanousd if row.limit_nanousd else 0.0)
    return max(burns)


def budget_forecast_burn(conn: Connection, *, agent: str | None, now: datetime) -> float | None:
    """Like :func:`budget_burn`, with the forecast for the end of the period instead of the
    spend so far (> 1: the budget is expected to run out before its period ends)."""
    cond = budgets.c.agent.is_(None) if agent is None else budgets.c.agent == agent
    rows = conn.execute(select(budgets).where(cond)).all()
    if not rows:
        return None
    states = [evaluate(conn, row, now) for row in rows]
    return max(
        s.forecast.projected_nanousd / s.limit_nanousd if s.limit_nanousd else 0.0 for s in states
    )


Notify = Callable[[BudgetState, str], None]


def record_transitions(
    conn: Connection, states: Iterable[BudgetState], now: datetime, notify: Notify | None = None
) -> list[tuple[BudgetState, str]]:
    """Store each budget's status; a change (a threshold crossed, by spend or by forecast, or
    back down) is written once as a ``budget_events`` row — a conditional update,
    so several instances evaluating at once record it once. Returns (state, previous status) of
    the changes; ``notify`` is called for each. Commits are the caller's."""
    now_ns = int(now.timestamp() * NS)
    changes: list[tuple[BudgetState, str]] = []
    for state in states:
        current = conn.execute(
            select(budgets.c.status, budgets.c.status_since_ns, budgets.c.period_start_ns).where(
                budgets.c.id == state.id
            )
        ).first()
        if current is None:
            continue
        previous = current.status if current.period_start_ns == state.period_start_ns else "ok"
        if current.status == state.status and current.period_start_ns == state.period_start_ns:
            state.status_since_ns = current.status_since_ns
            continue
        result = conn.execute(
            update(budgets)
            .where(
                and_(
                    budgets.c.id == state.id,
                    budgets.c.status == current.status,
                    budgets.c.status_since_ns.is_(None)
                    if current.status_since_ns is None
                    else budgets.c.status_since_ns == current.status_since_ns,
                )
            )
            .values(
                status=state.status, status_since_ns=now_ns, period_start_ns=state.period_start_ns
            )
        )
        if result.rowcount != 1:
            continue  # another instance recorded it
        state.status_since_ns = now_ns
        if previous != state.status:
            conn.execute(
                insert(budget_events).values(
                    budget_id=state.id,
                    at_ns=now_ns,
                    from_status=previous,
                    to_status=state.status,
                    spend_nanousd=state.spend_nanousd,
                    forecast_nanousd=state.forecast.projected_nanousd,
                    limit_nanousd=state.limit_nanousd,
                )
            )
            changes.append((state, previous))
            if _SEVERITY[state.status] > _SEVERITY[previous]:
                log.warning(
                    "budget %r (%s) is %s: spent %.4f of %.4f USD, forecast %.4f USD",
                    state.name,
                    state.agent or "all agents",
                    state.status,
                    state.spend_nanousd / 1e9,
                    state.limit_nanousd / 1e9,
                    state.forecast.projected_nanousd / 1e9,
                )
            if notify is not None:
                notify(state, previous)
    return changes


def recent_events(conn: Connection, budget_id: int, limit: int = 20) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(budget_events)
        .where(budget_events.c.budget_id == budget_id)
        .order_by(budget_events.c.at_ns.desc(), budget_events.c.id.desc())
        .limit(limit)
    ).all()
    return [dict(r._mapping) for r in rows]


__all__ = [
    "HOUR_NS",
    "PERIODS",
    "STATUSES",
    "BudgetState",
    "budget_burn",
    "budget_forecast_burn",
    "budget_statuses",
    "evaluate",
    "period_bounds",
    "record_transitions",
    "status_of",
]
