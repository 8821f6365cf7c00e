"""Per-day model usage (pure): what each stored model call adds to ``llm_usage_daily``, and the
prompt hash that finds repeated identical prompts (the caching suggestion).

The prompt hash is computed in the ingest workers (normalize) from the attributes holding the
prompt, so the writer only adds numbers up: every attribute named ``gen_ai.prompt``,
``gen_ai.input.messages``, ``llm.input_messages``, ``llm.prompts`` or ``input.value``, or below
one of them (``llm.input_messages.0.message.content``), sorted by name, serialised canonically
and hashed (BLAKE2b, 128 bits). Spans without such attributes have no hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

PROMPT_KEYS = (
    "gen_ai.prompt",
    "gen_ai.input.messages",
    "llm.input_messages",
    "llm.prompts",
    "input.value",
)
_DOTTED = tuple(k + "." for k in PROMPT_KEYS)
DAY_S = 86400
NS = 1_000_000_000

UsageKey = tuple[int, str, str, str]  # day (epoch s), agent, model, prompt hash ("" = none)


def prompt_hash(attrs: Mapping[str, Any]) -> str | None:
    """Hex hash of the prompt attributes of a model call, or None when it carries none."""
    parts = [
        (key, value)
        for key, value in attrs.items()
        if key in PROMPT_KEYS or key.startswith(_DOTTED)
    ]
    if not parts:
        return None
    parts.sort(key=lambda kv: kv[0])
    digest = hashlib.blake2b(digest_size=16)
    for key, value in parts:
        digest.update(key.encode())
        digest.update(b"\0")
        digest.update(orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
        digest.update(b"\0")
    return digest.hexdigest()


@dataclass(slots=True)
class UsageDelta:
    calls: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_nanousd: int = 0
    error_cost_nanousd: int = 0

    def subtract(self, other: UsageDelta) -> None:
        self.calls -= other.calls
        self.errors -= other.errors
        self.input_tokens -= other.input_tokens
        self.output_tokens -= other.output_tokens
        self.cached_tokens -= other.cached_tokens
        self.cost_nanousd -= other.cost_nanousd
        self.error_cost_nanousd -= other.error_cost_nanousd

    def values(self) -> tuple[int, ...]:
        return (
            self.calls,
            self.errors,
            self.input_tokens,
            self.output_tokens,
            self.cached_tokens,
            self.cost_nanousd,
            self.error_cost_nanousd,
        )


USAGE_VALUES = (
    "calls",
    "errors",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost_nanousd",
    "error_cost_nanousd",
)


def usage_key(day_s: int, agent: str, model: str | None, phash: str | None) -> UsageKey:
    return (day_s, agent, model or "", phash or "")


def usage_deltas(records: Iterable[Any], kinds: frozenset[str]) -> dict[UsageKey, UsageDelta]:
    """Fold model calls (spans of ``kinds``, each stored for the first time) per usage row."""
    out: dict[UsageKey, UsageDelta] = {}
    for r in records:
        if r.kind not in kinds:
            continue
        day = r.start_ns // NS // DAY_S * DAY_S
        key = usage_key(day, r.agent, r.model, r.prompt_hash)
        d = out.get(key)
        if d is None:
            d = out[key] = UsageDelta()
        cost = r.cost_nanousd or 0
        d.calls += 1
        d.input_tokens += r.input_tokens or 0
        d.output_tokens += r.output_tokens or 0
        d.cached_tokens += r.cached_tokens or 0
        d.cost_nanousd += cost
        if r.status == "error":
            d.errors += 1
            d.error_cost_nanousd += cost
    return out
