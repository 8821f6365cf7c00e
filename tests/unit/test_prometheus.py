"""Pure parts of /metrics and the exports: label caps, bucket conversion, generated files."""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pharos.server import exports
from pharos.server.analytics import histogram as hist
from pharos.server.prometheus import OTHER, cap_labels, le_buckets

ROOT = Path(__file__).resolve().parents[2]


def test_cap_labels_keeps_the_heaviest_and_folds_the_rest() -> None:
    mapping = cap_labels({"a": 10, "b": 30, "c": 20, "d": 20}, 2)
    assert mapping == {"b": "b", "c": "c", "d": OTHER, "a": OTHER}  # ties break by name
    assert cap_labels({"x": 1}, 5) == {"x": "x"}
    assert cap_labels({}, 3) == {}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=600_000, allow_nan=False), max_size=300))
def test_le_buckets_are_cumulative_and_end_with_the_count(values: list[float]) -> None:
    buckets = le_buckets(hist.from_values(values))
    counts = [n for _le, n in buckets]
    assert counts == sorted(counts)
    assert buckets[-1] == ("+Inf", len(values))
    for le, n in buckets[:-1]:  # within the 1 % the histogram allows
        assert n >= sum(1 for v in values if v / 1000 <= float(le) / 1.0101)
        assert n <= sum(1 for v in values if v / 1000 <= float(le) * 1.0101)


def test_committed_deploy_files_match_the_generator() -> None:
    assert (ROOT / "deploy/grafana/pharos-dashboard.json").read_text() == exports.grafana_json()
    assert (ROOT / "deploy/prometheus/rules.yml").read_text() == exports.prometheus_rules_yaml()


def test_dashboard_and_rules_cover_what_operators_need() -> None:
    dash = exports.grafana_dashboard()
    titles = " | ".join(p["title"] for p in dash["panels"])
    for needed in (
        "Error rate",
        "Latency p50 / p95 / p99",
        "Requests per second",
        "Tokens",
        "Cost",
        "Firing alerts",
        "Agents",
    ):
        assert needed in titles
    exprs = " ".join(t["expr"] for p in dash["panels"] for t in p["targets"])
    for series in (
        "pharos_agent_requests_total",
        "pharos_agent_request_duration_seconds_bucket",
        "pharos_llm_tokens_total",
        "pharos_llm_cost_usd_total",
        "pharos_alerts_firing",
    ):
        assert series in exprs
    gauge = next(p for p in dash["panels"] if p["type"] == "gauge")
    steps = gauge["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, 0.01, 0.05]
    rules = yaml.safe_load(exports.prometheus_rules_yaml())
    names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert {
        "PharosAgentHighErrorRate",
        "PharosAgentSlowP95",
        "PharosHighTokenUsage",
        "PharosHighCost",
        "PharosDown",
        "PharosNoTraffic",
    } <= names


def test_ingest_rejection_labels_stay_within_the_known_values() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from pharos.server.prometheus import REJECT_REASONS, SIGNALS, TRANSPORTS, IngestRejections

    registry = CollectorRegistry(auto_describe=False)
    counts = IngestRejections(registry)
    counts.request("traces", "http", "too_large")
    counts.request("traces", "http", "too_large")
    counts.request("logs", "grpc", "a reason nobody planned")  # ignored, not a new series
    counts.request("profiles", "http", "bad_request")
    counts.items("metrics", "grpc", 3)
    counts.items("metrics", "grpc", 0)
    text = generate_latest(registry).decode()
    series = [line for line in text.splitlines() if line.startswith("pharos_ingest_rejected")]
    totals = [line for line in series if "_total{" in line]
    # every combination exists from the start (rate() sees the first refusal), and no other
    assert len(totals) == len(SIGNALS) * len(TRANSPORTS) * (len(REJECT_REASONS) + 1)
    assert (
        'pharos_ingest_rejected_total{reason="too_large",signal="traces",transport="http"} 2.0'
        in series
    )
    assert 'pharos_ingest_rejected_items_total{signal="metrics",transport="grpc"} 3.0' in series
    assert sum(float(line.rsplit(" ", 1)[1]) for line in totals) == 5
