"""The ``pharos`` command (Typer + Rich)."""

from __future__ import annotations

import gzip
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from pharos.server.settings import Settings

app = typer.Typer(
    name="pharos",
    help="Pharos: observability for AI agents. Start with `pharos serve --demo`.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(
    help="Database schema: upgrade, downgrade, show the current revision.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
export_app = typer.Typer(
    help="Export a Grafana dashboard or Prometheus alert rules for Pharos' /metrics.",
    no_args_is_help=True,
)
app.add_typer(export_app, name="export")
console = Console(stderr=True)


def _settings(**overrides: Any) -> Settings:
    from pydantic import ValidationError

    from pharos.server.settings import Settings

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        console.print(f"[red]invalid configuration:[/red] {exc}")
        raise typer.Exit(2) from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (env PHAROS_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (env PHAROS_PORT).")] = None,
    database_url: Annotated[
        str | None, typer.Option(help="Database URL (env PHAROS_DATABASE_URL).")
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Load demo traffic and keep it going.")
    ] = False,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Allow a public bind without API keys.")
    ] = False,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning, error.")] = None,
) -> None:
    """Run the Pharos server (OTLP/HTTP ingest, API)."""
    import uvicorn

    from pharos.server.app import create_app

    settings = _settings(
        host=host,
        port=port,
        database_url=database_url,
        demo=demo or None,
        insecure=insecure or None,
        log_level=log_level,
    )
    try:
        settings.check_servable()
    except ValueError as exc:
        console.print(f"[red]invalid configuration:[/red] {exc}")
        raise typer.Exit(2) from None
    if not settings.binds_loopback and not settings.insecure:
        console.print(
            f"[red]refusing to listen on {settings.host}:[/red] no API keys exist, so anyone "
            "who can reach it could read and write your telemetry. Bind to 127.0.0.1, or pass "
            "--insecure (PHAROS_INSECURE=1) if a proxy in front of Pharos authenticates."
        )
        raise typer.Exit(2)
    where = f"http://{settings.host}:{settings.port}"
    console.print(f"[bold]Pharos[/bold] {where}  database: {_redact(settings.database_url)}")
    console.print(
        "  open: no API keys yet, listening on loopback only"
        if settings.binds_loopback
        else "  [yellow]open and public (--insecure)[/yellow]"
    )
    console.print(f"  send OTLP: OTEL_EXPORTER_OTLP_ENDPOINT={where}   API docs: {where}/docs")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=30,
        access_log=settings.log_level.lower() == "debug",
    )


@app.command()
def demo(
    url: Annotated[
        str, typer.Option(help="The Pharos server to send to.")
    ] = "http://127.0.0.1:4318",
    traces: Annotated[int, typer.Option(min=1, help="Agent runs to send.")] = 3000,
    hours: Annotated[float, typer.Option(min=0.01, help="Spread them over the last N hours.")] = 24,
    seed: Annotated[int, typer.Option(help="Random seed (same seed = same traces).")] = 7,
) -> None:
    """Send realistic agent traffic to a running server over OTLP/HTTP (protobuf, gzip)."""
    import httpx

    from pharos.server.demo import demo_requests

    requests = list(demo_requests(traces, seed=seed, window_seconds=hours * 3600))
    total_spans = sum(
        len(s.spans) for r in requests for rs in r.resource_spans for s in rs.scope_spans
    )
    sent = 0
    with (
        httpx.Client(base_url=url, timeout=30) as client,
        Progress(
            TextColumn("[bold]sending demo traffic"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("spans"),
            TimeElapsedColumn(),
            console=console,
        ) as progress,
    ):
        task = progress.add_task("spans", total=total_spans)
        for request in requests:
            body = gzip.compress(request.SerializeToString())
            n = sum(len(s.spans) for rs in request.resource_spans for s in rs.scope_spans)
            for attempt in range(10):
                try:
                    resp = client.post(
                        "/v1/traces",
                        content=body,
                        headers={
                            "content-type": "application/x-protobuf",
                            "content-encoding": "gzip",
                        },
                    )
                except httpx.HTTPError as exc:
                    console.print(f"[red]cannot reach {url}:[/red] {exc}")
                    raise typer.Exit(1) from None
                if resp.status_code in (429, 502, 503, 504) and attempt < 9:
                    time.sleep(float(resp.headers.get("retry-after", "1")))
                    continue
                break
            if resp.status_code != 200:
                console.print(f"[red]server answered {resp.status_code}:[/red] {resp.text[:300]}")
                raise typer.Exit(1)
            sent += n
            progress.advance(task, n)
    console.print(f"sent {sent} spans in {len(requests)} requests to {url}")


@db_app.command("upgrade")
def db_upgrade(
    database_url: Annotated[str | None, typer.Option(help="(env PHAROS_DATABASE_URL)")] = None,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply migrations (safe to repeat; PostgreSQL instances take a lock)."""
    from pharos.server.db.migrate import upgrade

    settings = _settings(database_url=database_url)
    upgrade(settings.database_url, revision)
    console.print(f"database {_redact(settings.database_url)} is at revision {revision}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. -1 or base.")],
    database_url: Annotated[str | None, typer.Option(help="(env PHAROS_DATABASE_URL)")] = None,
) -> None:
    """Revert migrations down to REVISION."""
    from pharos.server.db.migrate import downgrade

    settings = _settings(database_url=database_url)
    downgrade(settings.database_url, revision)
    console.print(f"database {_redact(settings.database_url)} downgraded to {revision}")


@db_app.command("current")
def db_current(
    database_url: Annotated[str | None, typer.Option(help="(env PHAROS_DATABASE_URL)")] = None,
) -> None:
    """Show the database's revision and the newest one this Pharos knows."""
    from pharos.server.db.engine import make_engine
    from pharos.server.db.migrate import current_revision, head_revision

    settings = _settings(database_url=database_url)
    engine = make_engine(settings.database_url)
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    head = head_revision()
    state = "up to date" if current == head else "needs `pharos db upgrade`"
    print(f"current: {current or '(empty)'}  head: {head}  ({state})")


OutOption = Annotated[Path | None, typer.Option("--out", help="File to write (default: stdout).")]


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out}")


@export_app.command("grafana")
def export_grafana(
    out: Annotated[
        Path | None, typer.Option("--out", help="File to write (default: stdout).")
    ] = None,
) -> None:
    """A Grafana dashboard (JSON) over the /metrics series; import it and pick a Prometheus."""
    from pharos.server.exports import grafana_json

    _write(grafana_json(), out)


@export_app.command("prometheus-rules")
def export_prometheus_rules(
    out: Annotated[
        Path | None, typer.Option("--out", help="File to write (default: stdout).")
    ] = None,
) -> None:
    """Prometheus alerting rules (YAML): error rate, p95, tokens, cost, no traffic, Pharos down."""
    from pharos.server.exports import prometheus_rules_yaml

    _write(prometheus_rules_yaml(), out)


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparseable url)"


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
