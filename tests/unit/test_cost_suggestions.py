"""Savings suggestions from usage (exact numbers), and the price book's refresh rules."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine

from pharos.server.cost import store
from pharos.server.cost.book import PriceBook
from pharos.server.cost.suggestions import DAY_S, Usage, suggest
from pharos.server.db.migrate import upgrade

NS = 1_000_000_000
NOW = 1_790_000_000 * NS


def test_each_suggestion_with_its_numbers() -> None:
    book = PriceBook(None)
    usage = {
        # small gpt-4o calls: 100 x (500 in, 100 out) = 100 x 2_250_000 nano
        ("bot", "gpt-4o-2024-08-06"): Usage(
            calls=100,
            errors=10,
            input_tokens=50_000,
            output_tokens=10_000,
            cost_nanousd=225_000_000,
            error_cost_nanousd=22_500_000,
            prompts={"aaa": [40, 90_000_000], "bbb": [2, 4_500_000]},
        ),
        # long prompts: 10 x (20_000 in, 100 out) at claude-3-5-sonnet (3 / 15)
        ("reader", "claude-3-5-sonnet-20241022"): Usage(
            calls=10, input_tokens=200_000, output_tokens=1_000, cost_nanousd=615_000_000
        ),
        # unknown model, no prompts, no errors: nothing to say
        ("x", "my-model"): Usage(calls=50, input_tokens=1000, output_tokens=10, cost_nanousd=0),
    }
    items = suggest(usage, book, observed_s=3 * DAY_S, now_ns=NOW)  # x 10 to a month
    got = {(s["type"], s["agent"]): s for s in items}
    assert set(got) == {
        ("cheaper_model", "bot"),
        ("cache_repeated_prompts", "bot"),
        ("reduce_errors", "bot"),
        ("trim_context", "reader"),
    }
    cheaper = got[("cheaper_model", "bot")]
    # gpt-4o-mini: 50_000 x 150 + 10_000 x 600 pico = 13_500_000 nano
    assert cheaper["evidence"]["cost_at_cheaper_model_usd"] == 0.0135
    assert cheaper["estimated_monthly_saving_nanousd"] == (225_000_000 - 13_500_000) * 10
    cache = got[("cache_repeated_prompts", "bot")]
    assert cache["evidence"]["repeated_prompts"] == 1  # "bbb" seen twice is below 3
    assert cache["evidence"]["repeat_calls_avoidable"] == 39
    assert cache["estimated_monthly_saving_nanousd"] == 90_000_000 * 39 // 40 * 10
    errors = got[("reduce_errors", "bot")]
    assert errors["estimated_monthly_saving_nanousd"] == 225_000_000
    assert errors["evidence"]["error_rate_percent"] == 10.0
    trim = got[("trim_context", "reader")]
    # input is 600_000_000 of 615_000_000 (97.6 %); 30 % of that share of the cost, x 10
    assert trim["evidence"]["input_cost_share_percent"] == 97.6
    assert trim["estimated_monthly_saving_nanousd"] == 1_800_000_000
    # sorted by saving, largest first
    savings = [s["estimated_monthly_saving_nanousd"] for s in items]
    assert savings == sorted(savings, reverse=True)


def test_no_suggestion_without_numbers() -> None:
    book = PriceBook(None)
    usage = {
        # too few calls for a tier change, errors that cost nothing, no repeated prompt
        ("bot", "gpt-4o"): Usage(
            calls=5,
            errors=5,
            input_tokens=100,
            output_tokens=10,
            cost_nanousd=350_000,
            prompts={"a": [1, 1]},
        ),
        # a cheap model's repeats saving less than a cent a month
        ("tiny", "gpt-4o-mini"): Usage(calls=3, cost_nanousd=30, prompts={"p": [3, 30]}),
    }
    assert suggest(usage, book, observed_s=DAY_S, now_ns=NOW) == []


def test_price_book_refresh_and_invalidate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    upgrade(url)
    engine = create_engine(url)
    clock = [0.0]
    book = PriceBook(engine, refresh_seconds=30, clock=lambda: clock[0])
    assert book.price_of("my-model", NOW) is None
    with engine.begin() as conn:
        store.upsert_price(
            conn,
            model="My-Model",
            input_micro=1_000_000,
            output_micro=2_000_000,
            cached_micro=None,
            effective_from_ns=0,
        )
    clock[0] = 10.0
    assert book.price_of("my-model", NOW) is None  # cached until the refresh is due
    clock[0] = 31.0
    assert book.price_of("my-model-v2", NOW).input == 1_000_000  # type: ignore[union-attr]
    with engine.begin() as conn:
        store.upsert_price(
            conn,
            model="my-model",
            input_micro=3_000_000,
            output_micro=2_000_000,
            cached_micro=None,
            effective_from_ns=0,
        )
    book.invalidate()  # this instance changed it: applies at once
    assert book.price_of("my-model", NOW).input == 3_000_000  # type: ignore[union-attr]
    engine.dispose()
