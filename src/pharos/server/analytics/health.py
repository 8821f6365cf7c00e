"""Health score 0-100 from error rate, p99 latency and firing alerts (pure).

Each component scores 1 at or below its warning threshold, 0 at or above its critical one, and
linearly in between (all six thresholds are settings; a warning above its critical one is
refused). The score is ``40·errors + 40·latency + 20·alerts``. The status is the worse of the
score's band (>= 80 healthy, >= 50 degraded, else critical) and the worst component (past
critical -> critical, past warning -> degraded): an error rate past its critical threshold
makes the status critical even when latency is perfect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

WEIGHTS = {"error_rate": 40, "latency_p99": 40, "alerts": 20}
_STATUS_ORDER = {"healthy": 0, "degraded": 1, "critical": 2}


class HealthSettings(Protocol):
    health_error_rate_warning: float
    health_error_rate_critical: float
    health_p99_warning_ms: float
    health_p99_critical_ms: float
    health_alerts_warning: int
    health_alerts_critical: int


@dataclass(frozen=True, slots=True)
class HealthThresholds:
    error_rate_warning: float = 1.0  # percent
    error_rate_critical: float = 5.0
    p99_warning_ms: float = 2000.0
    p99_critical_ms: float = 10000.0
    alerts_critical: int = 3  # firing alerts that take the alert component to 0
    alerts_warning: int = 0  # firing alerts tolerated (the component stays at 1)

    @classmethod
    def from_settings(cls, s: HealthSettings) -> HealthThresholds:
        """Every threshold from the ``PHAROS_HEALTH_*`` settings."""
        return cls(
            error_rate_warning=s.health_error_rate_warning,
            error_rate_critical=s.health_error_rate_critical,
            p99_warning_ms=s.health_p99_warning_ms,
            p99_critical_ms=s.health_p99_critical_ms,
            alerts_critical=s.health_alerts_critical,
            alerts_warning=s.health_alerts_warning,
        )


def linear_score(value: float, warning: float, critical: float) -> float:
    if value <= warning:
        return 1.0
    if value >= critical:
        return 0.0
    return (critical - value) / (critical - warning)


def _level(value: float, warning: float, critical: float) -> str:
    if value >= critical:
        return "critical"
    if value > warning:
        return "degraded"
    return "healthy"


def health(
    *,
    requests: int,
    error_rate: float,
    p99_ms: float | None,
    firing_alerts: int,
    thresholds: HealthThresholds,
    window: str,
) -> dict[str, Any]:
    """The score, status, components and human reasons for one scope (global or an agent)."""
    t = thresholds
    if requests == 0 and firing_alerts == 0:
        return {
            "score": None,
            "status": "unknown",
            "no_data": True,
            "components": {},
            "reasons": [f"No requests in the last {window}"],
        }
    comps: dict[str, dict[str, Any]] = {}
    reasons: list[str] = []
    worst = "healthy"

    e_score = linear_score(error_rate, t.error_rate_warning, t.error_rate_critical)
    e_level = _level(error_rate, t.error_rate_warning, t.error_rate_critical)
    comps["error_rate"] = {
        "value": round(error_rate, 3),
        "unit": "percent",
        "score": round(e_score, 3),
        "weight": WEIGHTS["error_rate"],
        "status": e_level,
        "warning": t.error_rate_warning,
        "critical": t.error_rate_critical,
    }
    if e_level != "healthy":
        limit = t.error_rate_critical if e_level == "critical" else t.error_rate_warning
        reasons.append(f"High error rate: {error_rate:.1f}% ({e_level} above {limit:g}%)")

    if p99_ms is None:
        l_score, l_level = 1.0, "healthy"
    else:
        l_score = linear_score(p99_ms, t.p99_warning_ms, t.p99_critical_ms)
        l_level = _level(p99_ms, t.p99_warning_ms, t.p99_critical_ms)
    comps["latency_p99"] = {
        "value": None if p99_ms is None else round(p99_ms, 1),
        "unit": "ms",
        "score": round(l_score, 3),
        "weight": WEIGHTS["latency_p99"],
        "status": l_level,
        "warning": t.p99_warning_ms,
        "critical": t.p99_critical_ms,
    }
    if l_level != "healthy" and p99_ms is not None:
        limit = t.p99_critical_ms if l_level == "critical" else t.p99_warning_ms
        reasons.append(f"High latency: {p99_ms:.0f} ms (p99, {l_level} above {limit:g} ms)")

    a_score = linear_score(firing_alerts, t.alerts_warning, t.alerts_critical)
    a_level = _level(firing_alerts, t.alerts_warning, t.alerts_critical)
    comps["alerts"] = {
        "value": firing_alerts,
        "unit": "firing",
        "score": round(a_score, 3),
        "weight": WEIGHTS["alerts"],
        "status": a_level,
        "warning": t.alerts_warning,
        "critical": t.alerts_critical,
    }
    if a_level != "healthy":  # as many as tolerated (alerts_warning) do not lower health
        reasons.append(f"{firing_alerts} alert(s) firing")

    score = round(
        WEIGHTS["error_rate"] * e_score
        + WEIGHTS["latency_p99"] * l_score
        + WEIGHTS["alerts"] * a_score
    )
    band = "healthy" if score >= 80 else "degraded" if score >= 50 else "critical"
    for level in (band, e_level, l_level, a_level):
        if _STATUS_ORDER[level] > _STATUS_ORDER[worst]:
            worst = level
    return {
        "score": score,
        "status": worst,
        "no_data": False,
        "components": comps,
        "reasons": reasons,
    }
