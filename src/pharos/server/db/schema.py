"""Every table Pharos stores, declared once for SQLite and PostgreSQL (SQLAlchemy Core).

Conventions: ids are lowercase hex strings; times are integer nanoseconds since the epoch
(``*_ns``); durations are float milliseconds; money is integer nano-dollars (``*_nanousd``,
1e-9 USD) so sums never drift; JSON documents are stored as text (serialised with orjson).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
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
# Time-range scans of raw spans (cost recompute, ad-hoc ranges) on PostgreSQL: a BRIN index, a
# few kB per GB because spans arrive in about time order, and almost free at ingest
# (docs/deployment.md, "Retention and volume"). SQLite has no BRIN; it keeps no such index.
Index(
    "ix_spans_start_ns",
    spans.c.start_ns,
    postgresql_using="brin",
    postgresql_with={"pages_per_range": 32, "autosummarize": "on"},
).ddl_if(dialect="postgresql")

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
# The newest failed traces (dashboard, `status=error` lists) without walking every trace.
Index(
    "ix_traces_errors_start_ns",
    traces.c.start_ns,
    postgresql_where=traces.c.status == "error",
    sqlite_where=traces.c.status == "error",
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
        # One agent's figures, or one kind's (a chart of runs, of model calls): those rows
        # only, not every row of the range (migration 0010).
        Index(f"ix_{name}_agent_bucket_start", "agent", "bucket_start"),
        # PostgreSQL only: its planner scanned whole hourly tables for one kind's 30-day chart
        # without it; SQLite's picked it over the primary key for a day's chart and read
        # slower (1.6x for the 24 h latency chart by agent).
        Index(f"ix_{name}_kind_bucket_start", "kind", "bucket_start").ddl_if(dialect="postgresql"),
        # SQLite: rows stored in the primary key's B-tree (migration 0012).
        sqlite_with_rowid=False,
    )


rollups_1m = _rollup_table("rollups_1m")
rollups_1h = _rollup_table("rollups_1h")
rollups_1d = _rollup_table("rollups_1d")
ROLLUP_TABLES = {"1m": rollups_1m, "1h": rollups_1h, "1d": rollups_1d}


# --- alerting (issue 5): rules, alerts with history, silences, channels, outbox -----------------

alert_rules = Table(
    "alert_rules",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("expression", Text, nullable=False),  # the rule language (alerting/language.py)
    Column("for_s", Integer, nullable=False, default=0),
    Column("keep_firing_for_s", Integer, nullable=False, default=0),
    Column("repeat_interval_s", Integer, nullable=False, default=14400),  # 0 = never repeat
    Column("severity", String(8), nullable=False),  # info | warning | error | critical
    Column("labels", Text, nullable=False, default="{}"),
    Column("message", Text, nullable=False, default=""),  # template: {agent} {value} ...
    Column("channels", Text, nullable=False, default="[]"),  # channel names, besides routing
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_ns", BigInteger, nullable=False),
    Column("updated_ns", BigInteger, nullable=False),
    UniqueConstraint("name"),
)

# One row per rule + label set (fingerprint); its state is the state machine's (alerting/state.py).
alerts = Table(
    "alerts",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("rule_id", BigInteger, nullable=False),
    Column("rule_name", Text, nullable=False),
    Column("fingerprint", String(32), nullable=False),
    Column("labels", Text, nullable=False, default="{}"),
    Column("severity", String(8), nullable=False),
    Column("state", String(10), nullable=False),  # inactive | pending | firing | resolved
    Column("value", Float, nullable=True),
    Column("message", Text, nullable=False, default=""),
    Column("episode", Integer, nullable=False, default=0),  # +1 each time it goes pending
    Column("pending_since_ns", BigInteger, nullable=True),
    Column("fired_ns", BigInteger, nullable=True),
    Column("last_true_ns", BigInteger, nullable=True),
    Column("resolved_ns", BigInteger, nullable=True),
    Column("last_notified_ns", BigInteger, nullable=True),
    Column("acked_by", Text, nullable=True),
    Column("acked_ns", BigInteger, nullable=True),
    Column("ack_comment", Text, nullable=True),
    Column("silenced_by", BigInteger, nullable=True),  # the silence muting it, if any
    Column("last_eval_ns", BigInteger, nullable=False),
    Column("updated_ns", BigInteger, nullable=False),
    UniqueConstraint("rule_id", "fingerprint"),
    Index("ix_alerts_state", "state"),
)

alert_events = Table(
    "alert_events",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("alert_id", BigInteger, nullable=False),
    Column("at_ns", BigInteger, nullable=False),
    # pending | firing | resolved | repeat | acknowledged | silenced | unacknowledged
    Column("event", String(16), nullable=False),
    Column("state", String(10), nullable=False),
    Column("value", Float, nullable=True),
    Column("who", Text, nullable=True),
    Column("comment", Text, nullable=True),
    Index("ix_alert_events_alert_id_at_ns", "alert_id", "at_ns"),
    Index("ix_alert_events_at_ns", "at_ns"),  # retention
)

silences = Table(
    "silences",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("matchers", Text, nullable=False),  # [{"name", "op": = != =~ !~, "value"}]
    Column("starts_ns", BigInteger, nullable=False),
    Column("ends_ns", BigInteger, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("comment", Text, nullable=False),
    Column("created_ns", BigInteger, nullable=False),
    Index("ix_silences_ends_ns", "ends_ns"),
)

channels = Table(
    "channels",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("type", String(16), nullable=False),  # slack | pagerduty | webhook | email
    Column("config", Text, nullable=False, default="{}"),  # url, routing key, secret, smtp ...
    # Routing: alerts of these severities whose labels match every matcher ([] = any); a
    # channel with no severities gets only the rules that name it.
    Column("severities", Text, nullable=False, default="[]"),
    Column("matchers", Text, nullable=False, default="[]"),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_ns", BigInteger, nullable=False),
    Column("updated_ns", BigInteger, nullable=False),
    UniqueConstraint("name"),
)

# Notifications to send, written in the transaction that changes the alert (transactional outbox).
outbox = Table(
    "outbox",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(200), nullable=False),  # alert:episode:event:n:channel
    Column("channel_id", BigInteger, nullable=False),
    Column("alert_id", BigInteger, nullable=True),
    Column("event", String(16), nullable=False),  # firing | resolved | repeat | acknowledged | test
    Column("payload", Text, nullable=False),  # the alert as it was at the transition
    Column("status", String(8), nullable=False),  # pending | sent | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_ns", BigInteger, nullable=False),
    Column("locked_until_ns", BigInteger, nullable=True),
    Column("locked_by", String(64), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_ns", BigInteger, nullable=False),
    Column("sent_ns", BigInteger, nullable=True),
    UniqueConstraint("idempotency_key"),
    Index("ix_outbox_status_next_attempt_ns", "status", "next_attempt_ns"),
)

# Leases (the one evaluating instance) and one-time flags (default rules created), by name.
alerting_leases = Table(
    "alerting_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("expires_ns", BigInteger, nullable=False),
)

# --- cost (issue 6): prices, budgets, per-day model usage ----------------------------------------

model_prices = Table(
    "model_prices",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("model", Text, nullable=False),  # lower case; matched like the bundled names
    # USD per million tokens as integer micro-USD (= pico-USD per token): exact.
    Column("input_microusd_per_mtok", BigInteger, nullable=False),
    Column("output_microusd_per_mtok", BigInteger, nullable=False),
    Column("cached_microusd_per_mtok", BigInteger, nullable=True),
    Column("effective_from_ns", BigInteger, nullable=False),  # 0 = since always
    Column("created_ns", BigInteger, nullable=False),
    Column("note", Text, nullable=True),
    UniqueConstraint("model", "effective_from_ns"),
)

budgets = Table(
    "budgets",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("agent", Text, nullable=True),  # NULL = every agent (a global budget)
    Column("period", String(8), nullable=False),  # daily | monthly (UTC)
    Column("limit_nanousd", BigInteger, nullable=False),  # hard threshold: critical
    Column("soft_limit_nanousd", BigInteger, nullable=False),  # soft threshold: warning
    # Burn status as last evaluated (ok | warning | critical | exceeded), since when, and the
    # start of the budget period it belongs to (a new period starts at ok).
    Column("status", String(12), nullable=False, default="ok"),
    Column("status_since_ns", BigInteger, nullable=True),
    Column("period_start_ns", BigInteger, nullable=True),
    Column("created_ns", BigInteger, nullable=False),
    Column("updated_ns", BigInteger, nullable=False),
    UniqueConstraint("name"),
)

budget_events = Table(
    "budget_events",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("budget_id", BigInteger, nullable=False),
    Column("at_ns", BigInteger, nullable=False),
    Column("from_status", String(12), nullable=False),
    Column("to_status", String(12), nullable=False),
    Column("spend_nanousd", BigInteger, nullable=False),
    Column("forecast_nanousd", BigInteger, nullable=False),
    Column("limit_nanousd", BigInteger, nullable=False),
    Index("ix_budget_events_budget_id_at_ns", "budget_id", "at_ns"),
)

# Model calls per UTC day, agent, model and prompt hash ("" when the span carried no prompt),
# written by the ingest writer in the span's transaction: the savings suggestions read it.
llm_usage_daily = Table(
    "llm_usage_daily",
    metadata,
    Column("day", BigInteger, primary_key=True),  # epoch seconds of 00:00 UTC
    Column("agent", Text, primary_key=True),
    Column("model", Text, primary_key=True),
    Column("prompt_hash", String(32), primary_key=True),
    Column("calls", BigInteger, nullable=False, default=0),
    Column("errors", BigInteger, nullable=False, default=0),
    Column("input_tokens", BigInteger, nullable=False, default=0),
    Column("output_tokens", BigInteger, nullable=False, default=0),
    Column("cached_tokens", BigInteger, nullable=False, default=0),
    Column("cost_nanousd", BigInteger, nullable=False, default=0),
    Column("error_cost_nanousd", BigInteger, nullable=False, default=0),
)


# --- metrics (OTLP metrics ingest; read by query/metrics.py) -----------------------------------

# One row per time series: a metric name + type + agent + point attributes + resource, keyed by
# the hash computed at ingest (ingest/metrics.py series_key). Upserted with every export.
metric_series = Table(
    "metric_series",
    metadata,
    Column("series_key", String(32), primary_key=True),
    Column("name", Text, nullable=False),
    Column("type", String(16), nullable=False),  # gauge | sum | histogram
    Column("temporality", String(12), nullable=False, default=""),  # "" | cumulative | delta
    Column("monotonic", Boolean, nullable=False, default=False),
    Column("unit", Text, nullable=False, default=""),
    Column("description", Text, nullable=False, default=""),
    Column("agent", Text, nullable=False),
    Column("attributes", Text, nullable=False, default="{}"),
    Column("resource", Text, nullable=False, default="{}"),
    Column("first_seen_ns", BigInteger, nullable=False),
    Column("last_seen_ns", BigInteger, nullable=False),
    Index("ix_metric_series_name", "name"),
    Index("ix_metric_series_last_seen_ns", "last_seen_ns"),
)

# Data points: a resent export is idempotent, (series_key, time_ns) being the primary key.
metric_points = Table(
    "metric_points",
    metadata,
    Column("series_key", String(32), primary_key=True),
    Column("time_ns", BigInteger, primary_key=True),
    Column("start_ns", BigInteger, nullable=True),
    Column("value", Float, nullable=True),  # gauge, sum
    Column("count", BigInteger, nullable=True),  # histogram
    Column("sum", Float, nullable=True),
    Column("min", Float, nullable=True),
    Column("max", Float, nullable=True),
    Column("bounds", Text, nullable=True),  # JSON array of explicit bounds
    Column("counts", Text, nullable=True),  # JSON array of bucket counts
    Index("ix_metric_points_time_ns", "time_ns"),
)

# --- logs and error tracking (OTLP logs; query/logs.py, query/errors.py) ------------------------

logs = Table(
    "logs",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    # A hash of the record's content: OTLP gives log records no id, and a resent request must
    # store each record once (ingest/logs.py).
    Column("log_id", String(32), nullable=False),
    Column("time_ns", BigInteger, nullable=False),
    Column("observed_ns", BigInteger, nullable=False),
    Column("severity_number", SmallInteger, nullable=False),
    Column("level", String(8), nullable=False),  # trace debug info warn error fatal
    Column("severity_text", String(32), nullable=True),
    Column("body", Text, nullable=False),
    Column("body_json", Boolean, nullable=False, default=False),
    Column("attributes", Text, nullable=False, default="{}"),
    Column("resource", Text, nullable=False, default="{}"),
    Column("scope", Text, nullable=True),
    Column("agent", Text, nullable=False),
    Column("service", Text, nullable=True),
    Column("trace_id", String(32), nullable=True),
    Column("span_id", String(16), nullable=True),
    UniqueConstraint("log_id"),
    Index("ix_logs_time_ns", "time_ns"),
    Index("ix_logs_trace_id", "trace_id"),
    Index("ix_logs_agent_time_ns", "agent", "time_ns"),
    Index("ix_logs_severity_number_time_ns", "severity_number", "time_ns"),
)
# Text search over log bodies (GET /api/v1/logs?q=, ILIKE '%..%'): a pg_trgm GIN index on
# PostgreSQL (migration 0007). SQLite has the FTS5 trigram table ``logs_fts`` instead (0003).
Index(
    "ix_logs_body_trgm",
    logs.c.body,
    postgresql_using="gin",
    postgresql_ops={"body": "gin_trgm_ops"},
).ddl_if(dialect="postgresql")

error_groups = Table(
    "error_groups",
    metadata,
    Column("fingerprint", String(16), primary_key=True),  # ingest/fingerprint.py
    Column("exc_type", Text, nullable=True),
    Column("message", Text, nullable=False),  # the normalised message that defines the group
    Column("sample_message", Text, nullable=True),  # the latest occurrence's own message
    Column("stacktrace", Text, nullable=True),  # the latest one
    Column("source", String(8), nullable=False),  # span (exception event) | log
    Column("first_seen_ns", BigInteger, nullable=False),
    Column("last_seen_ns", BigInteger, nullable=False),
    Column("count", BigInteger, nullable=False, default=0),
    Column("status", String(8), nullable=False, default="open"),  # open | resolved
    Column("resolved_at_ns", BigInteger, nullable=True),
    Column("regressed_at_ns", BigInteger, nullable=True),  # re-opened by a new occurrence
    Column("sample_trace_id", String(32), nullable=True),
    Column("recent_traces", Text, nullable=False, default="[]"),  # [[trace_id, time_ns, agent]]
    Column("agents", Text, nullable=False, default="[]"),  # every agent seen (capped)
    Index("ix_error_groups_last_seen_ns", "last_seen_ns"),
)

# Occurrences per minute, fingerprint and agent: counts in a window, trends, charts.
error_occurrences = Table(
    "error_occurrences",
    metadata,
    Column("bucket_start", BigInteger, primary_key=True),  # epoch seconds, minute-aligned
    Column("fingerprint", String(16), primary_key=True),
    Column("agent", Text, primary_key=True),
    Column("count", BigInteger, nullable=False, default=0),
    Index("ix_error_occurrences_fingerprint_bucket_start", "fingerprint", "bucket_start"),
)


# --- access (issue 11): API keys, the per-install key secret, the agent registry ----------------

# An API key is never stored: only its first characters (to find the row) and
# HMAC-SHA256(install secret, key) (to verify it). See docs/access.md.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("prefix", String(16), nullable=False),  # "phk_" + 8 characters, shown in lists
    Column("hash", String(64), nullable=False),  # hex HMAC-SHA256
    Column("scopes", Text, nullable=False),  # comma-separated: ingest, read, admin
    Column("created_ns", BigInteger, nullable=False),
    Column("last_used_ns", BigInteger, nullable=True),
    Column("revoked_ns", BigInteger, nullable=True),
    # Per-key gateway limits (NULL = PHAROS_KEY_RPM / PHAROS_KEY_TPM); migration 0010.
    Column("rpm", Integer, nullable=True),  # requests per minute
    Column("tpm", BigInteger, nullable=True),  # LLM tokens per minute (LLM proxy)
    UniqueConstraint("prefix"),
)

# Install-wide secrets by name (the HMAC key of api_keys.hash), created on first use.
access_secrets = Table(
    "access_secrets",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", Text, nullable=False),
    Column("created_ns", BigInteger, nullable=False),
)

# Agents an admin registered (gateway upstream, limits, budget, labels). Agents that only send
# telemetry are listed by /api/v1/agents (analytics) and need no row here.
agent_registry = Table(
    "agent_registry",
    metadata,
    Column("name", Text, primary_key=True),
    Column("upstream_url", Text, nullable=True),
    Column("rpm", Integer, nullable=True),  # requests per minute (NULL = unlimited)
    Column("tpm", BigInteger, nullable=True),  # LLM tokens per minute (NULL = unlimited)
    Column("max_queue", Integer, nullable=False),
    Column("max_wait_ms", Integer, nullable=False),
    Column("budget_nanousd", BigInteger, nullable=True),  # hard budget per budget_period
    Column("budget_period", String(8), nullable=True),  # daily | monthly (UTC)
    Column("labels", Text, nullable=False),  # JSON object of strings
    Column("created_ns", BigInteger, nullable=False),
    Column("updated_ns", BigInteger, nullable=False),
)


# --- interop (issue 9): the forwarding queue, service level objectives ---------------------------

# OTLP requests to send on to other backends (forward/), one row per target, written in the
# ingest transaction that stored the data and deleted once the target accepted it.
forward_queue = Table(
    "forward_queue",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("target", Text, nullable=False),  # the target's name (its base URL by default)
    Column("signal", String(8), nullable=False),  # traces | metrics | logs
    Column("content_type", String(32), nullable=False),  # the request's, as received
    Column("encoding", String(16), nullable=True),  # gzip | NULL
    Column("body", LargeBinary, nullable=False),
    # JSON array of trace_id+span_id of the spans to send, when only some of the request's
    # spans were new (a partial resend); NULL = all of them.
    Column("only_spans", Text, nullable=True),
    Column("items", Integer, nullable=False),  # spans / points / log records in the request
    Column("created_ns", BigInteger, nullable=False),
    Column("next_attempt_ns", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
    Column("locked_by", String(64), nullable=True),
    Column("locked_until_ns", BigInteger, nullable=True),
    Index("ix_forward_queue_target_id", "target", "id"),
)

# Service level objectives per agent (slo/): success ratio or latency under a threshold.
slos = Table(
    "slos",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("agent", Text, nullable=False),
    Column("kind", String(16), nullable=False),  # success | latency
    Column("objective", Float, nullable=False),  # percent of good requests, e.g. 99.9
    Column("threshold_ms", Float, nullable=True),  # latency: a good request is this fast
    Column("period_days", Integer, nullable=False),  # the error budget's window
    Column("description", Text, nullable=False, default=""),
    Column("created_ns", BigInteger, nullable=False),
    Column("updated_ns", BigInteger, nullable=False),
    UniqueConstraint("name"),
    Index("ix_slos_agent", "agent"),
)
