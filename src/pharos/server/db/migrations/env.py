"""Alembic environment: one migration history for SQLite (batch mode) and PostgreSQL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from pharos.server.db.engine import SQLITE_BEGIN, make_engine
from pharos.server.db.schema import metadata

config = context.config
# A cross-process lock id for PostgreSQL so instances starting together migrate one at a time.
_PG_MIGRATION_LOCK = 0x70686172  # "phar"


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            is_pg = connection.dialect.name == "postgresql"
            if is_pg:
                connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                connection.commit()
            try:
                context.configure(
                    connection=connection,
                    target_metadata=metadata,
                    render_as_batch=connection.dialect.name == "sqlite",
                    compare_type=True,
                )
                if is_pg:
                    with context.begin_transaction():
                        context.run_migrations()
                else:
                    # SQLite: one IMMEDIATE transaction from reading the revision to the last
                    # step, so a second `pharos db upgrade` (another instance starting) waits
                    # for this one and then finds nothing to do.
                    connection.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
                    with connection.begin():
                        context.run_migrations()
            finally:
                if is_pg:
                    connection.execute(
                        text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK}
                    )
                    connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `pharos db upgrade`")
run_migrations_online()
