import { beforeEach, describe, expect, it } from "vitest";
import { FAILURES_BEFORE_FALLBACK, HELLO_TIMEOUT_MS, LiveClient, POLL_MS, RETRY_WEBSOCKET_MS, backoffMs, parseEvent } from "./live";
import type { LiveEvent, Transports } from "./live";

// A fake clock and fake sockets: the client's state machine without a browser.
class Clock {
  now = 0;
  private seq = 0;
  timers = new Map<number, { at: number; fn: () => void }>();
  set = (fn: () => void, ms: number) => {
    const id = ++this.seq;
    this.timers.set(id, { at: this.now + ms, fn });
    return id;
  };
  clear = (id: unknown) => {
    this.timers.delete(id as number);
  };
  advance(ms: number) {
    const end = this.now + ms;
    for (;;) {
      const next = [...this.timers.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!next) break;
      this.timers.delete(next[0]);
      this.now = next[1].at;
      next[1].fn();
    }
    this.now = end;
  }
}

class FakeSocket {
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: unknown) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  closed = false;
  constructor(readonly url: string) {}
  close() {
    this.closed = true;
  }
  send(event: object) {
    this.onmessage?.({ data: JSON.stringify(event) });
  }
}

let clock: Clock;
let sockets: FakeSocket[];
let sources: FakeSocket[];
let events: LiveEvent[];

function client(window = "1h") {
  const t: Transports = {
    websocket: (url) => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    eventSource: (url) => {
      const s = new FakeSocket(url);
      sources.push(s);
      return s;
    },
    setTimeout: clock.set,
    clearTimeout: clock.clear,
    random: () => 0.5,
  };
  const c = new LiveClient({ wsUrl: (w) => `ws://h/api/v1/live?window=${w}`, sseUrl: (w) => `/api/v1/stream?window=${w}` }, t, window);
  c.subscribe((e) => events.push(e));
  return c;
}

const hello = { type: "hello", bus: "memory", window: "1h", heartbeat_s: 10 };

beforeEach(() => {
  clock = new Clock();
  sockets = [];
  sources = [];
  events = [];
});

describe("live connection", () => {
  it("uses the WebSocket once the server says hello, and passes events on", () => {
    const c = client();
    c.start();
    expect(c.mode).toBe("connecting");
    sockets[0].send(hello);
    expect(c.mode).toBe("websocket");
    sockets[0].send({ type: "trace", traces: [] });
    expect(events.map((e) => e.type)).toEqual(["hello", "trace"]);
    expect(sockets[0].url).toContain("window=1h");
  });

  it("reconnects with backoff after a working socket closes", () => {
    const c = client();
    c.start();
    sockets[0].send(hello);
    sockets[0].onclose?.({});
    expect(sockets).toHaveLength(1);
    clock.advance(backoffMs(0, () => 0.5));
    expect(sockets).toHaveLength(2);
    sockets[1].send(hello);
    expect(c.mode).toBe("websocket");
  });

  it("falls back to SSE when WebSocket never says hello, then to polling", () => {
    const c = client();
    c.start();
    for (let i = 0; i < FAILURES_BEFORE_FALLBACK; i++) {
      sockets[sockets.length - 1].onclose?.({}); // closed before any hello
      clock.advance(1_000);
    }
    expect(sockets).toHaveLength(FAILURES_BEFORE_FALLBACK);
    expect(sources).toHaveLength(1);
    sources[0].send(hello);
    expect(c.mode).toBe("sse");
    // SSE broken too (errors before any hello):
    const c2 = client();
    sockets = [];
    sources = [];
    c2.start();
    clock.advance(HELLO_TIMEOUT_MS); // socket silent: no hello
    clock.advance(1_000);
    clock.advance(HELLO_TIMEOUT_MS);
    expect(sources.length).toBe(1);
    for (let i = 0; i < FAILURES_BEFORE_FALLBACK; i++) {
      sources[sources.length - 1].onerror?.({});
      clock.advance(1_000);
    }
    expect(c2.mode).toBe("polling");
    const polls = events.filter((e) => e.type === "poll").length;
    clock.advance(POLL_MS * 3);
    expect(events.filter((e) => e.type === "poll").length).toBeGreaterThanOrEqual(polls + 3);
    c.stop();
    c2.stop();
  });

  it("treats silence for three heartbeats as a dead connection", () => {
    const c = client();
    c.start();
    sockets[0].send(hello);
    clock.advance(29_000);
    expect(sockets[0].closed).toBe(false);
    clock.advance(2_000);
    expect(sockets[0].closed).toBe(true);
    clock.advance(2_000);
    expect(sockets.length).toBe(2);
    c.stop();
  });

  it("reconnects with the new window", () => {
    const c = client();
    c.start();
    sockets[0].send(hello);
    c.setWindow("24h");
    expect(sockets[0].closed).toBe(true);
    expect(sockets[1].url).toContain("window=24h");
  });

  it("stops cleanly", () => {
    const c = client();
    c.start();
    c.stop();
    expect(sockets[0].closed).toBe(true);
    clock.advance(120_000);
    expect(sockets).toHaveLength(1);
  });
});

/** Time passing on a live SSE stream: the server's heartbeat every 10 s keeps it alive. */
function beat(ms: number, source = () => sources[0]) {
  for (let left = ms; left > 0; left -= 10_000) {
    clock.advance(Math.min(10_000, left));
    if (!source().closed) source().send({ type: "heartbeat" });
  }
}

/** A client that fell back to SSE (WebSocket closed twice before any hello). */
function onSse(): LiveClient {
  const c = client();
  c.start();
  for (let i = 0; i < FAILURES_BEFORE_FALLBACK; i++) {
    sockets[sockets.length - 1].onclose?.({});
    clock.advance(1_000);
  }
  sources[0].send(hello);
  expect(c.mode).toBe("sse");
  return c;
}

describe("back to WebSocket from a fallback", () => {
  it("probes WebSocket from SSE and moves over once it says hello", () => {
    const c = onSse();
    const before = sockets.length;
    beat(RETRY_WEBSOCKET_MS - 1);
    expect(sockets).toHaveLength(before); // not yet
    clock.advance(1);
    expect(sockets).toHaveLength(before + 1); // the probe, beside the SSE stream
    expect(sources[0].closed).toBe(false);
    expect(c.mode).toBe("sse");
    sources[0].send({ type: "trace", traces: [] }); // SSE still delivers meanwhile
    const probe = sockets[before];
    probe.send(hello);
    expect(c.mode).toBe("websocket");
    expect(sources[0].closed).toBe(true);
    expect(probe.closed).toBe(false); // the probe is the connection now
    probe.send({ type: "summary" });
    expect(events.map((e) => e.type).slice(-3)).toEqual(["trace", "hello", "summary"]);
    expect(sources).toHaveLength(1); // no new SSE stream
    beat(RETRY_WEBSOCKET_MS * 2, () => probe);
    expect(sockets).toHaveLength(before + 1); // on WebSocket, no more probes
    // And it is watched like any connection: silence means dead, then a reconnect.
    clock.advance(31_000);
    expect(probe.closed).toBe(true);
    c.stop();
  });

  it("stays on SSE when the probe fails, and probes again later", () => {
    const c = onSse();
    beat(RETRY_WEBSOCKET_MS);
    const first = sockets[sockets.length - 1];
    first.onclose?.({}); // refused
    expect(c.mode).toBe("sse");
    expect(sources[0].closed).toBe(false);
    const n = sockets.length;
    beat(RETRY_WEBSOCKET_MS);
    expect(sockets).toHaveLength(n + 1);
    // A probe that never says hello is given up after the hello timeout.
    const silent = sockets[sockets.length - 1];
    beat(HELLO_TIMEOUT_MS);
    expect(silent.closed).toBe(true);
    expect(c.mode).toBe("sse");
    expect(sources[0].closed).toBe(false);
    expect(c.probes).toBe(2);
    c.stop();
  });

  it("from polling probes WebSocket, then SSE, and keeps polling until one works", () => {
    const c = client();
    c.start();
    clock.advance(HELLO_TIMEOUT_MS); // websocket silent
    clock.advance(1_000);
    clock.advance(HELLO_TIMEOUT_MS);
    for (let i = 0; i < FAILURES_BEFORE_FALLBACK; i++) {
      sources[sources.length - 1].onerror?.({});
      clock.advance(1_000);
    }
    expect(c.mode).toBe("polling");
    const ws = sockets.length;
    const es = sources.length;
    clock.advance(RETRY_WEBSOCKET_MS);
    expect(sockets).toHaveLength(ws + 1);
    sockets[ws].onclose?.({}); // WebSocket still blocked: try SSE right away
    expect(sources).toHaveLength(es + 1);
    const polls = events.filter((e) => e.type === "poll").length;
    clock.advance(POLL_MS * 2);
    expect(events.filter((e) => e.type === "poll").length).toBeGreaterThan(polls); // still polling
    sources[es].send(hello);
    expect(c.mode).toBe("sse");
    const after = events.filter((e) => e.type === "poll").length;
    sources[es].send({ type: "heartbeat" });
    clock.advance(POLL_MS * 3);
    expect(events.filter((e) => e.type === "poll").length).toBe(after); // polling stopped
    c.stop();
  });

  it("closes a probe in flight on stop", () => {
    const c = onSse();
    beat(RETRY_WEBSOCKET_MS);
    const probe = sockets[sockets.length - 1];
    c.stop();
    expect(probe.closed).toBe(true);
    expect(sources[0].closed).toBe(true);
  });
});

describe("helpers", () => {
  it("backs off exponentially up to 15 s", () => {
    expect(backoffMs(0, () => 0.5)).toBe(500);
    expect(backoffMs(3, () => 0.5)).toBe(4000);
    expect(backoffMs(20, () => 0.5)).toBe(15000);
    expect(backoffMs(0, () => 0)).toBe(400);
    expect(backoffMs(0, () => 1)).toBe(600);
  });
  it("parses only typed JSON events", () => {
    expect(parseEvent('{"type":"trace"}')).toEqual({ type: "trace" });
    expect(parseEvent("nope")).toBeNull();
    expect(parseEvent('{"x":1}')).toBeNull();
    expect(parseEvent(42)).toBeNull();
  });
});
