// Typed access to Pharos' JSON API (/api/v1). Every string in these types comes from
// telemetry and is rendered as text only.

export type Direction = "up" | "down" | "stable";
export interface Trend {
  change_pct: number | null;
  /** null when either window has no value (e.g. a latency with no requests). */
  direction: Direction | null;
}
/** The figures the API gives a trend for (analytics/summary.py `_trend_values`). */
export const TREND_KEYS = [
  "requests",
  "errors",
  "error_rate",
  "throughput",
  "latency_p50",
  "latency_p95",
  "latency_p99",
  "tokens",
  "cost_usd",
] as const;
export type TrendKey = (typeof TREND_KEYS)[number];
export type Trends = Record<TrendKey, Trend>;
export interface Latency {
  p50: number | null;
  p95: number | null;
  p99: number | null;
  avg: number | null;
  max: number | null;
}
export interface Tokens {
  input: number | null;
  output: number | null;
  cached: number | null;
  total: number | null;
}
export interface Figures {
  requests: number;
  errors: number;
  error_rate: number;
  throughput: number;
  latency_ms: Latency;
  tokens: Tokens;
  cost_usd: number;
  llm_calls: number;
  tool_calls: number;
  no_data: boolean;
}
export interface Summary extends Figures {
  window: string;
  window_seconds: number;
  start: string;
  end: string;
  agent: string | null;
  model: string | null;
  previous: Figures;
  trend: Trends;
}
export interface Health {
  score: number | null;
  status: "healthy" | "degraded" | "critical" | "unknown";
  reasons: string[];
  components?: Record<string, { value: number | null; score: number; status: string }>;
}
export interface TraceSummary {
  trace_id: string;
  name: string;
  agent: string;
  root_span_id: string | null;
  root_missing: boolean;
  start_time: string;
  end_time: string;
  duration_ms: number;
  status: string;
  span_count: number;
  error_count: number;
  error_message: string | null;
  llm_calls: number;
  tool_calls: number;
  tokens: Tokens;
  cost_usd: number;
}
export interface AgentRow extends Figures {
  agent: string;
  trend: Trends;
  health: Health;
  last_seen: string | null;
  /** Requests per interval over the window, with `/agents?sparkline=true`. */
  sparkline?: number[];
}
export interface AgentTable {
  window: string;
  items: AgentRow[];
  sparkline?: { interval_seconds: number; start: string; points: number };
}
/** A firing alert as the overview lists it (the alerting room's index). */
export interface FiringAlert {
  id: number;
  rule: string;
  severity: string;
  agent: string | null;
  labels: Record<string, string>;
  value: number | null;
  message: string;
  fired_at: string | null;
  acknowledged: boolean;
  silenced: boolean;
}
export interface Overview {
  window: string;
  agent: string | null;
  model: string | null;
  summary: Summary;
  health: Health;
  top_agents: AgentRow[];
  recent_errors: TraceSummary[];
  /** The error groups with the most occurrences in the window (no stack traces). */
  top_errors?: ErrorGroup[];
  /** What top_errors were narrowed by: error groups are counted per agent, not per model. */
  top_errors_scope?: { agent: string | null; model: string | null };
  slow_traces: TraceSummary[];
  alerts: { firing: number; items?: FiringAlert[] };
  ingest: {
    writer: string;
    queue_depth: number;
    queue_capacity: number;
    spans_stored: number;
    last_error: string | null;
  };
}
export interface Series {
  name: string;
  labels: Record<string, string>;
  values: (number | null)[];
}
export interface Timeseries {
  metric: string;
  unit: string;
  window: string;
  interval_seconds: number;
  timestamps: string[];
  series: Series[];
}
export interface SpanEvent {
  name: string;
  time: string;
  attributes: Record<string, unknown>;
}
export interface Span {
  span_id: string;
  parent_span_id: string | null;
  name: string;
  kind: string;
  span_kind: string;
  agent: string;
  model: string | null;
  service: string | null;
  start_time: string;
  end_time: string;
  offset_ms: number;
  duration_ms: number;
  status: string;
  status_message: string | null;
  tokens: Tokens;
  cost_usd: number | null;
  attributes: Record<string, unknown>;
  events: SpanEvent[];
  resource: Record<string, unknown>;
  scope: string | null;
  orphan: boolean;
  depth: number;
  children: string[];
  self_ms: number;
  on_critical_path: boolean;
  external_links?: ExternalLink[];
}
export interface Bottleneck {
  span_id: string;
  name: string;
  kind: string;
  agent: string;
  self_ms: number;
  share: number;
}
/** A deep link to another tool (LangSmith, Langfuse, Jaeger, Tempo...), from the server's
 * link templates. Rendered only through safeHref: http(s) or nothing. */
export interface ExternalLink {
  system: string;
  label: string;
  url: string;
  span_id?: string;
  span_name?: string;
}
export interface TraceDetail {
  links?: ExternalLink[];
  trace: TraceSummary;
  roots: string[];
  spans: Span[];
  truncated: boolean;
  /** The trace's logs in time order (the first 1,000). */
  logs?: LogItem[];
  logs_truncated?: boolean;
  bottlenecks: {
    critical_path: string[];
    top: Bottleneck[];
    trace_duration_ms: number;
  };
}
export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export type Params = Record<string, string | number | null | undefined>;

export function apiUrl(path: string, params: Params = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return `/api/v1${path}${s ? `?${s}` : ""}`;
}

export async function getJSON<T>(path: string, params: Params = {}, signal?: AbortSignal): Promise<T> {
  const res = await fetch(apiUrl(path, params), { signal, headers: { accept: "application/json" } });
  if (!res.ok) {
    if (res.status === 401 && path !== "/auth/session") window.dispatchEvent(new Event("pharos:unauthorized"));
    let code = "error";
    let message = `${res.status} ${res.statusText}`;
    try {
      const body = (await res.json()) as { error?: { code?: string; message?: string } };
      code = body.error?.code ?? code;
      message = body.error?.message ?? message;
    } catch {
      // not JSON: keep the status line
    }
    throw new ApiError(res.status, code, message);
  }
  return (await res.json()) as T;
}

/** POST/PATCH/DELETE with a JSON body; errors carry the API's message. */
export async function sendJSON<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(apiUrl(path), {
    method,
    headers: body === undefined ? { accept: "application/json" } : { "content-type": "application/json", accept: "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    let code = "error";
    try {
      const b = (await res.json()) as { error?: { code?: string; message?: string } };
      message = b.error?.message ?? message;
      code = b.error?.code ?? code;
    } catch {
      // keep the status line
    }
    throw new ApiError(res.status, code, message);
  }
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

export interface Alert {
  id: number;
  rule_id: number;
  rule: string;
  fingerprint: string;
  labels: Record<string, string>;
  severity: string;
  state: string;
  value: number | null;
  message: string;
  pending_since: string | null;
  fired_at: string | null;
  resolved_at: string | null;
  acknowledged: boolean;
  acked_by: string | null;
  ack_comment: string | null;
  silenced: boolean;
  updated_at: string;
}

export interface AlertEvent {
  at: string | null;
  event: string;
  state: string;
  value: number | null;
  who: string | null;
  comment: string | null;
}
/** GET /alerts/{id}: the alert, its rule's expression and its history (newest first). */
export interface AlertDetail extends Alert {
  expression?: string;
  acked_at: string | null;
  silenced_by: string | null;
  last_notified_at: string | null;
  history: AlertEvent[];
}

export interface Silence {
  id: number;
  matchers: { name: string; op: string; value: string }[];
  starts_at: string;
  ends_at: string;
  created_by: string | null;
  comment: string | null;
  active?: boolean;
}

export interface SloWindow {
  requests: number;
  good: number;
  bad: number;
  attainment: number | null;
  burn_rate: number | null;
}
export interface Slo {
  id: number;
  name: string;
  agent: string;
  kind: "success" | "latency";
  objective: number;
  threshold_ms: number | null;
  period_days: number;
  description: string;
  target: string;
  status: {
    state: "ok" | "burning" | "breached" | "no_data";
    attainment: number | null;
    met: boolean | null;
    error_budget_remaining: number | null;
    burn_rates: Record<string, number | null>;
    windows: Record<string, SloWindow>;
  };
}

export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal";

export interface LogItem {
  log_id: string;
  time: string;
  observed_time: string;
  level: LogLevel;
  severity_number: number;
  severity_text: string | null;
  /** A string, or any JSON value when `body_type` is "json". */
  body: unknown;
  body_type: "string" | "json";
  agent: string;
  service: string | null;
  scope: string | null;
  trace_id: string | null;
  span_id: string | null;
  trace: { trace_id: string; exists: boolean; path: string | null } | null;
  attributes: Record<string, unknown>;
  resource: Record<string, unknown>;
}

export interface ErrorGroup {
  fingerprint: string;
  type: string | null;
  message: string;
  sample_message: string | null;
  title: string;
  source: "span" | "log";
  status: "open" | "resolved";
  regression: boolean;
  resolved_at: string | null;
  regressed_at: string | null;
  first_seen: string;
  last_seen: string;
  total_count: number;
  count: number;
  previous_count: number;
  trend: { change_pct: number | null; direction: Direction | null };
  agents: string[];
  sample_trace_id: string | null;
  stacktrace?: string | null;
  sparkline?: number[];
}

export interface ErrorList {
  window: string;
  items: ErrorGroup[];
  window_seconds: number;
  start: string;
  end: string;
}

export interface ErrorDetail extends ErrorGroup {
  window: string;
  window_seconds: number;
  interval_seconds: number;
  timestamps: string[];
  occurrences: number[];
  by_agent: Record<string, number>;
  recent_traces: { trace_id: string; time: string; agent: string; exists: boolean; path: string | null }[];
}
