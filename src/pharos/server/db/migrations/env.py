"""Alembic environment: one migration history for SQLite (batch mode) and PostgreSQL."""

from __future__ import annotations

import logging
import time

from alembic import context
from sqlalchemy import Connection, text

from pharos.server.db.engine import SQLITE_BEGIN, make_engine
from pharos.server.db.schema import metadata

config = context.config
log = logging.getLogger("pharos.migrate")
# A cross-process lock id for PostgreSQL so instances starting together migrate one at a time.
_PG_MIGRATION_LOCK = 0x70686172  # "phar"


def _pg_lock(connection: Connection) -> None:
    """Take the migration lock, polling with pg_try_advisory_lock between short transactions:
    a session blocked inside pg_advisory_lock keeps a snapshot open, and a migration that
    builds an index CONCURRENTLY waits for every such snapshot (a deadlock)."""
    waited = False
    while True:
        got = connection.execute(
            text("SELECT pg_try_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK}
        ).scalar()
        connection.commit()
        if got:
            return
        if not waited:
            log.warning("another instance is migrating the database: waiting for it")
            waited = True
        time.sleep(0.25)


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            is_pg = connection.dialect.name == "postgresql"
            if is_pg:
                _pg_lock(connection)
            try:
                if is_pg:
                    _configure(connection)
                    with context.begin_transaction():
                        context.run_migrations()
                else:
                    # SQLite: one IMMEDIATE transaction from reading the revision to the last
                    # step, so a second `pharos db upgrade` (another instance starting) waits
                    # for this one and then finds nothing to do. Begun before configure(), so
                    # Alembic sees an outer transaction and commits nothing in between.
                    connection.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
                    with connection.begin():
                        _configure(connection)
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
