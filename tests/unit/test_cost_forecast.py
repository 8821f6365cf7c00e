"""Forecasts on synthetic spending curves (steady, ramping, idle nights, spike), budget periods
and statuses, prompt hashes and usage deltas.

Tolerances (docs/costs.md): steady and idle-night curves, exhaustion within 1 hour of the truth;
a ramp and a one-off spike, within 10 % of the true time left until exhaustion.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from pharos.server.cost.budgets import period_bounds, status_of
from pharos.server.cost.forecast import HOUR_NS, NS, forecast
from pharos.server.cost.usage import prompt_hash, usage_deltas
from pharos.server.ingest.normalize import MODEL_CALL_KINDS
from tests.unit.helpers import make_span, one

USD = 10**9
DAY_NS = 24 * HOUR_NS
MONTH_START = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) * NS
MONTH_END = int(datetime(2026, 2, 1, tzinfo=UTC).timestamp()) * NS

Curve = Callable[[int], float]  # hour index since MONTH_START -> USD spent in that hour


def _run(curve: Curve, now_ns: int, limit_usd: float) -> tuple[int | None, float | None, int]:
    """(forecast exhaustion, true exhaustion, forecast projected) for a budget from
    MONTH_START; the truth continues the curve."""
    hour_start = now_ns // HOUR_NS * HOUR_NS
    hours = (hour_start - MONTH_START) // HOUR_NS
    hourly = [round(curve(h) * USD) for h in range(hours)]
    fraction = (now_ns - hour_start) / HOUR_NS
    current = round(curve(hours) * USD * fraction)
    spend = sum(hourly) + current
    limit = round(limit_usd * USD)
    fc = forecast(
        hourly,
        history_end_ns=hour_start,
        now_ns=now_ns,
        period_end_ns=MONTH_END,
        spend_nanousd=spend,
        limit_nanousd=limit,
        current_hour_nanousd=current,
    )
    assert spend < limit, "the test curve must not be exhausted yet"
    # the truth: the rest of the current hour, then whole hours
    cumulative, truth = float(spend), None
    t, h = now_ns, hours
    while t < MONTH_END and truth is None:
        end = MONTH_START + (h + 1) * HOUR_NS
        amount = curve(h) * USD * (end - t) / HOUR_NS
        if amount > 0 and cumulative + amount >= limit:
            truth = t + (limit - cumulative) / amount * (end - t)
        cumulative += amount
        t, h = end, h + 1
    return fc.exhausts_at_ns, truth, fc.projected_nanousd


def steady(h: int) -> float:
    return 1.0


def ramping(h: int) -> float:  # +10 % of the first day's rate every day
    return 1.0 + 0.1 * h / 24


def idle_nights(h: int) -> float:  # 2 USD an hour from 08:00 to 20:00 UTC, nothing at night
    return 2.0 if 8 <= h % 24 < 20 else 0.0


def spike(h: int) -> float:  # steady, with one hour at 100x yesterday
    return 100.0 if h == 9 * 24 + 3 else 1.0


NOW = MONTH_START + 10 * DAY_NS + 12 * HOUR_NS + 20 * 60 * NS  # Jan 11, 12:20 UTC


@pytest.mark.parametrize(
    ("curve", "limit", "tolerance_hours"),
    [
        (steady, 600.0, 1.0),
        (idle_nights, 600.0, 1.0),
        (idle_nights, 300.0, 1.0),
    ],
)
def test_exhaustion_within_an_hour(curve: Curve, limit: float, tolerance_hours: float) -> None:
    predicted, truth, _ = _run(curve, NOW, limit)
    assert predicted is not None and truth is not None
    assert abs(predicted - truth) <= tolerance_hours * HOUR_NS


@pytest.mark.parametrize(("curve", "limit"), [(ramping, 600.0), (ramping, 800.0), (spike, 600.0)])
def test_exhaustion_within_ten_percent(curve: Curve, limit: float) -> None:
    predicted, truth, _ = _run(curve, NOW, limit)
    assert predicted is not None and truth is not None
    assert abs(predicted - truth) <= 0.10 * (truth - NOW)


def test_idle_night_does_not_stop_the_forecast() -> None:
    """At 23:00 the last three hours spent nothing; tomorrow still spends 24 USD."""
    night = MONTH_START + 10 * DAY_NS + 23 * HOUR_NS
    predicted, truth, projected = _run(idle_nights, night, 300.0)
    assert truth is not None and predicted is not None
    assert abs(predicted - truth) <= HOUR_NS
    # and the exhaustion falls in working hours
    assert 8 <= (predicted // HOUR_NS) % 24 < 20
    assert projected == pytest.approx(31 * 24 * USD, rel=0.001)


def test_projected_totals() -> None:
    _, _, projected = _run(steady, NOW, 10_000.0)
    assert projected == pytest.approx(31 * 24 * USD, rel=1e-9)
    _, _, projected = _run(spike, NOW, 10_000.0)
    true_total = 31 * 24 * USD + 99 * USD
    assert abs(projected - true_total) <= 0.05 * true_total


def test_new_agent_flat_rate_and_no_data() -> None:
    now = MONTH_START + 10 * DAY_NS + 30 * 60 * NS  # 00:30
    fc = forecast(
        [0] * 200,
        history_end_ns=now // HOUR_NS * HOUR_NS,
        now_ns=now,
        period_end_ns=now + 10 * HOUR_NS,
        spend_nanousd=USD,
        limit_nanousd=5 * USD,
        current_hour_nanousd=USD,
    )
    # 1 USD in half an hour: 2 USD/h; the limit is 4 USD away -> 2 hours from now
    assert fc.method == "flat_rate"
    assert fc.exhausts_at_ns == now + 2 * HOUR_NS
    assert fc.projected_nanousd == 21 * USD
    idle = forecast(
        [0] * 10, history_end_ns=now, now_ns=now, period_end_ns=now + HOUR_NS, spend_nanousd=0
    )
    assert idle.method == "no_data" and idle.projected_nanousd == 0 and idle.exhausts_at_ns is None


def test_period_bounds_and_status() -> None:
    now = datetime(2026, 12, 31, 15, 4, tzinfo=UTC)
    start, end = period_bounds("monthly", now)
    assert start == int(datetime(2026, 12, 1, tzinfo=UTC).timestamp()) * NS
    assert end == int(datetime(2027, 1, 1, tzinfo=UTC).timestamp()) * NS
    start, end = period_bounds("daily", now)
    assert (
        end - start == DAY_NS and start == int(datetime(2026, 12, 31, tzinfo=UTC).timestamp()) * NS
    )
    with pytest.raises(ValueError):
        period_bounds("weekly", now)
    assert status_of(10, 10, 80, 100) == "ok"
    assert status_of(10, 85, 80, 100) == "warning"  # forecast crosses soft
    assert status_of(85, 90, 80, 100) == "warning"
    assert status_of(50, 120, 80, 100) == "critical"  # forecast crosses hard
    assert status_of(100, 100, 80, 100) == "exceeded"


def test_prompt_hash() -> None:
    a = {"gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "hi", "other": 1}
    b = {"gen_ai.prompt.0.content": "hi", "gen_ai.prompt.0.role": "user", "other": 2}
    assert prompt_hash(a) == prompt_hash(b) and len(prompt_hash(a) or "") == 32
    assert prompt_hash({"gen_ai.prompt.0.content": "bye"}) != prompt_hash(a)
    assert prompt_hash({"llm.input_messages.0.message.content": "hi"}) is not None
    assert prompt_hash({"input.value": "hi"}) is not None
    assert prompt_hash({"input.values_other": "hi", "other": "x"}) is None
    assert prompt_hash({}) is None


def test_prompt_hash_at_normalize_and_usage_deltas() -> None:
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 5,
        "gen_ai.prompt.0.content": "same",
    }
    r1 = one(make_span(1, attributes=attrs))
    r2 = one(make_span(2, attributes=attrs))
    tool = one(make_span(3, attributes={"gen_ai.operation.name": "execute_tool"}))
    assert r1.prompt_hash is not None and r1.prompt_hash == r2.prompt_hash
    assert tool.prompt_hash is None
    r1.cost_nanousd, r2.cost_nanousd, r2.status = 7, 8, "error"
    deltas = usage_deltas([r1, r2, tool], MODEL_CALL_KINDS)
    assert len(deltas) == 1
    ((key, d),) = deltas.items()
    assert key[2:] == ("gpt-4o", r1.prompt_hash)
    assert (d.calls, d.errors, d.input_tokens, d.cost_nanousd, d.error_cost_nanousd) == (
        2,
        1,
        20,
        15,
        8,
    )
