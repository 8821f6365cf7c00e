"""Engine construction for SQLite (WAL, one writer) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import ConnectionPoolEntry


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and pick the psycopg 3 driver for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


#: Execution option naming the SQLite ``BEGIN`` mode of a connection's transactions.
SQLITE_BEGIN = "pharos_sqlite_begin"
_BEGIN_MODES = frozenset({"DEFERRED", "IMMEDIATE", "EXCLUSIVE"})


def writing(engine: Engine) -> Engine:
    """``engine`` for a transaction that writes: on SQLite it takes the write lock at BEGIN.

    In WAL mode a deferred transaction that reads and then writes while another connection
    (the ingest writer) holds the lock fails at once with "database is locked", whatever the
    busy timeout; an IMMEDIATE one waits for the lock instead. Reads keep using ``engine``.
    PostgreSQL ignores the option."""
    return engine.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})


#: SQLite page cache per connection (MiB). Each pooled reading connection fills its own as
#: it reads, so with a pool of 8 (+8 overflow) the readers' caches alone could reach 16x this:
#: at 64 MiB the 20-minute soak grew ~16 MB/min to 569 MB with no plateau in sight. The
#: dashboard's reads (rollups, one trace) fit in a few MiB, and the kernel caches the file too.
READER_CACHE_MIB = 16
#: The writer's one connection keeps the index pages it inserts into.
WRITER_CACHE_MIB = 64


def make_engine(
    url: str,
    *,
    sqlite_synchronous: str = "FULL",
    sqlite_begin: str = "DEFERRED",
    pool_size: int = 5,
    sqlite_cache_mib: int = READER_CACHE_MIB,
    **kwargs: Any,
) -> Engine:
    """Build an engine. SQLite gets WAL, the chosen durability and a generous busy timeout;
    ``sqlite_begin="IMMEDIATE"`` makes every transaction take the write lock up front;
    ``sqlite_cache_mib`` bounds each connection's page cache."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        in_memory = parsed.database in (None, "", ":memory:")
        pool_args = {} if in_memory else {"pool_size": pool_size, "max_overflow": pool_size}
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            **pool_args,
            **kwargs,
        )
        synchronous = sqlite_synchronous.upper()
        if synchronous not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError(f"unknown sqlite synchronous mode {sqlite_synchronous!r}")

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
            # Let SQLAlchemy manage transactions (BEGIN) itself; pysqlite's implicit
            # transaction handling would otherwise defer BEGIN and mis-handle savepoints.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA temp_store=MEMORY")
            cur.execute(f"PRAGMA cache_size=-{int(sqlite_cache_mib) * 1024}")
            cur.close()

        default_begin = sqlite_begin.upper()
        if default_begin not in _BEGIN_MODES:
            raise ValueError(f"unknown sqlite begin mode {sqlite_begin!r}")

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            mode = conn.get_execution_options().get(SQLITE_BEGIN, default_begin)
            conn.exec_driver_sql(f"BEGIN {mode if mode in _BEGIN_MODES else default_begin}")

        return engine
    return create_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, **kwargs
    )


def make_writer_engine(url: str, *, sqlite_synchronous: str = "FULL") -> Engine:
    """The group-commit writer's engine: one connection, and on SQLite transactions that take
    the write lock at BEGIN (a deferred one that reads first cannot wait for the lock in WAL
    mode and fails at once with "database is locked")."""
    return make_engine(
        url,
        sqlite_synchronous=sqlite_synchronous,
        sqlite_begin="IMMEDIATE",
        pool_size=1,
        sqlite_cache_mib=WRITER_CACHE_MIB,
    )
