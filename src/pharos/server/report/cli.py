"""``pharos report``: a report from a running server (``--url`` / ``PHAROS_URL``, ``--key`` /
``PHAROS_API_KEY``) printed as Rich tables, optionally written as HTML with its chart inline, or
sent to channels now."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pharos.server.cli_client import DEFAULT_URL, KeyOption, Server, UrlOption
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
    url: UrlOption = DEFAULT_URL,
    key: KeyOption = None,
) -> None:
    """A health / performance & cost report: requests, error rate, p95 by agent, top errors,
    cost vs budget, alerts fired, SLO attainment."""
    server = Server.of(url, key)
    data = server.call("GET", "/api/v1/reports", timeout=120, period=period)
    _out().print(rich_report(data))
    if html is not None:
        with err.status("drawing the chart"):
            page = to_html(data, data_uri(chart_png(data)))
        html.write_text(page, encoding="utf-8")
        err.print(f"wrote {html}")
    if send:
        sent = server.call("POST", "/api/v1/reports/send", {"period": period}, timeout=120)
        for q in sent["queued"]:
            err.print(f"queued to {q['channel']}")
