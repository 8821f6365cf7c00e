"""SQLite backups with the online backup API: a consistent copy while the server ingests.

The copy is taken in one backup step, i.e. inside one read transaction of the source: in WAL
mode writers keep committing meanwhile, and the copy is the database as of the moment the step
began (a stepwise copy would restart after every commit of another connection and might never
finish under steady ingest). It is written to ``PATH.partial``, checked with
``PRAGMA integrity_check`` and only then renamed to ``PATH``.

PostgreSQL is backed up with its own tools (``pg_dump``/``pg_restore``, see docs/deployment.md).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from pharos.server.db.engine import normalise_url


class BackupError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path
    bytes: int
    revision: str | None
    spans: int
    traces: int


def sqlite_path(database_url: str) -> Path:
    url = make_url(normalise_url(database_url))
    if url.get_backend_name() != "sqlite":
        raise BackupError(
            "pharos backup/restore copy SQLite files; back up PostgreSQL with pg_dump -Fc and "
            "restore it with pg_restore (docs/deployment.md#backups)"
        )
    if not url.database or url.database == ":memory:":
        raise BackupError("database_url names no SQLite file")
    return Path(url.database)


def _connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
    conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def integrity(path: Path) -> str:
    """``PRAGMA integrity_check`` of the file: "ok" or the problems it found."""
    try:
        conn = _connect(path, readonly=True)
        try:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:  # not a database at all, or a damaged header
        return str(exc)
    return "\n".join(str(r[0]) for r in rows)


def describe(path: Path) -> tuple[str | None, int, int]:
    """The file's migration revision and how many spans and traces it holds."""
    conn = _connect(path, readonly=True)
    try:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "alembic_version" not in names:
            raise BackupError(f"{path} is not a Pharos database (no alembic_version table)")
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        spans = conn.execute("SELECT count(*) FROM spans").fetchone()[0] if "spans" in names else 0
        traces = (
            conn.execute("SELECT count(*) FROM traces").fetchone()[0] if "traces" in names else 0
        )
    finally:
        conn.close()
    return (row[0] if row else None), int(spans), int(traces)


def _copy(
    source: sqlite3.Connection,
    target: Path,
    total_bytes: int,
    progress: Callable[[int, int], None] | None,
) -> None:
    """One backup step of every page, with ``progress(done, total)`` from the growing file."""
    dest = sqlite3.connect(str(target), isolation_level=None)
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.2):
            if progress is not None and target.exists():
                progress(min(target.stat().st_size, total_bytes), total_bytes)

    watcher = threading.Thread(target=watch, name="pharos-backup-progress", daemon=True)
    watcher.start()
    try:
        source.backup(dest, pages=-1)  # one step: one consistent snapshot of the source
        dest.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
    finally:
        done.set()
        watcher.join()
        dest.close()
    if progress is not None:
        progress(total_bytes, total_bytes)


def backup(
    database_url: str, out: Path, *, progress: Callable[[int, int], None] | None = None
) -> BackupResult:
    source_path = sqlite_path(database_url)
    if not source_path.exists():
        raise BackupError(f"{source_path} does not exist")
    out = out.resolve()
    if out == source_path.resolve():
        raise BackupError("the backup must not overwrite the database itself")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)
    source = _connect(source_path)
    try:
        page_size = source.execute("PRAGMA page_size").fetchone()[0]
        pages = source.execute("PRAGMA page_count").fetchone()[0]
        _copy(source, partial, int(page_size) * int(pages), progress)
    finally:
        source.close()
    check = integrity(partial)
    if check != "ok":
        partial.unlink(missing_ok=True)
        raise BackupError(f"the copy failed its integrity check: {check[:500]}")
    revision, spans, traces = describe(partial)
    os.replace(partial, out)
    return BackupResult(out, out.stat().st_size, revision, spans, traces)


def restore(
    backup_file: Path,
    database_url: str,
    *,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> BackupResult:
    """Replace the database with ``backup_file`` (checked first). Stop the servers using it
    before restoring: they would keep serving what they had cached."""
    target = sqlite_path(database_url)
    if not backup_file.exists():
        raise BackupError(f"{backup_file} does not exist")
    check = integrity(backup_file)
    if check != "ok":
        raise BackupError(f"{backup_file} failed its integrity check: {check[:500]}")
    revision, spans, traces = describe(backup_file)
    if target.exists() and target.stat().st_size > 0 and not force:
        raise BackupError(f"{target} exists: pass --force to replace it with the backup")
    target.parent.mkdir(parents=True, exist_ok=True)
    source = _connect(backup_file, readonly=True)
    try:
        size = backup_file.stat().st_size
        dest = sqlite3.connect(str(target), timeout=30, isolation_level=None)
        try:
            dest.execute("PRAGMA busy_timeout=30000")
            source.backup(dest, pages=-1)  # writes through SQLite's locks, WAL included
        finally:
            dest.close()
        if progress is not None:
            progress(size, size)
    finally:
        source.close()
    check = integrity(target)
    if check != "ok":
        raise BackupError(f"the restored database failed its integrity check: {check[:500]}")
    return BackupResult(target, target.stat().st_size, revision, spans, traces)
