"""Budgets: spend so far in the period, forecast to its end, burn status, threshold crossings,
resets.

Public functions other rooms may call:

- :func:`budget_statuses` -> every budget of the ``budgets`` table evaluated now (the API, the
  gateway's hard stop, reports);
- :func:`registry_statuses` -> the agent registry's ``--budget`` limits evaluated the same way;
- :func:`all_statuses` -> both (the alerting room's built-in budget alerts);
- :func:`burn_of` -> spend (or forecast) / hard limit of the budgets covering an agent, from
  evaluated states (the alert language's ``budget_burn()`` and ``budget_forecast_burn()``);
  :func:`budget_burn` and :func:`budget_forecast_burn` read and evaluate first;
- :func:`reset_budget` -> start the period's count again from now.

Status (docs/costs.md): ``exceeded`` when spend >= the hard limit; ``critical`` when the forecast
for the end of the period reaches the hard limit; ``warning`` when spend or forecast reaches the
soft limit; ``ok`` otherwise. Periods are UTC days or UTC calendar months. Spend is the cost of
model calls (llm, embedding) in the rollups, so it matches ``/api/v1/costs`` to the nano-dollar.

**Resets.** A reset is a ``budget_events`` row (``to_status = "reset"``) holding the period's
spend at that instant; until the period ends, the budget counts the period's spend minus that
amount (the spend since the reset), and its forecast starts from there.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, insert, select, update

from pharos.server.analytics.store import fetch_rollups
from pharos.server.cost.forecast import HISTORY_HOURS, HOUR_NS, NS, Forecast, forecast
from pharos.server.db.schema import agent_registry, budget_events, budgets
from pharos.server.ingest.normalize import MODEL_CALL_KINDS

log = logging.getLogger("pharos.budgets")

PERIODS = ("daily", "monthly")
STATUSES = ("ok", "warning", "critical", "exceeded")
RESET = "reset"  # budget_events.to_status of a reset
_SEVERITY = {s: i for i, s in enumerate(STATUSES)}
#: A registry budget's soft limit (the gateway's warning header): 80 % of its limit.
REGISTRY_SOFT_SHARE = (8, 10)


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
    spend_nanousd: int  # counted spend: since the period start, or since a reset in it
    forecast: Forecast
    status: str
    status_since_ns: int | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    #: ``budgets`` (the cost API; ``id`` is its row) or ``registry`` (an agent's ``--budget``;
    #: ``id`` is 0)
    source: str = "budgets"
    reset_ns: int | None = None  # the count restarted then (a reset in this period)
    period_spend_nanousd: int = 0  # the whole period's spend, before and after a reset

    @property
    def burn(self) -> float:
        return self.spend_nanousd / self.limit_nanousd if self.limit_nanousd else 0.0

    @property
    def forecast_burn(self) -> float:
        projected = self.forecast.projected_nanousd
        return projected / self.limit_nanousd if self.limit_nanousd else 0.0


@dataclass(frozen=True, slots=True)
class _Spec:
    """What a budget is, whichever table it comes from."""

    id: int
    name: str
    agent: str | None
    period: str
    limit_nanousd: int
    soft_limit_nanousd: int
    source: str = "budgets"
    status: str = "ok"
    status_since_ns: int | None = None


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


def _spec(row: Row[Any]) -> _Spec:
    return _Spec(
        id=int(row.id),
        name=row.name,
        agent=row.agent,
        period=row.period,
        limit_nanousd=int(row.limit_nanousd),
        soft_limit_nanousd=int(row.soft_limit_nanousd),
        status=row.status,
        status_since_ns=row.status_since_ns,
    )


def registry_budget_name(agent: str) -> str:
    """The name a registry budget goes by (the gateway's 402, alerts' ``budget`` label)."""
    return f"agent {agent} (registry)"


def _evaluate(
    conn: Connection, spec: _Spec, now: datetime, reset: tuple[int, int] | None
) -> BudgetState:
    now_ns = int(now.timestamp() * NS)
    start_ns, end_ns = period_bounds(spec.period, now)
    now_s = now_ns // NS
    end_minute_s = (now_s // 60 + 1) * 60  # the current minute included
    period_spend = spend_nanousd(conn, start_ns // NS, end_minute_s, spec.agent)
    reset_ns = None
    spend = period_spend
    if reset is not None and start_ns <= reset[0] < end_ns:
        reset_ns = reset[0]
        spend = max(period_spend - reset[1], 0)
    hour_s = now_s // 3600 * 3600
    hourly = hourly_spend(conn, hour_s, HISTORY_HOURS, spec.agent)
    current = spend_nanousd(conn, hour_s, end_minute_s, spec.agent)
    fc = forecast(
        hourly,
        history_end_ns=hour_s * NS,
        now_ns=now_ns,
        period_end_ns=end_ns,
        spend_nanousd=spend,
        limit_nanousd=spec.limit_nanousd,
        current_hour_nanousd=current,
    )
    status = status_of(spend, fc.projected_nanousd, spec.soft_limit_nanousd, spec.limit_nanousd)
    return BudgetState(
        id=spec.id,
        name=spec.name,
        agent=spec.agent,
        period=spec.period,
        limit_nanousd=spec.limit_nanousd,
        soft_limit_nanousd=spec.soft_limit_nanousd,
        period_start_ns=start_ns,
        period_end_ns=end_ns,
        spend_nanousd=spend,
        forecast=fc,
        status=status,
        status_since_ns=spec.status_since_ns if spec.status == status else None,
        source=spec.source,
        reset_ns=reset_ns,
        period_spend_nanousd=period_spend,
    )


def last_resets(
    conn: Connection, budget_ids: Sequence[int], since_ns: int
) -> dict[int, tuple[int, int]]:
    """The latest reset at or after ``since_ns`` of each budget: id -> (at_ns, the period's
    spend at that instant)."""
    if not budget_ids:
        return {}
    rows = conn.execute(
        select(budget_events.c.budget_id, budget_events.c.at_ns, budget_events.c.spend_nanousd)
        .where(
            budget_events.c.budget_id.in_(list(budget_ids)),
            budget_events.c.to_status == RESET,
            budget_events.c.at_ns >= since_ns,
        )
        .order_by(budget_events.c.at_ns, budget_events.c.id)
    ).all()
    return {int(r[0]): (int(r[1]), int(r[2])) for r in rows}


def _earliest_start(rows: Iterable[Any], now: datetime) -> int:
    return min((period_bounds(r.period, now)[0] for r in rows), default=0)


def evaluate(conn: Connection, row: Row[Any], now: datetime) -> BudgetState:
    """Spend, forecast and status of one ``budgets`` row at ``now`` (a reset in its period
    honoured)."""
    start_ns, _ = period_bounds(row.period, now)
    resets = last_resets(conn, [int(row.id)], start_ns)
    return _evaluate(conn, _spec(row), now, resets.get(int(row.id)))


def budget_statuses(conn: Connection, now: datetime) -> list[BudgetState]:
    """Every budget of the ``budgets`` table evaluated at ``now`` (read only; see
    :func:`record_transitions`)."""
    rows = conn.execute(select(budgets).order_by(budgets.c.id)).all()
    if not rows:
        return []
    resets = last_resets(conn, [int(r.id) for r in rows], _earliest_start(rows, now))
    return [_evaluate(conn, _spec(row), now, resets.get(int(row.id))) for row in rows]


def registry_budget_id(agent: str) -> int:
    """The ``budget_events.budget_id`` of an agent's registry budget: negative (``budgets`` ids
    are positive) and stable, from the agent's name (the registry's key)."""
    digest = hashlib.blake2b(agent.encode(), digest_size=8).digest()
    return -(int.from_bytes(digest, "big") >> 2) - 1


def registry_statuses(
    conn: Connection, now: datetime, agent: str | None = None
) -> list[BudgetState]:
    """The agent registry's budgets (``pharos agents add NAME --budget``) evaluated at ``now``
    (only ``agent``'s when given): a hard limit per UTC day or month, a soft limit at 80 % of
    it (as the gateway warns), a reset in the period honoured."""
    r = agent_registry
    stmt = select(r.c.name, r.c.budget_nanousd, r.c.budget_period).where(
        r.c.budget_nanousd.is_not(None)
    )
    if agent is not None:
        stmt = stmt.where(r.c.name == agent)
    rows = conn.execute(stmt.order_by(r.c.name)).all()
    if not rows:
        return []
    num, den = REGISTRY_SOFT_SHARE
    start = min(period_bounds(period or "daily", now)[0] for _, _, period in rows)
    resets = last_resets(conn, [registry_budget_id(name) for name, _, _ in rows], start)
    out = []
    for name, limit, period in rows:
        spec = _Spec(
            id=0,
            name=registry_budget_name(name),
            agent=name,
            period=period or "daily",
            limit_nanousd=int(limit),
            soft_limit_nanousd=int(limit) * num // den,
            source="registry",
        )
        out.append(_evaluate(conn, spec, now, resets.get(registry_budget_id(name))))
    return out


def reset_registry_budget(conn: Connection, agent: str, now: datetime) -> BudgetState | None:
    """Start the period's count of ``agent``'s registry budget again from ``now`` (a ``reset``
    event, as :func:`reset_budget`). None: the agent is not registered with a budget."""
    states = registry_statuses(conn, now, agent)
    if not states:
        return None
    before = states[0]
    conn.execute(
        insert(budget_events).values(
            budget_id=registry_budget_id(agent),
            at_ns=int(now.timestamp() * NS),
            from_status=before.status,
            to_status=RESET,
            spend_nanousd=before.period_spend_nanousd,
            forecast_nanousd=before.forecast.projected_nanousd,
            limit_nanousd=before.limit_nanousd,
        )
    )
    log.info(
        "registry budget of %r reset: %.4f USD spent in the period so far, counting again",
        agent,
        before.period_spend_nanousd / 1e9,
    )
    return registry_statuses(conn, now, agent)[0]


def all_statuses(conn: Connection, now: datetime) -> list[BudgetState]:
    """Every budget, from the ``budgets`` table and the agent registry."""
    return budget_statuses(conn, now) + registry_statuses(conn, now)


def burn_of(
    states: Iterable[BudgetState], agent: str | None, *, forecast: bool = False
) -> float | None:
    """Spend (``forecast``: the forecast for the end of the period) / hard limit of the budgets
    of ``agent`` (``None``: the global budgets); the highest when several match (a daily and a
    monthly one, a registry one). None when there is none."""
    burns = [
        s.forecast_burn if forecast else s.burn
        for s in states
        if (s.agent is None if agent is None else s.agent == agent)
    ]
    return max(burns) if burns else None


def budget_burn(conn: Connection, *, agent: str | None, now: datetime) -> float | None:
    """Spend so far / hard limit of the budgets for ``agent`` (see :func:`burn_of`)."""
    return burn_of(_states_for(conn, agent, now), agent)


def budget_forecast_burn(conn: Connection, *, agent: str | None, now: datetime) -> float | None:
    """Like :func:`budget_burn`, with the forecast for the end of the period instead of the
    spend so far (> 1: the budget is expected to run out before its period ends)."""
    return burn_of(_states_for(conn, agent, now), agent, forecast=True)


def _states_for(conn: Connection, agent: str | None, now: datetime) -> list[BudgetState]:
    return [
        s
        for s in all_statuses(conn, now)
        if (s.agent is None if agent is None else s.agent == agent)
    ]


def reset_budget(conn: Connection, budget_id: int, now: datetime) -> BudgetState | None:
    """Start the period's count of budget ``budget_id`` again from ``now``: a ``reset`` event
    holding the period's spend so far, and the status back to ``ok``. Returns the budget
    evaluated after the reset (None: no such budget). Commits are the caller's."""
    row = conn.execute(select(budgets).where(budgets.c.id == budget_id)).first()
    if row is None:
        return None
    before = evaluate(conn, row, now)
    now_ns = int(now.timestamp() * NS)
    conn.execute(
        insert(budget_events).values(
            budget_id=budget_id,
            at_ns=now_ns,
            from_status=before.status,
            to_status=RESET,
            spend_nanousd=before.period_spend_nanousd,
            forecast_nanousd=before.forecast.projected_nanousd,
            limit_nanousd=before.limit_nanousd,
        )
    )
    conn.execute(
        update(budgets)
        .where(budgets.c.id == budget_id)
        .values(status="ok", status_since_ns=now_ns, period_start_ns=before.period_start_ns)
    )
    log.info(
        "budget %r (%s) reset: %.4f USD spent in the period so far, counting again from now",
        before.name,
        before.agent or "all agents",
        before.period_spend_nanousd / 1e9,
    )
    row = conn.execute(select(budgets).where(budgets.c.id == budget_id)).first()
    assert row is not None
    return evaluate(conn, row, now)


def record_transitions(
    conn: Connection, states: Iterable[BudgetState], now: datetime
) -> list[tuple[BudgetState, str]]:
    """Store each budget's status; a change (a threshold crossed, by spend or by forecast, or
    back down) is written once as a ``budget_events`` row — a conditional update,
    so several instances evaluating at once record it once. Returns (state, previous status) of
    the changes. Commits are the caller's. Alerts on these budgets come from the alert engine,
    which evaluates every budget each cycle (alerting/budget_alerts.py)."""
    now_ns = int(now.timestamp() * NS)
    changes: list[tuple[BudgetState, str]] = []
    for state in states:
        if state.source != "budgets":
            continue
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
    "RESET",
    "STATUSES",
    "BudgetState",
    "all_statuses",
    "budget_burn",
    "budget_forecast_burn",
    "budget_statuses",
    "burn_of",
    "evaluate",
    "period_bounds",
    "record_transitions",
    "registry_budget_id",
    "registry_statuses",
    "reset_budget",
    "reset_registry_budget",
    "status_of",
]
