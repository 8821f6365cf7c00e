import { describe, expect, it } from "vitest";
import { fmtAgo, fmtChange, fmtCompact, fmtCount, fmtDate, fmtMs, fmtPct, fmtRate, fmtTime, fmtUsd, healthLevel, level, safeHref, splitUnit, trendView, visible } from "./format";

describe("numbers", () => {
  it("counts", () => {
    expect(fmtCount(0)).toBe("0");
    expect(fmtCount(1234)).toBe("1,234");
    expect(fmtCount(1_150_000)).toBe("1.15M");
    expect(fmtCount(2_000_000_000)).toBe("2B");
    expect(fmtCount(null)).toBe("—");
    expect(fmtCount(Number.NaN)).toBe("—");
  });
  it("durations", () => {
    expect(fmtMs(0)).toBe("0 ms");
    expect(fmtMs(0.423)).toBe("0.42 ms");
    expect(fmtMs(849.6)).toBe("850 ms");
    expect(fmtMs(1240)).toBe("1.24 s");
    expect(fmtMs(12_340)).toBe("12.3 s");
    expect(fmtMs(125_000)).toBe("2m 05s");
    expect(fmtMs(3_720_000)).toBe("1h 02m");
    expect(fmtMs(undefined)).toBe("—");
  });
  it("percentages are already percent", () => {
    expect(fmtPct(2.986)).toBe("2.99%");
    expect(fmtPct(0)).toBe("0%");
    expect(fmtPct(0.001)).toBe("<0.01%");
    expect(fmtPct(100)).toBe("100%");
  });
  it("money", () => {
    expect(fmtUsd(0)).toBe("$0.00");
    expect(fmtUsd(0.000482)).toBe("$0.00048");
    expect(fmtUsd(0.0102)).toBe("$0.010");
    expect(fmtUsd(7.2e-7)).toBe("$0.00000072"); // an embedding call: no exponent
    expect(fmtUsd(0.5)).toBe("$0.50");
    expect(fmtUsd(-0.25)).toBe("$-0.25");
    expect(fmtUsd(1.7)).toBe("$1.70");
    expect(fmtUsd(12345.6)).toBe("$12,346");
  });
  it("rates pick a readable unit", () => {
    expect(fmtRate(0)).toBe("0/s");
    expect(fmtRate(2.5)).toBe("2.5/s");
    expect(fmtRate(0.090556)).toBe("5.43/min");
    expect(fmtRate(0.0005)).toBe("1.8/h");
  });
  it("relative times", () => {
    const now = Date.parse("2026-11-22T12:00:00Z");
    expect(fmtAgo("2026-11-22T11:59:58Z", now)).toBe("just now");
    expect(fmtAgo("2026-11-22T11:59:00Z", now)).toBe("1 min ago");
    expect(fmtAgo("2026-11-22T09:00:00Z", now)).toBe("3 h ago");
    expect(fmtAgo(null, now)).toBe("never");
  });
});

describe("trend and levels", () => {
  it("colours an increase by what it means", () => {
    expect(trendView("up", 61.6, "bad")).toEqual({ arrow: "▲", tone: "bad", label: "+61.6%" });
    expect(trendView("down", -10, "bad").tone).toBe("good");
    expect(trendView("up", 5.5, "neutral").tone).toBe("neutral");
    expect(trendView("up", null, "bad").label).toBe("new");
    expect(trendView("stable", 1, "bad")).toEqual({ arrow: "▶", tone: "neutral", label: "stable" });
    expect(trendView(undefined, null, "bad").arrow).toBe("");
  });
  it("warning and critical thresholds", () => {
    expect(level(0.5, 1, 5)).toBe("ok");
    expect(level(1, 1, 5)).toBe("ok");
    expect(level(1.01, 1, 5)).toBe("warning");
    expect(level(5, 1, 5)).toBe("critical");
    expect(level(null, 1, 5)).toBe("ok");
    expect(healthLevel(90, "healthy")).toBe("ok");
    expect(healthLevel(90, "degraded")).toBe("warning");
    expect(healthLevel(20)).toBe("critical");
  });
});

describe("hostile telemetry", () => {
  it("shows bidi controls instead of applying them", () => {
    expect(visible("abc\u202Etxt.exe")).toBe("abc[U+202E]txt.exe");
    expect(visible("\u2066x\u2069")).toBe("[U+2066]x[U+2069]");
  });
  it("cuts very long strings and says so", () => {
    const s = visible("a".repeat(10_000), 100);
    expect(s.startsWith("a".repeat(100))).toBe(true);
    expect(s).toContain("9,900 more characters");
  });
  it("stringifies non-strings", () => {
    expect(visible({ a: 1 })).toBe('{"a":1}');
    expect(visible(null)).toBe("");
    expect(visible(42)).toBe("42");
  });
  it("only http(s) links are links", () => {
    expect(safeHref("https://example.com/x")).toBe("https://example.com/x");
    expect(safeHref("javascript:alert(1)")).toBeNull();
    expect(safeHref("JaVaScRiPt:alert(1)")).toBeNull();
    expect(safeHref("data:text/html,<script>")).toBeNull();
    expect(safeHref("not a url")).toBeNull();
  });
});

describe("changes and dates", () => {
  it("reads a rise from about zero as new, a big one as a multiple", () => {
    expect(fmtChange(98985.34, "up")).toBe("new");
    expect(fmtChange(null, "up")).toBe("new");
    expect(fmtChange(null, "down")).toBe("");
    expect(fmtChange(1100, "up")).toBe("×12");
    expect(fmtChange(61.6, "up")).toBe("+61.6%");
    expect(fmtChange(-40, "down")).toBe("-40%");
    expect(trendView("up", 98985.34, "bad")).toEqual({ arrow: "▲", tone: "bad", label: "new" });
    expect(trendView(null, null, "bad").arrow).toBe("");
  });
  it("dates to the minute in UTC, span times to the millisecond", () => {
    expect(fmtDate("2026-11-22T12:21:48.734512Z")).toBe("2026-11-22 12:21 UTC");
    expect(fmtDate("2026-11-22T12:21:48+02:00")).toBe("2026-11-22 10:21 UTC");
    expect(fmtDate(null)).toBe("—");
    expect(fmtDate("soon")).toBe("—");
    expect(fmtTime("2026-11-22T12:21:48.734512Z")).toBe("2026-11-22 12:21:48.734");
  });
});

describe("stat card figures", () => {
  it("sets the unit apart so the number fits", () => {
    expect(splitUnit("4.38/min")).toEqual(["4.38", "/min"]);
    expect(splitUnit("986 ms")).toEqual(["986", " ms"]);
    expect(splitUnit("1.24 s")).toEqual(["1.24", " s"]);
    expect(splitUnit("2m 05s")).toEqual(["2m 05s", ""]);
    expect(splitUnit("33.33%")).toEqual(["33.33%", ""]);
    expect(splitUnit("—")).toEqual(["—", ""]);
  });
});

describe("compact counts", () => {
  it("stay exact below 100k", () => {
    expect(fmtCompact(99_999)).toBe("99,999");
    expect(fmtCompact(390_833)).toBe("391k");
    expect(fmtCompact(999_700)).toBe("1M");
    expect(fmtCompact(1_150_000)).toBe("1.15M");
    expect(fmtCompact(null)).toBe("—");
  });
});
