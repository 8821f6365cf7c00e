"""The agent registry: per-agent gateway upstream, rate limits, queue, budget and labels."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

import orjson
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from pharos.server.db.engine import writing
from pharos.server.db.schema import agent_registry, rollups_1d, traces
from pharos.server.timeparse import parse_duration_seconds

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
LABEL_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
PERIODS = ("daily", "monthly")
DEFAULT_MAX_QUEUE = 20
DEFAULT_MAX_WAIT_MS = 10_000


class RegistryError(ValueError):
    pass


@dataclass
class AgentConfig:
    name: str
    upstream_url: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    max_queue: int = DEFAULT_MAX_QUEUE
    max_wait_ms: int = DEFAULT_MAX_WAIT_MS
    budget_nanousd: int | None = None
    budget_period: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    created_ns: int = 0
    updated_ns: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "upstream_url": self.upstream_url,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "max_queue": self.max_queue,
            "max_wait_seconds": self.max_wait_ms / 1000,
            "budget": None
            if self.budget_nanousd is None
            else {
                "limit_usd": float(Decimal(self.budget_nanousd) / Decimal(10**9)),
                "period": self.budget_period,
            },
            "labels": self.labels,
            "gateway_path": f"/gateway/agents/{self.name}/",
            "created_ns": self.created_ns,
            "updated_ns": self.updated_ns,
        }


def validate_name(name: str) -> str:
    if not NAME.match(name):
        raise RegistryError(
            "name: 1-128 characters of letters, digits, '.', '_', ':' or '-', starting with a "
            "letter or digit"
        )
    return name


def validate_upstream(url: str | None) -> str | None:
    if url is None or url == "":
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RegistryError(f"upstream_url: {url!r} is not an http(s) URL")
    return url.rstrip("/")


def parse_wait_ms(value: str | float | int) -> int:
    try:
        if isinstance(value, str) and not value.strip().replace(".", "", 1).isdigit():
            seconds = parse_duration_seconds(value.strip())
        else:
            seconds = float(value)
    except ValueError as exc:
        raise RegistryError(f"max_wait: {exc}") from None
    if not 0 <= seconds <= 600:
        raise RegistryError("max_wait: between 0 and 600 seconds")
    return round(seconds * 1000)


def parse_budget(value: str | float | None) -> int | None:
    """``"25"`` / ``"$25"`` / ``25.5`` USD → nano-USD."""
    if value is None or value == "":
        return None
    try:
        usd = Decimal(str(value).strip().lstrip("$"))
    except InvalidOperation:
        raise RegistryError(f"budget: {value!r} is not an amount in USD") from None
    if not usd.is_finite() or usd <= 0 or usd > Decimal(10**9):
        raise RegistryError("budget: a positive amount in USD (at most 1e9)")
    return int(usd * 10**9)


def validate_labels(labels: dict[str, Any]) -> dict[str, str]:
    if len(labels) > 32:
        raise RegistryError("labels: at most 32")
    out: dict[str, str] = {}
    for key, value in labels.items():
        if not LABEL_KEY.match(str(key)):
            raise RegistryError(f"labels: {key!r} is not a valid label name")
        if not isinstance(value, str) or len(value) > 256:
            raise RegistryError(f"labels.{key}: a string of at most 256 characters")
        out[str(key)] = value
    return out


def check(config: AgentConfig) -> AgentConfig:
    validate_name(config.name)
    config.upstream_url = validate_upstream(config.upstream_url)
    for label, value, top in (("rpm", config.rpm, 10**7), ("tpm", config.tpm, 10**12)):
        if value is not None and not 1 <= value <= top:
            raise RegistryError(f"{label}: between 1 and {top}, or unset for no limit")
    if not 0 <= config.max_queue <= 10_000:
        raise RegistryError("max_queue: between 0 and 10000")
    if config.budget_nanousd is not None:
        config.budget_period = config.budget_period or "daily"
        if config.budget_period not in PERIODS:
            raise RegistryError("budget_period: daily or monthly")
    else:
        config.budget_period = None
    config.labels = validate_labels(config.labels)
    return config


def _row(row: Any) -> AgentConfig:
    return AgentConfig(
        name=row.name,
        upstream_url=row.upstream_url,
        rpm=row.rpm,
        tpm=row.tpm,
        max_queue=row.max_queue,
        max_wait_ms=row.max_wait_ms,
        budget_nanousd=row.budget_nanousd,
        budget_period=row.budget_period,
        labels=orjson.loads(row.labels),
        created_ns=row.created_ns,
        updated_ns=row.updated_ns,
    )


def _values(config: AgentConfig) -> dict[str, Any]:
    return {
        "upstream_url": config.upstream_url,
        "rpm": config.rpm,
        "tpm": config.tpm,
        "max_queue": config.max_queue,
        "max_wait_ms": config.max_wait_ms,
        "budget_nanousd": config.budget_nanousd,
        "budget_period": config.budget_period,
        "labels": orjson.dumps(config.labels).decode(),
    }


def add_agent(engine: Engine, config: AgentConfig) -> AgentConfig:
    check(config)
    now = time.time_ns()
    try:
        with writing(engine).begin() as conn:
            conn.execute(
                insert(agent_registry).values(
                    name=config.name, created_ns=now, updated_ns=now, **_values(config)
                )
            )
    except IntegrityError:
        raise RegistryError(f"agent {config.name!r} is already registered") from None
    config.created_ns = config.updated_ns = now
    return config


def replace_agent(engine: Engine, config: AgentConfig) -> AgentConfig | None:
    check(config)
    now = time.time_ns()
    with writing(engine).begin() as conn:
        done = conn.execute(
            update(agent_registry)
            .where(agent_registry.c.name == config.name)
            .values(updated_ns=now, **_values(config))
        ).rowcount
    return get_agent(engine, config.name) if done else None


#: What :func:`update_agent` may change (the registry's settings; not the name).
UPDATABLE = frozenset(
    {"upstream_url", "rpm", "tpm", "max_queue", "max_wait_ms", "budget_nanousd", "budget_period"}
)


def update_agent(
    engine: Engine,
    name: str,
    changes: Mapping[str, Any],
    labels: Mapping[str, str | None] | None = None,
) -> AgentConfig | None:
    """Change only the given settings of a registered agent (None there = unset: no limit, no
    budget); ``labels`` are merged, a None value removes that label. One transaction, so two
    updates of different fields both land. None when the agent is not registered."""
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise RegistryError(f"cannot update {', '.join(sorted(unknown))}")
    now = time.time_ns()
    with writing(engine).begin() as conn:
        t = agent_registry
        row = conn.execute(select(t).where(t.c.name == name).with_for_update()).first()
        if row is None:
            return None
        current = _row(row)
        merged = {**current.labels}
        for key, value in (labels or {}).items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        config = replace(current, **changes, labels=merged, updated_ns=now)
        if changes.get("budget_period") is not None and config.budget_nanousd is None:
            raise RegistryError("budget_period: the agent has no budget; give one too")
        check(config)
        conn.execute(update(t).where(t.c.name == name).values(updated_ns=now, **_values(config)))
    return config


def get_agent(engine: Engine, name: str) -> AgentConfig | None:
    with engine.connect() as conn:
        row = conn.execute(select(agent_registry).where(agent_registry.c.name == name)).first()
    return None if row is None else _row(row)


def list_agents(engine: Engine) -> list[AgentConfig]:
    with engine.connect() as conn:
        return [
            _row(r) for r in conn.execute(select(agent_registry).order_by(agent_registry.c.name))
        ]


def remove_agent(engine: Engine, name: str) -> bool:
    with writing(engine).begin() as conn:
        return bool(
            conn.execute(delete(agent_registry).where(agent_registry.c.name == name)).rowcount
        )


DAY_S = 86400


def seen_agents(engine: Engine, name: str | None = None) -> dict[str, tuple[int, int]]:
    """Agents seen in telemetry: name -> (first seen, last seen) in ns.

    The names and days come from the day rollups (kept 90 days by default, a few rows per
    agent and day); the times are made exact from the agent's traces (one index seek each on
    ``ix_traces_agent_start_ns``) while those are kept (72 h by default). Past that, first seen
    is the start of the first day with data (and last seen, for an agent silent longer than
    trace retention, the start of its last day)."""
    t = rollups_1d
    query = select(t.c.agent, func.min(t.c.bucket_start), func.max(t.c.bucket_start)).group_by(
        t.c.agent
    )
    if name is not None:
        query = query.where(t.c.agent == name)
    out: dict[str, tuple[int, int]] = {}
    with engine.connect() as conn:
        for agent, first_day, last_day in conn.execute(query).all():
            if not agent:
                continue
            first_ns, last_ns = int(first_day) * 10**9, int(last_day) * 10**9
            oldest = conn.execute(
                select(func.min(traces.c.start_ns)).where(traces.c.agent == agent)
            ).scalar()
            newest = conn.execute(
                select(func.max(traces.c.start_ns)).where(traces.c.agent == agent)
            ).scalar()
            if oldest is not None and int(oldest) // 10**9 // DAY_S * DAY_S <= int(first_day):
                first_ns = int(oldest)  # the traces reach back to the first day: exact
            if newest is not None:
                last_ns = max(last_ns, int(newest))
            out[agent] = (first_ns, max(first_ns, last_ns))
    return out
