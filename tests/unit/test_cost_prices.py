"""Price matching (table-driven), exact integer costs, effective-dated overrides."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pharos.server.cost.prices import (
    Price,
    bundled_table,
    call_cost_nanousd,
    match_model,
    micro_to_usd,
    normalize_model_name,
    usd_to_micro,
)

TABLE = bundled_table()
ALIASES = {"prod-gpt4o": "gpt-4o", "eu-cheap": "gpt-4o-mini-2024-07-18"}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # exact, any case
        ("gpt-4o", "gpt-4o"),
        ("GPT-4o", "gpt-4o"),
        ("  gpt-4o-mini ", "gpt-4o-mini"),
        # dated snapshots take their family's price ...
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-2024-11-20", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("gpt-4-0613", "gpt-4"),
        ("gpt-4-turbo-2024-04-09", "gpt-4-turbo"),
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("o1-2024-12-17", "o1"),
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("gemini-1.5-pro-002", "gemini-1.5-pro"),
        ("gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("mistral-large-latest", "mistral-large"),
        ("mistral-large-2411", "mistral-large"),
        ("mistral-small-2503", "mistral-small"),
        # ... unless the snapshot has its own (longer) entry
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),
        # vendor prefixes and paths
        ("openai/gpt-4o", "gpt-4o"),
        ("azure/gpt-4o-mini", "gpt-4o-mini"),
        ("anthropic/claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("anthropic/claude-3.5-sonnet", "claude-3-5-sonnet"),  # OpenRouter spelling
        ("models/gemini-1.5-pro", "gemini-1.5-pro"),
        ("models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("google/gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
        ("mistralai/mistral-small-latest", "mistral-small"),
        # Bedrock and Vertex AI spellings
        ("anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet"),
        ("us.anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku"),
        ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet"),
        ("meta.llama3-1-70b-instruct-v1:0", "llama-3.1-70b"),
        # open models on hosts
        ("llama-3.1-70b-instruct", "llama-3.1-70b"),
        ("meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo", "llama-3.1-70b"),
        ("meta-llama/Llama-3.3-70B-Instruct-Turbo", "llama-3.3-70b"),
        ("accounts/fireworks/models/llama-v3p1-8b-instruct", "llama-3.1-8b"),
        ("groq/llama-3.3-70b-versatile", "llama-3.3-70b-versatile"),
        # embeddings
        ("text-embedding-3-small", "text-embedding-3-small"),
        ("text-embedding-ada-002", "text-embedding-ada-002"),
        # Azure deployment names through the alias setting (whole name or last segment)
        ("prod-gpt4o", "gpt-4o"),
        ("PROD-GPT4O", "gpt-4o"),
        ("azure/prod-gpt4o", "gpt-4o"),
        ("eu-cheap", "gpt-4o-mini"),
        # Llama 3 without a minor version is not read as 3.x (llama-3-70b was llama-3.70b)
        ("llama-3-70b", "llama-3-70b"),
        ("meta-llama/Meta-Llama-3-70B-Instruct", "llama-3-70b"),
        ("Meta-Llama-3-8B-Instruct", "llama-3-8b"),
        ("meta-llama/Llama-3-70b-chat-hf", "llama-3-70b"),  # Together
        ("meta-llama/llama-3-70b-instruct", "llama-3-70b"),  # OpenRouter
        ("meta.llama3-70b-instruct-v1:0", "llama-3-70b"),  # Bedrock
        ("llama3-70b-8192", "llama-3-70b-8192"),  # Groq
        ("groq/llama3-8b-8192", "llama-3-8b-8192"),
        ("llama-2-70b-chat", None),  # not llama-2.70b, and not priced
        ("meta.llama3-1-8b-instruct-v1:0", "llama-3.1-8b"),
        # more Bedrock ids (cross-region prefixes, versions; Cohere's are older snapshots)
        ("anthropic.claude-3-5-sonnet-20240620-v1:0", "claude-3-5-sonnet"),
        ("eu.anthropic.claude-3-7-sonnet-20250219-v1:0", "claude-3-7-sonnet"),
        ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        ("anthropic.claude-3-haiku-20240307-v1:0", "claude-3-haiku"),
        ("mistral.mistral-large-2407-v1:0", "mistral-large"),
        ("cohere.command-r-plus-v1:0", "command-r-plus-04-2024"),
        ("cohere.command-r-v1:0", "command-r-03-2024"),
        ("cohere.embed-english-v3", "embed-english-v3.0"),
        # Azure OpenAI model names (deployment names need an alias, see above)
        ("gpt-35-turbo", "gpt-3.5-turbo"),
        ("gpt-35-turbo-0125", "gpt-3.5-turbo"),
        ("azure/gpt-35-turbo", "gpt-3.5-turbo"),
        ("gpt-35-turbo-instruct", "gpt-3.5-turbo-instruct"),
        ("azure/gpt-4o-2024-08-06", "gpt-4o"),
        ("my-gpt-4o-deployment", None),
        # OpenAI models that are not their family: ChatGPT's own, realtime and audio
        ("chatgpt-4o-latest", "chatgpt-4o-latest"),
        ("openai/chatgpt-4o-latest", "chatgpt-4o-latest"),
        ("gpt-4o-realtime-preview", None),
        ("gpt-4o-realtime-preview-2024-12-17", None),
        ("gpt-4o-mini-realtime-preview", None),
        ("gpt-4o-audio-preview-2024-12-17", None),
        ("gpt-4o-mini-tts", None),
        ("gpt-4o-transcribe", None),
        ("gemini-2.5-flash-preview-tts", None),
        ("gemini-2.5-flash-image-preview", None),
        ("gpt-3.5-turbo-instruct-0914", "gpt-3.5-turbo-instruct"),
        # OpenRouter names
        ("openai/gpt-4o-mini", "gpt-4o-mini"),
        ("openai/gpt-4o-2024-11-20", "gpt-4o"),
        ("anthropic/claude-3.5-sonnet:beta", "claude-3-5-sonnet"),
        ("google/gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("deepseek/deepseek-chat", "deepseek-chat"),
        ("qwen/qwen-max", "qwen-max"),
        ("cohere/command-r-plus-08-2024", "command-r-plus"),
        # DeepSeek, Qwen (Alibaba Cloud Model Studio), Cohere
        ("deepseek-chat", "deepseek-chat"),
        ("DeepSeek-Reasoner", "deepseek-reasoner"),
        ("qwen-max", "qwen-max"),
        ("qwen-max-2025-01-25", "qwen-max"),
        ("qwen-plus-latest", "qwen-plus"),
        ("qwen-turbo-2024-11-01", "qwen-turbo"),
        ("qwen2.5-72b-instruct", "qwen2.5-72b-instruct"),
        ("Qwen/Qwen2.5-72B-Instruct", "qwen2.5-72b-instruct"),
        ("dashscope/qwen-plus", "qwen-plus"),  # LiteLLM
        ("command-r", "command-r"),
        ("command-r-08-2024", "command-r"),
        ("command-r-03-2024", "command-r-03-2024"),
        ("command-r-plus", "command-r-plus"),
        ("command-r-plus-08-2024", "command-r-plus"),
        ("command-r-plus-04-2024", "command-r-plus-04-2024"),
        ("command-r7b-12-2024", "command-r7b"),
        ("command-a-03-2025", "command-a"),
        ("embed-english-v3.0", "embed-english-v3.0"),
        ("embed-multilingual-v3.0", "embed-multilingual-v3.0"),
        ("embed-english-light-v3.0", None),
        # Ollama tags are local models: priced only by an entry of your own (exact name)
        ("llama3.1:70b", None),
        ("llama3:8b", None),
        ("llama3.1:70b-instruct-q4_K_M", None),
        ("ollama/llama3.1:70b", None),
        ("mistral-small:24b", None),
        ("codestral:22b", None),
        ("qwen2.5:72b", None),
        ("mixtral:8x7b", None),
        ("llama3.1:latest", None),
        ("ollama/mistral-small", None),  # LiteLLM's Ollama provider
        ("ollama_chat/gpt-4o", None),
        # not a price: unknown, or a prefix that is not at a name boundary
        ("my-private-llm", None),
        ("gpt-4.5-preview", None),  # "gpt-4" followed by "." is not gpt-4
        ("gpt-4omni", None),
        ("", None),
        ("   ", None),
    ],
)
def test_match_model(name: str, expected: str | None) -> None:
    """Through the table: its bundled aliases plus a user's (``PHAROS_MODEL_ALIASES``)."""
    assert TABLE.with_overrides([], ALIASES).resolve(name) == expected


@pytest.mark.parametrize(
    ("name", "normalized"),
    [
        ("llama-3-70b", "llama-3-70b"),
        ("meta-llama/Meta-Llama-3-70B-Instruct", "llama-3-70b-instruct"),
        ("llama3-70b-8192", "llama-3-70b-8192"),
        ("llama3-8b-8192", "llama-3-8b-8192"),
        ("llama-2-13b-chat", "llama-2-13b-chat"),
        ("llama3-1-70b", "llama-3.1-70b"),
        ("llama-v3p1-8b-instruct", "llama-3.1-8b-instruct"),
        ("Meta-Llama-3.1-405B-Instruct", "llama-3.1-405b-instruct"),
        ("llama3.2", "llama-3.2"),
        ("llama-3.2-1b", "llama-3.2-1b"),
        ("gpt-35-turbo-16k", "gpt-3.5-turbo-16k"),
        ("claude-3.7-sonnet", "claude-3-7-sonnet"),
    ],
)
def test_normalize_model_name(name: str, normalized: str) -> None:
    assert normalize_model_name(name) == normalized


def test_local_models_take_a_price_of_your_own() -> None:
    table = TABLE.with_overrides([("llama3.1:70b", Price(0, 0, None, 0, "override", 1))])
    assert table.resolve("llama3.1:70b") == "llama3.1:70b"
    assert table.resolve("LLAMA3.1:70b") == "llama3.1:70b"
    assert table.resolve("llama3.1:8b") is None
    aliased = TABLE.with_overrides([], {"llama3.1:8b": "llama-3.1-8b"})
    assert aliased.resolve("llama3.1:8b") == "llama-3.1-8b"


def test_bundled_aliases_resolve_and_yours_win() -> None:
    assert TABLE.aliases  # Bedrock's Cohere ids
    for name, target in TABLE.aliases.items():
        assert TABLE.resolve(target) is not None, (name, target)
    mine = TABLE.with_overrides([], {"cohere.command-r-v1:0": "command-r", "x": "gpt-4o"})
    assert mine.resolve("cohere.command-r-v1:0") == "command-r"
    assert mine.resolve("cohere.command-r-plus-v1:0") == "command-r-plus-04-2024"
    assert mine.resolve("x") == "gpt-4o"


def test_every_bundled_entry_is_complete_and_dated() -> None:
    assert TABLE.as_of >= "2025-01-01"
    vendors = {"openai", "anthropic", "google", "mistral", "meta", "deepseek", "alibaba", "cohere"}
    for key, prices in TABLE.history.items():
        assert key == key.lower()
        assert len(prices) == 1 and prices[0].effective_from_ns == 0
        assert TABLE.vendors[key] in vendors, key
        assert match_model(key, TABLE.history.keys()) == key  # every entry matches itself
        cheaper = TABLE.cheaper.get(key)
        if cheaper is not None:  # a cheaper tier exists, and is cheaper
            assert cheaper in TABLE.history, (key, cheaper)
            assert TABLE.history[cheaper][0].input < prices[0].input, key


def test_costs_are_exact_integers() -> None:
    gpt4o = TABLE.price_at("gpt-4o", 1)
    assert gpt4o == Price(2_500_000, 10_000_000, 1_250_000)
    # 800 uncached x 2.5 + 200 cached x 1.25 + 500 out x 10 USD per million
    assert call_cost_nanousd(gpt4o, 1000, 500, 200) == 7_250_000
    # cached tokens beyond the input are clamped (never a negative uncached count)
    assert call_cost_nanousd(gpt4o, 100, 0, 1000) == 100 * 1_250
    # no cached price: cached tokens cost the input price
    assert call_cost_nanousd(Price(1_000_000, 2_000_000), 10, 0, 10) == 10_000
    # 1 token at 0.02 USD per million = 20 nano-USD
    emb = TABLE.price_at("text-embedding-3-small", 1)
    assert emb is not None
    assert call_cost_nanousd(emb, 1, None, None) == 20
    assert call_cost_nanousd(emb, 1_000_000, None, None) == 20_000_000  # 0.02 USD
    # below a nano-dollar a call rounds half up: 1 pico-USD per token
    tiny = Price(1, 1)
    assert call_cost_nanousd(tiny, 499, None, None) == 0
    assert call_cost_nanousd(tiny, 500, None, None) == 1


@given(
    st.lists(
        st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6)),
        max_size=50,
    )
)
def test_sum_of_costs_matches_decimal_arithmetic(calls: list[tuple[int, int, int]]) -> None:
    price = Price(2_500_000, 10_000_000, 1_250_000)
    total = sum(call_cost_nanousd(price, i, o, c) for i, o, c in calls)
    exact = Decimal(0)
    for i, o, c in calls:
        c = min(c, i)
        usd = (Decimal(i - c) * Decimal("2.5") + c * Decimal("1.25") + o * 10) / 10**6
        exact += (usd * 10**9).quantize(Decimal(1), rounding="ROUND_HALF_UP")
    assert total == exact


def test_overrides_apply_from_their_effective_date() -> None:
    table = TABLE.with_overrides(
        [
            ("GPT-4o", Price(5_000_000, 20_000_000, None, 1_000, "override", 1)),
            ("gpt-4o", Price(3_000_000, 12_000_000, None, 2_000, "override", 2)),
            ("my-model", Price(1_000_000, 1_000_000, None, 0, "override", 3)),
        ]
    )
    assert table.price_at("gpt-4o", 999) == TABLE.price_at("gpt-4o", 999)  # bundled before
    assert table.price_at("gpt-4o", 1_000).input == 5_000_000  # type: ignore[union-attr]
    assert table.price_at("gpt-4o", 1_999).input == 5_000_000  # type: ignore[union-attr]
    assert table.price_at("gpt-4o", 10**18).input == 3_000_000  # type: ignore[union-attr]
    # user names are matched like bundled ones, and a bundled model keeps its history
    assert table.resolve("my-model-2025-01-01") == "my-model"
    assert table.resolve("openai/gpt-4o-2024-08-06") == "gpt-4o"
    # an override "since always" replaces the bundled price
    always = TABLE.with_overrides([("gpt-4o", Price(1, 2, None, 0, "override", 9))])
    assert always.price_at("gpt-4o", 5) == Price(1, 2, None, 0, "override", 9)


@pytest.mark.parametrize(
    ("value", "micro"),
    [("2.50", 2_500_000), (2.5, 2_500_000), ("0.0375", 37_500), ("0", 0), ("0.000001", 1)],
)
def test_usd_to_micro(value: object, micro: int) -> None:
    assert usd_to_micro(value) == micro


@pytest.mark.parametrize("value", ["-1", "abc", "0.0000001", "nan", "inf", "1e9", True])
def test_usd_to_micro_refuses(value: object) -> None:
    with pytest.raises(ValueError):
        usd_to_micro(value)


def test_micro_to_usd() -> None:
    assert micro_to_usd(2_500_000) == "2.5"
    assert micro_to_usd(37_500) == "0.0375"
    assert micro_to_usd(10_000_000) == "10"
    assert micro_to_usd(0) == "0"
