"""costs: tables for issue 6 (model_prices, budgets, budget_events, llm_usage_daily)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 03:10:00

The revision chain 0003 → 0006 was laid out up front so work on separate capabilities could
proceed in parallel without Alembic branches; a revision whose capability adds no table yet
changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "model_prices",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("input_microusd_per_mtok", sa.BigInteger(), nullable=False),
        sa.Column("output_microusd_per_mtok", sa.BigInteger(), nullable=False),
        sa.Column("cached_microusd_per_mtok", sa.BigInteger(), nullable=True),
        sa.Column("effective_from_ns", sa.BigInteger(), nullable=False),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_prices")),
        sa.UniqueConstraint(
            "model", "effective_from_ns", name=op.f("uq_model_prices_model_effective_from_ns")
        ),
    )
    op.create_table(
        "budgets",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("agent", sa.Text(), nullable=True),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("limit_nanousd", sa.BigInteger(), nullable=False),
        sa.Column("soft_limit_nanousd", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("status_since_ns", sa.BigInteger(), nullable=True),
        sa.Column("period_start_ns", sa.BigInteger(), nullable=True),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.Column("updated_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budgets")),
        sa.UniqueConstraint("name", name=op.f("uq_budgets_name")),
    )
    op.create_table(
        "budget_events",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("budget_id", sa.BigInteger(), nullable=False),
        sa.Column("at_ns", sa.BigInteger(), nullable=False),
        sa.Column("from_status", sa.String(length=12), nullable=False),
        sa.Column("to_status", sa.String(length=12), nullable=False),
        sa.Column("spend_nanousd", sa.BigInteger(), nullable=False),
        sa.Column("forecast_nanousd", sa.BigInteger(), nullable=False),
        sa.Column("limit_nanousd", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget_events")),
    )
    with op.batch_alter_table("budget_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_budget_events_budget_id_at_ns", ["budget_id", "at_ns"], unique=False
        )
    op.create_table(
        "llm_usage_daily",
        sa.Column("day", sa.BigInteger(), nullable=False),
        sa.Column("agent", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("prompt_hash", sa.String(length=32), nullable=False),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_nanousd", sa.BigInteger(), nullable=False),
        sa.Column("error_cost_nanousd", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "agent", "model", "prompt_hash", name=op.f("pk_llm_usage_daily")
        ),
    )


def downgrade() -> None:
    op.drop_table("llm_usage_daily")
    with op.batch_alter_table("budget_events", schema=None) as batch_op:
        batch_op.drop_index("ix_budget_events_budget_id_at_ns")
    op.drop_table("budget_events")
    op.drop_table("budgets")
    op.drop_table("model_prices")
