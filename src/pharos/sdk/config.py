"""The SDK's configuration: ``pharos.init()`` arguments, else ``PHAROS_*``, else ``OTEL_*``
environment variables, else defaults (pure: the environment is passed in).

Nothing here raises on bad input: a value that cannot be used is replaced by its default and a
sentence saying so is added to ``Config.problems`` (``init()`` logs them once).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
DEFAULT_SERVICE_NAME = "unknown_service"
#: Instrumentations ``instrument=`` understands by name (see :mod:`pharos.sdk.instrument`).
KNOWN_INSTRUMENTATIONS = ("openai", "anthropic", "langchain", "httpx", "requests")

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}
_SIGNAL_PATH = re.compile(r"/v1/(traces|logs|metrics)/?$")


@dataclass(frozen=True, slots=True)
class Config:
    """Everything :func:`pharos.init` decided, after arguments and environment."""

    enabled: bool = True
    service_name: str = DEFAULT_SERVICE_NAME
    service_version: str | None = None
    environment: str | None = None
    #: Base URL of the Pharos server (``/v1/traces`` etc. are appended); None = do not export.
    endpoint: str | None = DEFAULT_ENDPOINT
    #: Full URLs per signal (from ``OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`` when set).
    traces_url: str | None = DEFAULT_ENDPOINT + "/v1/traces"
    logs_url: str | None = DEFAULT_ENDPOINT + "/v1/logs"
    metrics_url: str | None = DEFAULT_ENDPOINT + "/v1/metrics"
    api_key: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    resource_attributes: Mapping[str, str] = field(default_factory=dict)
    capture_content: bool = False
    max_content_length: int = 4000
    redact: bool = True
    redact_pii: bool = False
    redact_keys: tuple[str, ...] = ()
    redact_patterns: tuple[str, ...] = ()
    redact_allow: tuple[str, ...] = ()
    instrument: tuple[str, ...] = ()
    system_metrics: bool = False
    metrics_interval: float = 30.0
    logs: bool = True
    json_logs: bool | None = None  # None: only when the app has not configured logging
    log_level: str | None = None  # None: INFO when the app has not configured logging
    structlog: bool | None = None  # None: when structlog is installed and not configured
    max_queue_size: int = 2048
    schedule_delay: float = 1.0
    export_timeout: float = 10.0
    shutdown_timeout: float = 5.0
    compression: str = "gzip"
    debug: bool = False
    problems: tuple[str, ...] = ()

    @property
    def auth_headers(self) -> dict[str, str]:
        """Headers sent with every export: the OTEL ones, then the API key as a bearer token."""
        headers = dict(self.headers)
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return headers


def _bool(value: Any, name: str, default: bool, problems: list[str]) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return default
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    problems.append(f"{name}={value!r} is not a boolean; using {default}")
    return default


def _number(
    value: Any, name: str, default: float, problems: list[str], *, minimum: float = 0.0
) -> float:
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        problems.append(f"{name}={value!r} is not a number; using {default}")
        return default
    if not number >= minimum or number != number or number in (float("inf"), float("-inf")):
        problems.append(f"{name}={value!r} must be at least {minimum}; using {default}")
        return default
    return number


def _words(value: Any) -> tuple[str, ...]:
    """A comma-separated string or an iterable of strings -> a tuple of non-empty strings."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, Iterable):
        return tuple(str(part).strip() for part in value if str(part).strip())
    return (str(value).strip(),) if str(value).strip() else ()


def parse_headers(text: str) -> dict[str, str]:
    """``OTEL_EXPORTER_OTLP_HEADERS``: ``k1=v1,k2=v2`` with URL-encoded values."""
    headers: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            headers[unquote(key.strip()).lower()] = unquote(value.strip())
    return headers


def normalize_endpoint(value: str) -> tuple[str | None, str | None]:
    """(base URL, problem): adds ``http://`` when the scheme is missing, drops a trailing
    ``/v1/traces`` (a signal URL given where the base was expected) and a trailing slash."""
    text = value.strip()
    if not text:
        return None, "the endpoint is empty"
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port  # raises ValueError when out of range or not a number
    except ValueError as exc:
        return None, f"endpoint {value!r} is not a URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return None, f"endpoint {value!r} must be an http:// or https:// URL"
    if not parts.hostname:
        return None, f"endpoint {value!r} has no host"
    del port
    return _SIGNAL_PATH.sub("", text).rstrip("/"), None


def _signal_url(explicit: str | None, env: Mapping[str, str], signal: str) -> str | None:
    """``OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`` is a full URL used as is."""
    if explicit is not None:
        return explicit
    specific = env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT", "").strip()
    return specific or None


def resolve(args: Mapping[str, Any], env: Mapping[str, str]) -> Config:
    """The configuration from ``init()``'s keyword arguments (``None`` = not given) and an
    environment mapping. Precedence: argument, ``PHAROS_*``, ``OTEL_*``, default."""
    problems: list[str] = []

    def pick(arg: str, *names: str) -> Any:
        value = args.get(arg)
        if value is not None:
            return value
        for name in names:
            text = env.get(name)
            if text is not None and text.strip() != "":
                return text
        return None

    enabled = _bool(pick("enabled", "PHAROS_SDK_ENABLED"), "enabled", True, problems)
    if _bool(env.get("PHAROS_SDK_DISABLED"), "PHAROS_SDK_DISABLED", False, problems):
        enabled = False
    if args.get("enabled") is None and _bool(
        env.get("OTEL_SDK_DISABLED"), "OTEL_SDK_DISABLED", False, problems
    ):
        enabled = False

    resource: dict[str, str] = {}
    for item in env.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            resource[unquote(key.strip())] = unquote(value.strip())
    extra_resource = args.get("resource_attributes")
    if isinstance(extra_resource, Mapping):
        resource.update({str(k): str(v) for k, v in extra_resource.items()})

    service_name = pick("service_name", "PHAROS_SERVICE_NAME", "OTEL_SERVICE_NAME")
    if service_name is None:
        service_name = resource.get("service.name", DEFAULT_SERVICE_NAME)
    service_name = str(service_name).strip() or DEFAULT_SERVICE_NAME
    version = pick("service_version", "PHAROS_SERVICE_VERSION")
    environment = pick("environment", "PHAROS_ENVIRONMENT")

    headers = parse_headers(env.get("OTEL_EXPORTER_OTLP_HEADERS", ""))
    given_headers = args.get("headers")
    if isinstance(given_headers, Mapping):
        headers.update({str(k).lower(): str(v) for k, v in given_headers.items()})
    api_key = pick("api_key", "PHAROS_API_KEY")

    raw_endpoint = pick("endpoint", "PHAROS_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
    endpoint: str | None
    explicit = args.get("endpoint") is not None or env.get("PHAROS_ENDPOINT", "").strip() != ""
    if raw_endpoint is None:
        endpoint = DEFAULT_ENDPOINT
    else:
        endpoint, problem = normalize_endpoint(str(raw_endpoint))
        if problem:
            problems.append(f"{problem}; nothing will be exported")
    urls: dict[str, str | None] = {}
    for signal in ("traces", "logs", "metrics"):
        base = f"{endpoint}/v1/{signal}" if endpoint else None
        # A Pharos endpoint given as an argument or PHAROS_ENDPOINT wins over OTEL's per-signal
        # endpoints; otherwise those are honoured as OpenTelemetry documents them.
        urls[signal] = base if explicit or not endpoint else _signal_url(None, env, signal) or base
    protocol = env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").strip().lower()
    if protocol and protocol != "http/protobuf":
        problems.append(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol} is ignored: the Pharos SDK sends "
            "OTLP/HTTP protobuf"
        )

    capture = _bool(
        pick("capture_content", "PHAROS_CAPTURE_CONTENT"), "capture_content", False, problems
    )
    max_content = int(
        _number(
            pick("max_content_length", "PHAROS_MAX_CONTENT_LENGTH"),
            "max_content_length",
            4000,
            problems,
            minimum=16,
        )
    )

    redact = _bool(pick("redact", "PHAROS_REDACT"), "redact", True, problems)
    redact_pii = _bool(pick("redact_pii", "PHAROS_REDACT_PII"), "redact_pii", False, problems)
    redact_keys = _words(pick("redact_keys", "PHAROS_REDACT_KEYS"))
    redact_allow = _words(pick("redact_allow", "PHAROS_REDACT_ALLOW"))
    patterns_arg = args.get("redact_patterns")
    if patterns_arg is None:
        # Regular expressions contain commas: one per line in the environment variable.
        env_patterns = env.get("PHAROS_REDACT_PATTERNS", "")
        redact_patterns = tuple(p.strip() for p in env_patterns.splitlines() if p.strip())
    elif isinstance(patterns_arg, str):
        redact_patterns = (patterns_arg,)
    else:
        redact_patterns = _words(patterns_arg)
    valid_patterns = []
    for pattern in redact_patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            problems.append(f"redaction pattern {pattern!r} is not a regular expression ({exc})")
        else:
            valid_patterns.append(pattern)

    instrument = tuple(
        name.lower() if ":" not in name else name
        for name in _words(pick("instrument", "PHAROS_INSTRUMENT"))
    )
    system_metrics = _bool(
        pick("system_metrics", "PHAROS_SYSTEM_METRICS"), "system_metrics", False, problems
    )
    metrics_interval = _number(
        pick("metrics_interval", "PHAROS_METRICS_INTERVAL"),
        "metrics_interval",
        30.0,
        problems,
        minimum=0.05,
    )

    logs = _bool(pick("logs", "PHAROS_LOGS"), "logs", True, problems)
    json_raw = pick("json_logs", "PHAROS_JSON_LOGS")
    json_logs = None if json_raw is None else _bool(json_raw, "json_logs", False, problems)
    level: str | None = None
    if args.get("log_level") is not None:
        level = str(args["log_level"]).strip().upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            problems.append(f"log_level={args['log_level']!r} is not a level; using INFO")
            level = "INFO"
    structlog_raw = args.get("structlog")
    structlog = None if structlog_raw is None else bool(structlog_raw)

    queue = int(
        _number(
            pick("max_queue_size", "PHAROS_MAX_QUEUE_SIZE"),
            "max_queue_size",
            2048,
            problems,
            minimum=1,
        )
    )
    delay = _number(
        pick("schedule_delay", "PHAROS_SCHEDULE_DELAY"), "schedule_delay", 1.0, problems
    )
    timeout = _number(
        pick("export_timeout", "PHAROS_EXPORT_TIMEOUT"),
        "export_timeout",
        10.0,
        problems,
        minimum=0.01,
    )
    shutdown_timeout = _number(
        pick("shutdown_timeout", "PHAROS_SHUTDOWN_TIMEOUT"), "shutdown_timeout", 5.0, problems
    )
    compression = (
        str(pick("compression", "OTEL_EXPORTER_OTLP_COMPRESSION") or "gzip").strip().lower()
    )
    if compression not in ("gzip", "none"):
        problems.append(f"compression {compression!r} is not gzip or none; using gzip")
        compression = "gzip"

    debug = _bool(pick("debug", "PHAROS_SDK_DEBUG"), "debug", False, problems)

    return Config(
        debug=debug,
        enabled=enabled,
        service_name=service_name,
        service_version=str(version) if version is not None else None,
        environment=str(environment) if environment is not None else None,
        endpoint=endpoint,
        traces_url=urls["traces"],
        logs_url=urls["logs"],
        metrics_url=urls["metrics"],
        api_key=(str(api_key).strip() or None) if api_key is not None else None,
        headers=headers,
        resource_attributes=resource,
        capture_content=capture,
        max_content_length=max_content,
        redact=redact,
        redact_pii=redact_pii,
        redact_keys=redact_keys,
        redact_patterns=tuple(valid_patterns),
        redact_allow=redact_allow,
        instrument=instrument,
        system_metrics=system_metrics,
        metrics_interval=metrics_interval,
        logs=logs,
        json_logs=json_logs,
        log_level=level,
        structlog=structlog,
        max_queue_size=queue,
        schedule_delay=delay,
        export_timeout=timeout,
        shutdown_timeout=shutdown_timeout,
        compression=compression,
        problems=tuple(problems),
    )


def unknown_instrumentations(names: Sequence[str]) -> list[str]:
    """Names that are neither known nor a ``module:Class`` path."""
    return [n for n in names if n not in KNOWN_INSTRUMENTATIONS and ":" not in n]
