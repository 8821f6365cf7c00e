import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { Timeseries } from "../api";
import { visible } from "../format";
import { lineStyle, seriesColor } from "../charts";
import type { LineStyle } from "../charts";

export { seriesColor };

function cssVar(name: string, fallback: string): string {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

/** One or more time series (from /metrics/timeseries responses) in a uPlot line chart. */
export function Chart({
  title,
  data,
  format,
  height = 180,
  testId,
}: {
  title: string;
  data: Timeseries[] | null;
  format: (v: number | null) => string;
  height?: number;
  testId?: string;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const fmt = useRef(format);
  fmt.current = format;

  useEffect(() => {
    const el = box.current;
    if (!el || !data || data.length === 0) return;
    const xs = data[0].timestamps.map((t) => Date.parse(t) / 1000);
    const lines: { label: string; values: (number | null)[]; style: LineStyle }[] = [];
    for (const ts of data) {
      for (const s of ts.series) {
        const label = data.length > 1 ? ts.metric.replace("latency_", "") : s.name === "all" ? ts.metric : s.name;
        lines.push({ label: visible(label, 100), values: s.values, style: lineStyle(ts.metric, data.length > 1) }); // uPlot sets textContent
      }
    }
    const axis = cssVar("--muted", "#9ca3af");
    const grid = cssVar("--grid", "rgba(127,127,127,0.15)");
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      legend: { show: true, live: true, markers: { dash: (u: uPlot, i: number) => (u.series[i].dash ? "dashed" : "solid") } },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      axes: [
        { stroke: axis, grid: { stroke: grid }, ticks: { stroke: grid } },
        {
          stroke: axis,
          grid: { stroke: grid },
          ticks: { stroke: grid },
          size: 72,
          values: (_u, vals) => vals.map((v) => fmt.current(v)),
        },
      ],
      series: [
        {},
        ...lines.map((l, i) => ({
          label: l.label,
          stroke: seriesColor(i),
          width: l.style.width,
          dash: l.style.dash,
          spanGaps: false,
          points: { show: xs.length < 40 },
          value: (_u: uPlot, v: number | null) => fmt.current(v),
        })),
      ],
    };
    const u = new uPlot(opts, [xs, ...lines.map((l) => l.values)] as uPlot.AlignedData, el);
    plot.current = u;
    const ro = new ResizeObserver(() => u.setSize({ width: Math.max(200, el.clientWidth), height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [data, height]);

  const empty = data !== null && data.every((d) => d.series.every((s) => s.values.every((v) => v === null || v === 0)));
  return (
    <figure className="chart" data-testid={testId}>
      <figcaption>{title}</figcaption>
      {data === null ? <div className="chart-placeholder" style={{ height }}>Loading…</div> : null}
      <div ref={box} className={empty ? "chart-body chart-empty" : "chart-body"} />
      {empty ? <div className="chart-note">No data in this window</div> : null}
    </figure>
  );
}

/** A tiny SVG sparkline (no axes) for table rows. */
export function Sparkline({ values, width = 90, height = 22 }: { values: (number | null)[]; width?: number; height?: number }) {
  const nums = values.map((v) => (v === null || !Number.isFinite(v) ? 0 : v));
  const max = Math.max(1, ...nums);
  if (nums.length < 2) return <svg width={width} height={height} aria-hidden="true" />;
  const step = width / (nums.length - 1);
  const pts = nums.map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`);
  return (
    <svg className="sparkline" width={width} height={height} viewBox={`0 0 ${width} ${height}`} aria-hidden="true">
      <polyline points={pts.join(" ")} fill="none" stroke="currentColor" strokeWidth="1.5" />
    </svg>
  );
}
