"""The in-memory index of firing alerts: totals for the dashboard, the serious ones for health."""

from __future__ import annotations

from types import SimpleNamespace

import orjson

from pharos.server.alerting.engine import FiringIndex


def _row(i: int, severity: str, agent: str | None) -> SimpleNamespace:
    labels = {"alertname": f"r{i}", "severity": severity, **({"agent": agent} if agent else {})}
    return SimpleNamespace(
        id=i,
        rule_name=f"r{i}",
        severity=severity,
        labels=orjson.dumps(labels).decode(),
        value=1.0,
        message="m",
        fired_ns=i,
        acked_by=None,
        silenced_by=None,
    )


def test_info_alerts_are_counted_but_do_not_count_for_health() -> None:
    index = FiringIndex()
    index.load(
        [
            _row(1, "info", "a"),
            _row(2, "info", "b"),
            _row(3, "warning", "a"),
            _row(4, "critical", None),
        ]
    )
    assert index() == 4 and index("a") == 2 and index("b") == 1
    assert index.for_health() == 2
    assert index.for_health("a") == 1
    assert index.for_health("b") == 0
    assert index.by_severity == {"info": 2, "warning": 1, "critical": 1}
    assert [item["severity"] for item in index.items] == ["critical", "warning", "info", "info"]
