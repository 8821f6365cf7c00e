// Live connection: WebSocket first, Server-Sent Events when WebSocket fails, polling last.
// A transport counts as working once the server's "hello" arrives; silence for three
// heartbeats means the connection is dead and is replaced (with exponential backoff).

export type Mode = "connecting" | "websocket" | "sse" | "polling";

export interface LiveEvent {
  type: string;
  [key: string]: unknown;
}

export type Listener = (event: LiveEvent) => void;

interface SocketLike {
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  close(): void;
}

interface SourceLike {
  onmessage: ((ev: { data: unknown }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  close(): void;
}

export interface Transports {
  websocket: (url: string) => SocketLike;
  eventSource: (url: string) => SourceLike;
  setTimeout: (fn: () => void, ms: number) => unknown;
  clearTimeout: (handle: unknown) => void;
  random: () => number;
}

export const HELLO_TIMEOUT_MS = 5000;
export const POLL_MS = 2000;
/** Failures of a transport (in a row, before any hello) before falling back to the next. */
export const FAILURES_BEFORE_FALLBACK = 2;
/** While on a fallback, try WebSocket again after this long. */
export const RETRY_WEBSOCKET_MS = 60_000;

/** Reconnect delay for the n-th consecutive failure (0-based): 0.5 s doubling to 15 s, ±20 %. */
export function backoffMs(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(15_000, 500 * 2 ** Math.max(0, attempt));
  return Math.round(base * (0.8 + 0.4 * random()));
}

export function parseEvent(data: unknown): LiveEvent | null {
  if (typeof data !== "string") return null;
  try {
    const v: unknown = JSON.parse(data);
    if (v && typeof v === "object" && typeof (v as { type?: unknown }).type === "string") {
      return v as LiveEvent;
    }
  } catch {
    // ignore malformed frames
  }
  return null;
}

export class LiveClient {
  mode: Mode = "connecting";
  /** Consecutive failures of the current transport. */
  failures = 0;
  private listeners = new Set<Listener>();
  private modeListeners = new Set<(m: Mode) => void>();
  private ws: SocketLike | null = null;
  private es: SourceLike | null = null;
  private timers = new Set<unknown>();
  private watchdog: unknown = null;
  private heartbeatMs = 10_000;
  private stopped = true;
  private generation = 0;

  constructor(
    private readonly base: { wsUrl: (window: string) => string; sseUrl: (window: string) => string },
    private readonly t: Transports,
    private window = "1h",
  ) {}

  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  onMode(fn: (m: Mode) => void): () => void {
    this.modeListeners.add(fn);
    return () => this.modeListeners.delete(fn);
  }

  start(): void {
    this.stopped = false;
    this.connect("websocket");
  }

  stop(): void {
    this.stopped = true;
    this.teardown();
  }

  setWindow(window: string): void {
    if (window === this.window) return;
    this.window = window;
    if (!this.stopped) this.connect(this.mode === "connecting" ? "websocket" : this.transportOf(this.mode));
  }

  private transportOf(mode: Mode): "websocket" | "sse" | "polling" {
    return mode === "connecting" ? "websocket" : mode;
  }

  private setMode(mode: Mode): void {
    if (mode === this.mode) return;
    this.mode = mode;
    for (const fn of this.modeListeners) fn(mode);
  }

  private emit(event: LiveEvent): void {
    for (const fn of this.listeners) fn(event);
  }

  private later(fn: () => void, ms: number): unknown {
    const gen = this.generation;
    const h = this.t.setTimeout(() => {
      this.timers.delete(h);
      if (gen === this.generation && !this.stopped) fn();
    }, ms);
    this.timers.add(h);
    return h;
  }

  private teardown(): void {
    this.generation += 1;
    for (const h of this.timers) this.t.clearTimeout(h);
    this.timers.clear();
    this.watchdog = null;
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      ws.close();
    }
    if (this.es) {
      const es = this.es;
      this.es = null;
      es.onmessage = es.onerror = null;
      es.close();
    }
  }

  private connect(transport: "websocket" | "sse" | "polling"): void {
    this.teardown();
    if (transport === "polling") {
      this.setMode("polling");
      this.poll();
      this.later(() => {
        this.failures = 0;
        this.connect("websocket");
      }, RETRY_WEBSOCKET_MS);
      return;
    }
    if (this.mode !== "websocket" && this.mode !== "sse" && this.mode !== "polling") {
      this.setMode("connecting");
    }
    let helloSeen = false;
    const gen = this.generation;
    const fail = () => {
      if (gen !== this.generation) return;
      this.failures += 1;
      if (!helloSeen && this.failures >= FAILURES_BEFORE_FALLBACK) {
        this.failures = 0;
        this.connect(transport === "websocket" ? "sse" : "polling");
        return;
      }
      this.teardown();
      const delay = backoffMs(this.failures - 1, this.t.random);
      this.later(() => this.connect(transport), delay);
    };
    const onData = (data: unknown) => {
      if (gen !== this.generation) return;
      const event = parseEvent(data);
      if (!event) return;
      if (event.type === "hello") {
        helloSeen = true;
        this.failures = 0;
        const hb = Number(event.heartbeat_s);
        if (Number.isFinite(hb) && hb > 0) this.heartbeatMs = hb * 1000;
        this.setMode(transport);
      }
      this.armWatchdog(fail, 3 * this.heartbeatMs);
      this.emit(event);
    };
    // No hello in time: this transport does not work here.
    this.armWatchdog(fail, HELLO_TIMEOUT_MS);
    if (transport === "websocket") {
      let ws: SocketLike;
      try {
        ws = this.t.websocket(this.base.wsUrl(this.window));
      } catch {
        fail();
        return;
      }
      this.ws = ws;
      ws.onmessage = (ev) => onData(ev.data);
      ws.onclose = () => fail();
      ws.onerror = () => undefined; // a close follows
    } else {
      let es: SourceLike;
      try {
        es = this.t.eventSource(this.base.sseUrl(this.window));
      } catch {
        fail();
        return;
      }
      this.es = es;
      es.onmessage = (ev) => onData(ev.data);
      es.onerror = () => fail(); // we reconnect ourselves, with backoff and fallback
    }
  }

  private armWatchdog(fail: () => void, ms: number): void {
    if (this.watchdog !== null) {
      this.t.clearTimeout(this.watchdog);
      this.timers.delete(this.watchdog);
    }
    this.watchdog = this.later(fail, ms);
  }

  private poll(): void {
    this.emit({ type: "poll" });
    this.later(() => this.poll(), POLL_MS);
  }
}

export function browserTransports(): Transports {
  return {
    websocket: (url) => new WebSocket(url) as unknown as SocketLike,
    eventSource: (url) => new EventSource(url) as unknown as SourceLike,
    setTimeout: (fn, ms) => window.setTimeout(fn, ms),
    clearTimeout: (h) => window.clearTimeout(h as number),
    random: Math.random,
  };
}

export function browserEndpoints(): { wsUrl: (w: string) => string; sseUrl: (w: string) => string } {
  const { protocol, host } = window.location;
  const wsProto = protocol === "https:" ? "wss:" : "ws:";
  return {
    wsUrl: (w) => `${wsProto}//${host}/api/v1/live?window=${encodeURIComponent(w)}`,
    sseUrl: (w) => `/api/v1/stream?window=${encodeURIComponent(w)}`,
  };
}
