"""ops indexes: time-range and retention indexes for volume (issue 8)

Revision ID: 0009
Revises: 0006
Create Date: 2026-12-02 07:00:00

- ``ix_spans_start_ns``: BRIN on PostgreSQL only (time-range scans of raw spans at a few kB per
  GB; SQLite has no BRIN and gets no index, to keep its ingest cost).
- ``ix_traces_errors_start_ns``: partial index of failed traces by start (error lists).
- ``ix_alert_events_at_ns``: retention of alert history.

On PostgreSQL the indexes are built ``CONCURRENTLY`` (outside the migration's transaction), so
upgrading a live database does not block ingest while a large table is indexed.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    is_pg = op.get_bind().dialect.name == "postgresql"
    error = sa.text("status = 'error'")
    if is_pg:
        with op.get_context().autocommit_block():
            op.create_index(
                "ix_spans_start_ns",
                "spans",
                ["start_ns"],
                postgresql_using="brin",
                postgresql_with={"pages_per_range": 32, "autosummarize": "on"},
                postgresql_concurrently=True,
                if_not_exists=True,
            )
            op.create_index(
                "ix_traces_errors_start_ns",
                "traces",
                ["start_ns"],
                postgresql_where=error,
                postgresql_concurrently=True,
                if_not_exists=True,
            )
            op.create_index(
                "ix_alert_events_at_ns",
                "alert_events",
                ["at_ns"],
                postgresql_concurrently=True,
                if_not_exists=True,
            )
    else:
        op.create_index("ix_traces_errors_start_ns", "traces", ["start_ns"], sqlite_where=error)
        op.create_index("ix_alert_events_at_ns", "alert_events", ["at_ns"])


def downgrade() -> None:
    op.drop_index("ix_alert_events_at_ns", table_name="alert_events")
    op.drop_index("ix_traces_errors_start_ns", table_name="traces")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_spans_start_ns", table_name="spans")
