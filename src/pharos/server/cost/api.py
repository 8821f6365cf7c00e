"""Routes of the cost room: prices, costs, budgets, savings suggestions (docs/costs.md)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from pharos.server.analytics.api import parse_window
from pharos.server.cost import store
from pharos.server.cost.book import PriceBook
from pharos.server.cost.budgets import (
    BudgetState,
    budget_statuses,
    evaluate,
    recent_events,
    record_transitions,
    registry_budget_id,
    reset_budget,
    reset_registry_budget,
)
from pharos.server.cost.prices import Price, bundled_table, micro_to_usd, usd_to_micro
from pharos.server.cost.report import costs_report, model_usage, unknown_models, usd
from pharos.server.cost.suggestions import DAY_S, load_usage, suggest
from pharos.server.db.engine import writing
from pharos.server.errors import ApiError
from pharos.server.responses import FastJSONResponse
from pharos.server.timeparse import iso_from_ns, parse_instant_ns

router = APIRouter(prefix="/api/v1", tags=["cost"])
log = logging.getLogger("pharos.cost")
NANO = Decimal(1_000_000_000)
MAX_USD = Decimal(1_000_000_000)  # a billion dollars: larger limits are a typo


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _book(request: Request) -> PriceBook:
    book: PriceBook = request.app.state.price_book
    return book


EngineDep = Annotated[Engine, Depends(_engine)]
BookDep = Annotated[PriceBook, Depends(_book)]
BudgetId = Annotated[int, Path(ge=1, le=2**63 - 1)]
PriceId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _bad(message: str) -> ApiError:
    return ApiError(400, message, "invalid_parameter")


def _window_end(now_s: float) -> int:
    return (int(now_s) // 60 + 1) * 60


def _usd_amount(value: Any, name: str, *, positive: bool) -> int:
    """USD (number or string) -> integer nano-USD, exact; 400 for anything else."""
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise _bad(f"{name}: {value!r} is not a USD amount") from None
    if not amount.is_finite() or amount < 0 or (positive and amount == 0):
        raise _bad(f"{name} must be a {'positive' if positive else 'non-negative'} USD amount")
    if amount > MAX_USD:
        raise _bad(f"{name} is more than {MAX_USD} USD")
    nano = amount * NANO
    if nano != nano.to_integral_value():
        raise _bad(f"{name}: at most 9 decimal places")
    return int(nano)


# --- prices ------------------------------------------------------------------------------------


def _price_json(model: str, price: Price, vendor: str | None) -> dict[str, Any]:
    return {
        "id": price.id,
        "model": model,
        "vendor": vendor or None,
        "input_usd_per_mtok": micro_to_usd(price.input),
        "output_usd_per_mtok": micro_to_usd(price.output),
        "cached_usd_per_mtok": None if price.cached is None else micro_to_usd(price.cached),
        "effective_from": iso_from_ns(price.effective_from_ns) if price.effective_from_ns else None,
        "source": price.source,
    }


@router.get("/prices", summary="The price table (bundled + overrides), or how a model is priced")
async def list_prices(
    book: BookDep,
    model: Annotated[
        str | None, Query(max_length=512, description="Show how this model name is priced")
    ] = None,
) -> FastJSONResponse:
    table = await anyio.to_thread.run_sync(book.table)
    if model is not None:
        key = await anyio.to_thread.run_sync(book.resolve, model)
        history = table.history.get(key or "", ())
        current = table.price_at(key, time.time_ns()) if key else None
        vendor = table.vendors.get(key or "")
        return FastJSONResponse(
            {
                "model": model,
                "matched": key,
                "price": None if current is None else _price_json(key or "", current, vendor),
                "history": [_price_json(key or "", p, vendor) for p in history],
                "as_of": table.as_of,
            }
        )
    prices = [
        _price_json(key, p, table.vendors.get(key))
        for key in sorted(table.history)
        for p in table.history[key]
    ]
    return FastJSONResponse(
        {"as_of": table.as_of, "aliases": dict(table.aliases), "prices": prices}
    )


class PriceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=512, description="Model name (matched as usual)")
    input: Decimal | str = Field(description="USD per million input tokens")
    output: Decimal | str = Field(description="USD per million output tokens")
    cached: Decimal | str | None = Field(
        default=None, description="USD per million cached input tokens (default: input)"
    )
    effective_from: str | None = Field(
        default=None,
        max_length=64,
        description="ISO 8601 time from which it applies (default: now); 'always' for all time",
    )
    note: str | None = Field(default=None, max_length=1000)


def parse_effective_from(value: str | None, now_ns: int) -> int:
    if value is None or not value.strip():
        return now_ns
    if value.strip().lower() == "always":
        return 0
    try:
        return max(parse_instant_ns(value, now_ns), 0)
    except ValueError as exc:
        raise _bad(f"effective_from: {exc}") from None


@router.post("/prices", status_code=201, summary="Add or replace a model price from a date")
async def set_price(body: PriceIn, engine: EngineDep, book: BookDep) -> FastJSONResponse:
    try:
        input_micro = usd_to_micro(body.input, "input")
        output_micro = usd_to_micro(body.output, "output")
        cached_micro = None if body.cached is None else usd_to_micro(body.cached, "cached")
    except ValueError as exc:
        raise _bad(str(exc)) from None
    model = body.model.strip()
    if not model:
        raise _bad("model must not be blank")
    effective = parse_effective_from(body.effective_from, time.time_ns())

    def run() -> tuple[int, bool]:
        with writing(engine).begin() as conn:
            return store.upsert_price(
                conn,
                model=model,
                input_micro=input_micro,
                output_micro=output_micro,
                cached_micro=cached_micro,
                effective_from_ns=effective,
                note=body.note,
            )

    price_id, created = await anyio.to_thread.run_sync(run)
    book.invalidate()
    price = Price(input_micro, output_micro, cached_micro, effective, "override", price_id)
    return FastJSONResponse(
        {
            **_price_json(model.lower(), price, bundled_table().vendors.get(model.lower())),
            "note": body.note,
        },
        status_code=201 if created else 200,
    )


@router.delete("/prices/{price_id}", status_code=204, summary="Delete a price override")
async def delete_price(price_id: PriceId, engine: EngineDep, book: BookDep) -> Response:
    def run() -> bool:
        with writing(engine).begin() as conn:
            return store.delete_price(conn, price_id)

    if not await anyio.to_thread.run_sync(run):
        raise ApiError(404, f"no price override {price_id}")
    book.invalidate()
    return Response(status_code=204)


@router.get("/prices/unknown", summary="Models with tokens but no price, with their volumes")
async def unknown_prices(engine: EngineDep, book: BookDep, window: str = "7d") -> FastJSONResponse:
    window_s = parse_window(window)
    end_s = _window_end(time.time())

    def run() -> list[dict[str, Any]]:
        with engine.connect() as conn:
            usage = model_usage(conn, end_s - window_s, end_s)
        priced = {model for _, model in usage if model and book.resolve(model) is not None}
        return unknown_models(usage, priced)

    models = await anyio.to_thread.run_sync(run)
    return FastJSONResponse({"window": window, "models": models})


# --- costs -------------------------------------------------------------------------------------


@router.get("/costs", summary="Cost totals, per request, per 1k tokens, by agent/model/day, trend")
async def costs(
    engine: EngineDep,
    window: str = "30d",
    group_by: Literal["agent", "model", "day"] = "agent",
    agent: Annotated[str | None, Query(max_length=512)] = None,
) -> FastJSONResponse:
    window_s = parse_window(window)
    end_s = _window_end(time.time())

    def run() -> dict[str, Any]:
        with engine.connect() as conn:
            return costs_report(conn, end_s, window_s, group_by, agent)

    result = await anyio.to_thread.run_sync(run)
    return FastJSONResponse(
        {
            "window": window,
            "start": iso_from_ns((end_s - window_s) * 10**9),
            "end": iso_from_ns(end_s * 10**9),
            "group_by": group_by,
            "agent": agent,
            **result,
        }
    )


@router.get("/costs/suggestions", summary="Ways to spend less, each with a monthly saving")
async def cost_suggestions(
    engine: EngineDep,
    book: BookDep,
    window: Annotated[str, Query(description="Whole days of usage to read: 1d .. 90d")] = "7d",
    agent: Annotated[str | None, Query(max_length=512)] = None,
) -> FastJSONResponse:
    window_s = parse_window(window)
    if window_s % DAY_S or not DAY_S <= window_s <= 90 * DAY_S:
        raise _bad("window: whole days from 1d to 90d")
    now_ns = time.time_ns()
    now_s = now_ns // 10**9
    start_day = (now_s // DAY_S - window_s // DAY_S + 1) * DAY_S

    def run() -> list[dict[str, Any]]:
        with engine.connect() as conn:
            usage, first_day = load_usage(conn, start_day, agent)
        since = max(start_day, first_day or start_day)
        return suggest(usage, book, observed_s=now_s - since, now_ns=now_ns)

    items = await anyio.to_thread.run_sync(run)
    return FastJSONResponse(
        {
            "window": window,
            "since": iso_from_ns(start_day * 10**9),
            "suggestions": items,
            "note": "savings of different suggestions for the same calls overlap",
        }
    )


# --- budgets -----------------------------------------------------------------------------------


def budget_json(state: BudgetState) -> dict[str, Any]:
    fc = state.forecast
    limit = state.limit_nanousd
    return {
        "id": state.id,
        "name": state.name,
        "agent": state.agent,
        "scope": "agent" if state.agent else "global",
        "period": state.period,
        "limit_usd": usd(limit),
        "soft_limit_usd": usd(state.soft_limit_nanousd),
        "period_start": iso_from_ns(state.period_start_ns),
        "period_end": iso_from_ns(state.period_end_ns),
        "spend_usd": usd(state.spend_nanousd),
        "spend_nanousd": state.spend_nanousd,
        "spent_percent": round(100 * state.spend_nanousd / limit, 2) if limit else None,
        "remaining_usd": usd(max(limit - state.spend_nanousd, 0)),
        "forecast": {
            "method": fc.method,
            "projected_usd": usd(fc.projected_nanousd),
            "projected_percent": round(100 * fc.projected_nanousd / limit, 2) if limit else None,
            "exhausts_at": None if fc.exhausts_at_ns is None else iso_from_ns(fc.exhausts_at_ns),
            "next_24h_usd": usd(fc.next_24h_nanousd),
        },
        "status": state.status,
        "reset_at": None if state.reset_ns is None else iso_from_ns(state.reset_ns),
        "period_spend_usd": usd(state.period_spend_nanousd),
        "crossed_at": None
        if state.status_since_ns is None or state.status == "ok"
        else iso_from_ns(state.status_since_ns),
        "status_since": None
        if state.status_since_ns is None
        else iso_from_ns(state.status_since_ns),
        "events": [
            {
                "at": iso_from_ns(e["at_ns"]),
                "from": e["from_status"],
                "to": e["to_status"],
                "spend_usd": usd(e["spend_nanousd"]),
                "forecast_usd": usd(e["forecast_nanousd"]),
                "limit_usd": usd(e["limit_nanousd"]),
            }
            for e in state.events
        ],
    }


def refresh_budgets(engine: Engine, budget_id: int | None = None) -> list[BudgetState]:
    """Evaluate budgets now, record crossings, attach recent events."""
    now = datetime.now(UTC)
    with writing(engine).begin() as conn:
        if budget_id is None:
            states = budget_statuses(conn, now)
        else:
            row = store.get_budget(conn, budget_id)
            if row is None:
                raise ApiError(404, f"no budget {budget_id}")
            states = [evaluate(conn, row, now)]
        record_transitions(conn, states, now)
        for state in states:
            state.events = recent_events(conn, state.id)
    return states


class BudgetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    agent: str | None = Field(default=None, max_length=512, description="None: all agents")
    period: Literal["daily", "monthly"] = "monthly"
    limit_usd: Decimal | str = Field(description="Hard threshold (critical / exceeded)")
    soft_limit_usd: Decimal | str | None = Field(
        default=None, description="Soft threshold (warning); default 80% of limit_usd"
    )


class BudgetPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    agent: str | None = Field(default=None, max_length=512)
    period: Literal["daily", "monthly"] | None = None
    limit_usd: Decimal | str | None = None
    soft_limit_usd: Decimal | str | None = None


def _limits(limit: Any, soft: Any) -> tuple[int, int]:
    hard = _usd_amount(limit, "limit_usd", positive=True)
    soft_n = hard * 8 // 10 if soft is None else _usd_amount(soft, "soft_limit_usd", positive=True)
    if soft_n > hard:
        raise _bad("soft_limit_usd must not be above limit_usd")
    return hard, soft_n


def _save_budget(engine: Engine, values: dict[str, Any], budget_id: int | None) -> int:
    try:
        with writing(engine).begin() as conn:
            if budget_id is None:
                return store.create_budget(conn, values)
            if store.get_budget(conn, budget_id) is None:
                raise ApiError(404, f"no budget {budget_id}")
            store.update_budget(conn, budget_id, values)
            return budget_id
    except IntegrityError:
        raise ApiError(409, f"a budget named {values.get('name')!r} exists", "conflict") from None


@router.get("/budgets", summary="Budgets with spend, forecast, exhaustion date and burn status")
async def list_budgets(engine: EngineDep) -> FastJSONResponse:
    states = await anyio.to_thread.run_sync(refresh_budgets, engine)
    return FastJSONResponse({"budgets": [budget_json(s) for s in states]})


@router.post("/budgets", status_code=201, summary="Create a budget (per agent or global)")
async def create_budget(body: BudgetIn, engine: EngineDep) -> FastJSONResponse:
    hard, soft = _limits(body.limit_usd, body.soft_limit_usd)
    if not body.name.strip():
        raise _bad("name must not be blank")
    values = {
        "name": body.name.strip(),
        "agent": body.agent or None,
        "period": body.period,
        "limit_nanousd": hard,
        "soft_limit_nanousd": soft,
    }
    budget_id = await anyio.to_thread.run_sync(_save_budget, engine, values, None)
    states = await anyio.to_thread.run_sync(refresh_budgets, engine, budget_id)
    return FastJSONResponse(budget_json(states[0]), status_code=201)


@router.get("/budgets/{budget_id}", summary="One budget, evaluated now")
async def get_budget(budget_id: BudgetId, engine: EngineDep) -> FastJSONResponse:
    states = await anyio.to_thread.run_sync(refresh_budgets, engine, budget_id)
    return FastJSONResponse(budget_json(states[0]))


@router.put("/budgets/{budget_id}", summary="Change a budget (any of its fields)")
async def update_budget(
    budget_id: BudgetId, body: BudgetPatch, engine: EngineDep
) -> FastJSONResponse:
    def current() -> Any:
        with engine.connect() as conn:
            return store.get_budget(conn, budget_id)

    row = await anyio.to_thread.run_sync(current)
    if row is None:
        raise ApiError(404, f"no budget {budget_id}")
    fields = body.model_fields_set
    values: dict[str, Any] = {}
    if "name" in fields and body.name is not None:
        if not body.name.strip():
            raise _bad("name must not be blank")
        values["name"] = body.name.strip()
    if "agent" in fields:
        values["agent"] = body.agent or None
    if "period" in fields and body.period is not None:
        values["period"] = body.period
    if "limit_usd" in fields or "soft_limit_usd" in fields:
        limit = body.limit_usd if "limit_usd" in fields else Decimal(row.limit_nanousd) / NANO
        soft = (
            body.soft_limit_usd
            if "soft_limit_usd" in fields
            else (None if "limit_usd" in fields else Decimal(row.soft_limit_nanousd) / NANO)
        )
        if limit is None:
            raise _bad("limit_usd must not be null")
        values["limit_nanousd"], values["soft_limit_nanousd"] = _limits(limit, soft)
    if values:
        await anyio.to_thread.run_sync(_save_budget, engine, values, budget_id)
    states = await anyio.to_thread.run_sync(refresh_budgets, engine, budget_id)
    return FastJSONResponse(budget_json(states[0]))


@router.post(
    "/budgets/{budget_id}/reset",
    summary="Start the period's count again from now (recorded as a budget event)",
)
async def reset(budget_id: BudgetId, engine: EngineDep) -> FastJSONResponse:
    def run() -> BudgetState:
        now = datetime.now(UTC)
        with writing(engine).begin() as conn:
            state = reset_budget(conn, budget_id, now)
            if state is None:
                raise ApiError(404, f"no budget {budget_id}")
            state.events = recent_events(conn, budget_id)
        return state

    return FastJSONResponse(budget_json(await anyio.to_thread.run_sync(run)))


@router.post(
    "/agents/registry/{name}/budget/reset",
    summary="Start a registered agent's --budget count again from now (a budget event)",
)
async def reset_agent_budget(
    name: Annotated[str, Path(min_length=1, max_length=512)], engine: EngineDep
) -> FastJSONResponse:
    def run() -> BudgetState:
        now = datetime.now(UTC)
        with writing(engine).begin() as conn:
            state = reset_registry_budget(conn, name, now)
            if state is None:
                raise ApiError(404, f"agent {name!r} is not registered with a budget")
            state.events = recent_events(conn, registry_budget_id(name))
        return state

    return FastJSONResponse(budget_json(await anyio.to_thread.run_sync(run)))


@router.delete("/budgets/{budget_id}", status_code=204, summary="Delete a budget")
async def delete_budget(budget_id: BudgetId, engine: EngineDep) -> Response:
    def run() -> bool:
        with writing(engine).begin() as conn:
            return store.delete_budget(conn, budget_id)

    if not await anyio.to_thread.run_sync(run):
        raise ApiError(404, f"no budget {budget_id}")
    return Response(status_code=204)


def _prune(engine: Engine) -> None:
    with writing(engine).begin() as conn:
        store.prune_usage(conn, int(time.time()))


async def budget_watcher(
    engine: Engine, interval: float
) -> None:  # pragma: no cover - a loop; refresh_budgets is what the tests exercise
    """Evaluate budgets every ``interval`` seconds so crossings are recorded even when nobody
    reads the API (the alert engine raises the alerts: alerting/budget_alerts.py), and prune
    ``llm_usage_daily`` every hour. Never dies: failures are logged and retried."""
    failing = False
    next_prune = 0.0
    while True:
        try:
            await anyio.to_thread.run_sync(refresh_budgets, engine)
            if time.monotonic() >= next_prune:
                await anyio.to_thread.run_sync(_prune, engine)
                next_prune = time.monotonic() + 3600
            failing = False
        except Exception as exc:
            if not failing:
                log.warning("budget evaluation failed (will retry): %s", exc)
            failing = True
        await anyio.sleep(interval)
