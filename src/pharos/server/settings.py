"""All server configuration in one typed object (env prefix ``PHAROS_``, optional ``pharos.toml``).

Nothing else in the server reads the environment: ``create_app`` and the CLI build a
:class:`Settings` and hand it down.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


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
        description="Gateway requests per minute per API key (unset = no per-key limit).",
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
        description="Base URL of the dashboard for links in notifications; unset = http://host:port.",
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

    @field_validator("database_url")
    @classmethod
    def _known_dialect(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgres")):
            raise ValueError("database_url must start with sqlite:// or postgresql+psycopg://")
        return value

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


def _is_loopback(host: str) -> bool:
    if host in {"localhost", ""}:
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
