import { describe, expect, it } from "vitest";
import { TREND_KEYS } from "../api";
import type { AgentRow, Trends } from "../api";
import { sortAgents } from "./Agents";

function row(agent: string, requests: number, p95: number | null, score: number | null): AgentRow {
  return {
    agent,
    requests,
    errors: 0,
    error_rate: 0,
    throughput: 0,
    latency_ms: { p50: null, p95, p99: null, avg: null, max: null },
    tokens: { input: 0, output: 0, cached: 0, total: 0 },
    cost_usd: 0,
    llm_calls: 0,
    tool_calls: 0,
    no_data: false,
    trend: Object.fromEntries(TREND_KEYS.map((k) => [k, { change_pct: null, direction: null }])) as Trends,
    health: { score, status: "unknown", reasons: [] },
    last_seen: null,
  };
}

describe("agents table sorting", () => {
  const rows = [row("b", 5, 100, 90), row("a", 5, null, null), row("c", 9, 50, 40)];
  it("sorts numbers either way, ties by name", () => {
    expect(sortAgents(rows, "requests", true).map((r) => r.agent)).toEqual(["c", "b", "a"]);
    expect(sortAgents(rows, "requests", false).map((r) => r.agent)).toEqual(["a", "b", "c"]);
  });
  it("puts missing latency and health last when descending", () => {
    expect(sortAgents(rows, "p95", true).map((r) => r.agent)).toEqual(["b", "c", "a"]);
    expect(sortAgents(rows, "health", true).map((r) => r.agent)).toEqual(["b", "c", "a"]);
  });
  it("sorts names case-insensitively and leaves the input alone", () => {
    const mixed = [row("beta", 1, 1, 1), row("Alpha", 1, 1, 1)];
    expect(sortAgents(mixed, "agent", false).map((r) => r.agent)).toEqual(["Alpha", "beta"]);
    expect(mixed.map((r) => r.agent)).toEqual(["beta", "Alpha"]);
  });
});
