"""The ``pharos`` command (Typer + Rich)."""

from __future__ import annotations

import gzip
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pharos.server.access.cli import agents_app, keys_app
from pharos.server.alerting.cli import alerts_app
from pharos.server.cli_client import DEFAULT_URL, KEY_ENV, KeyOption
from pharos.server.cost.budgets_cli import budgets_app
from pharos.server.ops.cli import backup_command, restore_command, retention_app
from pharos.server.report.cli import report as report_command
from pharos.server.slo.cli import slo_app

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
prices_app = typer.Typer(
    help="Model prices: set or override a price, list the table, re-price stored calls.",
    no_args_is_help=True,
)
app.add_typer(prices_app, name="prices")
app.add_typer(budgets_app, name="budgets")
app.add_typer(alerts_app, name="alerts")
app.add_typer(keys_app, name="keys")
app.add_typer(agents_app, name="agents")
app.add_typer(slo_app, name="slo")
app.command("report")(report_command)
app.add_typer(retention_app, name="retention")
app.command("backup")(backup_command)
app.command("restore")(restore_command)
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
    grpc_port: Annotated[
        int | None, typer.Option(help="OTLP/gRPC port (env PHAROS_GRPC_PORT).")
    ] = None,
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
        grpc_port=grpc_port,
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
    keys = _active_keys(settings)
    if not settings.binds_loopback and not settings.insecure and keys == 0:
        console.print(
            f"[red]refusing to listen on {settings.host}:[/red] no API keys exist, so anyone "
            "who can reach it could read and write your telemetry. Create one (pharos keys "
            "create --name NAME --scopes admin), bind to 127.0.0.1, or pass --insecure "
            "(PHAROS_INSECURE=1) if a proxy in front of Pharos authenticates."
        )
        raise typer.Exit(2)
    where = f"http://{settings.host}:{settings.port}"
    console.print(f"[bold]Pharos[/bold] {where}  database: {_redact(settings.database_url)}")
    if keys:
        console.print(f"  protected: {keys} API key(s); every request needs one (docs/access.md)")
    else:
        console.print(
            "  open: no API keys yet, listening on loopback only"
            if settings.binds_loopback
            else "  [yellow]open and public (--insecure)[/yellow]"
        )
    console.print(f"  send OTLP: OTEL_EXPORTER_OTLP_ENDPOINT={where}   API docs: {where}/docs")
    if settings.grpc_enabled:
        grpc_where = f"http://{settings.grpc_bind_host}:{settings.grpc_port}"
        console.print(f"  OTLP/gRPC: {grpc_where} (with OTEL_EXPORTER_OTLP_PROTOCOL=grpc)")
    from pharos.server.ops.shutdown import GracefulServer

    application = create_app(settings)
    config = uvicorn.Config(
        application,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=30,
        access_log=settings.log_level.lower() == "debug",
    )
    # SIGTERM: /readyz 503, refuse new connections, answer those in flight, drain the writer.
    server = GracefulServer(config, application.state, settings.shutdown_delay_seconds)
    server.run()
    if not server.started:  # e.g. the port is taken: uvicorn logged why (its exit code)
        raise typer.Exit(3)


@app.command()
def demo(
    url: Annotated[
        str,
        typer.Option(envvar="PHAROS_URL", help="The Pharos server to send to (env PHAROS_URL)."),
    ] = DEFAULT_URL,
    key: KeyOption = None,
    traces: Annotated[
        int | None, typer.Option(min=1, help="Agent runs to send (default 3000; 20 with --sdk).")
    ] = None,
    hours: Annotated[float, typer.Option(min=0.01, help="Spread them over the last N hours.")] = 24,
    seed: Annotated[int, typer.Option(help="Random seed (same seed = same traces).")] = 7,
    sdk: Annotated[
        bool,
        typer.Option("--sdk", help="Run the example agent (examples/support_agent.py) instead."),
    ] = False,
) -> None:
    """Send realistic agent traffic (traces and their logs) to a running server over OTLP/HTTP
    (protobuf, gzip). The API key is --key (env PHAROS_API_KEY), else the headers of
    OTEL_EXPORTER_OTLP_HEADERS."""
    import httpx

    from pharos.server.cli_client import clean_key

    url = url.rstrip("/")
    headers, key_from = _demo_headers(key)
    with httpx.Client(base_url=url, timeout=30, headers=headers) as client:
        _check_ingest(client, url, key_from)
    if sdk:
        from pharos.sdk.example import run_example

        with console.status("[bold]running the example support agent with the Pharos SDK"):
            code = run_example(url, runs=traces or 20, seed=seed, api_key=clean_key(key))
        raise typer.Exit(code)
    traces = traces or 3000

    from pharos.server.demo_logs import demo_batches

    batches = list(demo_batches(traces, seed=seed, window_seconds=hours * 3600))
    total_spans = sum(
        len(s.spans) for r, _ in batches for rs in r.resource_spans for s in rs.scope_spans
    )
    sent = sent_logs = 0
    with (
        httpx.Client(base_url=url, timeout=30, headers=headers) as client,
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
        for request, log_request in batches:
            n = sum(len(s.spans) for rs in request.resource_spans for s in rs.scope_spans)
            _send_demo(client, url, "/v1/traces", request.SerializeToString(), key_from)
            n_logs = sum(
                len(s.log_records) for rl in log_request.resource_logs for s in rl.scope_logs
            )
            if n_logs:
                _send_demo(client, url, "/v1/logs", log_request.SerializeToString(), key_from)
            sent += n
            sent_logs += n_logs
            progress.advance(task, n)
    console.print(f"sent {sent} spans and {sent_logs} logs in {len(batches)} batches to {url}")


OTLP_HEADERS_ENV = "OTEL_EXPORTER_OTLP_HEADERS"


def _demo_headers(key: str | None) -> tuple[dict[str, str], str | None]:
    """The headers ``pharos demo`` sends, as an OTLP exporter would: those of
    OTEL_EXPORTER_OTLP_HEADERS, with ``--key`` (PHAROS_API_KEY) as the bearer token over them;
    and where the key came from (None: no key)."""
    from pharos.sdk.config import parse_headers
    from pharos.server.cli_client import auth_headers

    headers = parse_headers(os.environ.get(OTLP_HEADERS_ENV, ""))
    given = auth_headers(key)
    if given:
        headers.update(given)
        return headers, f"--key/{KEY_ENV}"
    if "authorization" in headers or "x-api-key" in headers:
        return headers, OTLP_HEADERS_ENV
    return headers, None


def _check_ingest(client: Any, url: str, key_from: str | None) -> None:
    """An empty OTLP request first: a refused key is said at once, before any traffic."""
    import httpx

    from pharos.server.cli_client import fail

    try:
        resp = client.post("/v1/traces", json={"resourceSpans": []})
    except httpx.HTTPError as exc:
        console.print(f"[red]cannot reach {url}:[/red] {exc}")
        raise typer.Exit(1) from None
    if resp.status_code in (401, 403):
        fail(resp, key_from, scopes="ingest")


def _send_demo(client: Any, url: str, path: str, raw: bytes, key_from: str | None) -> None:
    """POST one gzipped OTLP body, honouring Retry-After; exit with the server's answer."""
    import httpx

    from pharos.server.cli_client import fail

    body = gzip.compress(raw)
    headers = {"content-type": "application/x-protobuf", "content-encoding": "gzip"}
    for attempt in range(10):
        try:
            resp = client.post(path, content=body, headers=headers)
        except httpx.HTTPError as exc:
            console.print(f"[red]cannot reach {url}:[/red] {exc}")
            raise typer.Exit(1) from None
        if resp.status_code in (429, 502, 503, 504) and attempt < 9:
            time.sleep(float(resp.headers.get("retry-after", "1")))
            continue
        break
    if resp.status_code in (401, 403):
        fail(resp, key_from, scopes="ingest")
    if resp.status_code != 200:
        console.print(f"[red]server answered {resp.status_code}:[/red] {resp.text[:300]}")
        raise typer.Exit(1)


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


DatabaseOption = Annotated[str | None, typer.Option(help="(env PHAROS_DATABASE_URL)")]


@prices_app.command("set")
def prices_set(
    model: Annotated[str, typer.Argument(help="Model name, e.g. gpt-4o or my-azure-deployment.")],
    input: Annotated[str, typer.Option("--input", help="USD per million input tokens.")],
    output: Annotated[str, typer.Option("--output", help="USD per million output tokens.")],
    cached: Annotated[
        str | None, typer.Option("--cached", help="USD per million cached input tokens.")
    ] = None,
    from_: Annotated[
        str | None,
        typer.Option("--from", help="ISO 8601 date/time it applies from (default now; 'always')."),
    ] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Add or override a model's price from a date (history keeps its old price unless you
    run `pharos prices recompute`)."""
    from pharos.server.cost import store
    from pharos.server.cost.prices import usd_to_micro
    from pharos.server.db.engine import make_engine, writing
    from pharos.server.timeparse import iso_from_ns, parse_instant_ns

    now = time.time_ns()
    try:
        values = (
            usd_to_micro(input, "--input"),
            usd_to_micro(output, "--output"),
            None if cached is None else usd_to_micro(cached, "--cached"),
        )
        if from_ is None:
            effective = now
        elif from_.strip().lower() == "always":
            effective = 0
        else:
            effective = max(parse_instant_ns(from_, now), 0)
    except ValueError as exc:
        console.print(f"[red]invalid price:[/red] {exc}")
        raise typer.Exit(2) from None
    settings = _settings(database_url=database_url)
    engine = make_engine(settings.database_url)
    try:
        with writing(engine).begin() as conn:
            price_id, created = store.upsert_price(
                conn,
                model=model,
                input_micro=values[0],
                output_micro=values[1],
                cached_micro=values[2],
                effective_from_ns=effective,
            )
    finally:
        engine.dispose()
    since = "always" if effective == 0 else iso_from_ns(effective)
    console.print(
        f"{'added' if created else 'replaced'} price #{price_id} for {model.strip().lower()}: "
        f"input {input}, output {output}"
        + (f", cached {cached}" if cached is not None else "")
        + f" USD per million tokens, from {since}"
    )


@prices_app.command("list")
def prices_list(
    model: Annotated[
        str | None, typer.Option(help="Show how this model name is matched and priced.")
    ] = None,
    database_url: DatabaseOption = None,
) -> None:
    """The price table: bundled prices (dated) and your overrides."""
    from rich.table import Table

    from pharos.server.cost.book import PriceBook
    from pharos.server.cost.prices import micro_to_usd
    from pharos.server.db.engine import make_engine
    from pharos.server.timeparse import iso_from_ns

    settings = _settings(database_url=database_url)
    engine = make_engine(settings.database_url)
    try:
        book = PriceBook(engine, aliases=settings.model_aliases)
        table = book.table()
        keys = sorted(table.history)
        if model is not None:
            key = book.resolve(model)
            print(f"{model} -> {key or '(no price: add one with pharos prices set)'}")
            keys = [key] if key else []
    finally:
        engine.dispose()
    out = Table(title=f"USD per million tokens (bundled table as of {table.as_of})")
    for col in ("model", "input", "output", "cached", "from", "source"):
        out.add_column(col)
    for key in keys:
        for p in table.history[key]:
            out.add_row(
                key,
                micro_to_usd(p.input),
                micro_to_usd(p.output),
                "" if p.cached is None else micro_to_usd(p.cached),
                iso_from_ns(p.effective_from_ns) if p.effective_from_ns else "always",
                p.source,
            )
    Console().print(out)


@prices_app.command("recompute")
def prices_recompute(
    since: Annotated[
        str, typer.Option(help="Re-price model calls that started since (7d, or ISO 8601).")
    ],
    until: Annotated[str | None, typer.Option(help="... and before (default: now).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=100_000, help="Spans per batch.")] = 2000,
    database_url: DatabaseOption = None,
) -> None:
    """Rewrite stored span costs with the current prices (each at the price in effect at its
    start) and apply the differences to traces and rollups, batch by batch."""
    from pharos.server.cost.book import PriceBook
    from pharos.server.cost.recompute import count_calls, recompute
    from pharos.server.db.engine import make_engine
    from pharos.server.timeparse import parse_instant_ns

    now = time.time_ns()
    try:
        since_ns = parse_instant_ns(since, now)
        until_ns = now if until is None else parse_instant_ns(until, now)
    except ValueError as exc:
        console.print(f"[red]invalid time:[/red] {exc}")
        raise typer.Exit(2) from None
    settings = _settings(database_url=database_url)
    engine = make_engine(settings.database_url)
    try:
        book = PriceBook(engine, aliases=settings.model_aliases)
        total = count_calls(engine, since_ns, until_ns)
        with Progress(
            TextColumn("[bold]re-pricing model calls"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("spans", total=total)
            result = recompute(
                engine,
                book,
                since_ns=since_ns,
                until_ns=until_ns,
                batch_size=batch_size,
                on_batch=lambda n: progress.advance(task, n),
            )
    finally:
        engine.dispose()
    console.print(
        f"re-priced {result.scanned} model calls: {result.changed} changed, "
        f"total cost {'+' if result.delta_nanousd >= 0 else '-'}"
        f"{abs(result.delta_nanousd) / 1e9:.9f} USD"
    )


def _active_keys(settings: Settings) -> int:
    """Unrevoked API keys in the database (0 when it is not created/migrated yet)."""
    from pharos.server.access.keys import count_active_keys
    from pharos.server.db.engine import make_engine

    engine = make_engine(settings.database_url)
    try:
        return count_active_keys(engine)
    except Exception:
        return 0
    finally:
        engine.dispose()


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
