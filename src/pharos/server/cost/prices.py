"""Model prices (pure): the bundled dated table, overrides with effective dates, name matching
and the cost of one model call in integer nano-USD.

Prices are held as integer micro-USD per million tokens, which is the same number as pico-USD
per token: a call's cost is ``sum(tokens * price)`` pico-USD, rounded once to nano-USD. No float
ever touches money here. Nothing in this module does I/O except reading the bundled TOML file.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from typing import Any

#: Largest accepted price: a million USD per million tokens.
MAX_USD_PER_MTOK = Decimal(1_000_000)
MICRO = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens, as integer micro-USD (= pico-USD per token)."""

    input: int
    output: int
    cached: int | None = None  # None: cached input tokens cost the input price
    effective_from_ns: int = 0  # 0 = since always
    source: str = "bundled"  # bundled | override
    id: int | None = None  # the model_prices row of an override


def usd_to_micro(value: Any, name: str = "price") -> int:
    """``"2.50"`` (USD per million tokens) -> 2_500_000. ValueError with a readable message for
    a negative, non-finite, absurd or over-precise (more than 6 decimals) value."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number of USD per million tokens")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{name}: {value!r} is not a number of USD per million tokens") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{name} must be a finite, non-negative USD amount per million tokens")
    if amount > MAX_USD_PER_MTOK:
        raise ValueError(f"{name} is more than {MAX_USD_PER_MTOK} USD per million tokens")
    micro = amount * MICRO
    if micro != micro.to_integral_value():
        raise ValueError(f"{name}: at most 6 decimal places of USD per million tokens")
    return int(micro)


def micro_to_usd(micro: int) -> str:
    """2_500_000 -> ``"2.5"`` (a string: exact, what the API shows)."""
    text = format(Decimal(micro) / MICRO, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def call_cost_nanousd(
    price: Price, input_tokens: int | None, output_tokens: int | None, cached_tokens: int | None
) -> int:
    """Cost of one model call. Cached tokens are a part of the input tokens (the OpenTelemetry
    GenAI and OpenInference conventions): they are billed at the cached price, the rest of the
    input at the input price. Rounded half up to a whole nano-USD."""
    inp = input_tokens or 0
    cached = min(cached_tokens or 0, inp)
    cached_price = price.input if price.cached is None else price.cached
    picousd = (
        (inp - cached) * price.input + cached * cached_price + (output_tokens or 0) * price.output
    )
    return (picousd + 500) // 1000


# --- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceTable:
    """Every known model's price history, plus vendors, cheaper tiers and name aliases."""

    as_of: str
    history: Mapping[str, tuple[Price, ...]]  # model key -> prices, oldest effective first
    vendors: Mapping[str, str] = field(default_factory=dict)
    cheaper: Mapping[str, str] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)  # bundled, then yours

    def resolve(self, model: str | None) -> str | None:
        """The table's key for a model name as spans report it (see :func:`match_model`)."""
        if not model:
            return None
        return match_model(model, self.history.keys(), self.aliases)

    def price_at(self, key: str, at_ns: int) -> Price | None:
        """The price of ``key`` in effect at ``at_ns`` (the newest effective on or before it)."""
        found = None
        for price in self.history.get(key, ()):
            if price.effective_from_ns <= at_ns:
                found = price
            else:
                break
        return found

    def with_overrides(
        self, overrides: Iterable[tuple[str, Price]], aliases: Mapping[str, str] | None = None
    ) -> PriceTable:
        """This table plus user prices and aliases. An override effective from the same instant
        as another price (e.g. 0, "always") replaces it; a user alias replaces a bundled alias of
        the same name."""
        merged: dict[str, dict[int, Price]] = {
            key: {p.effective_from_ns: p for p in prices} for key, prices in self.history.items()
        }
        for model, price in overrides:
            merged.setdefault(model.strip().lower(), {})[price.effective_from_ns] = price
        history = {
            key: tuple(v for _, v in sorted(by_time.items())) for key, by_time in merged.items()
        }
        merged_aliases = dict(self.aliases)
        merged_aliases.update({k.strip().lower(): v for k, v in (aliases or {}).items()})
        return PriceTable(self.as_of, history, self.vendors, self.cheaper, merged_aliases)


def parse_table(doc: Mapping[str, Any]) -> PriceTable:
    """Build a table from the TOML document's structure (see ``prices.toml``)."""
    history: dict[str, tuple[Price, ...]] = {}
    vendors: dict[str, str] = {}
    cheaper: dict[str, str] = {}
    for name, entry in dict(doc.get("models", {})).items():
        key = name.lower()
        cached = entry.get("cached")
        history[key] = (
            Price(
                input=usd_to_micro(entry["input"], f"{name}.input"),
                output=usd_to_micro(entry["output"], f"{name}.output"),
                cached=None if cached is None else usd_to_micro(cached, f"{name}.cached"),
            ),
        )
        vendors[key] = str(entry.get("vendor", ""))
        if entry.get("cheaper"):
            cheaper[key] = str(entry["cheaper"]).lower()
    aliases = {str(k).strip().lower(): str(v) for k, v in dict(doc.get("aliases", {})).items()}
    return PriceTable(str(doc.get("as_of", "")), history, vendors, cheaper, aliases)


@cache
def bundled_table() -> PriceTable:
    """The table shipped with Pharos (``cost/prices.toml``), dated by its ``as_of``."""
    text = resources.files("pharos.server.cost").joinpath("prices.toml").read_text("utf-8")
    return parse_table(tomllib.loads(text))


# --- matching ----------------------------------------------------------------------------------

_BEDROCK_PREFIX = re.compile(
    r"^(?:(?:us|eu|apac|global|us-gov)\.)?(?:anthropic|meta|mistral|cohere|amazon|ai21|deepseek)\."
)
_BEDROCK_VERSION = re.compile(r"-v\d+(?::\d+)?$")
# A Llama major version, then a minor one only when it is a lone digit (``3-1-70b``, ``v3p1``,
# ``3.1:70b``): in ``llama-3-70b`` and ``llama3-8b-8192`` the digits after the dash are a size.
_LLAMA = re.compile(r"^(?:meta-)?llama-?v?(\d)(?:[.p-](\d)(?![0-9a-z]))?")
# Azure OpenAI spells gpt-3.5 without its dot: gpt-35-turbo, gpt-35-turbo-0125, -instruct.
_AZURE_GPT35 = re.compile(r"^gpt-35(?=-)")
_BOUNDARY = frozenset("-:@_")
_WORD = re.compile(r"[-:@_.]")
#: A word after a family's name that makes another model, priced (per modality) otherwise:
#: ``gpt-4o-realtime-preview`` or ``gpt-4o-mini-tts`` are not gpt-4o.
_OTHER_MODEL = frozenset({"realtime", "audio", "tts", "transcribe", "image", "live"})
#: Ollama's ``model:tag`` with a size or ``latest`` tag (``llama3.1:70b``, ``mixtral:8x7b``,
#: ``qwen2.5:0.5b-instruct-q4_0``), and LiteLLM's Ollama providers: models run locally.
_OLLAMA_TAG = re.compile(r":(?:latest|\d+(?:\.\d+)?[bmk]|\d+x\d+(?:\.\d+)?b)(?:$|[-_])")
_OLLAMA_PATHS = frozenset({"ollama", "ollama_chat"})


def _llama(m: re.Match[str]) -> str:
    return f"llama-{m[1]}" + (f".{m[2]}" if m[2] else "")


def normalize_model_name(name: str) -> str:
    """Lower case, without a vendor path (``openai/``, ``models/``, ``meta-llama/``), a Bedrock
    prefix and version (``us.anthropic.`` .. ``-v2:0``), with Llama, Claude and Azure's GPT-3.5
    version numbers spelled one way (``llama3-1`` / ``llama-v3p1`` -> ``llama-3.1``,
    ``llama3-70b`` -> ``llama-3-70b``, ``claude-3.5`` -> ``claude-3-5``, ``gpt-35-turbo`` ->
    ``gpt-3.5-turbo``)."""
    s = name.strip().lower()
    s = s.rsplit("/", 1)[-1]
    s = _BEDROCK_PREFIX.sub("", s)
    s = _BEDROCK_VERSION.sub("", s)
    s = _LLAMA.sub(_llama, s)
    s = _AZURE_GPT35.sub("gpt-3.5", s)
    if s.startswith("claude"):
        s = re.sub(r"(?<=\d)\.(?=\d)", "-", s)
    return s


def is_local_model(name: str) -> bool:
    """An Ollama model (``llama3.1:70b``, ``ollama/mistral-small``): it runs on your hardware,
    so a hosted vendor's price for the same weights is not its cost."""
    s = name.strip().lower()
    *path, last = s.split("/")
    return bool(_OLLAMA_PATHS.intersection(path)) or _OLLAMA_TAG.search(last) is not None


def match_model(
    name: str, names: Collection[str], aliases: Mapping[str, str] | None = None
) -> str | None:
    """The key of ``names`` that prices ``name``, or None. In order:

    1. an alias (e.g. an Azure deployment name) for the whole name or its last path segment
       maps to a model name, which is then matched by the rules below;
    2. the exact name, case-insensitively;
    3. the normalized name (:func:`normalize_model_name`);
    4. the longest known name that the normalized name starts with, followed by ``-``, ``:``,
       ``@`` or ``_``: dated snapshots (``gpt-4o-2024-08-06``, ``claude-3-5-sonnet-20241022``,
       ``gpt-4-0613``, ``gemini-1.5-pro-002``, ``mistral-large-latest``) and variants
       (``llama-3.1-70b-instruct-turbo``) take the price of their family. A snapshot priced
       differently has its own entry, which is longer and so wins (``gpt-4o-2024-05-13``).
       The rest of the name must not hold a word of another model (``realtime``, ``audio``,
       ``tts``, ``transcribe``, ``image``, ``live``): ``gpt-4o-realtime-preview`` is not gpt-4o.

    A local (Ollama) model, :func:`is_local_model`, is matched by rules 1 and 2 only.
    """
    known = names
    raw = name.strip().lower()
    if not raw:
        return None
    if aliases:
        target = aliases.get(raw) or aliases.get(raw.rsplit("/", 1)[-1])
        if target is not None:
            return match_model(target, known, None)
    if raw in known:
        return raw
    if is_local_model(raw):
        return None
    s = normalize_model_name(raw)
    if s in known:
        return s
    best: str | None = None
    for key in known:
        if (
            len(key) < len(s)
            and s[len(key)] in _BOUNDARY
            and s.startswith(key)
            and (best is None or len(key) > len(best))
            and _OTHER_MODEL.isdisjoint(_WORD.split(s[len(key) :]))
        ):
            best = key
    return best
