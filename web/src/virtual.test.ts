import { describe, expect, it } from "vitest";
import { mergeNewest, moveActive, needMore, scrollToShow, visibleRange } from "./virtual";

describe("virtual list", () => {
  it("renders only the rows in view, with overscan, clamped to the list", () => {
    expect(visibleRange(0, 500, 50, 3000, 5)).toEqual({ start: 0, end: 15 });
    expect(visibleRange(10_000, 500, 50, 3000, 5)).toEqual({ start: 195, end: 215 });
    expect(visibleRange(149_800, 500, 50, 3000, 5)).toEqual({ start: 2991, end: 3000 });
    expect(visibleRange(0, 500, 50, 0, 5)).toEqual({ start: 0, end: 0 });
    const r = visibleRange(77_777, 800, 52, 100_000, 8);
    expect(r.end - r.start).toBeLessThanOrEqual(Math.ceil(800 / 52) + 1 + 16);
  });
  it("scrolls just enough to show a row below the sticky header", () => {
    expect(scrollToShow(3, 0, 500, 50, 40)).toBe(0); // already visible
    expect(scrollToShow(20, 0, 500, 50, 40)).toBe(1050 - 460);
    expect(scrollToShow(2, 400, 500, 50, 40)).toBe(100);
  });
  it("moves the active row with the keyboard", () => {
    expect(moveActive("ArrowDown", -1, 10, 5)).toBe(0);
    expect(moveActive("ArrowDown", 9, 10, 5)).toBe(9);
    expect(moveActive("ArrowUp", 0, 10, 5)).toBe(0);
    expect(moveActive("PageDown", 2, 10, 5)).toBe(7);
    expect(moveActive("PageUp", 2, 10, 5)).toBe(0);
    expect(moveActive("End", 2, 10, 5)).toBe(9);
    expect(moveActive("Home", 7, 10, 5)).toBe(0);
    expect(moveActive("a", 2, 10, 5)).toBeNull();
    expect(moveActive("ArrowDown", -1, 0, 5)).toBeNull();
  });
  it("asks for the next page near the end only", () => {
    expect(needMore({ start: 0, end: 20 }, 200, 40, true, false)).toBe(false);
    expect(needMore({ start: 150, end: 170 }, 200, 40, true, false)).toBe(true);
    expect(needMore({ start: 150, end: 170 }, 200, 40, true, true)).toBe(false);
    expect(needMore({ start: 150, end: 200 }, 200, 40, false, false)).toBe(false);
  });
  it("puts new traces on top and updates known ones", () => {
    const id = (t: { id: string }) => t.id;
    const loaded = [{ id: "c", v: 1 }, { id: "b", v: 1 }, { id: "a", v: 1 }];
    const m = mergeNewest(loaded, [{ id: "e", v: 1 }, { id: "d", v: 1 }, { id: "c", v: 2 }], id);
    expect(m.items.map((t) => `${t.id}${t.v}`)).toEqual(["e1", "d1", "c2", "b1", "a1"]);
    expect(m.added).toBe(2);
    expect(m.gap).toBe(false);
    expect(mergeNewest(loaded, [{ id: "z", v: 1 }], id).gap).toBe(true);
    expect(mergeNewest([], [{ id: "z", v: 1 }], id).items).toHaveLength(1);
  });
});
