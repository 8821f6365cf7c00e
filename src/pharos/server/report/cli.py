"""``pharos report``: a report from a running server (``--url`` / ``PHAROS_URL``) printed as Rich
tables, optionally written as HTML with its chart inline, or sent to channels now."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console

from pharos.server.alerting.cli import DEFAULT_URL
from pharos.server.report.render import chart_png, data_uri, rich_report, to_html


def _out() -> Console:
    """Built per command, so the terminal width (COLUMNS) is read when the command runs."""
    return Console()


err = Console(stderr=True)


def report(
    period: Annotated[
        str, typer.Option(help="The window: 24h (daily health), 7d (weekly summary), or any.")
    ] = "24h",
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write the report as HTML (chart inline).")
    ] = None,
    send: Annotated[
        bool, typer.Option("--send", help="Queue it to the report channels now, too.")
    ] = False,
    url: Annotated[
        str, typer.Option(envvar="PHAROS_URL", help="The Pharos server (env PHAROS_URL).")
    ] = DEFAULT_URL,
) -> None:
    """A health / performance & cost report: requests, error rate, p95 by agent, top errors,
    cost vs budget, alerts fired, SLO attainment."""
    base = url.rstrip("/")
    try:
        response = httpx.get(f"{base}/api/v1/reports", params={"period": period}, timeout=120)
    except httpx.HTTPError as exc:
        err.print(f"[red]cannot reach Pharos at {base}:[/red] {exc}")
        raise typer.Exit(1) from None
    if response.status_code >= 400:
        err.print(f"[red]{response.status_code}:[/red] {_message(response)}")
        raise typer.Exit(1)
    data = response.json()
    _out().print(rich_report(data))
    if html is not None:
        with err.status("drawing the chart"):
            page = to_html(data, data_uri(chart_png(data)))
        html.write_text(page, encoding="utf-8")
        err.print(f"wrote {html}")
    if send:
        sent = httpx.post(f"{base}/api/v1/reports/send", json={"period": period}, timeout=120)
        if sent.status_code >= 400:
            err.print(f"[red]{sent.status_code}:[/red] {_message(sent)}")
            raise typer.Exit(1)
        for q in sent.json()["queued"]:
            err.print(f"queued to {q['channel']}")


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except Exception:
        return response.text[:300]
