"""logs metrics errors: tables for issue 10 (logs, metric_points, error_groups)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 03:10:00

The revision chain 0003 → 0006 was laid out up front so work on separate capabilities could
proceed in parallel without Alembic branches; a revision whose capability adds no table yet
changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    _upgrade_metrics()
    _upgrade_logs_errors()


def downgrade() -> None:
    _downgrade_logs_errors()
    _downgrade_metrics()


# --- metrics (issue 10, OTLP metrics) ----------------------------------------------------------


def _upgrade_metrics() -> None:
    op.create_table(
        "metric_series",
        sa.Column("series_key", sa.String(length=32), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("temporality", sa.String(length=12), nullable=False),
        sa.Column("monotonic", sa.Boolean(), nullable=False),
        sa.Column("unit", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("agent", sa.Text(), nullable=False),
        sa.Column("attributes", sa.Text(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("first_seen_ns", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("series_key", name=op.f("pk_metric_series")),
    )
    op.create_index("ix_metric_series_name", "metric_series", ["name"])
    op.create_index("ix_metric_series_last_seen_ns", "metric_series", ["last_seen_ns"])
    op.create_table(
        "metric_points",
        sa.Column("series_key", sa.String(length=32), nullable=False),
        sa.Column("time_ns", sa.BigInteger(), nullable=False),
        sa.Column("start_ns", sa.BigInteger(), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("count", sa.BigInteger(), nullable=True),
        sa.Column("sum", sa.Float(), nullable=True),
        sa.Column("min", sa.Float(), nullable=True),
        sa.Column("max", sa.Float(), nullable=True),
        sa.Column("bounds", sa.Text(), nullable=True),
        sa.Column("counts", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("series_key", "time_ns", name=op.f("pk_metric_points")),
    )
    op.create_index("ix_metric_points_time_ns", "metric_points", ["time_ns"])


def _downgrade_metrics() -> None:
    op.drop_index("ix_metric_points_time_ns", table_name="metric_points")
    op.drop_table("metric_points")
    op.drop_index("ix_metric_series_last_seen_ns", table_name="metric_series")
    op.drop_index("ix_metric_series_name", table_name="metric_series")
    op.drop_table("metric_series")


# --- logs and error tracking (issue 10) --------------------------------------------------------


def _upgrade_logs_errors() -> None:
    op.create_table(
        "logs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("log_id", sa.String(length=32), nullable=False),
        sa.Column("time_ns", sa.BigInteger(), nullable=False),
        sa.Column("observed_ns", sa.BigInteger(), nullable=False),
        sa.Column("severity_number", sa.SmallInteger(), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("severity_text", sa.String(length=32), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("body_json", sa.Boolean(), nullable=False),
        sa.Column("attributes", sa.Text(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=True),
        sa.Column("agent", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=True),
        sa.Column("trace_id", sa.String(length=32), nullable=True),
        sa.Column("span_id", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_logs")),
        sa.UniqueConstraint("log_id", name=op.f("uq_logs_log_id")),
    )
    op.create_index("ix_logs_time_ns", "logs", ["time_ns"])
    op.create_index("ix_logs_trace_id", "logs", ["trace_id"])
    op.create_index("ix_logs_agent_time_ns", "logs", ["agent", "time_ns"])
    op.create_index("ix_logs_severity_number_time_ns", "logs", ["severity_number", "time_ns"])
    op.create_table(
        "error_groups",
        sa.Column("fingerprint", sa.String(length=16), nullable=False),
        sa.Column("exc_type", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("sample_message", sa.Text(), nullable=True),
        sa.Column("stacktrace", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("first_seen_ns", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_ns", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("resolved_at_ns", sa.BigInteger(), nullable=True),
        sa.Column("regressed_at_ns", sa.BigInteger(), nullable=True),
        sa.Column("sample_trace_id", sa.String(length=32), nullable=True),
        sa.Column("recent_traces", sa.Text(), nullable=False),
        sa.Column("agents", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name=op.f("pk_error_groups")),
    )
    op.create_index("ix_error_groups_last_seen_ns", "error_groups", ["last_seen_ns"])
    op.create_table(
        "error_occurrences",
        sa.Column("bucket_start", sa.BigInteger(), nullable=False),
        sa.Column("fingerprint", sa.String(length=16), nullable=False),
        sa.Column("agent", sa.Text(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "bucket_start", "fingerprint", "agent", name=op.f("pk_error_occurrences")
        ),
    )
    op.create_index(
        "ix_error_occurrences_fingerprint_bucket_start",
        "error_occurrences",
        ["fingerprint", "bucket_start"],
    )
    if op.get_bind().dialect.name == "sqlite":
        # Substring search over log bodies (GET /api/v1/logs?q=): an external-content FTS5
        # index with the trigram tokenizer (case-insensitive; LIKE '%..%' uses it), kept in
        # step with `logs` by triggers, so the writer and the pruner need not know about it.
        op.execute(
            "CREATE VIRTUAL TABLE logs_fts USING fts5(body, content='logs', "
            "content_rowid='id', tokenize='trigram')"
        )
        op.execute(
            "CREATE TRIGGER logs_fts_insert AFTER INSERT ON logs BEGIN "
            "INSERT INTO logs_fts(rowid, body) VALUES (new.id, new.body); END"
        )
        op.execute(
            "CREATE TRIGGER logs_fts_delete AFTER DELETE ON logs BEGIN "
            "INSERT INTO logs_fts(logs_fts, rowid, body) VALUES ('delete', old.id, old.body); END"
        )


def _downgrade_logs_errors() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS logs_fts_delete")
        op.execute("DROP TRIGGER IF EXISTS logs_fts_insert")
        op.execute("DROP TABLE IF EXISTS logs_fts")
    op.drop_index("ix_error_occurrences_fingerprint_bucket_start", table_name="error_occurrences")
    op.drop_table("error_occurrences")
    op.drop_index("ix_error_groups_last_seen_ns", table_name="error_groups")
    op.drop_table("error_groups")
    op.drop_index("ix_logs_severity_number_time_ns", table_name="logs")
    op.drop_index("ix_logs_agent_time_ns", table_name="logs")
    op.drop_index("ix_logs_trace_id", table_name="logs")
    op.drop_index("ix_logs_time_ns", table_name="logs")
    op.drop_table("logs")
