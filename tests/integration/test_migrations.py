"""One Alembic history for both dialects: upgrade, downgrade, and models == migrated schema."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from pharos.server.db.engine import make_engine
from pharos.server.db.migrate import current_revision, downgrade, head_revision, upgrade
from pharos.server.db.schema import metadata


def _not_fts(name: str | None, type_: str, parent_names: object) -> bool:
    """The SQLite full-text index over log bodies (an FTS5 virtual table and its shadow
    tables) lives in the migration only: SQLAlchemy has no model for virtual tables."""
    return not (type_ == "table" and name is not None and name.startswith("logs_fts"))


def _for_this_dialect(dialect: str) -> object:
    """Skip model indexes declared for another dialect only (``Index(...).ddl_if(dialect=)``,
    e.g. the PostgreSQL BRIN on spans.start_ns): create_all skips them too."""

    def include(obj: object, name: str | None, type_: str, reflected: bool, other: object) -> bool:
        only = getattr(getattr(obj, "_ddl_if", None), "dialect", None)
        return reflected or type_ != "index" or only is None or only == dialect

    return include


def test_upgrade_downgrade_and_schema_matches_models(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "include_name": _not_fts,
                    "include_object": _for_this_dialect(conn.dialect.name),
                },
            )
            diff = compare_metadata(context, metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
        assert {"spans", "traces"} <= set(inspect(engine).get_table_names())

        upgrade(db_url)  # idempotent
        downgrade(db_url, "base")
        engine.dispose()
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(db_url)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_sqlite_rollups_become_clustered_keeping_their_rows(tmp_path: Path) -> None:
    """Migration 0012 rebuilds the SQLite rollup tables WITHOUT ROWID; rows and indexes stay,
    and the downgrade gives the rowid tables back."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url, "0011")
    engine = make_engine(url)
    row = {"b": 1_700_000_040, "a": "bot", "m": "gpt-4o", "k": "llm", "h": '{"12":3}'}

    def tables() -> dict[str, str]:
        with engine.connect() as conn:
            found = conn.execute(
                text("SELECT name, sql FROM sqlite_master WHERE tbl_name LIKE 'rollups_1%'")
            ).all()
        # (a renamed table's name is quoted in its SQL)
        return {name: (sql or "").replace(f'"{name}"', name) for name, sql in found}

    try:
        with engine.begin() as conn:
            for t in ("rollups_1m", "rollups_1h", "rollups_1d"):
                conn.execute(
                    text(
                        f"INSERT INTO {t} VALUES (:b, :a, :m, :k, 3, 1, 30.5, 12.0, 10, 20, 0, "
                        "7, :h)"
                    ),
                    row,
                )
        before = tables()
        assert "WITHOUT ROWID" not in before["rollups_1m"]
        upgrade(url)
        after = tables()
        for t in ("rollups_1m", "rollups_1h", "rollups_1d"):
            assert after[t].rstrip().endswith("WITHOUT ROWID")
            assert f"ix_{t}_agent_bucket_start" in after  # the indexes made again
            with engine.connect() as conn:
                got = conn.execute(text(f"SELECT * FROM {t}")).all()
            assert [tuple(r) for r in got] == [
                (row["b"], "bot", "gpt-4o", "llm", 3, 1, 30.5, 12.0, 10, 20, 0, 7, row["h"])
            ]
        downgrade(url, "0011")
        assert tables() == before
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM rollups_1m")).scalar_one() == 1
    finally:
        engine.dispose()
