"""alerting: tables for issue 5 (alert_rules, alerts, silences, channels, outbox)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 03:10:00

The revision chain 0003 → 0006 was laid out up front so work on separate capabilities could
proceed in parallel without Alembic branches; a revision whose capability adds no table yet
changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("expression", sa.Text(), nullable=False),
        sa.Column("for_s", sa.Integer(), nullable=False),
        sa.Column("keep_firing_for_s", sa.Integer(), nullable=False),
        sa.Column("repeat_interval_s", sa.Integer(), nullable=False),
        sa.Column("severity", sa.String(length=8), nullable=False),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("channels", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.Column("updated_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_rules")),
        sa.UniqueConstraint("name", name=op.f("uq_alert_rules_name")),
    )
    op.create_table(
        "alerts",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("rule_id", sa.BigInteger(), nullable=False),
        sa.Column("rule_name", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("severity", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("episode", sa.Integer(), nullable=False),
        sa.Column("pending_since_ns", sa.BigInteger(), nullable=True),
        sa.Column("fired_ns", sa.BigInteger(), nullable=True),
        sa.Column("last_true_ns", sa.BigInteger(), nullable=True),
        sa.Column("resolved_ns", sa.BigInteger(), nullable=True),
        sa.Column("last_notified_ns", sa.BigInteger(), nullable=True),
        sa.Column("acked_by", sa.Text(), nullable=True),
        sa.Column("acked_ns", sa.BigInteger(), nullable=True),
        sa.Column("ack_comment", sa.Text(), nullable=True),
        sa.Column("silenced_by", sa.BigInteger(), nullable=True),
        sa.Column("last_eval_ns", sa.BigInteger(), nullable=False),
        sa.Column("updated_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("rule_id", "fingerprint", name=op.f("uq_alerts_rule_id_fingerprint")),
    )
    op.create_index("ix_alerts_state", "alerts", ["state"])
    op.create_table(
        "alert_events",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=False),
        sa.Column("at_ns", sa.BigInteger(), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("who", sa.Text(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_events")),
    )
    op.create_index("ix_alert_events_alert_id_at_ns", "alert_events", ["alert_id", "at_ns"])
    op.create_table(
        "silences",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("matchers", sa.Text(), nullable=False),
        sa.Column("starts_ns", sa.BigInteger(), nullable=False),
        sa.Column("ends_ns", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_silences")),
    )
    op.create_index("ix_silences_ends_ns", "silences", ["ends_ns"])
    op.create_table(
        "channels",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("severities", sa.Text(), nullable=False),
        sa.Column("matchers", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.Column("updated_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channels")),
        sa.UniqueConstraint("name", name=op.f("uq_channels_name")),
    )
    op.create_table(
        "outbox",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("channel_id", sa.BigInteger(), nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=True),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_ns", sa.BigInteger(), nullable=False),
        sa.Column("locked_until_ns", sa.BigInteger(), nullable=True),
        sa.Column("locked_by", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.Column("sent_ns", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_outbox_idempotency_key")),
    )
    op.create_index("ix_outbox_status_next_attempt_ns", "outbox", ["status", "next_attempt_ns"])
    op.create_table(
        "alerting_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("expires_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_alerting_leases")),
    )


def downgrade() -> None:
    op.drop_table("alerting_leases")
    op.drop_index("ix_outbox_status_next_attempt_ns", table_name="outbox")
    op.drop_table("outbox")
    op.drop_table("channels")
    op.drop_index("ix_silences_ends_ns", table_name="silences")
    op.drop_table("silences")
    op.drop_index("ix_alert_events_alert_id_at_ns", table_name="alert_events")
    op.drop_table("alert_events")
    op.drop_index("ix_alerts_state", table_name="alerts")
    op.drop_table("alerts")
    op.drop_table("alert_rules")
