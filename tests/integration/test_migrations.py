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


def test_upgrade_downgrade_and_schema_matches_models(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_name": _not_fts})
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
