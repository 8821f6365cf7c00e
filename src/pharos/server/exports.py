"""Generate a Grafana dashboard and Prometheus alert rules over Pharos' /metrics series (pure).

``pharos export grafana`` / ``pharos export prometheus-rules`` print them; ``deploy/`` holds the
generated files (a test checks they match this module).
"""

from __future__ import annotations

from typing import Any

import orjson
import yaml

DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
AGENT = 'agent=~"$agent"'


def _target(expr: str, legend: str, ref: str = "A") -> dict[str, Any]:
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref}


def _timeseries(
    pid: int,
    title: str,
    targets: list[dict[str, Any]],
    unit: str,
    x: int,
    y: int,
    w: int = 12,
    h: int = 8,
) -> dict[str, Any]:
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom"},
            "tooltip": {"mode": "multi"},
        },
        "targets": targets,
    }


def _quantile(q: str) -> str:
    return (
        f"histogram_quantile({q}, sum by (le, agent) "
        f"(rate(pharos_agent_request_duration_seconds_bucket{{{AGENT}}}[5m])))"
    )


def grafana_dashboard() -> dict[str, Any]:
    error_rate = (
        f'sum(rate(pharos_agent_requests_total{{{AGENT},status="error"}}[5m])) / '
        f"sum(rate(pharos_agent_requests_total{{{AGENT}}}[5m]))"
    )
    panels: list[dict[str, Any]] = [
        {
            "id": 1,
            "type": "gauge",
            "title": "Error rate (5m)",
            "datasource": DS,
            "gridPos": {"x": 0, "y": 0, "w": 6, "h": 6},
            "fieldConfig": {
                "defaults": {
                    "unit": "percentunit",
                    "min": 0,
                    "max": 0.2,
                    "thresholds": {
                        "mode": "absolute",
                        "steps": [
                            {"color": "green", "value": None},
                            {"color": "yellow", "value": 0.01},
                            {"color": "red", "value": 0.05},
                        ],
                    },
                },
                "overrides": [],
            },
            "targets": [_target(error_rate, "error rate")],
        },
        {
            "id": 2,
            "type": "stat",
            "title": "Firing alerts",
            "datasource": DS,
            "gridPos": {"x": 6, "y": 0, "w": 6, "h": 6},
            "fieldConfig": {
                "defaults": {
                    "thresholds": {
                        "mode": "absolute",
                        "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}],
                    }
                },
                "overrides": [],
            },
            "targets": [_target("sum(pharos_alerts_firing)", "firing")],
        },
        _timeseries(
            3,
            "Requests per second by agent",
            [
                _target(
                    f"sum by (agent) (rate(pharos_agent_requests_total{{{AGENT}}}[5m]))",
                    "{{agent}}",
                )
            ],
            "reqps",
            12,
            0,
            h=6,
        ),
        _timeseries(
            4,
            "Latency p50 / p95 / p99 by agent",
            [
                _target(_quantile("0.5"), "p50 {{agent}}", "A"),
                _target(_quantile("0.95"), "p95 {{agent}}", "B"),
                _target(_quantile("0.99"), "p99 {{agent}}", "C"),
            ],
            "s",
            0,
            6,
        ),
        _timeseries(
            5,
            "Errors per second by agent",
            [
                _target(
                    "sum by (agent) "
                    f'(rate(pharos_agent_requests_total{{{AGENT},status="error"}}[5m]))',
                    "{{agent}}",
                )
            ],
            "reqps",
            12,
            6,
        ),
        _timeseries(
            6,
            "Tokens per second",
            [
                _target(
                    f"sum by (agent, direction) (rate(pharos_llm_tokens_total{{{AGENT}}}[5m]))",
                    "{{agent}} {{direction}}",
                )
            ],
            "short",
            0,
            14,
        ),
        _timeseries(
            7,
            "Cost per hour (USD)",
            [
                _target(
                    f"sum by (agent, model) (increase(pharos_llm_cost_usd_total{{{AGENT}}}[1h]))",
                    "{{agent}} {{model}}",
                )
            ],
            "currencyUSD",
            12,
            14,
        ),
        {
            "id": 8,
            "type": "table",
            "title": "Agents (last hour)",
            "datasource": DS,
            "gridPos": {"x": 0, "y": 22, "w": 24, "h": 8},
            "targets": [
                {
                    **_target(
                        f"sum by (agent) (increase(pharos_agent_requests_total{{{AGENT}}}[1h]))",
                        "",
                        "A",
                    ),
                    "format": "table",
                    "instant": True,
                },
                {
                    **_target(
                        f"sum by (agent) (increase(pharos_agent_requests_total{{{AGENT},"
                        f'status="error"}}[1h]))',
                        "",
                        "B",
                    ),
                    "format": "table",
                    "instant": True,
                },
                {**_target(_quantile("0.95"), "", "C"), "format": "table", "instant": True},
                {
                    **_target(
                        f"sum by (agent) (increase(pharos_llm_cost_usd_total{{{AGENT}}}[1h]))",
                        "",
                        "D",
                    ),
                    "format": "table",
                    "instant": True,
                },
            ],
            "transformations": [{"id": "merge", "options": {}}],
        },
        _timeseries(
            9,
            "Pharos ingest: spans/s and queue depth",
            [
                _target("rate(pharos_spans_ingested_total[5m])", "spans/s", "A"),
                _target("pharos_ingest_queue_depth", "queue depth", "B"),
            ],
            "short",
            0,
            30,
        ),
        _timeseries(
            10,
            "Pharos API latency p95 by route",
            [
                _target(
                    "histogram_quantile(0.95, sum by (le, route) "
                    "(rate(pharos_http_request_duration_seconds_bucket[5m])))",
                    "{{route}}",
                )
            ],
            "s",
            12,
            30,
        ),
    ]
    return {
        "__inputs": [
            {
                "name": "DS_PROMETHEUS",
                "label": "Prometheus",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "title": "Pharos — AI agents",
        "uid": "pharos-agents",
        "tags": ["pharos", "ai-agents"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                # Resolves ${DS_PROMETHEUS} when the file is provisioned rather than imported
                # (file provisioning does not fill __inputs): deploy/docker-compose.yml.
                {
                    "name": "DS_PROMETHEUS",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "hide": 0,
                },
                {
                    "name": "agent",
                    "label": "Agent",
                    "type": "query",
                    "datasource": DS,
                    "query": "label_values(pharos_agent_requests_total, agent)",
                    "refresh": 2,
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {"text": "All", "value": "$__all"},
                },
            ]
        },
        "panels": panels,
    }


def prometheus_rules() -> dict[str, Any]:
    def rule(
        name: str, expr: str, for_: str, severity: str, summary: str, description: str
    ) -> dict[str, Any]:
        return {
            "alert": name,
            "expr": expr,
            "for": for_,
            "labels": {"severity": severity},
            "annotations": {"summary": summary, "description": description},
        }

    return {
        "groups": [
            {
                "name": "pharos-agents",
                "rules": [
                    rule(
                        "PharosAgentHighErrorRate",
                        'sum by (agent) (rate(pharos_agent_requests_total{status="error"}[5m])) / '
                        "sum by (agent) (rate(pharos_agent_requests_total[5m])) > 0.05",
                        "5m",
                        "critical",
                        "Agent {{ $labels.agent }} fails over 5 % of runs",
                        "Error rate {{ $value | humanizePercentage }} over the last 5 minutes.",
                    ),
                    rule(
                        "PharosAgentSlowP95",
                        "histogram_quantile(0.95, sum by (le, agent) "
                        "(rate(pharos_agent_request_duration_seconds_bucket[5m]))) > 2",
                        "10m",
                        "warning",
                        "Agent {{ $labels.agent }} p95 latency above 2 s",
                        "p95 is {{ $value | humanizeDuration }}.",
                    ),
                    rule(
                        "PharosHighTokenUsage",
                        "sum by (agent) (increase(pharos_llm_tokens_total[1h])) > 1000000",
                        "5m",
                        "info",
                        "Agent {{ $labels.agent }} used over 1M tokens in an hour",
                        "{{ $value | humanize }} tokens in the last hour.",
                    ),
                    rule(
                        "PharosHighCost",
                        "sum by (agent) (increase(pharos_llm_cost_usd_total[1h])) > 10",
                        "5m",
                        "warning",
                        "Agent {{ $labels.agent }} spent over $10 in an hour",
                        '${{ $value | printf "%.2f" }} in the last hour.',
                    ),
                    rule(
                        "PharosNoTraffic",
                        "sum(rate(pharos_agent_requests_total[15m])) == 0",
                        "15m",
                        "warning",
                        "No agent runs for 15 minutes",
                        "Pharos received no agent runs in the last 15 minutes.",
                    ),
                ],
            },
            {
                "name": "pharos-self",
                "rules": [
                    rule(
                        "PharosDown",
                        'up{job="pharos"} == 0',
                        "2m",
                        "critical",
                        "Pharos {{ $labels.instance }} is down",
                        "Prometheus cannot scrape Pharos at {{ $labels.instance }}.",
                    ),
                    rule(
                        "PharosIngestQueueSaturated",
                        "pharos_ingest_queue_depth / pharos_ingest_queue_capacity > 0.8",
                        "5m",
                        "warning",
                        "Pharos ingest queue over 80 % full",
                        "Ingest is close to answering 503; the database may be the bottleneck.",
                    ),
                    rule(
                        "PharosIngestRejecting",
                        "sum(rate(pharos_ingest_rejected_total[5m])) > 0",
                        "10m",
                        "warning",
                        "Pharos is refusing or failing ingest requests",
                        "{{ $value | humanize }} rejected requests per second.",
                    ),
                ],
            },
        ]
    }


def grafana_json() -> str:
    return orjson.dumps(grafana_dashboard(), option=orjson.OPT_INDENT_2).decode() + "\n"


def prometheus_rules_yaml() -> str:
    header = "# Generated by `pharos export prometheus-rules`; do not edit by hand.\n"
    return header + yaml.safe_dump(prometheus_rules(), sort_keys=False, width=100)
