"""access: per-key rate limits (issue 11)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 09:00:00

``api_keys.rpm`` (gateway requests per minute) and ``api_keys.tpm`` (LLM tokens per minute
through the LLM proxy) per key; NULL = the install default (``PHAROS_KEY_RPM`` /
``PHAROS_KEY_TPM``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("rpm", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("tpm", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("tpm")
        batch.drop_column("rpm")
