"""``pharos alerts ...``: rules, alerts, silences and channels, through a running server's HTTP
API (the server owns evaluation, validation and the outbox, so the CLI works the same against a
local or a remote server; ``--url`` / ``PHAROS_URL``, ``--key`` / ``PHAROS_API_KEY``)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pharos.server.cli_client import DEFAULT_URL, KeyOption, Server, UrlOption

out = Console()
err = Console(stderr=True)

alerts_app = typer.Typer(
    help="Alerts: list, acknowledge, resolve; rules, silences and channels (via the server's API).",
    no_args_is_help=True,
)
rules_app = typer.Typer(help="Alert rules: list, add, update, enable, disable, delete, validate.")
silences_app = typer.Typer(help="Silences: mute notifications of matching alerts for a while.")
channels_app = typer.Typer(help="Notification channels: Slack, PagerDuty, webhook, e-mail.")
alerts_app.add_typer(rules_app, name="rules", no_args_is_help=True)
alerts_app.add_typer(silences_app, name="silences", no_args_is_help=True)
alerts_app.add_typer(channels_app, name="channels", no_args_is_help=True)


@alerts_app.callback()
def _root(ctx: typer.Context, url: UrlOption = DEFAULT_URL, key: KeyOption = None) -> None:
    ctx.obj = Server.of(url, key)


def _server(ctx: typer.Context) -> Server:
    obj = ctx.find_object(Server)
    return obj if obj is not None else Server()


def _call(ctx: typer.Context, method: str, path: str, body: Any = None, **params: Any) -> Any:
    """The server's JSON answer; exits 1 with its message (and how to pass a key on 401/403)."""
    return _server(ctx).call(method, path, body, **params)


def _pairs(items: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            err.print(f"[red]{what} must look like key=value:[/red] {item}")
            raise typer.Exit(2)
        out[key] = value
    return out


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _show(data: Any) -> None:
    out.print_json(json.dumps(data))


# --- alerts --------------------------------------------------------------------------------------


@alerts_app.command("list")
def list_alerts(
    ctx: typer.Context,
    state: Annotated[list[str] | None, typer.Option(help="pending, firing, resolved")] = None,
    severity: Annotated[list[str] | None, typer.Option(help="info ... critical")] = None,
    agent: Annotated[str | None, typer.Option(help="Only this agent's alerts.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
) -> None:
    """Alerts, newest first."""
    data = _call(
        ctx, "GET", "/api/v1/alerts", state=state, severity=severity, agent=agent, limit=limit
    )
    table = Table("id", "state", "severity", "rule", "labels", "value", "since", "ack")
    for a in data["items"]:
        labels = ", ".join(
            f"{k}={v}" for k, v in a["labels"].items() if k not in ("alertname", "severity")
        )
        since = a["fired_at"] or a["pending_since"] or ""
        table.add_row(
            str(a["id"]),
            a["state"] + (" (silenced)" if a["silenced"] else ""),
            a["severity"],
            a["rule"],
            labels,
            _number(a["value"]),
            since,
            a["acked_by"] or "",
        )
    out.print(table)


@alerts_app.command("show")
def show_alert(ctx: typer.Context, alert_id: Annotated[int, typer.Argument()]) -> None:
    """One alert with its history (JSON)."""
    _show(_call(ctx, "GET", f"/api/v1/alerts/{alert_id}"))


@alerts_app.command("ack")
def ack_alert(
    ctx: typer.Context,
    alert_id: Annotated[int, typer.Argument()],
    who: Annotated[str, typer.Option(help="Who acknowledges.")],
    comment: Annotated[str, typer.Option(help="Why / what is being done.")] = "",
) -> None:
    """Acknowledge a firing alert (stops repeats; PagerDuty gets acknowledge)."""
    a = _call(ctx, "POST", f"/api/v1/alerts/{alert_id}/ack", {"who": who, "comment": comment})
    out.print(f"alert {a['id']} acknowledged by {a['acked_by']}")


@alerts_app.command("resolve")
def resolve_alert(
    ctx: typer.Context,
    alert_id: Annotated[int, typer.Argument()],
    who: Annotated[str, typer.Option(help="Who resolves.")],
    comment: Annotated[str, typer.Option(help="Why.")] = "",
) -> None:
    """Resolve an alert now (a resolved notification is sent if it was firing)."""
    a = _call(ctx, "POST", f"/api/v1/alerts/{alert_id}/resolve", {"who": who, "comment": comment})
    out.print(f"alert {a['id']} is {a['state']}")


@alerts_app.command("summary")
def summary(ctx: typer.Context) -> None:
    """Counts by state and severity, and the engine's health (JSON)."""
    _show(_call(ctx, "GET", "/api/v1/alerts/summary"))


@alerts_app.command("evaluate")
def evaluate(ctx: typer.Context) -> None:
    """Evaluate every rule now (one cycle) and print what happened."""
    _show(_call(ctx, "POST", "/api/v1/alerts/evaluate"))


# --- rules ---------------------------------------------------------------------------------------


def _rule_body(
    name: str | None,
    expression: str | None,
    severity: str | None,
    for_: str | None,
    keep_firing_for: str | None,
    repeat_interval: str | None,
    label: list[str] | None,
    message: str | None,
    channel: list[str] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "expression": expression,
        "severity": severity,
        "for": for_,
        "keep_firing_for": keep_firing_for,
        "repeat_interval": repeat_interval,
        "message": message,
    }
    if label:
        body["labels"] = _pairs(label, "--label")
    if channel:
        body["channels"] = channel
    return {k: v for k, v in body.items() if v is not None}


Severity = Annotated[str | None, typer.Option(help="info, warning, error or critical.")]
For = Annotated[str | None, typer.Option("--for", help="Pending time before firing, e.g. 5m.")]
Keep = Annotated[str | None, typer.Option(help="Resolve delay against flapping, e.g. 5m.")]
Repeat = Annotated[str | None, typer.Option(help="Re-notify while firing, e.g. 4h (0 = never).")]
Label = Annotated[list[str] | None, typer.Option(help="key=value, repeatable.")]
Message = Annotated[str | None, typer.Option(help="Template: {agent} {value} {rule} ...")]
Channel = Annotated[list[str] | None, typer.Option(help="A channel name to notify, repeatable.")]


@rules_app.command("list")
def rules_list(ctx: typer.Context) -> None:
    """Every rule."""
    data = _call(ctx, "GET", "/api/v1/alerts/rules")
    table = Table("id", "name", "severity", "expression", "for", "enabled")
    for r in data["items"]:
        table.add_row(
            str(r["id"]), r["name"], r["severity"], r["expression"], r["for"], str(r["enabled"])
        )
    out.print(table)


@rules_app.command("add")
def rules_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument()],
    expression: Annotated[str, typer.Argument()],
    severity: Severity = "warning",
    for_: For = None,
    keep_firing_for: Keep = None,
    repeat_interval: Repeat = None,
    label: Label = None,
    message: Message = None,
    channel: Channel = None,
) -> None:
    """Create a rule, e.g. pharos alerts rules add "Slow" "p95(latency, 10m) > 2000 by agent"."""
    body = _rule_body(
        name, expression, severity, for_, keep_firing_for, repeat_interval, label, message, channel
    )
    r = _call(ctx, "POST", "/api/v1/alerts/rules", body)
    out.print(f"rule {r['id']} created: {r['name']}")


@rules_app.command("update")
def rules_update(
    ctx: typer.Context,
    rule_id: Annotated[int, typer.Argument()],
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    expression: Annotated[str | None, typer.Option(help="New expression.")] = None,
    severity: Severity = None,
    for_: For = None,
    keep_firing_for: Keep = None,
    repeat_interval: Repeat = None,
    label: Label = None,
    message: Message = None,
    channel: Channel = None,
) -> None:
    """Change some fields of a rule."""
    body = _rule_body(
        name, expression, severity, for_, keep_firing_for, repeat_interval, label, message, channel
    )
    r = _call(ctx, "PATCH", f"/api/v1/alerts/rules/{rule_id}", body)
    out.print(f"rule {r['id']} updated")


@rules_app.command("enable")
def rules_enable(ctx: typer.Context, rule_id: Annotated[int, typer.Argument()]) -> None:
    """Enable a rule."""
    _call(ctx, "PATCH", f"/api/v1/alerts/rules/{rule_id}", {"enabled": True})
    out.print(f"rule {rule_id} enabled")


@rules_app.command("disable")
def rules_disable(ctx: typer.Context, rule_id: Annotated[int, typer.Argument()]) -> None:
    """Disable a rule (its alerts resolve at the next evaluation)."""
    _call(ctx, "PATCH", f"/api/v1/alerts/rules/{rule_id}", {"enabled": False})
    out.print(f"rule {rule_id} disabled")


@rules_app.command("delete")
def rules_delete(ctx: typer.Context, rule_id: Annotated[int, typer.Argument()]) -> None:
    """Delete a rule (its active alerts are resolved)."""
    _call(ctx, "DELETE", f"/api/v1/alerts/rules/{rule_id}")
    out.print(f"rule {rule_id} deleted")


@rules_app.command("validate")
def rules_validate(ctx: typer.Context, expression: Annotated[str, typer.Argument()]) -> None:
    """Check an expression; on an error, point at it."""
    data = _call(ctx, "POST", "/api/v1/alerts/rules/validate", {"expression": expression})
    if data["valid"]:
        out.print(f"valid; reads {', '.join(data['series']) or 'no series'}")
        return
    e = data["error"]
    line = expression.splitlines()[e["line"] - 1] if expression else ""
    out.print(line, markup=False, highlight=False)
    out.print(" " * (e["column"] - 1) + "^", markup=False, highlight=False)
    err.print(f"line {e['line']}, column {e['column']}: {e['message']}", markup=False)
    raise typer.Exit(1)


# --- silences ------------------------------------------------------------------------------------


def _matcher(text: str) -> dict[str, str]:
    for op in ("=~", "!~", "!=", "="):
        name, sep, value = text.partition(op)
        if sep and name:
            return {"name": name, "op": op, "value": value}
    err.print(f"[red]--match must look like agent=checkout (or !=, =~, !~):[/red] {text}")
    raise typer.Exit(2)


@silences_app.command("list")
def silences_list(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Include expired silences.")] = False,
) -> None:
    """Active and pending silences."""
    data = _call(ctx, "GET", "/api/v1/silences", include_expired=str(all_).lower())
    table = Table("id", "status", "matchers", "ends", "by", "comment")
    for s in data["items"]:
        matchers = ", ".join(f"{m['name']}{m['op']}{m['value']}" for m in s["matchers"])
        table.add_row(
            str(s["id"]), s["status"], matchers, s["ends_at"], s["created_by"], s["comment"]
        )
    out.print(table)


@silences_app.command("add")
def silences_add(
    ctx: typer.Context,
    match: Annotated[list[str], typer.Option(help="agent=checkout, severity=~warn.*, ...")],
    by: Annotated[str, typer.Option(help="Who silences.")],
    comment: Annotated[str, typer.Option(help="Why.")],
    duration: Annotated[str, typer.Option(help="How long, e.g. 2h.")] = "1h",
) -> None:
    """Mute notifications of alerts matching every --match for --duration."""
    body = {
        "matchers": [_matcher(m) for m in match],
        "duration": duration,
        "created_by": by,
        "comment": comment,
    }
    s = _call(ctx, "POST", "/api/v1/silences", body)
    out.print(f"silence {s['id']} until {s['ends_at']}")


@silences_app.command("expire")
def silences_expire(ctx: typer.Context, silence_id: Annotated[int, typer.Argument()]) -> None:
    """End a silence now."""
    _call(ctx, "DELETE", f"/api/v1/silences/{silence_id}")
    out.print(f"silence {silence_id} expired")


# --- channels ------------------------------------------------------------------------------------


@channels_app.command("list")
def channels_list(ctx: typer.Context) -> None:
    """Channels (secrets masked)."""
    data = _call(ctx, "GET", "/api/v1/alerts/channels")
    table = Table("id", "name", "type", "severities", "matchers", "enabled")
    for c in data["items"]:
        matchers = ", ".join(f"{m['name']}{m['op']}{m['value']}" for m in c["matchers"])
        table.add_row(
            str(c["id"]),
            c["name"],
            c["type"],
            ",".join(c["severities"]),
            matchers,
            str(c["enabled"]),
        )
    out.print(table)


@channels_app.command("add")
def channels_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument()],
    kind: Annotated[str, typer.Argument(metavar="TYPE", help="slack, pagerduty, webhook, email")],
    config: Annotated[
        list[str] | None, typer.Option(help="key=value: url, routing_key, secret, host, to ...")
    ] = None,
    severity: Annotated[
        list[str] | None, typer.Option(help="Route alerts of this severity here, repeatable.")
    ] = None,
    match: Annotated[
        list[str] | None, typer.Option(help="Only alerts whose labels match, repeatable.")
    ] = None,
) -> None:
    """Add a channel, e.g. pharos alerts channels add ops slack --config url=https://hooks...
    --severity critical --severity warning."""
    cfg: dict[str, Any] = dict(_pairs(config, "--config"))
    if "port" in cfg:
        cfg["port"] = int(cfg["port"])
    for flag in ("starttls", "ssl"):
        if flag in cfg:
            cfg[flag] = cfg[flag].lower() in ("1", "true", "yes")
    if "to" in cfg:
        cfg["to"] = [a.strip() for a in cfg["to"].split(",") if a.strip()]
    body = {
        "name": name,
        "type": kind,
        "config": cfg,
        "severities": severity or [],
        "matchers": [_matcher(m) for m in match or []],
    }
    c = _call(ctx, "POST", "/api/v1/alerts/channels", body)
    out.print(f"channel {c['id']} created: {c['name']} ({c['type']})")


@channels_app.command("delete")
def channels_delete(ctx: typer.Context, channel_id: Annotated[int, typer.Argument()]) -> None:
    """Delete a channel."""
    _call(ctx, "DELETE", f"/api/v1/alerts/channels/{channel_id}")
    out.print(f"channel {channel_id} deleted")


@channels_app.command("test")
def channels_test(ctx: typer.Context, channel_id: Annotated[int, typer.Argument()]) -> None:
    """Queue a test notification to a channel (see GET /api/v1/alerts/outbox)."""
    data = _call(ctx, "POST", f"/api/v1/alerts/channels/{channel_id}/test")
    out.print(f"queued {data['idempotency_key']}")
