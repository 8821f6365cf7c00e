// Pure waterfall layout: which rows are visible (collapsed subtrees hidden), where each bar
// goes, and the ticks of the time axis. The API sends spans as a flat depth-first list with
// `depth` and `offset_ms`, so the layout is one pass.

export interface WaterfallSpan {
  span_id: string;
  depth: number;
  offset_ms: number;
  duration_ms: number;
  children: string[];
}

export interface Row<S extends WaterfallSpan> {
  span: S;
  index: number; // position in the visible list
  x: number; // px from the left of the bar area
  w: number; // px, at least MIN_BAR
  hasChildren: boolean;
  collapsed: boolean;
}

export const MIN_BAR = 2;

/** Rows to draw: a collapsed span's descendants (the following deeper spans) are skipped. */
export function visibleRows<S extends WaterfallSpan>(
  spans: readonly S[],
  collapsed: ReadonlySet<string>,
  totalMs: number,
  width: number,
): Row<S>[] {
  const scale = totalMs > 0 ? width / totalMs : 0;
  const rows: Row<S>[] = [];
  let hideBelow = -1; // depth of the collapsed ancestor being skipped, -1 for none
  for (const span of spans) {
    if (hideBelow >= 0) {
      if (span.depth > hideBelow) continue;
      hideBelow = -1;
    }
    const isCollapsed = collapsed.has(span.span_id) && span.children.length > 0;
    const x = Math.max(0, Math.min(width, span.offset_ms * scale));
    const w = Math.max(MIN_BAR, Math.min(width - x, span.duration_ms * scale));
    rows.push({
      span,
      index: rows.length,
      x,
      w: Number.isFinite(w) ? w : MIN_BAR,
      hasChildren: span.children.length > 0,
      collapsed: isCollapsed,
    });
    if (isCollapsed) hideBelow = span.depth;
  }
  return rows;
}

/** Trace extent: the largest offset + duration (spans can end after their root). */
export function extentMs(spans: readonly WaterfallSpan[], fallback = 0): number {
  let end = fallback;
  for (const s of spans) end = Math.max(end, s.offset_ms + s.duration_ms);
  return end;
}

/** "Nice" tick values (1, 2, 5 × 10^k) covering [0, totalMs] with about `count` ticks. */
export function ticks(totalMs: number, count = 6): number[] {
  if (!(totalMs > 0) || !Number.isFinite(totalMs)) return [0];
  const raw = totalMs / Math.max(1, count);
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw) ?? 10 * pow;
  const out: number[] = [];
  for (let v = 0; v <= totalMs + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

export const KIND_COLORS: Record<string, string> = {
  agent: "var(--kind-agent)",
  llm: "var(--kind-llm)",
  chat: "var(--kind-llm)",
  tool: "var(--kind-tool)",
  retriever: "var(--kind-retriever)",
  embedding: "var(--kind-embedding)",
  reranker: "var(--kind-retriever)",
  chain: "var(--kind-chain)",
};

export function kindColor(kind: string): string {
  return KIND_COLORS[kind] ?? "var(--kind-other)";
}
