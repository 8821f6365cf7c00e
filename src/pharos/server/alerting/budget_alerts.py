"""Built-in budget alerts (pure): every budget — the cost API's (``/api/v1/budgets``) and the
agent registry's ``--budget`` — is two alerts the engine evaluates each cycle, without a rule
to write, through the same state machine, fingerprints, outbox and channel routing as rules:

- ``threshold="soft"``, severity **warning**: spend reached the soft limit, or the forecast for
  the end of the period reaches the hard limit (a forecast that has crossed stays crossed until
  it falls below ``FORECAST_CLEAR`` of the limit, so a forecast hovering at the limit does not
  flap);
- ``threshold="hard"``, severity **critical**: spend reached the hard limit (the gateway
  refuses the agent's calls with 402 from then on).

Both are named ``budget:<budget name>`` (rule id :data:`BUDGET_RULE_ID`, no ``alert_rules``
row) and labelled ``budget``, ``period``, ``threshold``, ``source`` and, for an agent's budget,
``agent``. They fire at once (no ``for``) and resolve at once when the condition stops holding:
a new period, a raised limit, a reset, a deleted budget. docs/alerting.md#budget-alerts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pharos.server.alerting.rules import RuleDef, fingerprint

if TYPE_CHECKING:  # the cost room's dataclass; this module reads its fields only
    from pharos.server.cost.budgets import BudgetState

#: The rule id of every built-in budget alert (rule ids from the table start at 1).
BUDGET_RULE_ID = 0
RULE_PREFIX = "budget:"
#: A soft alert raised by the forecast clears once the forecast is below this share of the limit.
FORECAST_CLEAR = 0.9
REPEAT_INTERVAL_S = 4 * 3600
THRESHOLDS = {"soft": "warning", "hard": "critical"}
_EXPRESSIONS = {
    "soft": "spend >= soft limit or forecast >= limit",
    "hard": "spend >= limit",
}


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    """One built-in alert's evaluation: what ``run_cycle`` feeds to the state machine."""

    rule: RuleDef
    labels: dict[str, str]
    fingerprint: str
    active: bool
    value: float  # percent of the hard limit spent


def is_budget_rule(rule_id: int) -> bool:
    return rule_id == BUDGET_RULE_ID


def labels_of(state: BudgetState, threshold: str) -> dict[str, str]:
    labels = {
        "alertname": RULE_PREFIX + state.name,
        "severity": THRESHOLDS[threshold],
        "budget": state.name,
        "period": state.period,
        "threshold": threshold,
        "source": state.source,
    }
    if state.agent is not None:
        labels["agent"] = state.agent
    return labels


def rule_def(name: str, threshold: str, message: str = "") -> RuleDef:
    """The rule of a budget alert (also rebuilt from an alert row for ack/resolve)."""
    return RuleDef(
        id=BUDGET_RULE_ID,
        name=RULE_PREFIX + name,
        expression=_EXPRESSIONS.get(threshold, _EXPRESSIONS["soft"]),
        severity=THRESHOLDS.get(threshold, "warning"),
        repeat_interval_s=REPEAT_INTERVAL_S,
        message=message,
        literal_message=True,
    )


def rule_of_alert(rule_name: str, labels: Mapping[str, str], message: str) -> RuleDef:
    """A budget alert's rule from its alert (name, labels, the last message): for ack and
    resolve, which notify like the engine does."""
    name = rule_name.removeprefix(RULE_PREFIX)
    return rule_def(name, labels.get("threshold", "soft"), message)


def usd(nanousd: int) -> str:
    value = nanousd / 1e9
    if value == 0 or abs(value) >= 0.01:
        return f"${value:,.2f}"
    return f"${value:.9f}".rstrip("0")


def _when(ns: int | None) -> str:
    if ns is None:
        return "never"
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _message(state: BudgetState, threshold: str) -> str:
    who = f"agent {state.agent}" if state.agent is not None else "all agents"
    limit = state.limit_nanousd
    percent = 100 * state.spend_nanousd / limit if limit else 0.0
    head = (
        f"Budget {state.name!r} ({who}, {state.period}): spent {usd(state.spend_nanousd)} of "
        f"{usd(limit)} ({percent:.1f} %)"
    )
    if state.reset_ns is not None:
        head += f" since its reset at {_when(state.reset_ns)}"
    projected = state.forecast.projected_nanousd
    if threshold == "hard":
        return f"{head}: exhausted until the period ends at {_when(state.period_end_ns)}"
    reasons = []
    if state.spend_nanousd >= state.soft_limit_nanousd:
        reasons.append(f"the soft limit {usd(state.soft_limit_nanousd)} is reached")
    if projected >= limit:
        reasons.append(
            f"the forecast {usd(projected)} for the period reaches the limit "
            f"(exhausted at {_when(state.forecast.exhausts_at_ns)})"
        )
    if not reasons:
        reasons.append(f"forecast {usd(projected)} for the period")
    return f"{head}; " + "; ".join(reasons)


def evaluate(states: Iterable[BudgetState], is_active: Callable[[str], bool]) -> list[BudgetAlert]:
    """The soft and hard alert of every budget. ``is_active(fingerprint)``: the alert is
    pending or firing now (for the forecast's hysteresis)."""
    out: list[BudgetAlert] = []
    for state in states:
        limit = state.limit_nanousd
        spend, projected = state.spend_nanousd, state.forecast.projected_nanousd
        value = round(100 * spend / limit, 2) if limit else 0.0
        for threshold in ("soft", "hard"):
            labels = labels_of(state, threshold)
            fp = fingerprint(BUDGET_RULE_ID, labels)
            if threshold == "hard":
                active = spend >= limit
            else:
                clear = limit * FORECAST_CLEAR if is_active(fp) else limit
                active = spend >= state.soft_limit_nanousd or projected >= clear
            rule = rule_def(state.name, threshold, _message(state, threshold))
            out.append(BudgetAlert(rule, labels, fp, active, value))
    return out
