import { describe, expect, it } from "vitest";
import { MIN_BAR, extentMs, ticks, visibleRows } from "./waterfall";

const spans = [
  { span_id: "a", depth: 0, offset_ms: 0, duration_ms: 100, children: ["b", "d"] },
  { span_id: "b", depth: 1, offset_ms: 10, duration_ms: 50, children: ["c"] },
  { span_id: "c", depth: 2, offset_ms: 20, duration_ms: 0, children: [] },
  { span_id: "d", depth: 1, offset_ms: 60, duration_ms: 40, children: [] },
];

describe("waterfall layout", () => {
  it("places every span on the time axis", () => {
    const rows = visibleRows(spans, new Set(), 100, 1000);
    expect(rows.map((r) => r.span.span_id)).toEqual(["a", "b", "c", "d"]);
    expect(rows[1].x).toBe(100);
    expect(rows[1].w).toBe(500);
    expect(rows[2].w).toBe(MIN_BAR); // zero-length spans stay visible
    expect(rows.map((r) => r.index)).toEqual([0, 1, 2, 3]);
  });
  it("hides the subtree of a collapsed span only", () => {
    const rows = visibleRows(spans, new Set(["b"]), 100, 1000);
    expect(rows.map((r) => r.span.span_id)).toEqual(["a", "b", "d"]);
    expect(rows[1].collapsed).toBe(true);
    expect(visibleRows(spans, new Set(["a"]), 100, 1000).map((r) => r.span.span_id)).toEqual(["a"]);
    // collapsing a leaf does nothing
    expect(visibleRows(spans, new Set(["c"]), 100, 1000)).toHaveLength(4);
  });
  it("keeps bars inside the area when a span ends after the trace", () => {
    const rows = visibleRows([{ span_id: "x", depth: 0, offset_ms: 90, duration_ms: 50, children: [] }], new Set(), 100, 1000);
    expect(rows[0].x + rows[0].w).toBeLessThanOrEqual(1000);
    expect(extentMs(spans, 80)).toBe(100);
  });
  it("survives an empty or zero-length trace", () => {
    expect(visibleRows([], new Set(), 0, 500)).toEqual([]);
    const rows = visibleRows([spans[2]], new Set(), 0, 500);
    expect(rows[0].x).toBe(0);
    expect(rows[0].w).toBe(MIN_BAR);
  });
  it("chooses nice ticks", () => {
    expect(ticks(1000, 5)).toEqual([0, 200, 400, 600, 800, 1000]);
    expect(ticks(8080, 4)).toEqual([0, 5000]);
    expect(ticks(0)).toEqual([0]);
    expect(ticks(7, 6)).toEqual([0, 2, 4, 6]);
  });
});
