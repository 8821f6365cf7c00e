// Pure helpers of the Logs and Errors screens (unit-tested in logs.test.ts).

import type { ErrorDetail, ErrorGroup, LogItem, LogLevel, Timeseries } from "./api";

export const LEVELS: LogLevel[] = ["trace", "debug", "info", "warn", "error", "fatal"];

/** The level filter's choices: "" is every level; otherwise that level and worse. */
export const LEVEL_CHOICES: { value: string; label: string }[] = [
  { value: "", label: "All levels" },
  { value: "debug", label: "Debug and worse" },
  { value: "info", label: "Info and worse" },
  { value: "warn", label: "Warn and worse" },
  { value: "error", label: "Error and worse" },
  { value: "fatal", label: "Fatal" },
];

export function isLevel(value: string | null): value is LogLevel {
  return value !== null && (LEVELS as string[]).includes(value);
}

/** The text a log body shows: strings as they are, structured bodies as compact JSON. */
export function bodyText(log: Pick<LogItem, "body" | "body_type">): string {
  if (log.body_type === "string" && typeof log.body === "string") return log.body;
  try {
    return JSON.stringify(log.body) ?? "";
  } catch {
    return String(log.body);
  }
}

/**
 * A refreshed first page merged into the list on screen (live tail): the fresh items first,
 * then the older ones not in it; `fresh` says which ids were not on screen before (to mark
 * them). The list is capped so a long-open tail does not grow without bound.
 */
export function mergeNewest(
  old: LogItem[],
  page: LogItem[],
  cap = 2000,
): { items: LogItem[]; fresh: Set<string> } {
  const before = new Set(old.map((l) => l.log_id));
  const inPage = new Set(page.map((l) => l.log_id));
  const items = [...page, ...old.filter((l) => !inPage.has(l.log_id))].slice(0, cap);
  const fresh = new Set(old.length === 0 ? [] : page.filter((l) => !before.has(l.log_id)).map((l) => l.log_id));
  return { items, fresh };
}

/** Where a log's trace link goes, or null when the trace is not stored (yet). */
export function traceLink(log: Pick<LogItem, "trace">): string | null {
  return log.trace && log.trace.exists ? `/traces/${log.trace.trace_id}` : null;
}

/** An error group's status as people say it. */
export function groupState(g: Pick<ErrorGroup, "status" | "regression">): { label: string; tone: "error" | "ok" | "warning" } {
  if (g.status === "resolved") return { label: "resolved", tone: "ok" };
  if (g.regression) return { label: "regression", tone: "error" };
  return { label: "open", tone: "warning" };
}

/** The occurrences of an error group as a one-series Timeseries for the Chart component. */
export function occurrenceSeries(d: Pick<ErrorDetail, "window" | "interval_seconds" | "timestamps" | "occurrences">): Timeseries {
  return {
    metric: "occurrences",
    unit: "count",
    window: d.window,
    interval_seconds: d.interval_seconds,
    timestamps: d.timestamps,
    series: [{ name: "occurrences", labels: {}, values: d.occurrences }],
  };
}

/** "3 of 5 agents": the first few agent names and how many more. */
export function agentsText(agents: string[], show = 3): string {
  if (agents.length <= show) return agents.join(", ");
  return `${agents.slice(0, show).join(", ")} +${agents.length - show} more`;
}
