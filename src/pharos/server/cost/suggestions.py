"""Savings suggestions: each with an estimated monthly saving in USD and the numbers behind it.

Read from ``llm_usage_daily`` (model calls per day, agent, model and prompt hash, written at
ingest) over the window's UTC days; a saving seen over the time observed (from the start of the
first day with data in the window, or of the window, to now) is scaled to 30 days.
The rules and thresholds (docs/costs.md):

- ``cheaper_model``: an agent's calls to a model that has a cheaper tier of the same vendor
  (``cheaper`` in the price table) average at most ``SMALL_PROMPT`` input and ``SHORT_OUTPUT``
  output tokens: the same tokens at the cheaper tier's prices would cost X less.
- ``cache_repeated_prompts``: identical prompts (same prompt hash) sent ``MIN_REPEATS`` or more
  times: answering the repeats from a cache saves their cost (all calls but the first of each).
- ``trim_context``: calls averaging ``LONG_PROMPT`` input tokens or more whose input is at least
  ``INPUT_SHARE`` of their cost: trimming the context by ``TRIM_FRACTION`` saves that share.
- ``reduce_errors``: at least ``ERROR_RATE`` of an agent's calls to a model fail: the tokens the
  failed calls used were paid for nothing.

Savings of different suggestions for the same calls overlap; they are not additive.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, select

from pharos.server.cost.book import PriceBook
from pharos.server.cost.prices import call_cost_nanousd, micro_to_usd
from pharos.server.cost.report import usd
from pharos.server.db.schema import llm_usage_daily

SMALL_PROMPT = 2000
SHORT_OUTPUT = 500
MIN_CALLS = 20
MIN_REPEATS = 3
LONG_PROMPT = 4000
INPUT_SHARE = Decimal("0.8")
TRIM_FRACTION = Decimal("0.3")
ERROR_RATE = Decimal("0.05")
MIN_MONTHLY_SAVING_NANOUSD = 10_000_000  # a cent
NS = 1_000_000_000
DAY_S = 86400
MONTH_S = 30 * DAY_S


@dataclass(slots=True)
class Usage:
    calls: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_nanousd: int = 0
    error_cost_nanousd: int = 0
    prompts: dict[str, list[int]] = field(default_factory=dict)  # hash -> [calls, cost]


def load_usage(
    conn: Connection, start_day_s: int, agent: str | None
) -> tuple[dict[tuple[str, str], Usage], int | None]:
    """Usage per (agent, model) since ``start_day_s``, and the first day that has any."""
    t = llm_usage_daily
    conds = [t.c.day >= start_day_s]
    if agent is not None:
        conds.append(t.c.agent == agent)
    out: dict[tuple[str, str], Usage] = defaultdict(Usage)
    first: int | None = None
    for row in conn.execute(select(t).where(and_(*conds))):
        first = row.day if first is None else min(first, row.day)
        u = out[(row.agent, row.model)]
        u.calls += row.calls
        u.errors += row.errors
        u.input_tokens += row.input_tokens
        u.output_tokens += row.output_tokens
        u.cached_tokens += row.cached_tokens
        u.cost_nanousd += row.cost_nanousd
        u.error_cost_nanousd += row.error_cost_nanousd
        if row.prompt_hash:
            p = u.prompts.setdefault(row.prompt_hash, [0, 0])
            p[0] += row.calls
            p[1] += row.cost_nanousd
    return dict(out), first


def _monthly(nanousd: int | Decimal, scale: Decimal) -> int:
    return int((Decimal(nanousd) * scale).to_integral_value())


def suggest(
    usage: dict[tuple[str, str], Usage], book: PriceBook, *, observed_s: int, now_ns: int
) -> list[dict[str, Any]]:
    """Suggestions from usage observed over ``observed_s`` seconds (pure apart from the book)."""
    scale = Decimal(MONTH_S) / Decimal(max(observed_s, 3600))
    table = book.table()
    out: list[dict[str, Any]] = []

    def add(kind: str, agent: str, model: str, saving: int, title: str, ev: dict[str, Any]) -> None:
        monthly = _monthly(saving, scale)
        if monthly >= MIN_MONTHLY_SAVING_NANOUSD:
            out.append(
                {
                    "type": kind,
                    "agent": agent,
                    "model": model or None,
                    "title": title,
                    "estimated_monthly_saving_usd": usd(monthly),
                    "estimated_monthly_saving_nanousd": monthly,
                    "evidence": {"observed_days": round(observed_s / DAY_S, 2), **ev},
                }
            )

    for (agent, model), u in sorted(usage.items()):
        if not u.calls or not model:
            continue
        key = book.resolve(model)
        price = None if key is None else table.price_at(key, now_ns)
        avg_in = u.input_tokens / u.calls
        avg_out = u.output_tokens / u.calls
        base = {
            "calls": u.calls,
            "cost_usd": usd(u.cost_nanousd),
            "avg_input_tokens": round(avg_in, 1),
            "avg_output_tokens": round(avg_out, 1),
        }
        # 1. a cheaper tier of the same vendor for small calls
        cheaper = table.cheaper.get(key or "")
        cheap_price = None if cheaper is None else table.price_at(cheaper, now_ns)
        if (
            cheap_price is not None
            and cheaper is not None
            and u.calls >= MIN_CALLS
            and avg_in <= SMALL_PROMPT
            and avg_out <= SHORT_OUTPUT
        ):
            cheap_cost = call_cost_nanousd(
                cheap_price, u.input_tokens, u.output_tokens, u.cached_tokens
            )
            add(
                "cheaper_model",
                agent,
                model,
                u.cost_nanousd - cheap_cost,
                f"{agent}: use {cheaper} instead of {model} for small calls",
                {
                    **base,
                    "cheaper_model": cheaper,
                    "cost_at_cheaper_model_usd": usd(cheap_cost),
                    "price_usd_per_mtok": _price(price),
                    "cheaper_price_usd_per_mtok": _price(cheap_price),
                    "thresholds": {
                        "max_avg_input_tokens": SMALL_PROMPT,
                        "max_avg_output_tokens": SHORT_OUTPUT,
                    },
                },
            )
        # 2. repeated identical prompts -> cache the answers
        repeated = [(h, c, cost) for h, (c, cost) in u.prompts.items() if c >= MIN_REPEATS]
        if repeated:
            repeat_calls = sum(c - 1 for _, c, _ in repeated)
            saving = sum(Decimal(cost) * (c - 1) / c for _, c, cost in repeated)
            repeated.sort(key=lambda r: (-r[1], r[0]))
            add(
                "cache_repeated_prompts",
                agent,
                model,
                int(saving),
                f"{agent}: cache answers to {len(repeated)} prompt(s) sent again and again",
                {
                    **base,
                    "repeated_prompts": len(repeated),
                    "calls_with_repeated_prompts": sum(c for _, c, _ in repeated),
                    "repeat_calls_avoidable": repeat_calls,
                    "cost_of_repeats_usd": usd(int(saving)),
                    "top_prompts": [
                        {"prompt_hash": h, "calls": c, "cost_usd": usd(cost)}
                        for h, c, cost in repeated[:5]
                    ],
                    "min_repeats": MIN_REPEATS,
                },
            )
        # 3. long prompts whose input dominates cost -> trim the context
        if price is not None and avg_in >= LONG_PROMPT and u.cost_nanousd > 0:
            input_cost = call_cost_nanousd(price, u.input_tokens, 0, u.cached_tokens)
            table_cost = call_cost_nanousd(price, u.input_tokens, u.output_tokens, u.cached_tokens)
            share = Decimal(input_cost) / Decimal(table_cost) if table_cost else Decimal(0)
            if share >= INPUT_SHARE:
                saving_d = Decimal(u.cost_nanousd) * share * TRIM_FRACTION
                add(
                    "trim_context",
                    agent,
                    model,
                    int(saving_d),
                    f"{agent}: prompts to {model} average {round(avg_in):,} tokens; "
                    f"trim the context",
                    {
                        **base,
                        "input_cost_share_percent": round(float(share * 100), 1),
                        "assumed_trim_percent": int(TRIM_FRACTION * 100),
                        "min_avg_input_tokens": LONG_PROMPT,
                    },
                )
        # 4. failing calls that still used tokens
        if u.errors and Decimal(u.errors) / u.calls >= ERROR_RATE and u.error_cost_nanousd > 0:
            add(
                "reduce_errors",
                agent,
                model,
                u.error_cost_nanousd,
                f"{agent}: {round(100 * u.errors / u.calls, 1)}% of calls to {model} fail "
                "after using tokens",
                {
                    **base,
                    "failed_calls": u.errors,
                    "error_rate_percent": round(100 * u.errors / u.calls, 2),
                    "cost_of_failed_calls_usd": usd(u.error_cost_nanousd),
                    "min_error_rate_percent": float(ERROR_RATE * 100),
                },
            )
    out.sort(key=lambda s: (-int(s["estimated_monthly_saving_nanousd"]), s["type"], s["agent"]))
    return out


def _price(price: Any) -> dict[str, str | None] | None:
    if price is None:
        return None
    return {
        "input": micro_to_usd(price.input),
        "output": micro_to_usd(price.output),
        "cached": None if price.cached is None else micro_to_usd(price.cached),
    }
