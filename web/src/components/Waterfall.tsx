import { useEffect, useMemo, useRef, useState } from "react";
import type { KeyboardEvent } from "react";
import type { Bottleneck, Span } from "../api";
import { fmtMs, visible } from "../format";
import { extentMs, kindColor, ticks, visibleRows } from "../waterfall";

const ROW = 22;
const RIGHT_PAD = 104;
const INDENT = 14;
/** Above this many rows only the rows near the viewport are drawn. */
const WINDOW_ROWS = 400;
const OVERSCAN = 30;

export function Waterfall({
  spans,
  totalMs,
  bottlenecks,
  selected,
  onSelect,
}: {
  spans: Span[];
  totalMs: number;
  bottlenecks: Bottleneck[];
  selected: string | null;
  onSelect: (spanId: string) => void;
}) {
  const outer = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(1000);
  const [collapsed, setCollapsed] = useState<Set<string>>(() => new Set());
  const [scroll, setScroll] = useState({ top: 0, height: 800 });

  useEffect(() => {
    const el = outer.current;
    if (!el) return;
    const measure = () => {
      setWidth(Math.max(480, el.clientWidth));
      setScroll({ top: el.scrollTop, height: el.clientHeight || 800 });
    };
    measure();
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  const total = useMemo(() => extentMs(spans, totalMs), [spans, totalMs]);
  const LABEL_W = Math.round(Math.min(320, Math.max(180, width * 0.32)));
  const barW = Math.max(100, width - LABEL_W - RIGHT_PAD);
  const rows = useMemo(() => visibleRows(spans, collapsed, total, barW), [spans, collapsed, total, barW]);
  const shares = useMemo(() => new Map(bottlenecks.map((b) => [b.span_id, b.share])), [bottlenecks]);
  const axis = useMemo(() => ticks(total, Math.max(2, Math.floor(barW / 110))), [total, barW]);
  const height = rows.length * ROW;

  let first = 0;
  let last = rows.length;
  if (rows.length > WINDOW_ROWS) {
    first = Math.max(0, Math.floor(scroll.top / ROW) - OVERSCAN);
    last = Math.min(rows.length, Math.ceil((scroll.top + scroll.height) / ROW) + OVERSCAN);
  }

  const toggle = (id: string) =>
    setCollapsed((c) => {
      const next = new Set(c);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });

  const onKey = (e: KeyboardEvent<HTMLDivElement>) => {
    const idx = rows.findIndex((r) => r.span.span_id === selected);
    const move = (to: number) => {
      const r = rows[Math.max(0, Math.min(rows.length - 1, to))];
      if (!r) return;
      onSelect(r.span.span_id);
      const el = outer.current;
      if (el) {
        const y = r.index * ROW;
        if (y < el.scrollTop) el.scrollTop = y;
        else if (y + ROW > el.scrollTop + el.clientHeight) el.scrollTop = y + ROW - el.clientHeight;
      }
    };
    if (e.key === "ArrowDown") move(idx + 1);
    else if (e.key === "ArrowUp") move(idx < 0 ? 0 : idx - 1);
    else if (e.key === "Home") move(0);
    else if (e.key === "End") move(rows.length - 1);
    else if ((e.key === "ArrowLeft" || e.key === "ArrowRight" || e.key === "Enter") && idx >= 0) {
      const r = rows[idx];
      if (!r.hasChildren) return;
      if (e.key === "ArrowLeft" && r.collapsed) return;
      if (e.key === "ArrowRight" && !r.collapsed) return;
      toggle(r.span.span_id);
    } else return;
    e.preventDefault();
  };

  return (
    <div className="waterfall" data-testid="waterfall">
      <svg className="wf-axis" width={width} height={24} aria-hidden="true">
        <text x={8} y={16} className="wf-axis-title">
          Span
        </text>
        {axis.map((t) => {
          const x = LABEL_W + (total > 0 ? (t / total) * barW : 0);
          return (
            <g key={t}>
              <line x1={x} x2={x} y1={18} y2={24} className="wf-tick" />
              <text x={x} y={14} textAnchor={t === 0 ? "start" : "middle"} className="wf-tick-label">
                {fmtMs(t)}
              </text>
            </g>
          );
        })}
      </svg>
      <div
        ref={outer}
        className="wf-scroll"
        tabIndex={0}
        role="listbox"
        aria-label="Spans of the trace on a time axis: arrow keys move, left and right collapse and expand"
        aria-activedescendant={selected ? `wf-${selected}` : undefined}
        onKeyDown={onKey}
        onScroll={(e) => {
          const el = e.currentTarget;
          if (rows.length > WINDOW_ROWS) setScroll({ top: el.scrollTop, height: el.clientHeight });
        }}
      >
        <svg width={width} height={height} data-rows={rows.length}>
          <defs>
            <clipPath id="wf-label-clip">
              <rect x={0} y={0} width={LABEL_W - 10} height={height} />
            </clipPath>
          </defs>
          {axis.map((t) => {
            const x = LABEL_W + (total > 0 ? (t / total) * barW : 0);
            return <line key={t} x1={x} x2={x} y1={0} y2={height} className="wf-grid" />;
          })}
          {rows.slice(first, last).map((r) => {
            const s = r.span;
            const y = r.index * ROW;
            const share = shares.get(s.span_id);
            const isErr = s.status === "error";
            const isSel = s.span_id === selected;
            const label = visible(s.name, 300);
            const durX = LABEL_W + r.x + r.w + 6;
            return (
              <g
                key={s.span_id}
                id={`wf-${s.span_id}`}
                role="option"
                aria-selected={isSel}
                className={`wf-row${isSel ? " selected" : ""}${isErr ? " error" : ""}`}
                data-span-id={s.span_id}
                transform={`translate(0,${y})`}
                onClick={() => onSelect(s.span_id)}
              >
                <title>{`${visible(s.name, 1000)} · ${s.kind} · ${fmtMs(s.duration_ms)}${isErr ? " · error" : ""}`}</title>
                <rect className="wf-bg" x={0} y={0} width={width} height={ROW} />
                <g clipPath="url(#wf-label-clip)">
                  {r.hasChildren ? (
                    <text
                      x={8 + s.depth * INDENT}
                      y={15}
                      className="wf-toggle"
                      onClick={(e) => {
                        e.stopPropagation();
                        toggle(s.span_id);
                      }}
                    >
                      {r.collapsed ? "▸" : "▾"}
                    </text>
                  ) : null}
                  <text x={22 + s.depth * INDENT} y={15} className="wf-label">
                    {isErr ? <tspan className="wf-err-mark">✕ </tspan> : null}
                    {label}
                  </text>
                </g>
                <rect
                  className={`wf-bar${s.on_critical_path ? " critical" : ""}${share !== undefined ? " bottleneck" : ""}`}
                  x={LABEL_W + r.x}
                  y={4}
                  width={r.w}
                  height={ROW - 8}
                  rx={2}
                  fill={isErr ? "var(--error)" : kindColor(s.kind)}
                />
                <text x={Math.min(durX, width - RIGHT_PAD + 40)} y={15} className="wf-dur">
                  {fmtMs(s.duration_ms)}
                  {share !== undefined ? <tspan className="wf-share">{` ${Math.round(share * 100)}%`}</tspan> : null}
                </text>
              </g>
            );
          })}
        </svg>
      </div>
    </div>
  );
}
