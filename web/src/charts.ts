// Pure chart styling (unit-tested in charts.test.ts).

const PALETTE = ["#60a5fa", "#f59e0b", "#34d399", "#f472b6", "#a78bfa", "#f87171", "#22d3ee", "#a3e635"];

export function seriesColor(i: number): string {
  return PALETTE[i % PALETTE.length];
}

export interface LineStyle {
  width: number;
  dash?: number[];
}

/** How each line is drawn. The latency percentiles are often equal (few requests in a
 * bucket), and a later line would hide an earlier one: p50 is wide underneath, p95 solid on
 * it, p99 dashed on top, so all three stay visible where they coincide. */
export function lineStyle(metric: string, multi: boolean): LineStyle {
  if (!multi) return { width: 1.5 };
  if (metric === "latency_p50") return { width: 4 };
  if (metric === "latency_p95") return { width: 2 };
  if (metric === "latency_p99") return { width: 1.5, dash: [6, 4] };
  return { width: 1.5 };
}
