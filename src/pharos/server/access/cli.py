"""``pharos keys ...`` and ``pharos agents ...``: straight on the database (``--database-url`` /
``PHAROS_DATABASE_URL``), so the first key can be created before any server runs. Running
servers see a new or revoked key within ``PHAROS_KEY_CACHE_SECONDS``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Engine

out = Console()
err = Console(stderr=True)

keys_app = typer.Typer(
    help="API keys: create (shown once), list, revoke (scopes ingest, read, admin).",
    no_args_is_help=True,
)
agents_app = typer.Typer(
    help="The agent registry: gateway upstream, rate limits, queue, budget, labels.",
    no_args_is_help=True,
)
DatabaseOption = Annotated[
    str | None, typer.Option(help="(env PHAROS_DATABASE_URL)", show_default=False)
]


@contextmanager
def _engine(database_url: str | None) -> Iterator[Engine]:
    from pydantic import ValidationError

    from pharos.server.db.engine import make_engine
    from pharos.server.db.migrate import upgrade
    from pharos.server.settings import Settings

    try:
        settings = Settings(database_url=database_url) if database_url else Settings()
    except ValidationError as exc:
        err.print(f"[red]invalid configuration:[/red] {exc}")
        raise typer.Exit(2) from None
    if settings.auto_migrate:
        upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _when(ns: int | None) -> str:
    if ns is None:
        return "never"
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", help="What the key is for, e.g. ci.")],
    scopes: Annotated[
        str, typer.Option("--scopes", help="Comma-separated: ingest, read, admin.")
    ] = "ingest",
    rpm: Annotated[
        int | None,
        typer.Option("--rpm", help="Gateway requests per minute (default PHAROS_KEY_RPM)."),
    ] = None,
    tpm: Annotated[
        int | None,
        typer.Option("--tpm", help="LLM tokens per minute via the LLM proxy (PHAROS_KEY_TPM)."),
    ] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Create a key and print it once (only its prefix and a hash are stored)."""
    from pharos.server.access.keys import create_key, parse_scopes

    try:
        wanted = parse_scopes(scopes)
    except ValueError as exc:
        err.print(f"[red]--scopes:[/red] {exc}")
        raise typer.Exit(2) from None
    with _engine(database_url) as engine:
        try:
            key, record = create_key(engine, name, wanted, rpm=rpm, tpm=tpm)
        except ValueError as exc:
            err.print(f"[red]invalid key:[/red] {exc}")
            raise typer.Exit(2) from None
    err.print(
        f"created key {record.id} [bold]{record.name}[/bold] ({', '.join(sorted(wanted))}); "
        "it is shown only now:"
    )
    print(key)


@keys_app.command("list")
def keys_list(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    database_url: DatabaseOption = None,
) -> None:
    """Keys: id, name, prefix, scopes, created, last used, revoked."""
    from pharos.server.access.keys import list_keys

    with _engine(database_url) as engine:
        keys = list_keys(engine)
    if json_out:
        print(json.dumps([k.public() for k in keys], indent=2))
        return
    table = Table(title="API keys")
    for col in ("id", "name", "prefix", "scopes", "rpm", "tpm", "created", "last used", "revoked"):
        table.add_column(col)
    for k in keys:
        table.add_row(
            str(k.id),
            k.name,
            k.prefix + "…",
            ",".join(sorted(k.scopes)),
            "default" if k.rpm is None else str(k.rpm),
            "default" if k.tpm is None else str(k.tpm),
            _when(k.created_ns),
            _when(k.last_used_ns),
            "" if k.revoked_ns is None else _when(k.revoked_ns),
        )
    out.print(table)


@keys_app.command("update")
def keys_update(
    key: Annotated[str, typer.Argument(help="The key's id or prefix (phk_…).")],
    rpm: Annotated[
        int | None,
        typer.Option("--rpm", help="Gateway requests per minute; 0 = back to PHAROS_KEY_RPM."),
    ] = None,
    tpm: Annotated[
        int | None,
        typer.Option("--tpm", help="LLM tokens per minute; 0 = back to PHAROS_KEY_TPM."),
    ] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Change a key's rate limits: running servers apply them within PHAROS_KEY_CACHE_SECONDS."""
    from pharos.server.access.keys import update_key_limits

    changes = {
        name: (value or None) for name, value in (("rpm", rpm), ("tpm", tpm)) if value is not None
    }
    with _engine(database_url) as engine:
        try:
            record = update_key_limits(engine, key, **changes)
        except ValueError as exc:
            err.print(f"[red]invalid limit:[/red] {exc}")
            raise typer.Exit(2) from None
    if record is None:
        err.print(f"[red]no API key {key!r}[/red]")
        raise typer.Exit(1)
    limits = ", ".join(
        f"{name} {'default' if value is None else value}"
        for name, value in (("rpm", record.rpm), ("tpm", record.tpm))
    )
    err.print(f"key {record.id} {record.name} ({record.prefix}…): {limits}")


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key's id or prefix (phk_…).")],
    database_url: DatabaseOption = None,
) -> None:
    """Revoke a key: every instance refuses it within PHAROS_KEY_CACHE_SECONDS."""
    from pharos.server.access.keys import revoke_key

    with _engine(database_url) as engine:
        record = revoke_key(engine, key)
    if record is None:
        err.print(f"[red]no API key {key!r}[/red]")
        raise typer.Exit(1)
    err.print(f"revoked key {record.id} {record.name} ({record.prefix}…)")


@agents_app.command("add")
def agents_add(
    name: Annotated[str, typer.Argument(help="Agent name (as in its telemetry).")],
    upstream: Annotated[
        str | None, typer.Option("--upstream", help="URL the gateway forwards to.")
    ] = None,
    rpm: Annotated[int | None, typer.Option("--rpm", help="Requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option("--tpm", help="LLM tokens per minute.")] = None,
    max_queue: Annotated[
        int, typer.Option("--max-queue", help="Requests that may wait for capacity.")
    ] = 20,
    max_wait: Annotated[
        str, typer.Option("--max-wait", help="Longest wait in the queue, e.g. 10s.")
    ] = "10s",
    budget: Annotated[
        str | None, typer.Option("--budget", help="Hard budget in USD per period, e.g. 25.")
    ] = None,
    budget_period: Annotated[
        str, typer.Option("--budget-period", help="daily or monthly (UTC).")
    ] = "daily",
    label: Annotated[
        list[str] | None, typer.Option("--label", help="KEY=VALUE, repeatable (team, env).")
    ] = None,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", help="Replace all of an existing entry's settings (see `update`)."
        ),
    ] = False,
    database_url: DatabaseOption = None,
) -> None:
    """Register an agent (or replace its settings with --replace)."""
    from pharos.server.access.registry import (
        AgentConfig,
        RegistryError,
        add_agent,
        parse_budget,
        parse_wait_ms,
        replace_agent,
    )

    labels: dict[str, str] = {}
    for item in label or []:
        key, sep, value = item.partition("=")
        if not sep:
            err.print(f"[red]--label:[/red] {item!r} is not KEY=VALUE")
            raise typer.Exit(2)
        labels[key.strip()] = value.strip()
    try:
        config = AgentConfig(
            name=name,
            upstream_url=upstream,
            rpm=rpm,
            tpm=tpm,
            max_queue=max_queue,
            max_wait_ms=parse_wait_ms(max_wait),
            budget_nanousd=parse_budget(budget),
            budget_period=budget_period,
            labels=labels,
        )
        with _engine(database_url) as engine:
            saved = replace_agent(engine, config) if replace else add_agent(engine, config)
    except RegistryError as exc:
        err.print(f"[red]invalid agent:[/red] {exc}")
        raise typer.Exit(2) from None
    if saved is None:
        err.print(f"[red]agent {name!r} is not registered[/red] (drop --replace)")
        raise typer.Exit(1)
    print(json.dumps(saved.to_json(), indent=2))


NONE_WORDS = ("none", "off", "unlimited")


def _limit(value: str, flag: str) -> int | None:
    """``--rpm 120`` -> 120; ``--rpm none`` -> no limit."""
    text = value.strip().lower()
    if text in NONE_WORDS:
        return None
    try:
        return int(text)
    except ValueError:
        err.print(f"[red]{flag}:[/red] {value!r} is not a whole number or 'none'")
        raise typer.Exit(2) from None


@agents_app.command("update")
def agents_update(
    name: Annotated[str, typer.Argument(help="A registered agent's name.")],
    upstream: Annotated[
        str | None, typer.Option("--upstream", help="URL the gateway forwards to ('none': none).")
    ] = None,
    rpm: Annotated[
        str | None, typer.Option("--rpm", help="Requests per minute ('none': no limit).")
    ] = None,
    tpm: Annotated[
        str | None, typer.Option("--tpm", help="LLM tokens per minute ('none': no limit).")
    ] = None,
    max_queue: Annotated[
        int | None, typer.Option("--max-queue", help="Requests that may wait for capacity.")
    ] = None,
    max_wait: Annotated[
        str | None, typer.Option("--max-wait", help="Longest wait in the queue, e.g. 10s.")
    ] = None,
    budget: Annotated[
        str | None,
        typer.Option("--budget", help="Hard budget in USD per period ('none': no budget)."),
    ] = None,
    budget_period: Annotated[
        str | None, typer.Option("--budget-period", help="daily or monthly (UTC).")
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", help="KEY=VALUE to set, repeatable; other labels stay."),
    ] = None,
    remove_label: Annotated[
        list[str] | None, typer.Option("--remove-label", help="KEY to remove, repeatable.")
    ] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Change only the given settings of a registered agent; the others keep their values."""
    from pharos.server.access.registry import (
        RegistryError,
        parse_budget,
        parse_wait_ms,
        update_agent,
    )

    labels: dict[str, str | None] = {key.strip(): None for key in remove_label or []}
    for item in label or []:
        key, sep, value = item.partition("=")
        if not sep:
            err.print(f"[red]--label:[/red] {item!r} is not KEY=VALUE")
            raise typer.Exit(2)
        labels[key.strip()] = value.strip()
    try:
        changes: dict[str, object] = {}
        if upstream is not None:
            changes["upstream_url"] = None if upstream.strip().lower() in NONE_WORDS else upstream
        if rpm is not None:
            changes["rpm"] = _limit(rpm, "--rpm")
        if tpm is not None:
            changes["tpm"] = _limit(tpm, "--tpm")
        if max_queue is not None:
            changes["max_queue"] = max_queue
        if max_wait is not None:
            changes["max_wait_ms"] = parse_wait_ms(max_wait)
        if budget is not None:
            none = budget.strip().lower() in NONE_WORDS
            changes["budget_nanousd"] = None if none else parse_budget(budget)
        if budget_period is not None:
            changes["budget_period"] = budget_period
        if not changes and not labels:
            err.print("[red]nothing to change:[/red] give at least one option (see --help)")
            raise typer.Exit(2)
        with _engine(database_url) as engine:
            saved = update_agent(engine, name, changes, labels)
    except RegistryError as exc:
        err.print(f"[red]invalid agent:[/red] {exc}")
        raise typer.Exit(2) from None
    if saved is None:
        err.print(f"[red]agent {name!r} is not registered[/red] (pharos agents add {name} ...)")
        raise typer.Exit(1)
    print(json.dumps(saved.to_json(), indent=2))


@agents_app.command("list")
def agents_list(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    database_url: DatabaseOption = None,
) -> None:
    """Registered agents with their limits."""
    from pharos.server.access.registry import list_agents

    with _engine(database_url) as engine:
        agents = list_agents(engine)
    if json_out:
        print(json.dumps([a.to_json() for a in agents], indent=2))
        return
    table = Table(title="Registered agents")
    for col in ("name", "upstream", "rpm", "tpm", "queue", "wait", "budget", "labels"):
        table.add_column(col)
    for a in agents:
        budget = a.to_json()["budget"]
        table.add_row(
            a.name,
            a.upstream_url or "",
            "" if a.rpm is None else str(a.rpm),
            "" if a.tpm is None else str(a.tpm),
            str(a.max_queue),
            f"{a.max_wait_ms / 1000:g}s",
            "" if budget is None else f"${budget['limit_usd']:g}/{budget['period']}",
            ",".join(f"{k}={v}" for k, v in a.labels.items()),
        )
    out.print(table)


@agents_app.command("reset-budget")
def agents_reset_budget(
    name: Annotated[str, typer.Argument(help="A registered agent with a --budget.")],
    database_url: DatabaseOption = None,
) -> None:
    """Start the agent's --budget count again from now (the gateway lets it through again on
    every instance within PHAROS_BUDGET_CACHE_SECONDS; recorded as a budget event)."""
    from pharos.server.cost.budgets import reset_registry_budget
    from pharos.server.db.engine import writing

    with _engine(database_url) as engine, writing(engine).begin() as conn:
        state = reset_registry_budget(conn, name, datetime.now(UTC))
    if state is None:
        err.print(f"[red]agent {name!r} is not registered with a budget[/red]")
        raise typer.Exit(1)
    print(
        f"reset: {name} {state.period} budget counts again from now "
        f"(${state.period_spend_nanousd / 1e9:.2f} spent in the period before the reset, "
        f"limit ${state.limit_nanousd / 1e9:.2f})"
    )


@agents_app.command("remove")
def agents_remove(
    name: Annotated[str, typer.Argument(help="Agent name.")],
    database_url: DatabaseOption = None,
) -> None:
    """Unregister an agent (its telemetry stays)."""
    from pharos.server.access.registry import remove_agent

    with _engine(database_url) as engine:
        removed = remove_agent(engine, name)
    if not removed:
        err.print(f"[red]agent {name!r} is not registered[/red]")
        raise typer.Exit(1)
    err.print(f"removed {name}")
