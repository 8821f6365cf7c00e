"""All server configuration in one typed object (env prefix ``PHAROS_``, optional ``pharos.toml``).

Nothing else in the server reads the environment: ``create_app`` and the CLI build a
:class:`Settings` and hand it down.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal
from urllib.parse import unquote

import orjson
from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

#: A list setting given as JSON (`["a", "b"]`) or, in the environment, as `a,b`.
CommaList = Annotated[list[str], NoDecode]
#: Headers given as JSON (`{"k": "v"}`) or as OTEL_EXPORTER_OTLP_HEADERS does (`k=v,k2=v2`).
HeaderMap = Annotated[dict[str, str], NoDecode]
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class Settings(BaseSettings):
    """Server settings. Every field is documented in ``docs/configuration.md`` (a test checks)."""

    model_config = SettingsConfigDict(
        env_prefix="PHAROS_",
        toml_file="pharos.toml",
        extra="ignore",
        validate_default=True,
    )

    database_url: str = Field(
        default="sqlite:///./pharos.db",
        description="SQLAlchemy URL: sqlite:///path.db or postgresql+psycopg://user@host/db.",
    )
    host: str = Field(default="127.0.0.1", description="Address the HTTP server binds to.")
    port: int = Field(default=4318, ge=0, le=65535, description="HTTP port (OTLP/HTTP default).")
    grpc_enabled: bool = Field(
        default=True, description="Serve OTLP/gRPC (traces, logs, metrics) beside OTLP/HTTP."
    )
    grpc_host: str | None = Field(
        default=None, description="Address the OTLP/gRPC server binds to; unset = `host`."
    )
    grpc_port: int = Field(
        default=4317,
        ge=0,
        le=65535,
        description="OTLP/gRPC port (4317 is the OTLP/gRPC default; 0 picks a free port).",
    )
    insecure: bool = Field(
        default=False,
        description="Allow binding to a non-loopback address without API keys.",
    )
    key_cache_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="How long an instance trusts a looked-up API key; a revocation takes effect "
        "on every instance within this time.",
    )
    max_json_body_bytes: int = Field(
        default=1024 * 1024,
        gt=0,
        description="Largest body of a POST/PUT/PATCH/DELETE to /api (bytes); OTLP has its own.",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description='Origins allowed by CORS, JSON `["https://app.example.com"]`; empty = off.',
    )
    key_rpm: int | None = Field(
        default=None,
        ge=1,
        description="Gateway requests per minute per API key, for keys without their own "
        "`rpm` (unset = no per-key limit).",
    )
    key_tpm: int | None = Field(
        default=None,
        ge=1,
        description="LLM tokens per minute per API key through the LLM proxy, for keys without "
        "their own `tpm` (unset = no limit).",
    )
    key_max_queue: int = Field(
        default=20,
        ge=0,
        le=10_000,
        description="Requests of one API key that may wait for its rate limit (0 = refuse at "
        "once).",
    )
    key_max_wait_seconds: float = Field(
        default=10.0,
        ge=0,
        le=600,
        description="Longest wait of a request in its API key's rate-limit queue.",
    )
    gateway_max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        gt=0,
        description="Largest request body through the gateway (bytes); larger gets 413.",
    )
    llm_upstream_url: str | None = Field(
        default=None,
        description="OpenAI-compatible base URL the LLM proxy forwards to, e.g. "
        "`https://api.openai.com/v1` or `http://127.0.0.1:11434/v1` (Ollama).",
    )
    llm_upstream_api_key: str | None = Field(
        default=None,
        description="Key the LLM proxy sends upstream (`Authorization: Bearer`); unset = the "
        "client's own Authorization header is passed through.",
    )
    gateway_timeout_seconds: float = Field(
        default=300.0, gt=0, description="Longest wait for an upstream through the gateway."
    )
    budget_cache_seconds: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="How long the gateway reuses an evaluation of the budgets (per instance).",
    )
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = Field(
        default="FULL",
        description=(
            "SQLite PRAGMA synchronous. FULL (default) fsyncs the WAL at every commit, so an "
            "acknowledged span survives power loss; NORMAL survives a process crash but may "
            "lose the last commits on power loss."
        ),
    )
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        gt=0,
        description="Largest request body accepted (bytes, as sent).",
    )
    max_decompressed_bytes: int = Field(
        default=64 * 1024 * 1024,
        gt=0,
        description="Largest body after gunzip; a bigger one (a gzip bomb) gets 413.",
    )
    max_attributes: int = Field(
        default=256,
        gt=0,
        description=(
            "Attributes kept per span; extra ones are dropped, except those Pharos reads "
            "(agent, model, tokens, cost, kind)."
        ),
    )
    max_attribute_length: int = Field(
        default=32 * 1024, gt=0, description="Longest string attribute value kept (characters)."
    )
    ingest_workers: int = Field(
        default=1,
        ge=0,
        le=64,
        description=(
            "Worker processes that decode and normalize OTLP bodies; 0 does it in threads of "
            "the server process. The default, 1, lets a second core do that work (about 1.5x "
            "the ingest throughput of 0 on two cores; see bench/)."
        ),
    )
    gc_tuning: bool = Field(
        default=True,
        description=(
            "Freeze the started server's objects out of the garbage collector and run young "
            "collections every 50,000 allocations, not 700 (shorter pauses: docs/deployment.md)."
        ),
    )
    malloc_trim_seconds: float = Field(
        default=30.0,
        ge=0,
        description=(
            "Every this many seconds, hand the memory malloc has freed back to the kernel "
            "(glibc's malloc_trim; 0: never). Without it the server's RSS grew by the minute "
            "(docs/deployment.md, Memory)."
        ),
    )
    sqlite_heap_limit_mib: int = Field(
        default=128,
        ge=0,
        description=(
            "SQLite's soft heap limit for the whole process (MiB; 0: none): past it, SQLite "
            "reuses cached pages instead of growing its connections' page caches."
        ),
    )
    writer_queue_size: int = Field(
        default=256,
        gt=0,
        description="Ingest requests waiting for the writer; when full, ingest answers 503.",
    )
    writer_batch_spans: int = Field(
        default=4096, gt=0, description="Most spans the writer commits in one transaction."
    )
    retry_after_seconds: int = Field(
        default=1, ge=1, description="Retry-After sent with 503/429 when the server is overloaded."
    )
    auto_migrate: bool = Field(
        default=True, description="Apply database migrations when the server starts."
    )
    health_error_rate_warning: float = Field(
        default=1.0, ge=0, le=100, description="Error rate (%) above which health degrades."
    )
    health_error_rate_critical: float = Field(
        default=5.0, ge=0, le=100, description="Error rate (%) at which health is critical."
    )
    health_p99_warning_ms: float = Field(
        default=2000.0, gt=0, description="p99 latency (ms) above which health degrades."
    )
    health_p99_critical_ms: float = Field(
        default=10000.0, gt=0, description="p99 latency (ms) at which health is critical."
    )
    health_alerts_warning: int = Field(
        default=0,
        ge=0,
        description="Firing alerts the alerts component of health tolerates; above, it degrades.",
    )
    health_alerts_critical: int = Field(
        default=3, ge=1, description="Firing alerts that take the alerts component to zero."
    )
    metrics_max_agents: int = Field(
        default=100,
        ge=1,
        description="Agents (and models per agent) named on /metrics; the rest count as other.",
    )
    prices_refresh_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How often the ingest price book re-reads price overrides (other instances).",
    )
    model_aliases: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Model names to price as another model, e.g. Azure deployment names: JSON "
            '`{"prod-gpt4o": "gpt-4o"}` (env) or a `[model_aliases]` table (pharos.toml).'
        ),
    )
    budget_check_seconds: float = Field(
        default=60.0, gt=0, description="How often budgets are evaluated for threshold crossings."
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis for live fan-out across instances, e.g. `redis://127.0.0.1:6379/0`.",
    )
    live_heartbeat_seconds: float = Field(
        default=10.0, gt=0, description="Heartbeat interval of the live WebSocket and SSE streams."
    )
    live_summary_seconds: float = Field(
        default=1.0, gt=0, description="How often live subscribers get fresh summary numbers."
    )
    alert_eval_interval_seconds: float = Field(
        default=30.0, gt=0, description="How often alert rules are evaluated (one instance does)."
    )
    alert_default_rules: bool = Field(
        default=True, description="Create the default alert rules on first start (once)."
    )
    alert_dashboard_url: str | None = Field(
        default=None,
        description="Public base URL of the dashboard for links in notifications; unset = "
        "http://host:port (127.0.0.1 for a wildcard bind).",
    )
    alert_send_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of one notification delivery (HTTP or SMTP)."
    )
    alert_retry_base_seconds: float = Field(
        default=2.0, gt=0, description="First retry delay of a failed notification (doubles)."
    )
    alert_retry_max_seconds: float = Field(
        default=600.0, gt=0, description="Longest delay between two delivery attempts."
    )
    alert_max_attempts: int = Field(
        default=25, ge=1, description="Delivery attempts before a notification is marked failed."
    )
    alert_outbox_poll_seconds: float = Field(
        default=1.0, gt=0, description="How often the outbox worker looks for due notifications."
    )
    alert_slack_webhook_url: str | None = Field(
        default=None, description="Slack incoming webhook: channel `env-slack`, every severity."
    )
    alert_pagerduty_routing_key: str | None = Field(
        default=None, description="PagerDuty Events API v2 routing key: `env-pagerduty`, critical."
    )
    alert_pagerduty_url: str = Field(
        default="https://events.pagerduty.com/v2/enqueue",
        description="PagerDuty Events API v2 endpoint.",
    )
    alert_webhook_url: str | None = Field(
        default=None, description="Generic webhook URL: channel `env-webhook`, every severity."
    )
    alert_webhook_secret: str | None = Field(
        default=None, description="HMAC-SHA256 key signing `env-webhook` requests."
    )
    alert_smtp_host: str | None = Field(
        default=None, description="SMTP server for e-mail alerts: `env-email`, error + critical."
    )
    alert_smtp_port: int = Field(default=25, ge=1, le=65535, description="SMTP port.")
    alert_smtp_username: str | None = Field(default=None, description="SMTP login (optional).")
    alert_smtp_password: str | None = Field(default=None, description="SMTP password.")
    alert_smtp_starttls: bool = Field(default=False, description="Use STARTTLS on the SMTP port.")
    alert_smtp_from: str = Field(
        default="pharos@localhost", description="Sender address of alert e-mails."
    )
    alert_smtp_to: list[str] = Field(
        default_factory=list,
        description='Recipients of alert e-mails: JSON `["oncall@example.com"]` (env) or a list.',
    )
    # --- interop (issue 9): forwarding, deep links, reports --------------------------------------
    forward_otlp: CommaList = Field(
        default_factory=list,
        description="OTLP/HTTP base URLs every accepted trace/metric/log request is also sent "
        "to (`/v1/traces` etc. appended), comma-separated: `http://tempo:4318,http://jaeger:4318`.",
    )
    forward_otlp_traces: CommaList = Field(
        default_factory=list,
        description="Full OTLP/HTTP trace URLs; when set, used for traces instead of "
        "PHAROS_FORWARD_OTLP (as OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is).",
    )
    forward_otlp_metrics: CommaList = Field(
        default_factory=list,
        description="Full OTLP/HTTP metrics URLs; when set, used for metrics instead of "
        "PHAROS_FORWARD_OTLP.",
    )
    forward_otlp_logs: CommaList = Field(
        default_factory=list,
        description="Full OTLP/HTTP logs URLs; when set, used for logs instead of "
        "PHAROS_FORWARD_OTLP.",
    )
    forward_signals: CommaList = Field(
        default_factory=lambda: ["traces", "metrics", "logs"],
        description="Signals sent to the PHAROS_FORWARD_OTLP targets: traces, metrics, logs.",
    )
    forward_headers: HeaderMap = Field(
        default_factory=dict,
        description="Headers sent with every forwarded request, `k=v,k2=v2` (URL-encoded "
        'values, like OTEL_EXPORTER_OTLP_HEADERS) or JSON `{"authorization": "Bearer x"}`.',
    )
    forward_agents: CommaList = Field(
        default_factory=list,
        description="Forward only these agents (names or shell patterns like `support-*`, "
        "comma-separated); empty = every agent.",
    )
    forward_max_queue: int = Field(
        default=10000,
        ge=1,
        description="Requests queued per target at most; beyond it the oldest are dropped "
        "(counted on /metrics as dropped, reason queue_full, and logged).",
    )
    forward_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of one forwarded request."
    )
    forward_retry_base_seconds: float = Field(
        default=1.0, gt=0, description="First retry delay after a target failed (doubles)."
    )
    forward_retry_max_seconds: float = Field(
        default=300.0, gt=0, description="Longest delay between two tries of a failing target."
    )
    forward_poll_seconds: float = Field(
        default=1.0, gt=0, description="How often the forwarding worker looks for queued requests."
    )
    link_jaeger_url: str | None = Field(
        default=None,
        description="Jaeger UI base URL, e.g. `http://jaeger:16686`: traces link to "
        "`/trace/{trace_id}` there.",
    )
    link_tempo_url: str | None = Field(
        default=None,
        description="Grafana base URL with a Tempo data source: traces link to Explore there.",
    )
    link_tempo_datasource: str = Field(
        default="tempo", description="The uid of the Tempo data source in Grafana."
    )
    link_langfuse_url: str | None = Field(
        default=None,
        description="Langfuse base URL, e.g. `https://cloud.langfuse.com` (with "
        "PHAROS_LINK_LANGFUSE_PROJECT): traces link to their Langfuse trace.",
    )
    link_langfuse_project: str | None = Field(
        default=None, description="Langfuse project id used in trace links."
    )
    link_langsmith_url: str | None = Field(
        default=None,
        description="LangSmith base URL, e.g. `https://smith.langchain.com` (with the org and "
        "project settings): spans with a run id link to their LangSmith run.",
    )
    link_langsmith_org: str | None = Field(
        default=None, description="LangSmith organization (tenant) id used in run links."
    )
    link_langsmith_project: str | None = Field(
        default=None, description="LangSmith project (session) id used in run links."
    )
    link_langsmith_attributes: CommaList = Field(
        default_factory=lambda: ["langsmith.run_id", "langsmith.span.id", "langchain.run_id"],
        description="Span attributes holding a LangSmith/LangChain run id, first found wins.",
    )
    link_templates: list[dict[str, str]] = Field(
        default_factory=list,
        description='More links, JSON `[{"system": "x", "label": "Open in X", "url": '
        '"https://x.example/t/{trace_id}"}]`; `{trace_id}`, `{span_id}` and '
        "`{attr:key}` (a span attribute, `{attr:a|b}` the first present) are filled in, "
        "URL-encoded.",
    )
    report_channels: CommaList = Field(
        default_factory=list,
        description="Alerting channels (by name, e.g. `env-email,env-slack`) that receive the "
        "scheduled reports; empty = no reports are sent.",
    )
    report_daily_time: str = Field(
        default="08:00",
        description="When the daily health report is sent (HH:MM, UTC); empty = never.",
    )
    report_weekly_day: str = Field(
        default="monday",
        description="Day the weekly performance & cost summary is sent (at the daily time); "
        "empty = never.",
    )
    report_success_target: float = Field(
        default=99.9,
        gt=0,
        le=100,
        description="Success ratio (%) reports hold an agent without an SLO against.",
    )
    report_p95_target_ms: float = Field(
        default=200.0,
        gt=0,
        description="p95 latency (ms) reports hold an agent without an SLO against.",
    )
    report_check_seconds: float = Field(
        default=60.0, gt=0, description="How often the report scheduler checks if one is due."
    )
    # --- operations (issue 8): retention, readiness, shutdown ------------------------------
    retention_enabled: bool = Field(
        default=True, description="Prune old data in the background (one instance at a time)."
    )
    retention_interval_seconds: float = Field(
        default=300.0, gt=0, description="How often the retention job looks for data to prune."
    )
    retention_batch_rows: int = Field(
        default=5000,
        ge=100,
        le=1_000_000,
        description="Rows deleted per statement by the retention job (short locks).",
    )
    retention_spans_hours: float = Field(
        default=72.0, gt=0, description="Keep spans (and their traces rows) this many hours."
    )
    retention_logs_hours: float = Field(
        default=24.0, gt=0, description="Keep log records this many hours."
    )
    retention_metrics_days: float = Field(
        default=7.0, gt=0, description="Keep OTLP metric points (and idle series) this many days."
    )
    retention_rollups_1m_days: float = Field(
        default=14.0, gt=0, description="Keep minute rollups this many days."
    )
    retention_rollups_days: float = Field(
        default=90.0,
        gt=0,
        description="Keep hour and day rollups (and daily model usage) this many days.",
    )
    retention_errors_days: float = Field(
        default=30.0, gt=0, description="Keep per-minute error occurrences this many days."
    )
    retention_alerts_days: float = Field(
        default=30.0,
        gt=0,
        description="Keep alert history, resolved alerts and sent/failed notifications this "
        "many days.",
    )
    ready_max_queue_fraction: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="/readyz answers 503 when the writer queue is fuller than this fraction.",
    )
    ready_requires_redis: bool = Field(
        default=False,
        description="/readyz answers 503 while Redis is unreachable (default: reported only; "
        "the instance keeps serving with local rate limits and live events).",
    )
    shutdown_delay_seconds: float = Field(
        default=0.0,
        ge=0,
        le=300,
        description="On SIGTERM, keep serving this long with /readyz at 503 (so a load "
        "balancer stops sending) before refusing new connections.",
    )
    demo: bool = Field(default=False, description="Load demo traffic on start (`serve --demo`).")
    log_level: Literal["debug", "info", "warning", "error", "critical"] = Field(
        default="info", description="Log level: debug, info, warning, error, critical."
    )

    @field_validator("log_level", "sqlite_synchronous", mode="before")
    @classmethod
    def _case(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        return value.lower() if info.field_name == "log_level" else value.upper()

    @field_validator(
        "forward_otlp",
        "forward_otlp_traces",
        "forward_otlp_metrics",
        "forward_otlp_logs",
        "forward_signals",
        "forward_agents",
        "link_langsmith_attributes",
        "report_channels",
        mode="before",
    )
    @classmethod
    def _comma_list(cls, value: object) -> object:
        return _split_list(value)

    @field_validator(
        "forward_otlp", "forward_otlp_traces", "forward_otlp_metrics", "forward_otlp_logs"
    )
    @classmethod
    def _http_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not re.match(r"^https?://[^/\s]+", url):
                raise ValueError(f"{url!r} is not an http:// or https:// URL")
        return value

    @field_validator("forward_signals")
    @classmethod
    def _signals(cls, value: list[str]) -> list[str]:
        value = [v.lower() for v in value]
        for v in value:
            if v not in ("traces", "metrics", "logs"):
                raise ValueError(f"{v!r} is not a signal: use traces, metrics, logs")
        return value

    @field_validator("forward_headers", mode="before")
    @classmethod
    def _headers(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("{"):
            return orjson.loads(text)
        out: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, val = part.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"{part!r}: headers look like key=value,key2=value2")
            out[unquote(key.strip())] = unquote(val.strip())
        return out

    @field_validator("link_jaeger_url", "link_tempo_url", "link_langfuse_url", "link_langsmith_url")
    @classmethod
    def _link_base(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("link_templates")
    @classmethod
    def _templates(cls, value: list[dict[str, str]]) -> list[dict[str, str]]:
        for t in value:
            for key in ("system", "url"):
                if not t.get(key):
                    raise ValueError(f"a link template needs {key!r}: {t}")
            if not re.match(r"^https?://[^/\s{}]+", t["url"]):
                raise ValueError(f"{t['url']!r}: a link template must start with http(s)://host")
        return value

    @field_validator("report_daily_time")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        value = value.strip()
        if value and not re.match(r"^([01]\d|2[0-3]):[0-5]\d$", value):
            raise ValueError(f"{value!r}: use HH:MM (UTC), e.g. 08:00, or empty for never")
        return value

    @field_validator("report_weekly_day")
    @classmethod
    def _weekday(cls, value: str) -> str:
        value = value.strip().lower()
        if value and value not in _WEEKDAYS:
            raise ValueError(f"{value!r}: use a day name ({', '.join(_WEEKDAYS)}) or empty")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_dialect(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgres")):
            raise ValueError("database_url must start with sqlite:// or postgresql+psycopg://")
        return value

    @model_validator(mode="after")
    def _health_thresholds_in_order(self) -> Settings:
        """Each health component degrades from its warning threshold to its critical one: a
        warning above the critical threshold would make that component nonsense."""
        for name in ("error_rate", "p99", "alerts"):
            suffix = "_ms" if name == "p99" else ""
            warning = getattr(self, f"health_{name}_warning{suffix}")
            critical = getattr(self, f"health_{name}_critical{suffix}")
            if warning > critical:
                raise ValueError(
                    f"PHAROS_HEALTH_{name.upper()}_WARNING{suffix.upper()} ({warning:g}) is "
                    f"above PHAROS_HEALTH_{name.upper()}_CRITICAL{suffix.upper()} "
                    f"({critical:g}): the warning threshold must not exceed the critical one"
                )
        return self

    def check_servable(self) -> None:
        """Refuse settings a server cannot run with (raised at start, with the reason)."""
        if self.is_sqlite:
            path = self.database_url.split("://", 1)[1].lstrip("/")
            if path in ("", ":memory:") or "mode=memory" in self.database_url:
                raise ValueError(
                    "database_url: an in-memory SQLite database cannot be served (the writer "
                    "and the readers would each see their own empty database); use a file, "
                    "e.g. sqlite:///./pharos.db"
                )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def binds_loopback(self) -> bool:
        hosts = [self.host, self.grpc_bind_host] if self.grpc_enabled else [self.host]
        return all(_is_loopback(h) for h in hosts)

    @property
    def grpc_bind_host(self) -> str:
        return self.grpc_host if self.grpc_host is not None else self.host

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Explicit arguments beat the environment, which beats pharos.toml, which beats defaults.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def _split_list(value: object) -> object:
    """`a,b` or a JSON array (env) -> a list; lists pass through."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        loaded: Any = orjson.loads(text)
        return loaded
    return [part.strip() for part in text.split(",") if part.strip()]


def _is_loopback(host: str) -> bool:
    if host in {"localhost", ""}:
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
