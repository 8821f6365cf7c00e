"""``pharos slo ...``: define SLOs and see their status, through a running server's HTTP API
(``--url`` / ``PHAROS_URL``, ``--key`` / ``PHAROS_API_KEY``), like ``pharos alerts``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pharos.server.alerting.cli import _call, _show
from pharos.server.cli_client import DEFAULT_URL, KeyOption, Server, UrlOption


def _out() -> Console:
    """Built per command, so the terminal width (COLUMNS) is read when the command runs."""
    return Console()


slo_app = typer.Typer(
    help="Service level objectives: list with status, create, update, delete.",
    no_args_is_help=True,
)


@slo_app.callback()
def _root(ctx: typer.Context, url: UrlOption = DEFAULT_URL, key: KeyOption = None) -> None:
    ctx.obj = Server.of(url, key)


def _pct(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}%"


def _burn(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def slo_table(items: list[dict[str, Any]]) -> Table:
    table = Table(
        "id",
        "name",
        "agent",
        "target",
        "state",
        "attainment",
        "budget left",
        "burn 1h",
        "burn 6h",
        "burn 24h",
        "burn period",
        title="SLOs",
    )
    for s in items:
        st = s["status"]
        period = f"{s['period_days']}d"
        colour = {"ok": "green", "burning": "yellow", "breached": "red"}.get(st["state"], "dim")
        table.add_row(
            str(s["id"]),
            s["name"],
            s["agent"],
            f"{s['target']} ({period})",
            f"[{colour}]{st['state']}[/{colour}]",
            _pct(st["attainment"]),
            _pct(st["error_budget_remaining"], 1),
            _burn(st["burn_rates"]["1h"]),
            _burn(st["burn_rates"]["6h"]),
            _burn(st["burn_rates"]["24h"]),
            _burn(st["burn_rates"][period]),
        )
    return table


@slo_app.command("list")
def list_slos(
    ctx: typer.Context,
    agent: Annotated[str | None, typer.Option(help="Only this agent's SLOs.")] = None,
) -> None:
    """SLOs with attainment, error budget left and burn rates."""
    data = _call(ctx, "GET", "/api/v1/slos", agent=agent)
    _out().print(slo_table(data["items"]))


@slo_app.command("show")
def show_slo(ctx: typer.Context, slo_id: Annotated[int, typer.Argument()]) -> None:
    """One SLO with its status per window (JSON)."""
    _show(_call(ctx, "GET", f"/api/v1/slos/{slo_id}"))


@slo_app.command("create")
def create_slo(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="A unique name.")],
    agent: Annotated[str, typer.Option(help="The agent it holds.")],
    objective: Annotated[float, typer.Option(help="Percent of good requests, e.g. 99.9.")],
    latency_ms: Annotated[
        float | None,
        typer.Option(help="A latency SLO: good requests take at most this (ms)."),
    ] = None,
    period_days: Annotated[int, typer.Option(help="Error budget period (days).")] = 30,
    description: Annotated[str, typer.Option(help="What it promises, for people.")] = "",
) -> None:
    """Create a success SLO, or a latency SLO with --latency-ms."""
    body = {
        "name": name,
        "agent": agent,
        "kind": "latency" if latency_ms is not None else "success",
        "objective": objective,
        "threshold_ms": latency_ms,
        "period_days": period_days,
        "description": description,
    }
    s = _call(ctx, "POST", "/api/v1/slos", body)
    _out().print(f"SLO {s['id']} {s['name']}: {s['target']} for {s['agent']}")


@slo_app.command("update")
def update_slo(
    ctx: typer.Context,
    slo_id: Annotated[int, typer.Argument()],
    objective: Annotated[float | None, typer.Option(help="New objective (percent).")] = None,
    latency_ms: Annotated[float | None, typer.Option(help="New latency threshold (ms).")] = None,
    period_days: Annotated[int | None, typer.Option(help="New period (days).")] = None,
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
) -> None:
    """Change an SLO's objective, threshold, period or description."""
    body: dict[str, Any] = {}
    for key, value in (
        ("objective", objective),
        ("threshold_ms", latency_ms),
        ("period_days", period_days),
        ("description", description),
    ):
        if value is not None:
            body[key] = value
    s = _call(ctx, "PATCH", f"/api/v1/slos/{slo_id}", body)
    _out().print(f"SLO {s['id']} {s['name']}: {s['target']}")


@slo_app.command("delete")
def delete_slo(ctx: typer.Context, slo_id: Annotated[int, typer.Argument()]) -> None:
    """Delete an SLO (rules using it by name then see no data)."""
    _call(ctx, "DELETE", f"/api/v1/slos/{slo_id}")
    _out().print(f"SLO {slo_id} deleted")
