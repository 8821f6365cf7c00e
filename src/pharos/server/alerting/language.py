"""The alert rule language: a lark grammar, an AST of frozen dataclasses, and our interpreter over
a closed set of functions (pure; no ``eval``, nothing reaches Python).

    error_rate(5m) > 5 and requests(5m) > 20 by agent
    p99(latency, 5m, model="gpt-4o") > 5000
    sum(cost, 1d) > 50 by agent
    slo_burn(agent="checkout", 1h) > 14.4 and slo_burn(agent="checkout", 5m) > 14.4

Everything a rule may do is in :data:`FUNCTIONS`; anything else (``__import__``, attribute
access, lambdas, exponents that are not small literals, deep nesting, huge literals) is refused
at parse time with :class:`RuleSyntaxError`, which carries the position of the problem.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput

MAX_LENGTH = 2000
MAX_DEPTH = 40  # nesting of the parse tree (parentheses, calls, operator chains)
MAX_NODES = 400
MAX_PARENS = 16
MAX_EXPONENT = 10
MAX_LITERAL = 1e15
MIN_WINDOW_S = 60
MAX_WINDOW_S = 31 * 86400
ANOMALY_HISTORY = 12  # windows of history an anomaly() z-score compares against
MAX_ANOMALY_WINDOW_S = 3600
BY_LABELS = ("agent", "model")
FILTERS = ("agent", "model")

GRAMMAR = r"""
start: expr by?
by: "by" NAME ("," NAME)*

?expr: or_
?or_: and_ | or_ "or" and_ -> or_op
?and_: not_ | and_ "and" not_ -> and_op
?not_: "not" not_ -> not_op | cmp
?cmp: arith | arith CMP arith -> compare
?arith: term | arith ADDOP term -> binop
?term: factor | term MULOP factor -> binop
?factor: "-" factor -> neg | "+" factor | power
?power: atom | atom POW factor -> pow
?atom: NUMBER -> number
     | DURATION -> duration
     | STRING -> string
     | NAME "(" [arg ("," arg)*] ")" -> call
     | NAME -> name
     | "(" expr ")"
?arg: expr | NAME "=" expr -> kwarg

CMP: "==" | "!=" | ">=" | "<=" | ">" | "<"
ADDOP: "+" | "-"
MULOP: "*" | "/" | "%"
POW: "**" | "^"
DURATION.2: /\d+[smhdw](?![A-Za-z0-9_])/
NUMBER: /(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?/
NAME: /[A-Za-z_][A-Za-z0-9_]*/
STRING: /"[^"\\\n]*"/ | /'[^'\\\n]*'/
%ignore /[ \t\r\n]+/
"""

_PARSER = Lark(GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=False)

_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TERMINAL_NAMES = {
    "CMP": "a comparison (>, <, ==, ...)",
    "ADDOP": "+ or -",
    "MULOP": "*, / or %",
    "POW": "^",
    "DURATION": "a duration (5m, 1h, 1d)",
    "NUMBER": "a number",
    "NAME": "a name",
    "STRING": 'a string ("...")',
    "LPAR": "(",
    "RPAR": ")",
    "COMMA": ",",
    "EQUAL": "=",
    "MINUS": "-",
    "PLUS": "+",
    "AND": "and",
    "OR": "or",
    "NOT": "not",
    "BY": "by",
    "$END": "the end of the expression",
}


class RuleSyntaxError(ValueError):
    """A rule that cannot be parsed or is not allowed; ``position`` is a 0-based offset."""

    def __init__(self, message: str, position: int, text: str) -> None:
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        super().__init__(f"{message} (line {line}, column {column})")
        self.message = message
        self.position = position
        self.line = line
        self.column = column

    def as_dict(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "position": self.position,
            "line": self.line,
            "column": self.column,
        }


# --- AST -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Num:
    value: float


@dataclass(frozen=True, slots=True)
class Series:
    """A figure read from the rollups over the last ``window_s`` seconds."""

    metric: str  # a key of SERIES_METRICS
    window_s: int
    agent: str | None = None
    model: str | None = None
    #: anomaly(...): the z-score of this value against the ANOMALY_HISTORY windows before it
    anomaly: bool = False
    #: slo_burn()/slo_attainment(): the SLO by name (None: the agent's SLOs)
    slo: str | None = None


@dataclass(frozen=True, slots=True)
class Budget:
    """``budget_burn(agent=...)``: spend / hard limit of the matching budget (cost room);
    ``budget_forecast_burn(agent=...)`` (``forecast``): the forecast for the end of the period
    / hard limit."""

    agent: str | None = None
    forecast: bool = False


@dataclass(frozen=True, slots=True)
class Func:
    name: str  # abs | min | max
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class BinOp:
    op: str  # + - * / % ^
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Neg:
    operand: Node


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Logic:
    op: str  # and | or
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


Node = Num | Series | Budget | Func | BinOp | Neg | Compare | Logic | Not


@dataclass(frozen=True, slots=True)
class Rule:
    """A parsed rule: a condition evaluated once per group of ``by`` labels."""

    expr: Node
    by: tuple[str, ...]
    source: str

    @property
    def series(self) -> list[Series]:
        out: list[Series] = []
        _collect(self.expr, out)
        return out

    @property
    def primary(self) -> Node | None:
        """The left side of the first comparison: the value an alert reports."""
        return _first_compare_left(self.expr)

    @property
    def named_agent(self) -> str | None:
        """The one agent every ``agent=`` filter of the rule names (``budget_burn(agent="x")
        > 0.8``, ``p95(latency, 5m, agent="x") > 2000 and ...``), None when there is none or
        they differ: an alert of a rule not grouped by agent carries it as its ``agent``."""
        names: set[str | None] = set()
        stack: list[Node] = [self.expr]
        while stack:
            n = stack.pop()
            if isinstance(n, Series | Budget):
                if n.agent is not None:
                    names.add(n.agent)
            elif isinstance(n, BinOp | Compare | Logic):
                stack.extend((n.right, n.left))
            elif isinstance(n, Neg | Not):
                stack.append(n.operand)
            elif isinstance(n, Func):
                stack.extend(n.args)
        return next(iter(names)) if len(names) == 1 else None


SERIES_METRICS = {
    # metric -> unit
    "error_rate": "%",
    "requests": "requests",
    "errors": "errors",
    "throughput": "req/s",
    "latency_p50": "ms",
    "latency_p90": "ms",
    "latency_p95": "ms",
    "latency_p99": "ms",
    "latency_avg": "ms",
    "tokens": "tokens",
    "input_tokens": "tokens",
    "output_tokens": "tokens",
    "cached_tokens": "tokens",
    "cost": "USD",
    "slo_burn": "x",
    "slo_attainment": "%",
}
_SUM_OF = {
    "tokens": "tokens",
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cached_tokens": "cached_tokens",
    "cost": "cost",
    "requests": "requests",
    "errors": "errors",
}
_PERCENTILES = {"p50": "latency_p50", "p90": "latency_p90", "p95": "latency_p95"}
_PERCENTILES |= {"p99": "latency_p99", "avg": "latency_avg"}
_WINDOW_FUNCS = {"error_rate", "requests", "errors", "throughput"}
#: SLO functions (slo/): a window and agent=/slo= in any order, as in slo_burn(agent="x", 1h).
SLO_FUNCS = ("slo_burn", "slo_attainment")
SLO_FILTERS = ("agent", "slo")

#: Every function a rule may call, with its signature as users read it.
FUNCTIONS = {
    "error_rate": "error_rate(window[, agent=, model=]): failed requests, percent",
    "requests": "requests(window[, agent=, model=]): request count",
    "errors": "errors(window[, agent=, model=]): failed request count",
    "throughput": "throughput(window[, agent=, model=]): requests per second",
    "p50": "p50(latency, window[, agent=, model=]): median latency, ms",
    "p90": "p90(latency, window[, ...]): 90th percentile latency, ms",
    "p95": "p95(latency, window[, ...]): 95th percentile latency, ms",
    "p99": "p99(latency, window[, ...]): 99th percentile latency, ms",
    "avg": "avg(latency, window[, ...]): mean latency, ms",
    "sum": "sum(tokens|input_tokens|output_tokens|cached_tokens|cost|requests|errors, window"
    "[, ...]): a total (cost in USD)",
    "budget_burn": "budget_burn([agent=]): spend so far / hard limit of the agent's budget",
    "budget_forecast_burn": "budget_forecast_burn([agent=]): forecast for the end of the "
    "period / hard limit of the agent's budget (> 1: it runs out before the period ends)",
    "slo_burn": "slo_burn(window[, agent=, slo=]): error-budget burn rate of the agent's SLOs "
    "over the window (the highest; 1 = on budget, 14.4 over 1h = 2% of 30 days' budget)",
    "slo_attainment": "slo_attainment(window[, agent=, slo=]): good requests by the SLO's "
    "definition, percent (the lowest of the agent's SLOs)",
    "anomaly": "anomaly(f(..., window)): z-score of f now against its previous 12 windows "
    "(window at most 1h)",
    "abs": "abs(x)",
    "min": "min(x, y, ...)",
    "max": "max(x, y, ...)",
}


def _collect(node: Node, out: list[Series]) -> None:
    stack: list[Node] = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Series):
            out.append(n)
        elif isinstance(n, BinOp | Compare | Logic):
            stack.extend((n.right, n.left))
        elif isinstance(n, Neg | Not):
            stack.append(n.operand)
        elif isinstance(n, Func):
            stack.extend(reversed(n.args))


def _first_compare_left(node: Node) -> Node | None:
    stack: list[Node] = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Compare):
            return n.left
        if isinstance(n, Logic):
            stack.extend((n.right, n.left))
        elif isinstance(n, Not):
            stack.append(n.operand)
    return None


# --- parsing -------------------------------------------------------------------------------------

_FORBIDDEN = [
    (re.compile(r"\blambda\b"), "lambda is not allowed: a rule is an expression over metrics"),
    (re.compile(r"\bimport\b"), "import is not allowed: a rule is an expression over metrics"),
    (re.compile(r"__"), "names with '__' are not allowed: a rule cannot reach Python"),
    (re.compile(r"[A-Za-z_)\]]\s*\.(?!\d)"), "attribute access ('.') is not allowed"),
    (re.compile(r"[\[\]{}]"), "brackets [] and braces {} are not allowed"),
]


def parse(text: str) -> Rule:
    """Parse and check a rule. Raises :class:`RuleSyntaxError` (only that) on any problem."""
    if not isinstance(text, str):
        raise RuleSyntaxError("a rule must be text", 0, "")
    if len(text) > MAX_LENGTH:
        raise RuleSyntaxError(f"a rule is at most {MAX_LENGTH} characters", MAX_LENGTH, text)
    if not text.strip():
        raise RuleSyntaxError("empty rule: write a condition like error_rate(5m) > 5", 0, text)
    _check_forbidden(text)
    try:
        tree = _PARSER.parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text) from None
    except LarkError as exc:  # pragma: no cover - lark's other errors (none expected)
        raise RuleSyntaxError(f"cannot parse: {exc}", 0, text) from None
    _check_shape(tree, text)
    return _Builder(text).rule(tree)


def _check_forbidden(text: str) -> None:
    # Outside string literals only: a model name may contain a dot ("gpt-4.1").
    masked = re.sub(r"\"[^\"\n]*\"|'[^'\n]*'", lambda m: "x" * len(m.group(0)), text)
    depth = 0
    for i, char in enumerate(masked):
        if char == "(":
            depth += 1
            if depth > MAX_PARENS:
                raise RuleSyntaxError(
                    f"the expression nests too deeply (at most {MAX_PARENS} parentheses)", i, text
                )
        elif char == ")":
            depth -= 1
    for pattern, message in _FORBIDDEN:
        match = pattern.search(masked)
        if match:
            pos = match.start() if "." not in message else masked.index(".", match.start())
            raise RuleSyntaxError(message, pos, text)


def _syntax_error(exc: UnexpectedInput, text: str) -> RuleSyntaxError:
    pos = getattr(exc, "pos_in_stream", None)
    if isinstance(exc, UnexpectedEOF) or pos is None:
        pos = len(text)
    expected = sorted(
        {_TERMINAL_NAMES.get(t, t.lower()) for t in (getattr(exc, "expected", None) or ())}
        | {_TERMINAL_NAMES.get(t, t.lower()) for t in (getattr(exc, "allowed", None) or ())}
    )
    if isinstance(exc, UnexpectedCharacters):
        char = text[pos] if pos < len(text) else ""
        message = f"unexpected character {char!r}"
    else:
        token = getattr(exc, "token", None)
        if isinstance(exc, UnexpectedEOF) or (isinstance(token, Token) and token.type == "$END"):
            message, pos = "unexpected end of the expression", len(text)
        elif isinstance(token, Token):
            message = f"unexpected {token.value!r}"
        else:
            message = "syntax error"
    if expected and len(expected) <= 8:
        message += "; expected " + ", ".join(expected)
    return RuleSyntaxError(message, min(pos, len(text)), text)


def _check_shape(tree: Tree[Token], text: str) -> None:
    """Depth and size limits, walked without recursion."""
    stack: list[tuple[Tree[Token] | Token, int]] = [(tree, 0)]
    nodes = 0
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            raise RuleSyntaxError(
                f"the expression nests too deeply (at most {MAX_DEPTH} levels)", _pos(node), text
            )
        if nodes > MAX_NODES:
            raise RuleSyntaxError(
                f"the expression is too large (at most {MAX_NODES} terms)", _pos(node), text
            )
        if isinstance(node, Tree):
            stack.extend((child, depth + 1) for child in node.children)


def _pos(node: Tree[Token] | Token) -> int:
    if isinstance(node, Token):
        return node.start_pos or 0
    meta = node.meta
    return int(getattr(meta, "start_pos", 0)) if not meta.empty else 0


@dataclass(frozen=True, slots=True)
class _Typed:
    node: Node
    kind: str  # number | bool


class _Builder:
    def __init__(self, text: str) -> None:
        self.text = text

    def fail(self, message: str, at: Tree[Token] | Token) -> RuleSyntaxError:
        return RuleSyntaxError(message, _pos(at), self.text)

    def rule(self, tree: Tree[Token]) -> Rule:
        expr_tree = tree.children[0]
        typed = self.build(expr_tree)
        if typed.kind != "bool":
            raise self.fail(
                "a rule must be a condition, e.g. error_rate(5m) > 5 (this is a number)", expr_tree
            )
        by: list[str] = []
        if len(tree.children) > 1:
            by_tree = tree.children[1]
            assert isinstance(by_tree, Tree)
            for tok in by_tree.children:
                assert isinstance(tok, Token)
                if tok.value not in BY_LABELS:
                    raise self.fail(f"cannot group by {tok.value!r}; use agent or model", tok)
                if tok.value in by:
                    raise self.fail(f"{tok.value!r} is repeated in by", tok)
                by.append(tok.value)
        return Rule(typed.node, tuple(by), self.text)

    def number(self, t: Tree[Token] | Token) -> Node:
        typed = self.build(t)
        if typed.kind != "number":
            raise self.fail("expected a number here, not a condition", t)
        return typed.node

    def condition(self, t: Tree[Token] | Token) -> Node:
        typed = self.build(t)
        if typed.kind != "bool":
            raise self.fail("expected a condition here (a comparison), not a number", t)
        return typed.node

    def build(self, t: Tree[Token] | Token) -> _Typed:
        if isinstance(t, Token):  # a bare token where an expression goes (cannot happen)
            raise self.fail(f"unexpected {t.value!r}", t)
        data, kids = t.data, t.children
        if data == "number":
            value = float(str(kids[0]))
            if not math.isfinite(value) or abs(value) > MAX_LITERAL:
                raise self.fail(f"number too large (at most {MAX_LITERAL:g})", t)
            return _Typed(Num(value), "number")
        if data == "duration":
            raise self.fail(
                f"a duration ({kids[0]}) is only allowed as a function's window argument", t
            )
        if data == "string":
            raise self.fail('a string is only allowed as agent="..." or model="..."', t)
        if data == "name":
            name = str(kids[0])
            if name in FUNCTIONS:
                raise self.fail(f"{name} is a function: call it, e.g. {FUNCTIONS[name]}", t)
            if name in ("true", "false", "True", "False"):
                raise self.fail("booleans are not values here; write a comparison", t)
            raise self.fail(f"unknown name {name!r}; functions: {', '.join(FUNCTIONS)}", t)
        if data == "kwarg":
            raise self.fail("name=value is only allowed inside a function call", t)
        if data == "neg":
            return _Typed(Neg(self.number(kids[0])), "number")
        if data == "factor":  # unary plus
            return _Typed(self.number(kids[0]), "number")
        if data == "binop":
            left, op, right = kids
            return _Typed(BinOp(str(op), self.number(left), self.number(right)), "number")
        if data == "pow":
            left, _op, right = kids
            exponent = self._literal(right)
            if exponent is None or abs(exponent) > MAX_EXPONENT:
                raise self.fail(
                    f"an exponent must be a number literal between -{MAX_EXPONENT} and "
                    f"{MAX_EXPONENT}",
                    right,
                )
            return _Typed(BinOp("^", self.number(left), Num(exponent)), "number")
        if data == "compare":
            left, op, right = kids
            return _Typed(Compare(str(op), self.number(left), self.number(right)), "bool")
        if data in ("and_op", "or_op"):
            left, right = kids
            word = "and" if data == "and_op" else "or"
            return _Typed(Logic(word, self.condition(left), self.condition(right)), "bool")
        if data == "not_op":
            return _Typed(Not(self.condition(kids[0])), "bool")
        if data == "call":
            return self.call(t)
        raise self.fail(f"unsupported syntax ({data})", t)  # pragma: no cover

    def _literal(self, t: Tree[Token] | Token) -> float | None:
        if isinstance(t, Tree) and t.data == "number":
            return float(str(t.children[0]))
        if isinstance(t, Tree) and t.data == "neg":
            inner = self._literal(t.children[0])
            return None if inner is None else -inner
        return None

    def call(self, t: Tree[Token]) -> _Typed:
        name_tok = t.children[0]
        assert isinstance(name_tok, Token)
        name = name_tok.value
        positional: list[Tree[Token] | Token] = []
        kwargs: dict[str, tuple[str, Tree[Token]]] = {}
        for arg in t.children[1:]:
            if isinstance(arg, Tree) and arg.data == "kwarg":
                key_tok, value = arg.children
                key = str(key_tok)
                if key in kwargs:
                    raise self.fail(f"{key}= is given twice", arg)
                if not (isinstance(value, Tree) and value.data == "string"):
                    raise self.fail(f'{key}= takes a string, e.g. {key}="name"', arg)
                text = str(value.children[0])[1:-1]
                if len(text) > 512:
                    raise self.fail(f"{key}= is at most 512 characters", arg)
                kwargs[key] = (text, arg)
            else:
                if kwargs and name not in SLO_FUNCS:
                    raise self.fail("positional arguments go before name= arguments", arg)
                positional.append(arg)
        if name not in FUNCTIONS:
            raise self.fail(f"unknown function {name!r}; known: {', '.join(FUNCTIONS)}", name_tok)
        usage = FUNCTIONS[name]
        if name in ("abs", "min", "max"):
            if kwargs:
                raise self.fail(f"{name}() takes no name= arguments", t)
            if name == "abs" and len(positional) != 1:
                raise self.fail(f"abs() takes one argument: {usage}", t)
            if name != "abs" and not 2 <= len(positional) <= 16:
                raise self.fail(f"{name}() takes 2 to 16 arguments: {usage}", t)
            args = tuple(self.number(a) for a in positional)
            return _Typed(Func(name, args), "number")
        if name in SLO_FUNCS:
            for key, (_, at) in kwargs.items():
                if key not in SLO_FILTERS:
                    raise self.fail(f"{name}() has no {key}= argument; use agent= or slo=", at)
            if len(positional) != 1:
                raise self.fail(f"usage: {usage}", t)
            window = self._window(positional[0])
            agent = kwargs["agent"][0] if "agent" in kwargs else None
            slo = kwargs["slo"][0] if "slo" in kwargs else None
            return _Typed(Series(name, window, agent, None, slo=slo), "number")
        for key, (_, at) in kwargs.items():
            if key not in FILTERS:
                raise self.fail(f"{name}() has no {key}= argument; use agent= or model=", at)
        if name == "anomaly":
            if kwargs or len(positional) != 1:
                raise self.fail(f"usage: {usage}", t)
            inner = self.build(positional[0])
            if not isinstance(inner.node, Series) or inner.node.anomaly:
                raise self.fail(
                    "anomaly() takes one metric call, e.g. anomaly(p95(latency, 10m))",
                    positional[0],
                )
            if inner.node.window_s > MAX_ANOMALY_WINDOW_S:
                raise self.fail("anomaly() works on windows of at most 1h", positional[0])
            return _Typed(replace(inner.node, anomaly=True), "number")
        agent = kwargs["agent"][0] if "agent" in kwargs else None
        model = kwargs["model"][0] if "model" in kwargs else None
        if name in ("budget_burn", "budget_forecast_burn"):
            if positional or model is not None:
                raise self.fail(f"usage: {usage}", t)
            return _Typed(Budget(agent, forecast=name == "budget_forecast_burn"), "number")
        if name in _WINDOW_FUNCS:
            if len(positional) != 1:
                raise self.fail(f"usage: {usage}", t)
            window = self._window(positional[0])
            return _Typed(Series(name, window, agent, model), "number")
        # p50..p99/avg(latency, window) and sum(what, window)
        if len(positional) != 2:
            raise self.fail(f"usage: {usage}", t)
        what_tree, window_tree = positional
        what = _bare_name(what_tree)
        if name == "sum":
            if what not in _SUM_OF:
                raise self.fail(f"sum() of what? one of: {', '.join(_SUM_OF)}", what_tree)
            metric = _SUM_OF[what]
        else:
            if what != "latency":
                raise self.fail(f"{name}() takes latency as its first argument: {usage}", what_tree)
            metric = _PERCENTILES[name]
        return _Typed(Series(metric, self._window(window_tree), agent, model), "number")

    def _window(self, t: Tree[Token] | Token) -> int:
        if not (isinstance(t, Tree) and t.data == "duration"):
            raise self.fail("expected a window like 5m, 1h or 1d here", t)
        text = str(t.children[0])
        seconds = int(text[:-1]) * _UNIT_S[text[-1]]
        if seconds < MIN_WINDOW_S or seconds % 60:
            raise self.fail("a window is whole minutes, at least 1m", t)
        if seconds > MAX_WINDOW_S:
            raise self.fail("a window is at most 31d", t)
        return seconds


def _bare_name(t: Tree[Token] | Token) -> str | None:
    if isinstance(t, Tree) and t.data == "name":
        return str(t.children[0])
    return None


# --- interpreter ---------------------------------------------------------------------------------

Value = float | None
SeriesLookup = Callable[[Series], Value]
BudgetLookup = Callable[[Budget], Value]


def _finite(value: float) -> Value:
    return value if math.isfinite(value) else None


def evaluate(node: Node, series: SeriesLookup, budget: BudgetLookup) -> Value | bool:
    """Evaluate a node: numbers are floats (None = no data: anything computed from it is None
    and any comparison with it is false), conditions are bools."""
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Series):
        return series(node)
    if isinstance(node, Compare):
        left = evaluate(node.left, series, budget)
        if left is None:
            return False
        right = evaluate(node.right, series, budget)
        if right is None:
            return False
        return _compare(node.op, float(left), float(right))
    if isinstance(node, Logic):
        first = bool(evaluate(node.left, series, budget))
        if node.op == "and":
            return first and bool(evaluate(node.right, series, budget))
        return first or bool(evaluate(node.right, series, budget))
    if isinstance(node, Not):
        return not evaluate(node.operand, series, budget)
    if isinstance(node, BinOp):
        a = evaluate(node.left, series, budget)
        if a is None:
            return None
        b = evaluate(node.right, series, budget)
        if b is None:
            return None
        return _arith(node.op, float(a), float(b))
    if isinstance(node, Neg):
        v = evaluate(node.operand, series, budget)
        return None if v is None else -float(v)
    if isinstance(node, Func):
        values = [evaluate(a, series, budget) for a in node.args]
        if any(v is None for v in values):
            return None
        floats = [float(v) for v in values if v is not None]
        if node.name == "abs":
            return abs(floats[0])
        return min(floats) if node.name == "min" else max(floats)
    if isinstance(node, Budget):
        return budget(node)
    raise TypeError(f"not a rule node: {node!r}")  # pragma: no cover


def _compare(op: str, a: float, b: float) -> bool:
    if op == ">":
        return a > b
    if op == "<":
        return a < b
    if op == ">=":
        return a >= b
    if op == "<=":
        return a <= b
    if op == "==":
        return a == b
    return a != b


def _arith(op: str, a: float, b: float) -> Value:
    try:
        if op == "+":
            return _finite(a + b)
        if op == "-":
            return _finite(a - b)
        if op == "*":
            return _finite(a * b)
        if op == "/":
            return _finite(a / b) if b else None
        if op == "%":
            return _finite(a % b) if b else None
        result = a**b
        return _finite(result) if isinstance(result, float) else None
    except (OverflowError, ZeroDivisionError):
        return None


def describe_series(s: Series) -> str:
    """``p95(latency, 10m, agent="x")`` back as text."""
    if s.anomaly:
        return f"anomaly({describe_series(replace(s, anomaly=False))})"
    window = _window_text(s.window_s)
    filters = "".join(
        f', {k}="{v}"' for k, v in (("agent", s.agent), ("model", s.model)) if v is not None
    )
    if s.metric in SLO_FUNCS:
        extra = f', slo="{s.slo}"' if s.slo is not None else ""
        return f"{s.metric}({window}{filters}{extra})"
    if s.metric in _WINDOW_FUNCS:
        return f"{s.metric}({window}{filters})"
    if s.metric.startswith("latency_"):
        return f"{s.metric.removeprefix('latency_')}(latency, {window}{filters})"
    return f"sum({s.metric}, {window}{filters})"


def _window_text(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds // 60}m"


Compiled = Callable[[SeriesLookup, BudgetLookup], "Value | bool"]


def compile_node(node: Node) -> Compiled:
    """The same semantics as :func:`evaluate`, as nested closures built once per rule (the engine
    evaluates each rule for every group: no isinstance dispatch per node per group)."""
    if isinstance(node, Num):
        value = node.value
        return lambda _s, _b: value
    if isinstance(node, Series):
        series_node = node
        return lambda s, _b: s(series_node)
    if isinstance(node, Budget):
        budget_node = node
        return lambda _s, b: b(budget_node)
    if isinstance(node, Compare):
        left, right, op = compile_node(node.left), compile_node(node.right), node.op

        def compare(s: SeriesLookup, b: BudgetLookup) -> bool:
            a = left(s, b)
            if a is None:
                return False
            c = right(s, b)
            if c is None:
                return False
            return _compare(op, float(a), float(c))

        return compare
    if isinstance(node, Logic):
        first, second = compile_node(node.left), compile_node(node.right)
        if node.op == "and":
            return lambda s, b: bool(first(s, b)) and bool(second(s, b))
        return lambda s, b: bool(first(s, b)) or bool(second(s, b))
    if isinstance(node, Not):
        inner = compile_node(node.operand)
        return lambda s, b: not inner(s, b)
    if isinstance(node, Neg):
        operand = compile_node(node.operand)

        def neg(s: SeriesLookup, b: BudgetLookup) -> Value:
            v = operand(s, b)
            return None if v is None else -float(v)

        return neg
    if isinstance(node, BinOp):
        lhs, rhs, arith_op = compile_node(node.left), compile_node(node.right), node.op

        def binop(s: SeriesLookup, b: BudgetLookup) -> Value:
            a = lhs(s, b)
            if a is None:
                return None
            c = rhs(s, b)
            if c is None:
                return None
            return _arith(arith_op, float(a), float(c))

        return binop
    if isinstance(node, Func):
        args, name = [compile_node(a) for a in node.args], node.name

        def func(s: SeriesLookup, b: BudgetLookup) -> Value:
            values = [a(s, b) for a in args]
            if any(v is None for v in values):
                return None
            floats = [float(v) for v in values if v is not None]
            if name == "abs":
                return abs(floats[0])
            return min(floats) if name == "min" else max(floats)

        return func
    raise TypeError(f"not a rule node: {node!r}")  # pragma: no cover


# --- the same interpreter, a column at a time ----------------------------------------------------

#: One value per group of a rule (``by agent``: one per agent), in the order of the groups.
ValueColumn = list[Value]
SeriesColumns = Callable[[Series], list[Value]]
BudgetColumns = Callable[[Budget], list[Value]]
#: A node over every group: its column (numbers or None; a condition's are bools).
ColumnCompiled = Callable[[SeriesColumns, BudgetColumns, int], Sequence[Value]]

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    "<": operator.lt,
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


def compile_columns(node: Node) -> ColumnCompiled:
    """:func:`compile_node` over every group of a rule at once: ``f(series, budget, n)`` takes
    the column of each :class:`Series` (one value per group, as :class:`~.figures.Figures`
    shares them between the rules reading the same figure) and returns the node's column.

    Element by element the result is what :func:`evaluate` gives for that group: nothing a node
    computes has a side effect or raises, so evaluating both sides of ``and``/``or`` and of a
    comparison with no data on its left gives the same values as short-circuiting them."""
    if isinstance(node, Num):
        value = node.value
        return lambda _s, _b, n: [value] * n
    if isinstance(node, Series):
        series_node = node
        return lambda s, _b, _n: s(series_node)
    if isinstance(node, Budget):
        budget_node = node
        return lambda _s, b, _n: b(budget_node)
    if isinstance(node, Compare):
        left, right = compile_columns(node.left), compile_columns(node.right)
        cmp = _COMPARE[node.op]

        def compare(s: SeriesColumns, b: BudgetColumns, n: int) -> list[bool]:
            return [
                False if x is None or y is None else cmp(float(x), float(y))
                for x, y in zip(left(s, b, n), right(s, b, n), strict=True)
            ]

        return compare
    if isinstance(node, Logic):
        first, second = compile_columns(node.left), compile_columns(node.right)
        if node.op == "and":
            return lambda s, b, n: [
                bool(x) and bool(y) for x, y in zip(first(s, b, n), second(s, b, n), strict=True)
            ]
        return lambda s, b, n: [
            bool(x) or bool(y) for x, y in zip(first(s, b, n), second(s, b, n), strict=True)
        ]
    if isinstance(node, Not):
        inner = compile_columns(node.operand)
        return lambda s, b, n: [not x for x in inner(s, b, n)]
    if isinstance(node, Neg):
        operand = compile_columns(node.operand)
        return lambda s, b, n: [None if v is None else -float(v) for v in operand(s, b, n)]
    if isinstance(node, BinOp):
        lhs, rhs, arith_op = compile_columns(node.left), compile_columns(node.right), node.op

        def binop(s: SeriesColumns, b: BudgetColumns, n: int) -> list[Value]:
            return [
                None if x is None or y is None else _arith(arith_op, float(x), float(y))
                for x, y in zip(lhs(s, b, n), rhs(s, b, n), strict=True)
            ]

        return binop
    if isinstance(node, Func):
        args, name = [compile_columns(a) for a in node.args], node.name

        def func(s: SeriesColumns, b: BudgetColumns, n: int) -> list[Value]:
            out: list[Value] = []
            for values in zip(*(a(s, b, n) for a in args), strict=True):
                if any(v is None for v in values):
                    out.append(None)
                    continue
                floats = [float(v) for v in values if v is not None]
                if name == "abs":
                    out.append(abs(floats[0]))
                else:
                    out.append(min(floats) if name == "min" else max(floats))
            return out

        return func
    raise TypeError(f"not a rule node: {node!r}")  # pragma: no cover
