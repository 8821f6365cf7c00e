import { describe, expect, it } from "vitest";
import { carry, liveWindow, parseFilters, rangeApplies, rangeSeconds, withParams } from "./query";

describe("filters in the URL", () => {
  it("parses with defaults and refuses unknown ranges", () => {
    expect(parseFilters("")).toEqual({ range: "1h", agent: null, model: null });
    expect(parseFilters("?range=7d&agent=a%20b&model=gpt-4o")).toEqual({ range: "7d", agent: "a b", model: "gpt-4o" });
    expect(parseFilters("?range=1y").range).toBe("1h");
    expect(parseFilters("?range=3h").range).toBe("3h");
    expect(parseFilters("?range=401d").range).toBe("1h");
    expect(parseFilters("?range=0m").range).toBe("1h");
    expect(parseFilters("?range=<script>").range).toBe("1h");
  });
  it("sets and removes keys, keeping the others", () => {
    expect(withParams("?range=1h&q=x", { agent: "bot" })).toBe("?range=1h&q=x&agent=bot");
    expect(withParams("?range=1h&agent=bot", { agent: null })).toBe("?range=1h");
    expect(withParams("?agent=bot", { agent: "" })).toBe("");
  });
  it("carries only the global filters to another page", () => {
    expect(carry("?range=6h&status=error&agent=x")).toBe("?range=6h&agent=x");
    expect(carry("?status=error")).toBe("");
  });
});

describe("custom ranges", () => {
  it("are whole minutes, hours or days up to 400 days", () => {
    expect(rangeSeconds("90m")).toBe(5400);
    expect(rangeSeconds("30d")).toBe(2_592_000);
    expect(rangeSeconds("1.5h")).toBeNull();
    expect(rangeSeconds("401d")).toBeNull();
  });
  it("keep the live summaries within 7 days", () => {
    expect(liveWindow("3h")).toBe("3h");
    expect(liveWindow("30d")).toBe("7d");
  });
});

describe("the time range picker", () => {
  it("shows where the range changes what is shown, and hides elsewhere", () => {
    for (const p of ["/", "/traces", "/logs", "/errors", "/errors/abc", "/agents", "/agents/x", "/costs"]) {
      expect(rangeApplies(p)).toBe(true);
    }
    for (const p of ["/alerts", "/alerts/12", "/settings", "/traces/0123abcd"]) {
      expect(rangeApplies(p)).toBe(false);
    }
    expect(rangeApplies("/alertsx")).toBe(true); // an unknown page: the app's "not found"
  });
});
