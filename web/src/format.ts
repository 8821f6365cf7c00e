// Pure formatting helpers (unit-tested in format.test.ts).

import type { Direction } from "./api";

const DASH = "—";

/** 1234 -> "1,234"; 1234567 -> "1.23M" (compact above a million). */
export function fmtCount(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return DASH;
  const abs = Math.abs(n);
  if (abs >= 1e9) return `${trim(n / 1e9)}B`;
  if (abs >= 1e6) return `${trim(n / 1e6)}M`;
  if (Number.isInteger(n)) return n.toLocaleString("en-US");
  return n.toLocaleString("en-US", { maximumFractionDigits: 2 });
}

/** For a narrow stat card: exact below 100,000, then "391k", "1.15M". */
export function fmtCompact(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return DASH;
  const abs = Math.abs(n);
  if (abs >= 100_000 && abs < 999_500) return `${Math.round(n / 1000)}k`;
  if (abs >= 999_500 && abs < 1e6) return "1M";
  return fmtCount(n);
}

function trim(x: number): string {
  return x.toFixed(2).replace(/\.?0+$/, "");
}

/** Milliseconds for people: "0.42 ms", "850 ms", "1.24 s", "2m 05s", "1h 02m". */
export function fmtMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return DASH;
  if (ms === 0) return "0 ms";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const totalS = Math.round(ms / 1000);
  if (totalS < 3600) {
    return `${Math.floor(totalS / 60)}m ${String(totalS % 60).padStart(2, "0")}s`;
  }
  const totalM = Math.round(totalS / 60);
  return `${Math.floor(totalM / 60)}h ${String(totalM % 60).padStart(2, "0")}m`;
}

/** A percentage already in percent (the API's error_rate): 2.985 -> "2.99%". */
export function fmtPct(p: number | null | undefined): string {
  if (p === null || p === undefined || !Number.isFinite(p)) return DASH;
  if (p === 0) return "0%";
  if (Math.abs(p) < 0.01) return "<0.01%";
  return `${trim(p)}%`;
}

/** USD: small amounts keep their significant digits. */
export function fmtUsd(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return DASH;
  if (v === 0) return "$0.00";
  const abs = Math.abs(v);
  if (abs < 1) {
    // two significant digits, in plain decimals (toPrecision gives "7.2e-7" for an embedding)
    const digits = Math.min(12, Math.max(2, Math.ceil(-Math.log10(abs)) + 1));
    return `$${v.toFixed(digits)}`;
  }
  if (abs < 1000) return `$${v.toFixed(2)}`;
  return `$${Math.round(v).toLocaleString("en-US")}`;
}

/** "4.38/min" -> ["4.38", "/min"], "986 ms" -> ["986", " ms"]: a stat card sets the unit
 * smaller so the figure fits. Anything else stays whole. */
export function splitUnit(value: string): [string, string] {
  const m = /^(-?[\d.,]+)(\s?(?:\/(?:s|min|h)|ms|s))$/.exec(value);
  return m ? [m[1], m[2]] : [value, ""];
}

/** Requests per second as the most readable unit. */
export function fmtRate(perSecond: number | null | undefined): string {
  if (perSecond === null || perSecond === undefined || !Number.isFinite(perSecond)) return DASH;
  if (perSecond === 0) return "0/s";
  if (perSecond >= 1) return `${trim(perSecond)}/s`;
  if (perSecond * 60 >= 1) return `${trim(perSecond * 60)}/min`;
  return `${trim(perSecond * 3600)}/h`;
}

/** "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago". */
export function fmtAgo(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) return "never";
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return DASH;
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 5) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** "2026-11-22 12:21:48.734" in UTC: span and log times, where milliseconds matter. */
export function fmtTime(iso: string | null | undefined): string {
  if (!iso) return DASH;
  return iso.replace("T", " ").replace(/(\.\d{3})\d*Z$/, "$1").replace(/Z$/, "");
}

/** "2026-11-22 12:21 UTC": every other date the dashboard shows (forecasts, first seen,
 * silences, alerts), to the minute. */
export function fmtDate(iso: string | null | undefined): string {
  if (!iso) return DASH;
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return DASH;
  return `${new Date(t).toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

export type Tone = "good" | "bad" | "neutral";

/** Above this a percentage says little ("+98985%"): the previous window was about empty. */
export const NEW_ABOVE_PCT = 10_000;
/** Above this (and up to NEW_ABOVE_PCT) a change reads as a multiple: "×12". */
export const MULTIPLE_ABOVE_PCT = 1_000;

/** A change in percent for people: "+61.6%", "×12", "new" (from about zero). */
export function fmtChange(changePct: number | null | undefined, direction?: Direction | null): string {
  if (changePct === null || changePct === undefined || !Number.isFinite(changePct)) {
    return direction === "up" ? "new" : "";
  }
  if (changePct > NEW_ABOVE_PCT) return "new";
  if (changePct > MULTIPLE_ABOVE_PCT) return `×${Math.round(1 + changePct / 100)}`;
  return `${changePct > 0 ? "+" : ""}${trim(changePct)}%`;
}

/** The arrow and its colour: for latency, errors and cost "up" is bad; for requests neutral. */
export function trendView(
  direction: Direction | null | undefined,
  changePct: number | null | undefined,
  upIs: Tone,
): { arrow: string; tone: Tone; label: string } {
  if (!direction) return { arrow: "", tone: "neutral", label: "" };
  const arrow = direction === "up" ? "▲" : direction === "down" ? "▼" : "▶";
  let tone: Tone = "neutral";
  if (direction !== "stable" && upIs !== "neutral") {
    const upGood = upIs === "good";
    tone = (direction === "up") === upGood ? "good" : "bad";
  }
  return { arrow, tone, label: direction === "stable" ? "stable" : fmtChange(changePct, direction) };
}

export type Level = "ok" | "warning" | "critical";

/** Warning/critical colouring of a figure against its thresholds (higher is worse). */
export function level(value: number | null | undefined, warning: number, critical: number): Level {
  if (value === null || value === undefined || !Number.isFinite(value)) return "ok";
  if (value >= critical) return "critical";
  if (value > warning) return "warning";
  return "ok";
}

export function healthLevel(score: number | null | undefined, status?: string): Level {
  if (status === "critical") return "critical";
  if (status === "degraded") return "warning";
  if (score === null || score === undefined) return "ok";
  if (score < 50) return "critical";
  if (score < 80) return "warning";
  return "ok";
}

// Bidirectional controls can reorder what a reader sees ("Trojan Source"); telemetry shows them
// as visible markers instead of applying them.
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** Telemetry text made safe to *look at* (it is always rendered as text, never as HTML). */
export function visible(text: unknown, max = 2000): string {
  let s = typeof text === "string" ? text : text === null || text === undefined ? "" : JSON.stringify(text);
  s = s.replace(BIDI, (c) => `[U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}]`);
  if (s.length > max) s = `${s.slice(0, max)}… (${(s.length - max).toLocaleString("en-US")} more characters)`;
  return s;
}

/** Only http(s) links are ever made clickable; anything else (javascript:, data:) is text. */
export function safeHref(value: string): string | null {
  try {
    const u = new URL(value);
    return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
  } catch {
    return null;
  }
}
