"""Render a report (the JSON of report/build.py) for people (pure): plain text, HTML with the
chart as an image (a ``cid:`` for e-mail, a ``data:`` URI for a file), a Slack message, Rich
tables for the terminal, and the chart itself as a PNG (matplotlib, Agg backend, no display).

Every value that came from telemetry (agent names, error messages) is escaped for its medium.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text


def pct(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}%"


def ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def usd(value: float | None) -> str:
    if value is None:
        return "—"
    return f"${value:,.2f}" if abs(value) >= 1 or value == 0 else f"${value:.4f}"


def change(value: float | None) -> str:
    if value is None:
        return ""
    return f"{'+' if value > 0 else ''}{value:.1f}%"


def _when(iso: str) -> str:
    return iso.replace("T", " ")[:16] + " UTC"


def headline(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label, value, change vs the previous period) of the key figures."""
    t = r["totals"]
    return [
        ("Requests", f"{t['requests']:,}", change(t["trend"]["requests"])),
        ("Error rate", pct(t["error_rate"]), change(t["trend"]["error_rate"])),
        ("p95 latency", ms(t["p95_ms"]), change(t["trend"]["p95"])),
        ("Cost", usd(t["cost_usd"]), change(t["trend"]["cost"])),
        ("Alerts fired", str(r["alerts"]["fired"]), ""),
    ]


# --- the chart --------------------------------------------------------------------------------


def chart_png(r: dict[str, Any]) -> bytes:
    """Requests per bucket (bars) with the error rate and p95 latency (lines), as a PNG."""
    from matplotlib.figure import Figure  # Figure + savefig use the Agg canvas: no display

    chart = r["chart"]
    times = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in chart["timestamps"]]
    width_days = chart["interval_seconds"] / 86400 * 0.8
    fig = Figure(figsize=(8, 4.2), dpi=110)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    top.bar(times, chart["requests"], width=width_days, color="#60a5fa", label="requests")
    errors = [e or 0 for e in chart["errors"]]
    top.bar(times, errors, width=width_days, color="#ef4444", label="failed")
    top.set_ylabel("requests")
    top.legend(loc="upper left", fontsize=8, frameon=False)
    top.set_title(f"{r['title']} · {r['period']} to {_when(r['end'])}", fontsize=10)
    p95 = [float("nan") if v is None else v for v in chart["latency_p95"]]
    bottom.plot(times, p95, color="#f59e0b", marker="o", markersize=3, label="p95 latency (ms)")
    bottom.set_ylabel("p95 ms")
    rate_axis = bottom.twinx()
    rate = [float("nan") if v is None else v for v in chart["error_rate"]]
    rate_axis.plot(times, rate, color="#ef4444", linestyle="--", label="error rate (%)")
    rate_axis.set_ylabel("error %")
    bottom.legend(loc="upper left", fontsize=8, frameon=False)
    rate_axis.legend(loc="upper right", fontsize=8, frameon=False)
    for ax in (top, bottom):
        ax.grid(alpha=0.25)
    fig.autofmt_xdate()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# --- plain text -------------------------------------------------------------------------------


def text(r: dict[str, Any]) -> str:
    lines = [r["title"], f"{_when(r['start'])} to {_when(r['end'])}", ""]
    lines += [f"{label}: {value} {delta}".rstrip() for label, value, delta in headline(r)]
    lines += ["", "By agent:"]
    for a in r["agents"]:
        lines.append(
            f"  {a['agent']}: {a['requests']:,} requests, {pct(a['error_rate'])} errors, "
            f"p95 {ms(a['p95_ms'])}, {usd(a['cost_usd'])}"
        )
    if r["top_errors"]:
        lines += ["", "Top errors:"]
        lines += [f"  {e['count']} x {e['message']}" for e in r["top_errors"]]
    if r["slos"] or r["targets"]:
        lines += ["", "Objectives:"]
        for s in r["slos"]:
            lines.append(
                f"  {s['name']} ({s['agent']}): {pct(s['attainment'], 3)} vs {s['target']}"
                f" — {'met' if s['met'] else 'missed' if s['met'] is False else 'no data'}"
            )
        for t in r["targets"]:
            lines.append(
                f"  {t['agent']}: success {pct(t['success_pct'], 3)} vs "
                f"{t['success_target']:g}%, p95 {ms(t['p95_ms'])} vs {t['p95_target_ms']:g} ms"
            )
    if r["dashboard_url"]:
        lines += ["", f"Dashboard: {r['dashboard_url']}"]
    return "\n".join(lines) + "\n"


# --- HTML -------------------------------------------------------------------------------------

_TD = 'style="padding:4px 10px;border-bottom:1px solid #e5e7eb;text-align:{align}"'


def _table(headers: list[str], rows: list[list[str]], testid: str) -> str:
    if not rows:
        return '<p style="color:#6b7280">None in this period.</p>'
    head = "".join(f"<th {_TD.format(align='left')}>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td {_TD.format(align='left' if i == 0 else 'right')}>{html.escape(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return (
        f'<table data-table="{testid}" style="border-collapse:collapse;font-size:14px">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _sections(r: dict[str, Any]) -> Iterator[tuple[str, list[str], list[list[str]], str]]:
    yield (
        "By agent",
        ["Agent", "Requests", "Error rate", "p95", "Cost"],
        [
            [
                a["agent"],
                f"{a['requests']:,}",
                pct(a["error_rate"]),
                ms(a["p95_ms"]),
                usd(a["cost_usd"]),
            ]
            for a in r["agents"]
        ],
        "agents",
    )
    yield (
        "Top errors",
        ["Error", "Count", "Agents", "Last seen"],
        [
            [e["message"][:300], str(e["count"]), ", ".join(e["agents"]), _when(e["last_seen"])]
            for e in r["top_errors"]
        ],
        "errors",
    )
    yield (
        "SLO attainment",
        ["SLO", "Agent", "Target", "Attainment", "Budget left", "Status"],
        [
            [
                s["name"],
                s["agent"],
                f"{s['target']} ({s['period_days']}d)",
                pct(s["attainment"], 3),
                pct(s["error_budget_remaining"], 1),
                "met" if s["met"] else ("missed" if s["met"] is False else "no data"),
            ]
            for s in r["slos"]
        ]
        + [
            [
                f"{t['agent']} (default targets)",
                t["agent"],
                f"{t['success_target']:g}% success, p95 < {t['p95_target_ms']:g} ms",
                f"{pct(t['success_pct'], 3)} / {ms(t['p95_ms'])}",
                "—",
                "met" if t["success_met"] and t["p95_met"] else "missed",
            ]
            for t in r["targets"]
        ],
        "slos",
    )
    c = r["cost"]
    yield (
        "Cost vs budget",
        ["Budget", "Period", "Spent", "Limit", "Used", "Forecast", "Status"],
        [
            [
                b["name"],
                b["period"],
                usd(b["spend_usd"]),
                usd(b["limit_usd"]),
                pct(b["spent_percent"], 1),
                usd(b["projected_usd"]),
                b["status"],
            ]
            for b in c["budgets"]
        ],
        "budgets",
    )
    yield (
        "Alerts fired",
        ["Rule", "Severity", "Fired", "Agents"],
        [
            [a["rule"], a["severity"], str(a["fired"]), ", ".join(a["agents"])]
            for a in r["alerts"]["by_rule"]
        ],
        "alerts",
    )


def to_html(r: dict[str, Any], image_src: str | None) -> str:
    """The report as a self-contained HTML page (inline styles, as e-mail clients want)."""
    e = html.escape
    cards = "".join(
        '<td style="padding:8px 14px;border:1px solid #e5e7eb;border-radius:6px">'
        f'<div style="color:#6b7280;font-size:12px">{e(label)}</div>'
        f'<div style="font-size:20px;font-weight:600" data-figure="{e(label)}">{e(value)}</div>'
        f'<div style="color:#6b7280;font-size:12px">{e(delta)}</div></td>'
        for label, value, delta in headline(r)
    )
    parts = [
        '<!doctype html><html><head><meta charset="utf-8">',
        f"<title>{e(r['title'])}</title></head>",
        '<body style="font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;'
        'color:#111827;max-width:860px">',
        f'<h1 style="font-size:22px">{e(r["title"])}</h1>',
        f'<p style="color:#6b7280">{e(_when(r["start"]))} to {e(_when(r["end"]))}</p>',
        f'<table style="border-spacing:8px"><tr>{cards}</tr></table>',
    ]
    if image_src:
        parts.append(
            f'<p><img src="{e(image_src)}" alt="Requests, errors and p95 latency over the period"'
            ' width="880" style="max-width:100%"></p>'
        )
    c = r["cost"]
    parts.append(
        f"<p>Cost {e(usd(c['total_usd']))} (previous period {e(usd(c['previous_usd']))}"
        f"{', ' + e(change(c['change_pct'])) if c['change_pct'] is not None else ''}); "
        f"monthly run rate {e(usd(c['monthly_run_rate_usd']))}.</p>"
    )
    for title, headers, rows, testid in _sections(r):
        parts.append(f'<h2 style="font-size:17px;margin-top:22px">{e(title)}</h2>')
        parts.append(_table(headers, rows, testid))
    if r["dashboard_url"]:
        url = r["dashboard_url"]
        if url.startswith(("http://", "https://")):
            parts.append(f'<p><a href="{e(url)}">Open the dashboard</a></p>')
    parts.append("</body></html>")
    return "".join(parts)


# --- Slack ------------------------------------------------------------------------------------


def _mrkdwn(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(r: dict[str, Any]) -> dict[str, Any]:
    """An incoming-webhook message: the headline figures, agents, errors, SLOs, alerts."""
    fields = [
        {"type": "mrkdwn", "text": f"*{label}*\n{_mrkdwn(value)} {delta}".strip()}
        for label, value, delta in headline(r)
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": r["title"][:150]}},
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"{_when(r['start'])} to {_when(r['end'])}"}],
        },
        {"type": "section", "fields": fields[:10]},
    ]
    agent_lines = [
        f"• *{_mrkdwn(a['agent'])}*: {a['requests']:,} req, {pct(a['error_rate'])} errors, "
        f"p95 {ms(a['p95_ms'])}, {usd(a['cost_usd'])}"
        for a in r["agents"][:10]
    ]
    if agent_lines:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "*By agent*\n" + "\n".join(agent_lines)},
            }
        )
    if r["top_errors"]:
        lines = [f"• {e['count']} x {_mrkdwn(e['message'][:200])}" for e in r["top_errors"]]
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "*Top errors*\n" + "\n".join(lines)},
            }
        )
    slo_lines = [
        f"• {'✅' if s['met'] else '❌' if s['met'] is False else '·'} *{_mrkdwn(s['name'])}* "
        f"{pct(s['attainment'], 3)} vs {_mrkdwn(s['target'])}"
        for s in r["slos"]
    ]
    if slo_lines:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "*SLOs*\n" + "\n".join(slo_lines)},
            }
        )
    if r["dashboard_url"].startswith(("http://", "https://")):
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open Pharos"},
                        "url": r["dashboard_url"],
                        "action_id": "open-dashboard",
                    }
                ],
            }
        )
    summary = ", ".join(f"{label} {value}" for label, value, _ in headline(r))
    return {"text": f"{r['title']}: {summary}"[:3000], "blocks": blocks}


# --- the terminal -----------------------------------------------------------------------------


def rich_report(r: dict[str, Any]) -> RenderableType:
    head = Table(
        title=f"{r['title']}  ({_when(r['start'])} to {_when(r['end'])})", show_header=True
    )
    for label, _, _ in headline(r):
        head.add_column(label, justify="right")
    head.add_row(*[f"{value} {delta}".strip() for _, value, delta in headline(r)])
    parts: list[RenderableType] = [head]
    for title, headers, rows, _ in _sections(r):
        table = Table(title=title, title_justify="left")
        for i, h in enumerate(headers):
            table.add_column(h, justify="left" if i == 0 else "right", overflow="fold")
        for row in rows:
            table.add_row(*[Text(c) for c in row])  # Text: telemetry is never markup
        if not rows:
            table.add_row(Text("none in this period"), *[""] * (len(headers) - 1))
        parts.append(table)
    return Group(*parts)
