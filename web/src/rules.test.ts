import { describe, expect, it } from "vitest";
import { caretLines } from "./components/RulesEditor";
import { canBeFirstKey } from "./components/settings/Keys";
import { channelConfig } from "./components/settings/Channels";
import { effectiveFrom } from "./components/settings/Prices";

describe("rule errors", () => {
  it("marks the column the grammar stopped at", () => {
    expect(caretLines("p95(latency, 10m) >> 2000", 1, 20)).toEqual(["p95(latency, 10m) >> 2000", "                   ^"]);
    expect(caretLines("errors(5m) > 1\nand foo(", 2, 5)).toEqual(["and foo(", "    ^"]);
    expect(caretLines("x", 1, 9)).toEqual(["x", " ^"]); // at the end
    expect(caretLines("x", 3, 1)).toBeNull();
  });
});

describe("settings forms", () => {
  it("the first key must let this browser read", () => {
    expect(canBeFirstKey(["ingest"])).toBe(false);
    expect(canBeFirstKey(["ingest", "read"])).toBe(true);
    expect(canBeFirstKey(["admin"])).toBe(true);
  });
  it("builds each channel type's config from the form", () => {
    expect(channelConfig("slack", { url: " https://hooks.slack.com/x " })).toEqual({ url: "https://hooks.slack.com/x" });
    expect(channelConfig("email", { host: "smtp", port: "2525", to: "a@x, b@y", starttls: "true", username: "" })).toEqual({
      host: "smtp",
      port: 2525,
      to: ["a@x", "b@y"],
      starttls: true,
    });
    expect(channelConfig("pagerduty", { routing_key: "k", url: "" })).toEqual({ routing_key: "k" });
  });
  it("sends effective dates as UTC, 'always', or nothing for now", () => {
    expect(effectiveFrom("now", "2026-01-01T00:00")).toBeUndefined();
    expect(effectiveFrom("always", "")).toBe("always");
    expect(effectiveFrom("from", "2026-01-01T00:00Z")).toBe("2026-01-01T00:00:00.000Z");
    expect(effectiveFrom("from", "")).toBeUndefined();
  });
});
