"""pharos.init() settings: arguments, then PHAROS_*, then OTEL_*, then defaults (pure)."""

from __future__ import annotations

import pytest

from pharos.sdk.config import DEFAULT_ENDPOINT, normalize_endpoint, parse_headers, resolve


def test_defaults() -> None:
    cfg = resolve({}, {})
    assert cfg.enabled
    assert cfg.endpoint == DEFAULT_ENDPOINT == "http://127.0.0.1:4318"
    assert cfg.traces_url == "http://127.0.0.1:4318/v1/traces"
    assert cfg.logs_url == "http://127.0.0.1:4318/v1/logs"
    assert cfg.metrics_url == "http://127.0.0.1:4318/v1/metrics"
    assert cfg.service_name == "unknown_service"
    assert not cfg.capture_content
    assert cfg.redact and not cfg.redact_pii
    assert cfg.auth_headers == {}
    assert cfg.problems == ()


def test_argument_beats_pharos_env_beats_otel_env() -> None:
    env = {
        "PHAROS_SERVICE_NAME": "from-pharos",
        "OTEL_SERVICE_NAME": "from-otel",
        "PHAROS_ENDPOINT": "http://pharos:4318",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
    }
    assert resolve({}, env).service_name == "from-pharos"
    assert resolve({"service_name": "from-arg"}, env).service_name == "from-arg"
    del env["PHAROS_SERVICE_NAME"]
    assert resolve({}, env).service_name == "from-otel"
    assert resolve({}, env).endpoint == "http://pharos:4318"
    del env["PHAROS_ENDPOINT"]
    assert resolve({}, env).traces_url == "http://collector:4318/v1/traces"
    assert resolve({"endpoint": "https://p.example:443"}, env).endpoint == "https://p.example:443"


def test_otel_signal_endpoints_and_resource_attributes() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces.example/custom/path",
        "OTEL_RESOURCE_ATTRIBUTES": "service.name=checkout,team=payments%20core",
    }
    cfg = resolve({}, env)
    assert cfg.traces_url == "http://traces.example/custom/path"
    assert cfg.logs_url == "http://collector:4318/v1/logs"
    assert cfg.service_name == "checkout"
    assert cfg.resource_attributes["team"] == "payments core"
    # A Pharos endpoint given explicitly is used for every signal.
    assert resolve({"endpoint": "http://p:1"}, env).traces_url == "http://p:1/v1/traces"


def test_api_key_becomes_a_bearer_header_next_to_otel_headers() -> None:
    env = {"OTEL_EXPORTER_OTLP_HEADERS": "X-Tenant=acme,x-trace=a%3Db", "PHAROS_API_KEY": "phk_1"}
    cfg = resolve({}, env)
    assert cfg.auth_headers == {
        "x-tenant": "acme",
        "x-trace": "a=b",
        "authorization": "Bearer phk_1",
    }
    assert resolve({"api_key": "phk_2"}, env).auth_headers["authorization"] == "Bearer phk_2"


@pytest.mark.parametrize(
    ("given", "base"),
    [
        ("http://127.0.0.1:4318", "http://127.0.0.1:4318"),
        ("127.0.0.1:4318", "http://127.0.0.1:4318"),
        ("https://pharos.example.com/", "https://pharos.example.com"),
        ("http://pharos:4318/v1/traces", "http://pharos:4318"),
        ("http://pharos:4318/prefix/v1/logs/", "http://pharos:4318/prefix"),
    ],
)
def test_endpoint_normalisation(given: str, base: str) -> None:
    assert normalize_endpoint(given) == (base, None)


@pytest.mark.parametrize("bad", ["ftp://pharos", "http://", "http://host:99999", "   "])
def test_an_unusable_endpoint_disables_export_with_a_reason(bad: str) -> None:
    cfg = resolve({"endpoint": bad}, {})
    assert cfg.endpoint is None and cfg.traces_url is None and cfg.logs_url is None
    assert len(cfg.problems) == 1 and "nothing will be exported" in cfg.problems[0]


def test_bad_values_fall_back_to_defaults_with_a_problem_each() -> None:
    env = {
        "PHAROS_CAPTURE_CONTENT": "maybe",
        "PHAROS_MAX_QUEUE_SIZE": "lots",
        "PHAROS_EXPORT_TIMEOUT": "-1",
        "PHAROS_REDACT_PATTERNS": "ok-[0-9]+\n(unclosed",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
    }
    cfg = resolve({"log_level": "LOUD", "compression": "brotli"}, env)
    assert not cfg.capture_content
    assert cfg.max_queue_size == 2048
    assert cfg.export_timeout == 10.0
    assert cfg.redact_patterns == ("ok-[0-9]+",)
    assert cfg.log_level == "INFO"
    assert cfg.compression == "gzip"
    assert len(cfg.problems) == 7, cfg.problems


def test_booleans_lists_and_numbers_from_the_environment() -> None:
    env = {
        "PHAROS_CAPTURE_CONTENT": "yes",
        "PHAROS_REDACT_PII": "1",
        "PHAROS_REDACT_KEYS": "ssn, internal_id",
        "PHAROS_REDACT_ALLOW": "user.token_hint",
        "PHAROS_INSTRUMENT": "OpenAI,httpx",
        "PHAROS_SYSTEM_METRICS": "true",
        "PHAROS_MAX_CONTENT_LENGTH": "100",
        "PHAROS_SHUTDOWN_TIMEOUT": "1.5",
        "PHAROS_ENVIRONMENT": "staging",
    }
    cfg = resolve({}, env)
    assert cfg.capture_content and cfg.redact_pii and cfg.system_metrics
    assert cfg.redact_keys == ("ssn", "internal_id")
    assert cfg.redact_allow == ("user.token_hint",)
    assert cfg.instrument == ("openai", "httpx")
    assert cfg.max_content_length == 100
    assert cfg.shutdown_timeout == 1.5
    assert cfg.environment == "staging"
    assert resolve({"instrument": ["anthropic"]}, env).instrument == ("anthropic",)


@pytest.mark.parametrize(
    ("args", "env", "enabled"),
    [
        ({}, {"PHAROS_SDK_DISABLED": "true"}, False),
        ({}, {"OTEL_SDK_DISABLED": "true"}, False),
        ({"enabled": True}, {"OTEL_SDK_DISABLED": "true"}, True),
        ({"enabled": False}, {}, False),
        ({}, {"PHAROS_SDK_ENABLED": "0"}, False),
    ],
)
def test_disabling(args: dict, env: dict, enabled: bool) -> None:
    assert resolve(args, env).enabled is enabled


def test_parse_headers_skips_garbage() -> None:
    assert parse_headers("a=1,,=2,novalue,b = two ") == {"a": "1", "b": "two"}
