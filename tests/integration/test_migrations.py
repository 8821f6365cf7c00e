"""One Alembic history for both dialects: upgrade, downgrade, and models == migrated schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from pharos.server.db.engine import make_engine
from pharos.server.db.migrate import current_revision, downgrade, head_revision, upgrade
from pharos.server.db.schema import metadata


def test_upgrade_downgrade_and_schema_matches_models(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
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
