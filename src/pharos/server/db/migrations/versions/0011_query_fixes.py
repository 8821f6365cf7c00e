"""query fixes: rollups by agent and by kind

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 12:00:00

The rollups' primary key is (bucket_start, agent, model, kind), so a read filtered on anything
but time walked every row of the range (tests/integration/test_pg_plans.py checks the plans):

- ``ix_rollups_<res>_agent_bucket_start``: one agent's summary, time series or costs read that
  agent's rows, not every agent's;
- ``ix_rollups_<res>_kind_bucket_start`` (PostgreSQL only): a chart of one kind of figure
  (agent runs for requests and latency, model calls for tokens and cost) reads those rows;
  over 30 days of hourly rollups PostgreSQL otherwise scanned the whole table (2.5x slower
  than the index). SQLite's planner preferred it to the primary key for a day's chart and
  read slower (1.6x), so SQLite does not get it.

On PostgreSQL the indexes are built ``CONCURRENTLY`` (outside the migration's transaction), so
upgrading a live database does not block ingest.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("rollups_1m", "rollups_1h", "rollups_1d")
LEADING = ("agent", "kind")  # each index: (column, bucket_start)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            for table in TABLES:
                for column in LEADING:
                    op.create_index(
                        f"ix_{table}_{column}_bucket_start",
                        table,
                        [column, "bucket_start"],
                        postgresql_concurrently=True,
                        if_not_exists=True,
                    )
    else:  # SQLite: the agent index only (its planner read a day's chart slower with kind's)
        for table in TABLES:
            op.create_index(f"ix_{table}_agent_bucket_start", table, ["agent", "bucket_start"])


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in TABLES:
        for column in LEADING if postgresql else ("agent",):
            op.drop_index(f"ix_{table}_{column}_bucket_start", table_name=table)
