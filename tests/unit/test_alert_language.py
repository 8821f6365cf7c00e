"""The alert language: the issue's examples parse and evaluate, attempts to reach Python are
refused at parse time with a position, and no input raises anything but RuleSyntaxError."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pharos.server.alerting.language import (
    Budget,
    RuleSyntaxError,
    Series,
    describe_series,
    evaluate,
    parse,
)


def run(text: str, values: dict[str, float | None], burn: float | None = None) -> bool:
    rule = parse(text)

    def series(s: Series) -> float | None:
        return values[describe_series(s)]

    def budget(_b: Budget) -> float | None:
        return burn

    return bool(evaluate(rule.expr, series, budget))


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("error_rate(5m) > 5", {"error_rate(5m)": 6.0}, True),
        ("error_rate(5m) > 5", {"error_rate(5m)": 5.0}, False),
        ("p95(latency, 10m) > 2000 by agent", {"p95(latency, 10m)": 2500.0}, True),
        ('p99(latency, 5m, model="gpt-4o") > 5000', {'p99(latency, 5m, model="gpt-4o")': 1}, False),
        ("throughput(15m) < 0.5", {"throughput(15m)": 0.1}, True),
        ("requests(15m) == 0", {"requests(15m)": 0.0}, True),
        ("sum(tokens, 1h) > 1000000", {"sum(tokens, 1h)": 2e6}, True),
        ("sum(cost, 1d) > 50 by agent", {"sum(cost, 1d)": 49.99}, False),
        (
            "error_rate(5m) > 5 and requests(5m) > 20",
            {"error_rate(5m)": 10.0, "requests(5m)": 10.0},
            False,
        ),
        (
            "abs(requests(5m) - requests(1h) / 12) > 10 or max(errors(5m), 1) >= 3",
            {"requests(5m)": 30.0, "requests(1h)": 120.0, "errors(5m)": 0.0},
            True,
        ),
        ("min(p50(latency, 5m), 100) * 2 ^ 2 >= 400", {"p50(latency, 5m)": 150.0}, True),
        ("anomaly(p95(latency, 10m)) > 3", {"anomaly(p95(latency, 10m))": 4.2}, True),
        ("not requests(5m) > 0", {"requests(5m)": 0.0}, True),
        # No data: arithmetic gives no data, and a comparison with no data is false.
        ("p95(latency, 5m) > 1", {"p95(latency, 5m)": None}, False),
        ("-p95(latency, 5m) < 1", {"p95(latency, 5m)": None}, False),
        ("requests(5m) / 0 > 1", {"requests(5m)": 3.0}, False),
    ],
)
def test_examples_evaluate(text: str, values: dict[str, float | None], expected: bool) -> None:
    assert run(text, values) is expected


def test_budget_burn_and_groups() -> None:
    rule = parse('budget_burn(agent="x") > 0.8')
    assert rule.expr.left == Budget("x")  # type: ignore[union-attr]
    assert run('budget_burn(agent="x") > 0.8', {}, burn=0.9)
    assert not run('budget_burn(agent="x") > 0.8', {}, burn=None)
    assert parse("error_rate(5m) > 5 by agent, model").by == ("agent", "model")
    rule = parse("requests(5m, agent='a', model='gpt-4.1') > 1")
    assert rule.series == [Series("requests", 300, "a", "gpt-4.1")]


def test_budget_forecast_burn() -> None:
    rule = parse('budget_forecast_burn(agent="x") > 1 and budget_burn(agent="x") < 0.5')
    assert rule.expr.left.left == Budget("x", forecast=True)  # type: ignore[union-attr]
    assert rule.expr.right.left == Budget("x")  # type: ignore[union-attr]
    assert parse("budget_forecast_burn() >= 1 by agent").by == ("agent",)
    for bad in ("budget_forecast_burn(1h) > 1", 'budget_forecast_burn(model="m") > 1'):
        with pytest.raises(RuleSyntaxError, match="usage: budget_forecast_burn"):
            parse(bad)


@pytest.mark.parametrize(
    ("text", "agent"),
    [
        ('budget_burn(agent="x") > 0.8', "x"),
        ('p95(latency, 5m, agent="x") > 1 and budget_forecast_burn(agent="x") > 1', "x"),
        ('slo_burn(agent="x", 1h) > 14.4', "x"),
        ('budget_burn(agent="x") > 0.8 or budget_burn(agent="y") > 0.8', None),
        ("budget_burn() > 0.8", None),
        ("error_rate(5m) > 5 by agent", None),
    ],
)
def test_the_one_agent_a_rule_names(text: str, agent: str | None) -> None:
    assert parse(text).named_agent == agent


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ('__import__("os").system("x") > 0', "names with '__'", 1),
        ("requests(5m).real > 0", "attribute access", 13),
        ('"x".upper() > 0', "attribute access", 4),
        ("(lambda: 1)() > 0", "lambda is not allowed", 2),
        ("import os", "import is not allowed", 1),
        ("requests(5m) ** 100000 > 1", "exponent must be a number literal", 17),
        ("2 ^ requests(5m) > 1", "exponent must be a number literal", 5),
        ("(" * 50 + "1" + ")" * 50 + " > 0", "nests too deeply", 17),
        ("1" + " + 1" * 200 + " > 0", "nests too deeply", None),
        ("error_rate(5m) >", "unexpected end", 17),
        ("error_rate(5m) > 5 by host", "cannot group by 'host'", 23),
        ("error_rate(5) > 5", "expected a window", 12),
        ("error_rate(30s) > 5", "whole minutes", 12),
        ("error_rate(5m)", "must be a condition", 1),
        ("eval(1) > 0", "unknown function 'eval'", 1),
        ("open > 0", "unknown name 'open'", 1),
        ("requests(5m) > 1e400", "number too large", 16),
        ("p95(tokens, 5m) > 1", "takes latency", 5),
        ('requests(5m, host="a") > 1', "no host= argument", 14),
        ("requests(5m) > [1]", "brackets", 16),
        ("requests(5m) > 1 and 2", "expected a condition", 22),
        ("", "empty rule", 1),
        ("anomaly(3) > 1", "anomaly() takes one metric call", 9),
        ("anomaly(sum(cost, 1d)) > 1", "windows of at most 1h", 9),
    ],
)
def test_refusals_name_the_problem_and_where(text: str, message: str, column: int | None) -> None:
    with pytest.raises(RuleSyntaxError) as info:
        parse(text)
    assert message in info.value.message
    if column is not None:
        assert info.value.column == column
    assert info.value.as_dict()["line"] == 1


def test_too_long() -> None:
    with pytest.raises(RuleSyntaxError, match="at most 2000 characters"):
        parse("requests(5m) > 1 " * 200)


_ATOMS = [
    "error_rate(5m)",
    "requests(1h)",
    "p95(latency, 10m)",
    'sum(cost, 1d, agent="a")',
    "budget_burn()",
    "anomaly(",
    "abs(",
    "min(",
    "max(",
    "1",
    "2.5",
    "1e3",
    "5m",
    '"s"',
    "latency",
    "__import__",
    "lambda",
    "x",
]
_OPS = [" + ", " - ", " * ", " / ", " % ", " ^ ", " ** ", " > ", " < ", " == ", " != ", " >= "]
_OPS += [" and ", " or ", " not ", ", ", "(", ")", ".", " by agent", " by ", "=", "[", ":"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_ATOMS + _OPS), max_size=40))
def test_fuzz_tokens_only_raise_rule_syntax_errors(parts: list[str]) -> None:
    text = "".join(parts)
    try:
        rule = parse(text)
    except RuleSyntaxError as exc:
        assert 0 <= exc.position <= len(text)
        return
    # Whatever parses also evaluates without raising, whatever the figures are.
    evaluate(rule.expr, lambda _s: 1e308, lambda _b: None)
    evaluate(rule.expr, lambda _s: None, lambda _b: 0.0)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_any_text_only_raises_rule_syntax_errors(text: str) -> None:
    with contextlib.suppress(RuleSyntaxError):
        parse(text)


def _expr(depth: int) -> st.SearchStrategy[str]:
    leaf = st.sampled_from(["requests(5m)", "p99(latency, 1h)", "3", "0.5", "errors(1m)"])
    if depth == 0:
        return leaf
    sub = _expr(depth - 1)
    return st.one_of(
        leaf,
        st.tuples(sub, st.sampled_from(["+", "-", "*", "/", "%"]), sub).map(" ".join),
        sub.map(lambda s: f"({s})"),
        sub.map(lambda s: f"abs({s})"),
        st.tuples(sub, sub).map(lambda t: f"max({t[0]}, {t[1]})"),
    )


@settings(max_examples=200, deadline=None)
@given(_expr(4), st.sampled_from([">", "<", "==", ">="]), _expr(3))
def test_generated_rules_parse_and_evaluate(left: str, op: str, right: str) -> None:
    try:
        rule = parse(f"{left} {op} {right}")
    except RuleSyntaxError as exc:  # only size limits may refuse a well-formed rule
        assert "too" in exc.message
        return
    result = evaluate(rule.expr, lambda _s: 7.0, lambda _b: None)
    assert isinstance(result, bool)
