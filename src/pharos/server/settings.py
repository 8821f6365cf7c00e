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
    insecure: bool = Field(
        default=False,
        description="Allow binding to a non-loopback address without API keys.",
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
        if self.host in {"localhost", ""}:
            return self.host == "localhost"
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

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
