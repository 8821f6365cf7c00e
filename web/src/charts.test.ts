import { describe, expect, it } from "vitest";
import { lineStyle, seriesColor } from "./charts";

describe("chart lines", () => {
  it("keeps p50, p95 and p99 visible when they coincide", () => {
    const p50 = lineStyle("latency_p50", true);
    const p95 = lineStyle("latency_p95", true);
    const p99 = lineStyle("latency_p99", true);
    // Drawn in this order: each later line is narrower, and p99 is dashed.
    expect(p50.width).toBeGreaterThan(p95.width);
    expect(p95.width).toBeGreaterThan(p99.width);
    expect(p95.dash).toBeUndefined();
    expect(p99.dash?.length).toBe(2);
    expect(new Set([seriesColor(0), seriesColor(1), seriesColor(2)]).size).toBe(3);
  });
  it("draws single or grouped series plainly", () => {
    expect(lineStyle("latency_p95", false)).toEqual({ width: 1.5 });
    expect(lineStyle("requests", true)).toEqual({ width: 1.5 });
  });
});
