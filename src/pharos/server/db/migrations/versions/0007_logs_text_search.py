"""logs text search: a pg_trgm GIN index over log bodies on PostgreSQL (issue 10)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 09:00:00

``GET /api/v1/logs?q=`` is a case-insensitive substring search (``ILIKE '%text%'``). On
PostgreSQL a GIN index with pg_trgm's ``gin_trgm_ops`` answers it for texts of 3 characters or
more (bench/logs.py measures it). pg_trgm is a trusted extension (PostgreSQL 13+): the owner of
the database may create it. SQLite already has the FTS5 trigram table ``logs_fts`` (0003), so
this revision changes nothing there.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_index(
        "ix_logs_body_trgm",
        "logs",
        ["body"],
        postgresql_using="gin",
        postgresql_ops={"body": "gin_trgm_ops"},
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_logs_body_trgm", table_name="logs")
    # The extension stays: other objects of the database may use it.
