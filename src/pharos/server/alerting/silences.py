"""Label matchers, for silences and channel routing (pure).

A matcher is ``{"name": "agent", "op": "=", "value": "checkout"}`` with ``op`` one of ``=``,
``!=``, ``=~`` (regular expression, whole value) and ``!~``. A missing label is the empty string
(as in Alertmanager). A silence mutes the notifications of every alert whose labels match all of
its matchers while ``starts <= now < ends``; the alert itself stays visible.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

OPS = ("=", "!=", "=~", "!~")
MAX_MATCHERS = 16
MAX_VALUE = 256


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: str
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        hit = _compiled(self.value).fullmatch(actual) is not None
        return hit if self.op == "=~" else not hit

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "op": self.op, "value": self.value}


_CACHE: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    compiled = _CACHE.get(pattern)
    if compiled is None:
        if len(_CACHE) > 1024:
            _CACHE.clear()
        compiled = _CACHE[pattern] = re.compile(pattern)
    return compiled


def parse_matchers(raw: Any, *, allow_empty: bool = False) -> list[Matcher]:
    """Validate matchers from JSON. Raises ValueError with a message naming the problem."""
    if not isinstance(raw, list):
        raise ValueError("matchers must be a list of {name, op, value}")
    if not raw and not allow_empty:
        raise ValueError("at least one matcher is needed (a silence of everything is too easy)")
    if len(raw) > MAX_MATCHERS:
        raise ValueError(f"at most {MAX_MATCHERS} matchers")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ValueError(f"matchers[{i}] must be an object with name, op, value")
        name, op, value = item.get("name"), item.get("op", "="), item.get("value")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name):
            raise ValueError(f"matchers[{i}].name must be a label name like agent")
        if op not in OPS:
            raise ValueError(f"matchers[{i}].op must be one of {', '.join(OPS)}")
        if not isinstance(value, str) or len(value) > MAX_VALUE:
            raise ValueError(f"matchers[{i}].value must be a string of at most {MAX_VALUE}")
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"matchers[{i}].value is not a valid regex: {exc}") from None
        out.append(Matcher(name, op, value))
    return out


def match_all(matchers: Sequence[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


@dataclass(frozen=True, slots=True)
class ActiveSilence:
    id: int
    matchers: tuple[Matcher, ...]
    starts_ns: int
    ends_ns: int


def silenced_by(
    labels: Mapping[str, str], silences: Iterable[ActiveSilence], now_ns: int
) -> int | None:
    """The id of the first silence muting these labels now, or None."""
    for s in silences:
        if s.starts_ns <= now_ns < s.ends_ns and match_all(s.matchers, labels):
            return s.id
    return None
