"""Cost figures from the rollups: totals, per request, per 1k tokens, by agent/model/day,
daily and monthly totals, trend against the previous window; models without a price.

All sums are integer nano-USD; :func:`usd` converts at the edge (Decimal, then a JSON number).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection

from pharos.server.analytics.rollups import REQUEST
from pharos.server.analytics.store import fetch_rollups
from pharos.server.analytics.summary import RollupRow
from pharos.server.ingest.normalize import MODEL_CALL_KINDS

NANO = Decimal(1_000_000_000)
DAY_S = 86400
GROUPS = ("agent", "model", "day")


def usd(nanousd: int) -> float:
    """Integer nano-USD -> USD as a JSON number (exact to the nano-dollar up to ~9e6 USD)."""
    return float(Decimal(nanousd) / NANO)


def usd_text(nanousd: int) -> str:
    return format(Decimal(nanousd) / NANO, "f")


@dataclass(slots=True)
class Tally:
    cost_nanousd: int = 0
    calls: int = 0
    errors: int = 0
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0

    def add(self, row: RollupRow) -> None:
        if row.kind == REQUEST:
            self.requests += row.count
        elif row.kind in MODEL_CALL_KINDS:
            self.calls += row.count
            self.errors += row.errors
            self.cost_nanousd += row.cost_nanousd
            self.input_tokens += row.input_tokens
            self.output_tokens += row.output_tokens
            self.cached_tokens += row.cached_tokens

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def _ratio(num: int, den: int, scale: int = 1) -> float | None:
    if den <= 0:
        return None
    return float(Decimal(num) * scale / (Decimal(den) * NANO))


def figures(t: Tally) -> dict[str, Any]:
    return {
        "cost_usd": usd(t.cost_nanousd),
        "cost_nanousd": t.cost_nanousd,
        "requests": t.requests,
        "calls": t.calls,
        "tokens": {
            "input": t.input_tokens,
            "output": t.output_tokens,
            "cached": t.cached_tokens,
            "total": t.tokens,
        },
        "per_request_usd": _ratio(t.cost_nanousd, t.requests),
        "per_call_usd": _ratio(t.cost_nanousd, t.calls),
        "per_1k_tokens_usd": _ratio(t.cost_nanousd, t.tokens, 1000),
    }


def trend_percent(current: int, previous: int) -> float | None:
    if previous <= 0:
        return None
    return round(100.0 * (current - previous) / previous, 2)


def _day(bucket_start: int) -> str:
    return datetime.fromtimestamp(bucket_start // DAY_S * DAY_S, tz=UTC).date().isoformat()


def _key(row: RollupRow, group_by: str) -> str | None:
    if group_by == "agent":
        return row.agent
    if group_by == "model":
        return row.model if row.kind in MODEL_CALL_KINDS else None
    return _day(row.bucket_start)


def costs_report(
    conn: Connection, end_s: int, window_s: int, group_by: str, agent: str | None
) -> dict[str, Any]:
    start_s = end_s - window_s
    rows = fetch_rollups(conn, start_s, end_s, agent=agent)
    prev = fetch_rollups(conn, start_s - window_s, start_s, agent=agent)
    total, previous = Tally(), Tally()
    groups: dict[str, Tally] = defaultdict(Tally)
    prev_groups: dict[str, Tally] = defaultdict(Tally)
    daily: dict[str, int] = defaultdict(int)
    for row in rows:
        total.add(row)
        key = _key(row, group_by)
        if key is not None:
            groups[key].add(row)
        if row.kind in MODEL_CALL_KINDS:
            daily[_day(row.bucket_start)] += row.cost_nanousd
    for row in prev:
        previous.add(row)
        key = _key(row, group_by)
        if key is not None and group_by != "day":
            prev_groups[key].add(row)
    monthly: dict[str, int] = defaultdict(int)
    for day, cost in daily.items():
        monthly[day[:7]] += cost
    out_groups = []
    for key, tally in sorted(groups.items(), key=lambda kv: (-kv[1].cost_nanousd, kv[0])):
        item: dict[str, Any] = {group_by: key, **figures(tally)}
        if group_by == "model":  # agent runs are not per model: per call only
            del item["requests"], item["per_request_usd"]
        item["share_percent"] = (
            round(100.0 * tally.cost_nanousd / total.cost_nanousd, 2) if total.cost_nanousd else 0.0
        )
        if group_by != "day":
            before = prev_groups.get(key, Tally()).cost_nanousd
            item["previous_cost_usd"] = usd(before)
            item["trend_percent"] = trend_percent(tally.cost_nanousd, before)
        out_groups.append(item)
    if group_by == "day":
        out_groups.sort(key=lambda g: str(g["day"]))
    days = max(window_s / DAY_S, 1 / 1440)
    return {
        "total": {
            **figures(total),
            "daily_average_usd": float(Decimal(total.cost_nanousd) / NANO / Decimal(days)),
            "monthly_run_rate_usd": float(Decimal(total.cost_nanousd) / NANO / Decimal(days) * 30),
        },
        "previous": figures(previous),
        "trend": {
            "cost_percent": trend_percent(total.cost_nanousd, previous.cost_nanousd),
            "per_request_percent": _trend_ratio(total, previous),
        },
        "groups": out_groups,
        "daily": [
            {"day": d, "cost_usd": usd(c), "cost_nanousd": c} for d, c in sorted(daily.items())
        ],
        "monthly": [
            {"month": m, "cost_usd": usd(c), "cost_nanousd": c} for m, c in sorted(monthly.items())
        ],
    }


def _trend_ratio(current: Tally, previous: Tally) -> float | None:
    if not current.requests or not previous.requests or not previous.cost_nanousd:
        return None
    cur = Decimal(current.cost_nanousd) / current.requests
    old = Decimal(previous.cost_nanousd) / previous.requests
    return round(float((cur - old) * 100 / old), 2)


def period_total(conn: Connection, start_s: int, end_s: int, agent: str | None) -> int:
    rows = fetch_rollups(conn, start_s, end_s, agent=agent, kinds=MODEL_CALL_KINDS)
    return sum(r.cost_nanousd for r in rows)


def model_usage(
    conn: Connection, start_s: int, end_s: int, agent: str | None = None
) -> dict[tuple[str, str], Tally]:
    """Model calls per (agent, model) in the range."""
    out: dict[tuple[str, str], Tally] = defaultdict(Tally)
    for row in fetch_rollups(conn, start_s, end_s, agent=agent, kinds=MODEL_CALL_KINDS):
        out[(row.agent, row.model)].add(row)
    return dict(out)


def unknown_models(
    usage: dict[tuple[str, str], Tally], priced: Iterable[str]
) -> list[dict[str, Any]]:
    """Models with tokens that the price table does not know (``priced``: those it does)."""
    known = set(priced)
    by_model: dict[str, Tally] = defaultdict(Tally)
    agents: dict[str, set[str]] = defaultdict(set)
    for (agent, model), t in usage.items():
        if model in known or not t.tokens:
            continue
        m = by_model[model]
        m.calls += t.calls
        m.input_tokens += t.input_tokens
        m.output_tokens += t.output_tokens
        m.cached_tokens += t.cached_tokens
        m.cost_nanousd += t.cost_nanousd
        agents[model].add(agent)
    return [
        {
            "model": model or None,
            "calls": t.calls,
            "tokens": {
                "input": t.input_tokens,
                "output": t.output_tokens,
                "cached": t.cached_tokens,
                "total": t.tokens,
            },
            "agents": sorted(agents[model]),
            "client_cost_usd": usd(t.cost_nanousd),
        }
        for model, t in sorted(by_model.items(), key=lambda kv: (-kv[1].tokens, kv[0]))
    ]
