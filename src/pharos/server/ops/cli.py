"""``pharos retention run``, ``pharos backup`` and ``pharos restore`` (Typer + Rich)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

if TYPE_CHECKING:
    from pharos.server.settings import Settings

out = Console()
err = Console(stderr=True)
retention_app = typer.Typer(
    help="Retention: prune data older than the PHAROS_RETENTION_* settings.",
    no_args_is_help=True,
)
DatabaseOption = Annotated[
    str | None, typer.Option(help="(env PHAROS_DATABASE_URL)", show_default=False)
]


def _settings(database_url: str | None) -> Settings:
    from pydantic import ValidationError

    from pharos.server.settings import Settings

    try:
        return Settings(database_url=database_url) if database_url else Settings()
    except ValidationError as exc:
        err.print(f"[red]invalid configuration:[/red] {exc}")
        raise typer.Exit(2) from None


def _when(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%MZ")


@retention_app.command("run")
def retention_run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count what would be deleted.")
    ] = False,
    database_url: DatabaseOption = None,
) -> None:
    """Delete what is older than each signal's retention, in small batches (safe while
    servers run); --dry-run shows what would go."""
    from pharos.server.db.engine import make_engine
    from pharos.server.db.migrate import is_up_to_date
    from pharos.server.ops import prune
    from pharos.server.ops.retention import check_order, plan

    settings = _settings(database_url)
    if not is_up_to_date(settings.database_url):
        err.print(
            "[red]the database is not at the current migration:[/red] run `pharos db upgrade`"
        )
        raise typer.Exit(2)
    for warning in check_order(settings):
        err.print(f"[yellow]warning:[/yellow] {warning}")
    engine = make_engine(settings.database_url)
    try:
        targets = plan(settings, time.time_ns())
        counts = [prune.count(engine, t) for t in targets]
        done: list[prune.Pruned] = []
        if not dry_run:
            with Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("rows"),
                TimeElapsedColumn(),
                console=err,
            ) as progress:
                for target, (rows, _) in zip(targets, counts, strict=True):
                    task = progress.add_task(target.table, total=max(rows, 1))

                    def advance(n: int, _spans: int, task: TaskID = task) -> None:
                        progress.advance(task, n)

                    result = prune.prune(
                        engine, target, settings.retention_batch_rows, progress=advance
                    )
                    progress.update(task, completed=max(result.rows, rows, 1))
                    done.append(result)
    finally:
        engine.dispose()
    title = "would be deleted (dry run)" if dry_run else "deleted"
    table = Table(title=f"Retention: {title}")
    for column in ("signal", "table", "older than", "rows", "spans with them"):
        table.add_column(
            column, justify="right" if column in ("rows", "spans with them") else "left"
        )
    if not dry_run:
        table.add_column("batches", justify="right")
        table.add_column("longest batch", justify="right")
    total = 0
    for i, target in enumerate(targets):
        rows, spans = counts[i] if dry_run else (done[i].rows, done[i].spans)
        total += rows + spans
        cells = [
            target.signal,
            target.table,
            _when(target.cutoff_ns),
            f"{rows:,}",
            f"{spans:,}" if target.table == "traces" else "",
        ]
        if not dry_run:
            cells += [str(done[i].batches), f"{done[i].longest_batch_seconds * 1000:.0f} ms"]
        table.add_row(*cells)
    out.print(table)
    out.print(f"{total:,} rows {'would go' if dry_run else 'deleted'}")


def backup_command(
    path: Annotated[Path, typer.Argument(help="File to write the copy to.")],
    database_url: DatabaseOption = None,
) -> None:
    """Copy the SQLite database to PATH while servers keep running (online backup API, checked
    with PRAGMA integrity_check). PostgreSQL: use pg_dump (docs/deployment.md)."""
    from pharos.server.ops.backup import BackupError, backup

    settings = _settings(database_url)
    try:
        with _bytes_progress("backing up") as report:
            result = backup(settings.database_url, path, progress=report)
    except BackupError as exc:
        err.print(f"[red]backup failed:[/red] {exc}")
        raise typer.Exit(2) from None
    out.print(
        f"wrote {result.path} ({result.bytes:,} bytes, revision {result.revision}, "
        f"{result.traces:,} traces, {result.spans:,} spans); integrity_check ok"
    )


def restore_command(
    path: Annotated[Path, typer.Argument(help="A file written by `pharos backup`.")],
    database_url: DatabaseOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing database.")] = False,
) -> None:
    """Replace the SQLite database with a backup (checked first). Stop the servers first."""
    from pharos.server.db.migrate import head_revision
    from pharos.server.ops.backup import BackupError, restore

    settings = _settings(database_url)
    try:
        with _bytes_progress("restoring") as report:
            result = restore(path, settings.database_url, force=force, progress=report)
    except BackupError as exc:
        err.print(f"[red]restore failed:[/red] {exc}")
        raise typer.Exit(2) from None
    out.print(
        f"restored {result.path} from {path} (revision {result.revision}, {result.traces:,} "
        f"traces, {result.spans:,} spans); integrity_check ok"
    )
    if result.revision != head_revision():
        out.print("the backup is from an older Pharos: run `pharos db upgrade` next")


class _bytes_progress:
    def __init__(self, what: str) -> None:
        self.progress = Progress(
            TextColumn(f"[bold]{what}"),
            BarColumn(),
            DownloadColumn(),
            TimeElapsedColumn(),
            console=err,
        )
        self.task = self.progress.add_task(what, total=None)

    def __enter__(self) -> Callable[[int, int], None]:
        self.progress.start()

        def report(done: int, total: int) -> None:
            self.progress.update(self.task, completed=done, total=total)

        return report

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()
