"""Build a report (a JSON document) for a window from the other rooms' own functions:

- traffic, errors and latency: ``analytics.api.summary_for`` (the totals of
  ``/api/v1/metrics/summary``), per agent ``summary.aggregate`` + ``summary.figures`` over the
  same rollup rows, the chart's buckets ``summary.series`` (``/api/v1/metrics/timeseries``);
- cost: ``cost.report.costs_report`` (``/api/v1/costs``), budgets ``cost.budgets.budget_statuses``
  (``/api/v1/budgets``);
- SLOs: ``slo.store.statuses`` (``/api/v1/slos``);
- top errors: the error groups' own query (``query.errors.top_error_groups``, as the
  overview);
- alerts fired: the report room's query (report/store.py).

So a report shows the numbers the dashboard and the API show for the same window.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from pharos.server.alerting.store import loads
from pharos.server.analytics import store as rollup_store
from pharos.server.analytics.api import summary_for
from pharos.server.analytics.rollups import REQUEST, RESOLUTIONS
from pharos.server.analytics.summary import RollupRow, aggregate, figures, series
from pharos.server.cost.api import budget_json
from pharos.server.cost.budgets import budget_statuses
from pharos.server.cost.report import costs_report
from pharos.server.query.errors import top_error_groups
from pharos.server.report import store
from pharos.server.slo import store as slo_store
from pharos.server.timeparse import iso_from_ns

NS = 1_000_000_000
KINDS = {
    "daily": ("Daily health report", 86400),
    "weekly": ("Weekly performance & cost summary", 7 * 86400),
}


def kind_for(window_s: int) -> str:
    return next((k for k, (_, w) in KINDS.items() if w == window_s), "custom")


def title_for(kind: str, window_s: int) -> str:
    if kind in KINDS:
        return KINDS[kind][0]
    return f"Report for the last {_duration(window_s)}"


def _duration(seconds: int) -> str:
    """24h, 7d, 90m: hours up to two days, days beyond."""
    if seconds > 2 * 86400 and seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return f"{seconds // 60}m"


def _interval(window_s: int) -> int:
    """Chart buckets: hours up to 2 days, days beyond."""
    return 3600 if window_s <= 2 * 86400 else 86400


def build_report(
    engine: Engine,
    *,
    window_s: int,
    end_s: int,
    success_target: float = 99.9,
    p95_target_ms: float = 200.0,
    firing_now: int = 0,
    top: int = 5,
    dashboard_url: str = "",
) -> dict[str, Any]:
    """The report for [end_s - window_s, end_s) (end_s minute-aligned)."""
    kind = kind_for(window_s)
    start_s = end_s - window_s
    totals = summary_for(engine, end_s, window_s, None, None)
    interval = _interval(window_s)
    chart_end = -(-end_s // interval) * interval
    chart_start = chart_end - -(-window_s // interval) * interval
    resolution = "1d" if interval == RESOLUTIONS["1d"] else "1h"
    now = datetime.fromtimestamp(end_s, tz=UTC)
    with engine.connect() as conn:
        rows = rollup_store.fetch_rollups(conn, start_s, end_s, kinds=(REQUEST,))
        chart_rows = rollup_store.fetch_rollups(
            conn, chart_start, chart_end, resolution=resolution, kinds=(REQUEST,)
        )
        cost = costs_report(conn, end_s, window_s, "agent", None)
        budgets = [budget_json(b) for b in budget_statuses(conn, now)]
        slos = slo_store.statuses(conn, slo_store.list_defs(conn), end_s)
        errors = top_error_groups(conn, start_s, end_s, top)
        fired = store.alerts_fired(conn, start_s * NS, end_s * NS)

    by_agent: dict[str, list[RollupRow]] = defaultdict(list)
    for r in rows:
        by_agent[r.agent].append(r)
    cost_by_agent = {g["agent"]: g["cost_usd"] for g in cost["groups"]}
    agents = []
    for name, agent_rows in by_agent.items():
        f = figures(aggregate(agent_rows), window_s)
        agents.append(
            {
                "agent": name,
                "requests": f["requests"],
                "errors": f["errors"],
                "error_rate": f["error_rate"],
                "p50_ms": f["latency_ms"]["p50"],
                "p95_ms": f["latency_ms"]["p95"],
                "p99_ms": f["latency_ms"]["p99"],
                "cost_usd": cost_by_agent.get(name, 0.0),
            }
        )
    agents.sort(key=lambda a: (-a["requests"], a["agent"]))

    with_slo = {s["agent"] for s in slos}
    targets = []
    for a in agents:
        if a["agent"] in with_slo or not a["requests"]:
            continue
        success = round(100.0 - a["error_rate"], 3)
        targets.append(
            {
                "agent": a["agent"],
                "success_pct": success,
                "success_target": success_target,
                "success_met": success >= success_target,
                "p95_ms": a["p95_ms"],
                "p95_target_ms": p95_target_ms,
                "p95_met": a["p95_ms"] is not None and a["p95_ms"] < p95_target_ms,
            }
        )

    by_rule: dict[tuple[str, str], dict[str, Any]] = {}
    for event in fired:
        key = (event["rule"], event["severity"])
        item = by_rule.setdefault(
            key, {"rule": event["rule"], "severity": event["severity"], "fired": 0, "agents": []}
        )
        item["fired"] += 1
        agent = loads(event["labels"], {}).get("agent")
        if agent and agent not in item["agents"]:
            item["agents"].append(agent)
    severity_rank = {"critical": 0, "error": 1, "warning": 2, "info": 3}
    alert_rows = sorted(
        by_rule.values(),
        key=lambda r: (severity_rank.get(r["severity"], 9), -r["fired"], r["rule"]),
    )

    chart = {
        name: series(chart_rows, name, start_s=chart_start, end_s=chart_end, interval_s=interval)[
            0
        ]["values"]
        for name in ("requests", "errors", "error_rate", "latency_p95")
    }
    latency = totals["latency_ms"]
    previous = totals["previous"]
    return {
        "kind": kind,
        "title": title_for(kind, window_s),
        "period": _duration(window_s),
        "window_seconds": window_s,
        "start": iso_from_ns(start_s * NS),
        "end": iso_from_ns(end_s * NS),
        "dashboard_url": dashboard_url.rstrip("/"),
        "totals": {
            "requests": totals["requests"],
            "errors": totals["errors"],
            "error_rate": totals["error_rate"],
            "p50_ms": latency["p50"],
            "p95_ms": latency["p95"],
            "p99_ms": latency["p99"],
            "tokens": totals["tokens"]["total"],
            "cost_usd": cost["total"]["cost_usd"],
            "llm_calls": totals["llm_calls"],
            "previous": {
                "requests": previous["requests"],
                "error_rate": previous["error_rate"],
                "p95_ms": previous["latency_ms"]["p95"],
                "cost_usd": cost["previous"]["cost_usd"],
            },
            "trend": {
                "requests": totals["trend"]["requests"]["change_pct"],
                "error_rate": totals["trend"]["error_rate"]["change_pct"],
                "p95": totals["trend"]["latency_p95"]["change_pct"],
                "cost": cost["trend"]["cost_percent"],
            },
        },
        "agents": agents,
        "top_errors": [
            {
                "fingerprint": e["fingerprint"],
                "message": e["title"],
                "count": e["count"],
                "agents": e["agents"],
                "last_seen": e["last_seen"],
                "trace_id": e["sample_trace_id"],
            }
            for e in errors
        ],
        "cost": {
            "total_usd": cost["total"]["cost_usd"],
            "previous_usd": cost["previous"]["cost_usd"],
            "change_pct": cost["trend"]["cost_percent"],
            "monthly_run_rate_usd": cost["total"]["monthly_run_rate_usd"],
            "by_agent": [
                {
                    "agent": g["agent"],
                    "cost_usd": g["cost_usd"],
                    "share_percent": g["share_percent"],
                }
                for g in cost["groups"][:top]
            ],
            "budgets": [
                {
                    "name": b["name"],
                    "agent": b["agent"],
                    "period": b["period"],
                    "spend_usd": b["spend_usd"],
                    "limit_usd": b["limit_usd"],
                    "spent_percent": b["spent_percent"],
                    "projected_usd": b["forecast"]["projected_usd"],
                    "status": b["status"],
                }
                for b in budgets
            ],
        },
        "alerts": {
            "fired": len(fired),
            "firing_now": firing_now,
            "by_severity": dict(Counter(e["severity"] for e in fired)),
            "by_rule": alert_rows,
        },
        "slos": [
            {
                "name": s["name"],
                "agent": s["agent"],
                "target": s["target"],
                "objective": s["objective"],
                "period_days": s["period_days"],
                "attainment": s["status"]["attainment"],
                "met": s["status"]["met"],
                "error_budget_remaining": s["status"]["error_budget_remaining"],
                "state": s["status"]["state"],
            }
            for s in slos
        ],
        "targets": targets,
        "chart": {
            "interval_seconds": interval,
            "timestamps": [iso_from_ns(t * NS) for t in range(chart_start, chart_end, interval)],
            **chart,
        },
    }
