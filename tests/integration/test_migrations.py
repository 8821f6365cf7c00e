"""One Alembic history for both dialects: upgrade, downgrade, and models == migrated schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

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
