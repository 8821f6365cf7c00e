"""SLO arithmetic, the slo_burn()/slo_attainment() rule functions and their parse errors."""

from __future__ import annotations

from collections import Counter

import pytest

from pharos.server.alerting.figures import Figures
from pharos.server.alerting.language import RuleSyntaxError, Series, describe_series, parse
from pharos.server.analytics import histogram as hist
from pharos.server.analytics.summary import Aggregate, RollupRow
from pharos.server.slo.core import SloDef, attainment, budget_remaining, burn_rate, status, tally

SUCCESS = SloDef(1, "checkout-success", "checkout", "success", 99.0, None, 30)
LATENCY = SloDef(2, "checkout-fast", "checkout", "latency", 95.0, 200.0, 30)


def _agg(fast: int, slow: int, errors: int) -> Aggregate:
    histogram: Counter[int] = Counter()
    histogram[hist.bucket_of(100.0)] += fast
    histogram[hist.bucket_of(500.0)] += slow
    return Aggregate(requests=fast + slow, errors=errors, histogram=histogram)


def test_success_slo_numbers() -> None:
    t = tally(_agg(90, 10, 3), SUCCESS)
    assert (t.total, t.good, t.bad) == (100, 97, 3)
    assert attainment(t) == 97.0
    assert burn_rate(t, 99.0) == pytest.approx(3.0)
    assert budget_remaining(t, 99.0) == pytest.approx(-200.0)


def test_latency_slo_counts_requests_under_the_threshold() -> None:
    t = tally(_agg(90, 10, 3), LATENCY)
    assert (t.total, t.good) == (100, 90)
    assert burn_rate(t, 95.0) == pytest.approx(2.0)
    assert budget_remaining(t, 95.0) == pytest.approx(-100.0)
    # Exactly at the threshold counts as good (the bucket's value, as percentiles read it).
    at = Aggregate(requests=1, histogram=Counter({hist.bucket_of(200.0): 1}))
    edge = SloDef(3, "x", "a", "latency", 95.0, hist.value_of(hist.bucket_of(200.0)), 30)
    assert tally(at, edge).good == 1


def test_status_states_and_windows() -> None:
    healthy = _agg(1000, 0, 0)
    s = status(SUCCESS, {"1h": healthy, "6h": healthy, "24h": healthy, "30d": healthy})
    assert s["state"] == "ok" and s["met"] is True
    assert s["error_budget_remaining"] == 100.0
    assert s["burn_rates"] == {"1h": 0.0, "6h": 0.0, "24h": 0.0, "30d": 0.0}
    # A bad hour in a good month: burning fast, budget not gone yet.
    month = Aggregate(requests=100_000, errors=200)
    hour = Aggregate(requests=1000, errors=200)
    s = status(SUCCESS, {"1h": hour, "6h": hour, "24h": hour, "30d": month})
    assert s["state"] == "burning"
    assert s["burn_rates"]["1h"] == pytest.approx(20.0)
    assert s["error_budget_remaining"] == pytest.approx(80.0)
    assert s["windows"]["30d"] == {
        "requests": 100_000,
        "good": 99_800,
        "bad": 200,
        "attainment": 99.8,
        "burn_rate": 0.2,
    }
    s = status(SUCCESS, {"30d": Aggregate(requests=100, errors=5)})
    assert s["state"] == "breached" and s["met"] is False
    assert status(SUCCESS, {})["state"] == "no_data"


@pytest.mark.parametrize(
    ("text", "series"),
    [
        ('slo_burn(agent="x", 1h) > 14.4', Series("slo_burn", 3600, "x", None)),
        ('slo_burn(1h, agent="x") > 14.4', Series("slo_burn", 3600, "x", None)),
        ('slo_burn(6h, slo="fast") > 6', Series("slo_burn", 21600, None, None, slo="fast")),
        ("slo_attainment(30d) < 99.9 by agent", Series("slo_attainment", 30 * 86400, None, None)),
    ],
)
def test_slo_functions_parse(text: str, series: Series) -> None:
    rule = parse(text)
    assert rule.series == [series]
    assert parse(text.split(">")[0].split("<")[0] + "> 0").series == [series]
    assert describe_series(series).startswith(series.metric + "(")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('slo_burn(agent="x") > 1', "usage: slo_burn(window"),
        ('slo_burn(1h, model="gpt-4o") > 1', "has no model= argument; use agent= or slo="),
        ("slo_burn(1h, 6h) > 1", "usage: slo_burn(window"),
        ("slo_burn(30s) > 1", "a window is whole minutes"),
        ("slo_burn(1h, agent=5) > 1", 'agent= takes a string, e.g. agent="name"'),
        ('slo_burn(1h, slo="a", slo="b") > 1', "slo= is given twice"),
        ("slo_burn(1h)", "a rule must be a condition"),
        ('error_rate(agent="x", 5m) > 1', "positional arguments go before name= arguments"),
    ],
)
def test_slo_parse_errors(text: str, message: str) -> None:
    with pytest.raises(RuleSyntaxError) as info:
        parse(text)
    assert message in str(info.value)


def _row(agent: str, count: int, errors: int, fast: int) -> RollupRow:
    h: Counter[int] = Counter({hist.bucket_of(100.0): fast, hist.bucket_of(500.0): count - fast})
    return RollupRow(0, agent, "", "request", count, errors, 0.0, 500.0, 0, 0, 0, 0, hist.dumps(h))


def test_figures_compute_slo_values_from_rollup_rows() -> None:
    rows = [_row("checkout", 60, 2, 55), _row("checkout", 40, 1, 35), _row("search", 10, 0, 10)]
    other = SloDef(9, "search-success", "search", "success", 99.0, None, 30)
    fig = Figures({3600: rows}, slos=[SUCCESS, LATENCY, other])
    burn = Series("slo_burn", 3600)
    # checkout: success burn 3 (3 bad of 100 against 1%), latency burn 2 (10 slow against 5%)
    assert fig.value(burn, {"agent": "checkout"}) == pytest.approx(3.0)
    assert fig.value(Series("slo_burn", 3600, slo="checkout-fast"), {}) == pytest.approx(2.0)
    assert fig.value(Series("slo_attainment", 3600, "checkout"), {}) == pytest.approx(90.0)
    assert fig.value(burn, {"agent": "search"}) == 0.0
    assert fig.value(burn, {"agent": "nobody"}) is None
    assert fig.value(burn, {}) == pytest.approx(3.0)  # every SLO: the highest burn
