"""Redaction rules as tables: keys, values, PII, custom patterns, the allow-list (pure)."""

from __future__ import annotations

import pytest

from pharos.sdk.redact import REDACTED, Redactor

R = Redactor()
PII = Redactor(pii=True)

SECRET_KEYS = [
    "password",
    "db_password",
    "user.passwd",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "refreshToken",
    "csrf-token",
    "api_key",
    "apiKey",
    "x-api-key",
    "OPENAI_API_KEY",
    "authorization",
    "http.request.header.authorization",
    "cookie",
    "http.response.header.set-cookie",
    "private_key",
    "aws_secret_access_key",
    "credentials",
    "jwt",
]
PLAIN_KEYS = [
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.request.max_tokens",
    "llm.token_count.prompt",
    "token_count",
    "tokenizer",
    "author",
    "user.name",
    "cache.key",
    "keyboard",
    "gen_ai.request.model",
]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_keys_lose_their_whole_value(key: str) -> None:
    assert R.is_secret_key(key)
    assert R.redact_value(key, "anything at all") == REDACTED
    assert R.redact_value(key, 1234) == REDACTED


@pytest.mark.parametrize("key", PLAIN_KEYS)
def test_ordinary_keys_keep_their_value(key: str) -> None:
    assert not R.is_secret_key(key)
    assert R.redact_value(key, 42) == 42
    assert R.redact_value(key, "gpt-4o-mini") == "gpt-4o-mini"


VALUES = [
    # (text, redacted text) — secrets are replaced where they stand
    ("Authorization: Bearer eyJhbGciOi.abcdefghij", "Authorization: [REDACTED]"),
    ("retry with bearer abcdefgh12345678 now", "retry with [REDACTED] now"),
    ("key=sk-proj-Abcdefghijklmnop1234567890 used", "key=[REDACTED] used"),
    ("anthropic sk-ant-api03-abcdefghijklmnopqrstuv", "anthropic [REDACTED]"),
    ("stripe sk_live_abcdefghijklmnop1234", "stripe [REDACTED]"),
    ("AKIAIOSFODNN7EXAMPLE was used", "[REDACTED] was used"),
    ("gh token ghp_abcdefghijklmnopqrstuvwxyz0123456789", "gh token [REDACTED]"),
    ("slack xoxb-1234567890-abcdefghij", "slack [REDACTED]"),
    ("google AIzaSyA1234567890abcdefghijklmnopqrstuv", "google [REDACTED]"),
    (
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "jwt [REDACTED]",
    ),
    ("connect password=hunter2 to db", "connect password=[REDACTED] to db"),
    ("PASSWORD=hunter2", "PASSWORD=[REDACTED]"),
    ("token: Bearer abcdefghijklmnop", "token: [REDACTED]"),
    ("authorization=Basic dXNlcjpwYXNzd29yZA==", "authorization=[REDACTED]"),
    ("X-Api-Key: abcdef123456 sent", "X-Api-Key: [REDACTED] sent"),
    ("aws_secret_access_key: wJalrXUtnFEMI/K7MDENG", "aws_secret_access_key: [REDACTED]"),
    ('{"password": "hunter2", "user": "bob"}', '{"password": "[REDACTED]", "user": "bob"}'),
    ("client_secret='abc123'", "client_secret='[REDACTED]'"),
    ("postgresql://app:s3cr3t@db:5432/x", "postgresql://app:[REDACTED]@db:5432/x"),
    (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
        "[REDACTED]",
    ),
    # not secrets
    ("max_tokens=512 and token_count=40", "max_tokens=512 and token_count=40"),
    ("the task is done", "the task is done"),
    ("ask-me-anything", "ask-me-anything"),
    (
        "mail bob@example.com about 4111 1111 1111 1111",
        "mail bob@example.com about 4111 1111 1111 1111",
    ),
    ("already password=[REDACTED]", "already password=[REDACTED]"),
]


@pytest.mark.parametrize(("text", "expected"), VALUES)
def test_secret_looking_values(text: str, expected: str) -> None:
    assert R.redact_text(text) == expected


PII_VALUES = [
    ("mail bob.smith+x@example.co.uk today", "mail [REDACTED] today"),
    ("card 4111 1111 1111 1111 ok", "card [REDACTED] ok"),
    ("card 4111-1111-1111-1111", "card [REDACTED]"),
    ("amex 378282246310005", "amex [REDACTED]"),
    # digits that fail the Luhn check are not cards (timestamps, ids)
    ("ts 1712345678901234 id 4111111111111112", "ts 1712345678901234 id 4111111111111112"),
    ("version 1.2.3 at 12:30", "version 1.2.3 at 12:30"),
]


@pytest.mark.parametrize(("text", "expected"), PII_VALUES)
def test_pii_only_when_asked(text: str, expected: str) -> None:
    assert PII.redact_text(text) == expected


def test_custom_keys_patterns_and_allow_list() -> None:
    r = Redactor(keys=["ssn", "internal-id"], patterns=[r"TICKET-\d{4}"], allow=["session.token"])
    assert r.redact_value("user.ssn", "123-45-6789") == REDACTED
    assert r.redact_value("internal_id", 7) == REDACTED
    assert r.redact_text("see TICKET-1234 and TICKET-99") == f"see {REDACTED} and TICKET-99"
    # an allowed key is left alone, even with a secret-looking value
    assert r.redact_value("session.token", "Bearer abcdefghijklmnop") == "Bearer abcdefghijklmnop"
    assert r.redact_value("other.token", "x") == REDACTED


def test_disabled_redactor_changes_nothing() -> None:
    r = Redactor(enabled=False)
    assert r.redact_value("password", "hunter2") == "hunter2"
    assert r.redact_text("Bearer abcdefghijklmnop") == "Bearer abcdefghijklmnop"
    assert r.redact_mapping({"password": "x"}) is None


def test_mapping_copy_only_when_something_changed() -> None:
    clean = {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 3}
    assert R.redact_mapping(clean) is None
    dirty = {"gen_ai.request.model": "gpt-4o", "api_key": "x", "note": ["ok", "Bearer abcdefgh123"]}
    out = R.redact_mapping(dirty)
    assert out == {"gen_ai.request.model": "gpt-4o", "api_key": REDACTED, "note": ["ok", REDACTED]}
    assert dirty["api_key"] == "x"  # the original is untouched


def test_nested_structures_by_key_and_by_value() -> None:
    doc = {
        "user": {"name": "bob", "password": "hunter2", "tokens": 12},
        "headers": [("authorization", "Bearer abcdefgh12345678")],
        "messages": [{"role": "user", "content": "my key is sk-abcdefghijklmnopqrstu"}],
    }
    assert R.redact_structure(doc) == {
        "user": {"name": "bob", "password": REDACTED, "tokens": 12},
        "headers": [("authorization", REDACTED)],
        "messages": [{"role": "user", "content": f"my key is {REDACTED}"}],
    }


def test_repeated_texts_get_the_same_answer_from_the_cache() -> None:
    r = Redactor()
    plain = "execute_tool search_kb"
    for _ in range(3):
        assert r.redact_text("token: Bearer abcdefghijklmnop") == f"token: {REDACTED}"
        assert r.redact_text(plain) is plain  # unchanged text is the same object
    long_secret = "x" * 300 + " sk-abcdefghijklmnopqrstuvwx"  # too long to cache
    assert r.redact_text(long_secret).endswith(REDACTED)
    assert r.redact_text(long_secret).endswith(REDACTED)
