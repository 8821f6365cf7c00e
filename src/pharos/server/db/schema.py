"""Every table Pharos stores, declared once for SQLite and PostgreSQL (SQLAlchemy Core).

Conventions: ids are lowercase hex strings; times are integer nanoseconds since the epoch
(``*_ns``); durations are float milliseconds; money is integer nano-dollars (``*_nanousd``,
1e-9 USD) so sums never drift; JSON documents are stored as text (serialised with orjson).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# BigInteger primary keys autoincrement on PostgreSQL; SQLite needs INTEGER to alias the rowid.
_Id = BigInteger().with_variant(Integer(), "sqlite")

spans = Table(
    "spans",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("trace_id", String(32), nullable=False),
    Column("span_id", String(16), nullable=False),
    Column("parent_span_id", String(16), nullable=True),
    Column("name", Text, nullable=False),
    # What the span does for an agent: agent, llm, tool, chain, retriever, embedding, ... or span.
    Column("kind", String(32), nullable=False),
    # OpenTelemetry SpanKind: 0 unspecified, 1 internal, 2 server, 3 client, 4 producer, 5 consumer.
    Column("span_kind", SmallInteger, nullable=False, default=0),
    Column("agent", Text, nullable=False),
    Column("model", Text, nullable=True),
    Column("service", Text, nullable=True),
    Column("start_ns", BigInteger, nullable=False),
    Column("end_ns", BigInteger, nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("status", String(8), nullable=False),  # unset | ok | error
    Column("status_message", Text, nullable=True),
    Column("input_tokens", BigInteger, nullable=True),
    Column("output_tokens", BigInteger, nullable=True),
    Column("cached_tokens", BigInteger, nullable=True),
    Column("cost_nanousd", BigInteger, nullable=True),
    Column("attributes", Text, nullable=False, default="{}"),
    Column("events", Text, nullable=False, default="[]"),
    Column("links", Text, nullable=False, default="[]"),
    Column("resource", Text, nullable=False, default="{}"),
    Column("scope", Text, nullable=True),
    UniqueConstraint("trace_id", "span_id"),
)

traces = Table(
    "traces",
    metadata,
    Column("trace_id", String(32), primary_key=True),
    Column("root_span_id", String(16), nullable=True),
    Column("name", Text, nullable=True),  # the root span's name once it has arrived
    Column("agent", Text, nullable=False),
    # How sure we are of `agent`: 3 explicit on the root, 2 explicit on another span,
    # 1 the root's service.name, 0 another span's service.name. Higher wins on upsert.
    Column("agent_rank", SmallInteger, nullable=False, default=0),
    Column("start_ns", BigInteger, nullable=False),
    Column("end_ns", BigInteger, nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("span_count", Integer, nullable=False, default=0),
    Column("error_count", Integer, nullable=False, default=0),
    Column("llm_calls", Integer, nullable=False, default=0),
    Column("tool_calls", Integer, nullable=False, default=0),
    Column("input_tokens", BigInteger, nullable=False, default=0),
    Column("output_tokens", BigInteger, nullable=False, default=0),
    Column("cached_tokens", BigInteger, nullable=False, default=0),
    Column("cost_nanousd", BigInteger, nullable=False, default=0),
    Column("status", String(8), nullable=False),  # ok | error
    Column("error_message", Text, nullable=True),  # the first error status message seen
    Column("updated_ns", BigInteger, nullable=False),
    Index("ix_traces_start_ns", "start_ns"),
    Index("ix_traces_agent_start_ns", "agent", "start_ns"),
)


def _rollup_table(name: str) -> Table:
    """Pre-aggregated request/LLM/tool figures per (bucket_start, agent, model, kind).

    ``histogram`` is the latency histogram as JSON ``{"bucket": count}`` (see
    analytics/histogram.py): mergeable by adding counts, <= 1 % relative error.
    """
    return Table(
        name,
        metadata,
        Column("bucket_start", BigInteger, primary_key=True),  # epoch seconds
        Column("agent", Text, primary_key=True),
        Column("model", Text, primary_key=True),  # "" when there is none
        Column("kind", String(32), primary_key=True),  # request | llm | embedding | tool | ...
        Column("count", BigInteger, nullable=False, default=0),
        Column("errors", BigInteger, nullable=False, default=0),
        Column("duration_sum_ms", Float, nullable=False, default=0.0),
        Column("duration_max_ms", Float, nullable=False, default=0.0),
        Column("input_tokens", BigInteger, nullable=False, default=0),
        Column("output_tokens", BigInteger, nullable=False, default=0),
        Column("cached_tokens", BigInteger, nullable=False, default=0),
        Column("cost_nanousd", BigInteger, nullable=False, default=0),
        Column("histogram", Text, nullable=False, default="{}"),
    )


rollups_1m = _rollup_table("rollups_1m")
rollups_1h = _rollup_table("rollups_1h")
rollups_1d = _rollup_table("rollups_1d")
ROLLUP_TABLES = {"1m": rollups_1m, "1h": rollups_1h, "1d": rollups_1d}
