// The dashboard's filters live in the URL (shareable links): ?range=1h&agent=…&model=…

export const RANGES = ["15m", "1h", "6h", "24h", "7d"] as const;
export type Range = (typeof RANGES)[number];
export const DEFAULT_RANGE: Range = "1h";

/** A custom range: a whole number of minutes, hours or days, 1m to 400d (the API's limit). */
const CUSTOM = /^([1-9][0-9]{0,5})(m|h|d)$/;
const UNIT_S: Record<string, number> = { m: 60, h: 3600, d: 86400 };

export function rangeSeconds(range: string): number | null {
  const m = CUSTOM.exec(range);
  if (!m) return null;
  const s = Number(m[1]) * UNIT_S[m[2]];
  return s >= 60 && s <= 400 * 86400 ? s : null;
}

/** The live feed's summaries cover at most 7 days; longer views refresh on new data instead. */
export function liveWindow(range: string): string {
  const s = rangeSeconds(range);
  return s !== null && s > 7 * 86400 ? "7d" : range;
}

export interface Filters {
  range: string;
  agent: string | null;
  model: string | null;
}

export function parseFilters(search: string): Filters {
  const q = new URLSearchParams(search);
  const r = q.get("range");
  return {
    range: r && rangeSeconds(r) !== null ? r : DEFAULT_RANGE,
    agent: q.get("agent") || null,
    model: q.get("model") || null,
  };
}

/** ``search`` with some keys set (null/"" removes them); other keys are kept as they are. */
export function withParams(search: string, changes: Record<string, string | null | undefined>): string {
  const q = new URLSearchParams(search);
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined || v === "") q.delete(k);
    else q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** Keep only the global filters when following a link to another page. */
export function carry(search: string): string {
  const f = new URLSearchParams(search);
  const out = new URLSearchParams();
  for (const key of ["range", "agent", "model"]) {
    const v = f.get(key);
    if (v) out.set(key, v);
  }
  const s = out.toString();
  return s ? `?${s}` : "";
}

/** Pages the time range does nothing on (alerts are "now", settings are settings, a trace is
 * one trace): the top bar hides the picker there. */
export function rangeApplies(pathname: string): boolean {
  return !/^\/(alerts|settings)(\/|$)/.test(pathname) && !/^\/traces\/[^/]+/.test(pathname);
}
