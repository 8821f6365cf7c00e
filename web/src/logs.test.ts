import { describe, expect, it } from "vitest";
import type { LogItem } from "./api";
import { agentsText, bodyText, groupState, isLevel, mergeNewest, occurrenceSeries, traceLink } from "./logs";

function log(id: string, time = "2026-12-02T10:00:00Z", extra: Partial<LogItem> = {}): LogItem {
  return {
    log_id: id,
    time,
    observed_time: time,
    level: "info",
    severity_number: 9,
    severity_text: "INFO",
    body: `body ${id}`,
    body_type: "string",
    agent: "a",
    service: "a",
    scope: null,
    trace_id: null,
    span_id: null,
    trace: null,
    attributes: {},
    resource: {},
    ...extra,
  };
}

describe("log bodies", () => {
  it("shows strings as they are and structured bodies as JSON", () => {
    expect(bodyText({ body: "<b>hi</b>", body_type: "string" })).toBe("<b>hi</b>");
    expect(bodyText({ body: { a: 1, b: ["x"] }, body_type: "json" })).toBe('{"a":1,"b":["x"]}');
    expect(bodyText({ body: 42, body_type: "json" })).toBe("42");
    expect(bodyText({ body: null, body_type: "json" })).toBe("null");
  });
});

describe("live tail merge", () => {
  it("puts the fresh page on top, keeps older rows once, and marks what is new", () => {
    const old = [log("c"), log("b"), log("a")];
    const { items, fresh } = mergeNewest(old, [log("e"), log("d"), log("c")]);
    expect(items.map((l) => l.log_id)).toEqual(["e", "d", "c", "b", "a"]);
    expect([...fresh].sort()).toEqual(["d", "e"]);
  });
  it("marks nothing on the first load and caps the list", () => {
    const first = mergeNewest([], [log("b"), log("a")]);
    expect(first.fresh.size).toBe(0);
    const many = Array.from({ length: 10 }, (_, i) => log(`o${i}`));
    expect(mergeNewest(many, [log("n")], 5).items.map((l) => l.log_id)).toEqual(["n", "o0", "o1", "o2", "o3"]);
  });
});

describe("links and labels", () => {
  it("links a log to its trace only when the trace is stored", () => {
    expect(traceLink({ trace: null })).toBeNull();
    expect(traceLink({ trace: { trace_id: "ab", exists: false, path: null } })).toBeNull();
    expect(traceLink({ trace: { trace_id: "ab", exists: true, path: "/api/v1/traces/ab" } })).toBe("/traces/ab");
  });
  it("names a group's state", () => {
    expect(groupState({ status: "resolved", regression: false }).label).toBe("resolved");
    expect(groupState({ status: "open", regression: true })).toEqual({ label: "regression", tone: "error" });
    expect(groupState({ status: "open", regression: false }).label).toBe("open");
  });
  it("levels and agents", () => {
    expect(isLevel("warn")).toBe(true);
    expect(isLevel("warning")).toBe(false);
    expect(isLevel(null)).toBe(false);
    expect(agentsText(["a", "b"])).toBe("a, b");
    expect(agentsText(["a", "b", "c", "d", "e"])).toBe("a, b, c +2 more");
  });
  it("turns occurrences into a chart series", () => {
    const ts = occurrenceSeries({ window: "1h", interval_seconds: 600, timestamps: ["t0", "t1"], occurrences: [1, 2] });
    expect(ts.series[0].values).toEqual([1, 2]);
    expect(ts.timestamps).toEqual(["t0", "t1"]);
    expect(ts.interval_seconds).toBe(600);
  });
});
