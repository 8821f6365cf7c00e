"""Rule definitions, alert identity, message templates and the default rule set (pure)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from pharos.server.alerting.language import Rule, describe_series, parse
from pharos.server.alerting.state import NS, Timing

SEVERITIES = ("info", "warning", "error", "critical")
RESERVED_LABELS = frozenset({"alertname", "severity", "agent", "model"})
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
DEFAULT_MESSAGE = "{rule}: {expression} is {value}"


@dataclass(frozen=True, slots=True)
class RuleDef:
    id: int
    name: str
    expression: str
    severity: str
    for_s: int = 0
    keep_firing_for_s: int = 0
    repeat_interval_s: int = 14400
    labels: Mapping[str, str] = field(default_factory=dict)
    message: str = ""
    channels: tuple[str, ...] = ()
    enabled: bool = True
    #: ``message`` is the text itself, not a template (built-in budget alerts)
    literal_message: bool = False

    @property
    def timing(self) -> Timing:
        return Timing(
            for_ns=self.for_s * NS,
            keep_firing_for_ns=self.keep_firing_for_s * NS,
            repeat_interval_ns=self.repeat_interval_s * NS,
        )

    def parsed(self) -> Rule:
        return parse(self.expression)


def alert_labels(
    rule: RuleDef, group: Mapping[str, str], agent: str | None = None
) -> dict[str, str]:
    """An alert's labels: the rule's own, its name and severity, and the ``by`` group; and
    ``agent`` when the rule is not grouped by agent but names one (``budget_burn(agent="x")``,
    :attr:`Rule.named_agent`)."""
    labels = {**rule.labels, "alertname": rule.name, "severity": rule.severity, **group}
    if agent is not None and "agent" not in group:
        labels["agent"] = agent
    return labels


def fingerprint(rule_id: int, labels: Mapping[str, str]) -> str:
    data = orjson.dumps([rule_id, sorted(labels.items())])
    return hashlib.sha256(data).hexdigest()[:32]


def format_value(value: float | None) -> str:
    if value is None:
        return "no data"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def render(template: str, fields: Mapping[str, str]) -> str:
    """Replace ``{name}`` by a field or label (unknown names stay as written); no format()."""
    return _PLACEHOLDER.sub(lambda m: fields.get(m.group(1), m.group(0)), template)


def message_for(rule: RuleDef, labels: Mapping[str, str], value: float | None) -> str:
    if rule.literal_message:
        return rule.message[:2000]
    fields = {
        **labels,
        "rule": rule.name,
        "expression": rule.expression,
        "value": format_value(value),
        "severity": rule.severity,
    }
    text = render(rule.message or DEFAULT_MESSAGE, fields)
    if not rule.message and labels.get("agent"):
        text += f" (agent {labels['agent']})"
    return text[:2000]


def validate_labels(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise ValueError("labels must be an object of strings")
    if len(raw) > 32:
        raise ValueError("at most 32 labels")
    out = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not _LABEL.fullmatch(key):
            raise ValueError(f"label name {key!r} must look like team or on_call")
        if key in RESERVED_LABELS:
            raise ValueError(f"label {key!r} is set by Pharos")
        if not isinstance(value, str) or len(value) > 256:
            raise ValueError(f"label {key!r} must be a string of at most 256 characters")
        out[key] = value
    return out


def summary_of(rule: Rule) -> list[str]:
    """The series a rule reads, as text (for the validate endpoint)."""
    return sorted({describe_series(s) for s in rule.series})


#: The product's default rule set, created on first start (editable and deletable afterwards).
DEFAULT_RULES: list[dict[str, Any]] = [
    {
        "name": "High error rate",
        "expression": "error_rate(5m) > 5 and requests(5m) >= 5 by agent",
        "severity": "critical",
        "for_s": 60,
        "keep_firing_for_s": 300,
        "message": "{agent}: error rate {value} % over 5 minutes (threshold 5 %)",
    },
    {
        "name": "Slow responses",
        "expression": "p95(latency, 10m) > 2000 by agent",
        "severity": "warning",
        "for_s": 300,
        "keep_firing_for_s": 300,
        "message": "{agent}: p95 latency {value} ms over 10 minutes (threshold 2 s)",
    },
    {
        "name": "Low throughput",
        "expression": "throughput(15m) < 0.5 by agent",
        "severity": "warning",
        "for_s": 900,
        "keep_firing_for_s": 300,
        "message": "{agent}: {value} requests/s over 15 minutes (threshold 0.5)",
    },
    {
        "name": "High token usage",
        "expression": "sum(tokens, 1h) > 100000 by agent",
        "severity": "info",
        "for_s": 0,
        "keep_firing_for_s": 600,
        "message": "{agent}: {value} tokens in the last hour (threshold 100k)",
    },
]
