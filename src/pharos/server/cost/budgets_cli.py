"""``pharos budgets ...``: list, create, update, reset and delete budgets through a running
server's HTTP API (``--url`` / ``PHAROS_URL``, ``--key`` / ``PHAROS_API_KEY`` sent as
``Authorization: Bearer``: cli_client.py). The server evaluates them, so the CLI shows what the
API and the gateway see; a reset or a raised limit reaches every instance within
``PHAROS_BUDGET_CACHE_SECONDS``."""

from __future__ import annotations

import json
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from pharos.server.cli_client import DEFAULT_URL, KeyOption, Server, UrlOption

out = Console(soft_wrap=True)  # one line per budget, also when piped
err = Console(stderr=True, soft_wrap=True)

budgets_app = typer.Typer(
    help="Budgets: spend, forecast and status; create, update, reset, delete (via the API).",
    no_args_is_help=True,
)

BudgetArg = Annotated[str, typer.Argument(help="The budget's id or its name.")]
Period = Annotated[
    str | None, typer.Option("--period", help="daily or monthly (UTC); default monthly.")
]


@budgets_app.callback()
def _root(ctx: typer.Context, url: UrlOption = DEFAULT_URL, key: KeyOption = None) -> None:
    """Reading needs the read scope, changing a budget admin."""
    ctx.obj = Server.of(url, key)


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(message, markup=False, highlight=False)
    raise typer.Exit(code)


def _call(ctx: typer.Context, method: str, path: str, body: Any = None) -> Any:
    """The server's JSON answer; exit 1 with its message (and how to pass a key on 401/403)."""
    server = ctx.obj if isinstance(ctx.obj, Server) else Server()
    return server.call(method, "/api/v1" + path, body)


def _find(ctx: typer.Context, ref: str) -> dict[str, Any]:
    """A budget by id, else by exact name."""
    budgets: list[dict[str, Any]] = _call(ctx, "GET", "/budgets")["budgets"]
    if ref.isdigit():
        for b in budgets:
            if b["id"] == int(ref):
                return b
    named = [b for b in budgets if b["name"] == ref]
    if named:
        return named[0]
    _fail(f"no budget {ref!r} (give its id or its name; `pharos budgets list`)")


def _usd(value: float | None) -> str:
    if value is None:
        return ""
    return f"${value:,.2f}" if value == 0 or abs(value) >= 0.01 else f"${value:.6g}"


def _line(b: dict[str, Any]) -> str:
    who = f"agent {b['agent']}" if b["agent"] else "all agents"
    reset = f", since its reset at {b['reset_at']}" if b.get("reset_at") else ""
    return (
        f"#{b['id']} {b['name']} ({who}, {b['period']}): spent {_usd(b['spend_usd'])} of "
        f"{_usd(b['limit_usd'])} (soft {_usd(b['soft_limit_usd'])}){reset}; forecast "
        f"{_usd(b['forecast']['projected_usd'])}; {b['status']}"
    )


@budgets_app.command("list")
def list_budgets(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON.")] = False,
) -> None:
    """Every budget with its spend this period, forecast, exhaustion time and status."""
    budgets = _call(ctx, "GET", "/budgets")["budgets"]
    if as_json:
        out.print_json(json.dumps(budgets))
        return
    if not budgets:
        out.print("no budgets (pharos budgets create NAME --limit USD)")
        return
    table = Table()
    for col in ("id", "name", "agent", "period", "spent", "limit", "soft", "forecast", "status"):
        table.add_column(col)
    for b in budgets:
        table.add_row(
            str(b["id"]),
            b["name"],
            b["agent"] or "(all)",
            b["period"],
            _usd(b["spend_usd"]) + (" *" if b.get("reset_at") else ""),
            _usd(b["limit_usd"]),
            _usd(b["soft_limit_usd"]),
            _usd(b["forecast"]["projected_usd"]),
            b["status"],
        )
    # Piped (not a terminal): wide enough that names are not cut to fit 80 columns.
    (out if out.is_terminal else Console(width=200)).print(table)
    if any(b.get("reset_at") for b in budgets):
        out.print("* spent since a reset in this period")


@budgets_app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A unique name.")],
    limit: Annotated[str, typer.Option("--limit", help="Hard limit in USD (critical, 402).")],
    soft: Annotated[
        str | None, typer.Option("--soft", help="Soft limit in USD (warning); default 80 %.")
    ] = None,
    agent: Annotated[
        str | None, typer.Option("--agent", help="The agent it covers; default all agents.")
    ] = None,
    period: Period = None,
) -> None:
    """Create a budget (per agent or global, daily or monthly)."""
    body: dict[str, Any] = {"name": name, "limit_usd": limit, "agent": agent}
    if soft is not None:
        body["soft_limit_usd"] = soft
    if period is not None:
        body["period"] = period
    out.print(_line(_call(ctx, "POST", "/budgets", body)), markup=False, highlight=False)


@budgets_app.command("update")
def update(
    ctx: typer.Context,
    budget: BudgetArg,
    limit: Annotated[
        str | None, typer.Option("--limit", help="New hard limit in USD (raise it to lift a stop).")
    ] = None,
    soft: Annotated[str | None, typer.Option("--soft", help="New soft limit in USD.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="New name.")] = None,
    agent: Annotated[
        str | None, typer.Option("--agent", help="The agent it covers ('' for all agents).")
    ] = None,
    period: Period = None,
) -> None:
    """Change a budget; a new --limit without --soft puts the soft limit at 80 % of it."""
    found = _find(ctx, budget)
    body: dict[str, Any] = {}
    for field, value in (
        ("limit_usd", limit),
        ("soft_limit_usd", soft),
        ("name", name),
        ("agent", agent),
        ("period", period),
    ):
        if value is not None:
            body[field] = (value or None) if field == "agent" else value
    if not body:
        _fail("nothing to change: give --limit, --soft, --name, --agent or --period", 2)
    out.print(
        _line(_call(ctx, "PUT", f"/budgets/{found['id']}", body)), markup=False, highlight=False
    )


@budgets_app.command("reset")
def reset(ctx: typer.Context, budget: BudgetArg) -> None:
    """Start the period's count again from now (recorded as a budget event).

    The gateway lets the agent through again within PHAROS_BUDGET_CACHE_SECONDS, on every
    instance."""
    found = _find(ctx, budget)
    after = _call(ctx, "POST", f"/budgets/{found['id']}/reset")
    out.print(
        f"reset: {_usd(found['spend_usd'])} had been spent; " + _line(after),
        markup=False,
        highlight=False,
    )


@budgets_app.command("delete")
def delete(ctx: typer.Context, budget: BudgetArg) -> None:
    """Delete a budget (its alerts resolve at the next evaluation)."""
    found = _find(ctx, budget)
    _call(ctx, "DELETE", f"/budgets/{found['id']}")
    out.print(f"deleted budget #{found['id']} {found['name']}", markup=False, highlight=False)
