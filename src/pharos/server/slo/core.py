"""SLO arithmetic (pure): good and bad requests of a window from an analytics ``Aggregate``,
attainment, burn rate, remaining error budget and a state.

- A **success** SLO counts a request good when it did not fail (``errors`` of the rollups).
- A **latency** SLO counts a request good when it took at most ``threshold_ms``, read from the
  rollups' latency histogram, bucket by bucket, with the same bucket values the percentiles use
  (within 1 %): "p95 < 200 ms" is an objective of 95 with a threshold of 200.

Burn rate = (bad / total) / (1 - objective): 1 spends the budget exactly over the period, 14.4
over one hour spends 2 % of a 30-day budget (the classic fast-burn page).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pharos.server.analytics import histogram as hist
from pharos.server.analytics.summary import Aggregate

KINDS = ("success", "latency")
#: The burn-rate windows every SLO status reports, besides its whole period.
WINDOWS = {"1h": 3600, "6h": 6 * 3600, "24h": 86400}
#: Burn rates at which an SLO is "burning" (multiwindow thresholds of the SRE workbook).
FAST_BURN = {"1h": 14.4, "6h": 6.0}


@dataclass(frozen=True, slots=True)
class SloDef:
    id: int
    name: str
    agent: str
    kind: str  # success | latency
    objective: float  # percent, 0 < objective < 100
    threshold_ms: float | None
    period_days: int
    description: str = ""

    @property
    def period_s(self) -> int:
        return self.period_days * 86400

    @property
    def period_label(self) -> str:
        return f"{self.period_days}d"


@dataclass(frozen=True, slots=True)
class Tally:
    total: int
    good: int

    @property
    def bad(self) -> int:
        return self.total - self.good


def tally(agg: Aggregate, slo: SloDef) -> Tally:
    """Good and total requests of one window for ``slo``."""
    if slo.kind == "success":
        return Tally(agg.requests, agg.requests - agg.errors)
    threshold = slo.threshold_ms if slo.threshold_ms is not None else float("inf")
    good = sum(n for bucket, n in agg.histogram.items() if hist.value_of(bucket) <= threshold)
    return Tally(agg.requests, min(good, agg.requests))


def attainment(t: Tally) -> float | None:
    """Good requests, percent (None without requests)."""
    return 100.0 * t.good / t.total if t.total else None


def burn_rate(t: Tally, objective: float) -> float | None:
    if not t.total or objective >= 100:
        return None
    return (t.bad / t.total) / (1 - objective / 100)


def budget_remaining(t: Tally, objective: float) -> float | None:
    """Percent of the period's error budget left (negative once overspent)."""
    if not t.total or objective >= 100:
        return None
    allowed = t.total * (1 - objective / 100)
    return 100.0 * (1 - t.bad / allowed)


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def window_json(t: Tally, objective: float) -> dict[str, Any]:
    return {
        "requests": t.total,
        "good": t.good,
        "bad": t.bad,
        "attainment": _round(attainment(t)),
        "burn_rate": _round(burn_rate(t, objective)),
    }


def status(slo: SloDef, aggregates: Mapping[str, Aggregate]) -> dict[str, Any]:
    """The status of ``slo`` from the aggregates of each window in :data:`WINDOWS` plus its
    period (keyed by ``slo.period_label``)."""
    labels = [*WINDOWS, slo.period_label]
    tallies = {label: tally(aggregates.get(label, Aggregate()), slo) for label in labels}
    period = tallies[slo.period_label]
    att = attainment(period)
    remaining = budget_remaining(period, slo.objective)
    burns = {label: _round(burn_rate(tallies[label], slo.objective)) for label in labels}
    if period.total == 0:
        state = "no_data"
    elif remaining is not None and remaining <= 0:
        state = "breached"
    elif any((burns.get(w) or 0) > limit for w, limit in FAST_BURN.items()):
        state = "burning"
    else:
        state = "ok"
    return {
        "state": state,
        "attainment": _round(att),
        "met": None if att is None else att >= slo.objective,
        "error_budget_remaining": _round(remaining, 2),
        "burn_rates": burns,
        "windows": {label: window_json(tallies[label], slo.objective) for label in labels},
    }


def slo_json(slo: SloDef) -> dict[str, Any]:
    return {
        "id": slo.id,
        "name": slo.name,
        "agent": slo.agent,
        "kind": slo.kind,
        "objective": slo.objective,
        "threshold_ms": slo.threshold_ms,
        "period_days": slo.period_days,
        "description": slo.description,
        "target": describe(slo),
    }


def describe(slo: SloDef) -> str:
    """``99.9% of requests succeed`` / ``95% of requests within 200 ms``."""
    objective = f"{slo.objective:g}%"
    if slo.kind == "success":
        return f"{objective} of requests succeed"
    return f"{objective} of requests within {slo.threshold_ms:g} ms"
