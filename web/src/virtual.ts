// Windowing for long lists (unit-tested in virtual.test.ts): which rows to render for a scroll
// position, where to scroll to show a row, and what a key press does to the active row.

export interface Range {
  /** First row to render (inclusive). */
  start: number;
  /** Row after the last to render (exclusive). */
  end: number;
}

/** Rows intersecting the viewport, plus `overscan` on each side. */
export function visibleRange(scrollTop: number, viewport: number, rowHeight: number, count: number, overscan: number): Range {
  if (count <= 0 || rowHeight <= 0) return { start: 0, end: 0 };
  const first = Math.floor(Math.max(0, scrollTop) / rowHeight);
  const last = Math.ceil((Math.max(0, scrollTop) + Math.max(0, viewport)) / rowHeight);
  return { start: Math.max(0, Math.min(count, first - overscan)), end: Math.max(0, Math.min(count, last + overscan)) };
}

/** The scrollTop that brings row `index` fully into view (unchanged if it already is). The
 * list's sticky header covers `header` px at the top. */
export function scrollToShow(index: number, scrollTop: number, viewport: number, rowHeight: number, header = 0): number {
  const top = index * rowHeight;
  const bottom = top + rowHeight;
  const visibleTop = scrollTop;
  const visibleBottom = scrollTop + viewport - header;
  if (top < visibleTop) return top;
  if (bottom > visibleBottom) return Math.max(0, bottom - (viewport - header));
  return scrollTop;
}

/** The active row after a key press (null: the key is not ours). `page` rows per PageDown. */
export function moveActive(key: string, active: number, count: number, page: number): number | null {
  if (count === 0) return null;
  const clamp = (i: number) => Math.max(0, Math.min(count - 1, i));
  switch (key) {
    case "ArrowDown":
      return clamp(active < 0 ? 0 : active + 1);
    case "ArrowUp":
      return clamp(active < 0 ? 0 : active - 1);
    case "PageDown":
      return clamp((active < 0 ? 0 : active) + Math.max(1, page));
    case "PageUp":
      return clamp((active < 0 ? 0 : active) - Math.max(1, page));
    case "Home":
      return 0;
    case "End":
      return count - 1;
    default:
      return null;
  }
}

/** Whether to ask for the next page: the rendered rows reach within `ahead` of the end. */
export function needMore(range: Range, count: number, ahead: number, hasMore: boolean, loading: boolean): boolean {
  return hasMore && !loading && range.end >= count - ahead;
}

/** Merge a fresh first page into the loaded list: new traces go on top, known ones are
 * updated in place. `gap` is true when the fresh page shares nothing with the list (more new
 * traces arrived than a page holds): the caller reloads from the top instead. */
export function mergeNewest<T>(loaded: T[], fresh: T[], id: (t: T) => string): { items: T[]; added: number; gap: boolean } {
  if (loaded.length === 0) return { items: fresh, added: fresh.length, gap: false };
  const known = new Map(loaded.map((t, i) => [id(t), i]));
  const overlap = fresh.some((t) => known.has(id(t)));
  if (!overlap && fresh.length > 0) return { items: loaded, added: 0, gap: true };
  const updated = [...loaded];
  const added: T[] = [];
  for (const t of fresh) {
    const at = known.get(id(t));
    if (at === undefined) added.push(t);
    else updated[at] = t;
  }
  return { items: [...added, ...updated], added: added.length, gap: false };
}
