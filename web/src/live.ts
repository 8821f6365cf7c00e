// Live connection: WebSocket first, Server-Sent Events when WebSocket fails, polling last.
// A transport counts as working once the server's "hello" arrives; silence for three
// heartbeats means the connection is dead and is replaced (with exponential backoff).
// On a fallback (SSE or polling) the client keeps probing WebSocket every RETRY_WEBSOCKET_MS,
// beside the working connection, and moves over once the probe says hello; from polling it
// probes SSE too when WebSocket still fails.

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
/** While on a fallback (SSE or polling), probe WebSocket again this often. */
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
  /** A connection being tried beside the working one (from a fallback). */
  private probe: { transport: "websocket" | "sse"; socket: SocketLike | null; source: SourceLike | null } | null = null;
  /** Probes started (for tests and the connection indicator's title). */
  probes = 0;
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
    this.dropProbe();
  }

  private dropProbe(): void {
    const p = this.probe;
    this.probe = null;
    if (p?.socket) {
      p.socket.onopen = p.socket.onmessage = p.socket.onclose = p.socket.onerror = null;
      p.socket.close();
    }
    if (p?.source) {
      p.source.onmessage = p.source.onerror = null;
      p.source.close();
    }
  }

  /** On a fallback: try a better transport again later, without leaving the current one. */
  private scheduleProbe(): void {
    this.later(() => this.startProbe("websocket"), RETRY_WEBSOCKET_MS);
  }

  private startProbe(transport: "websocket" | "sse"): void {
    this.dropProbe();
    this.probes += 1;
    const gen = this.generation;
    let done = false;
    let timer: unknown = null;
    const giveUp = () => {
      if (done || gen !== this.generation) return;
      done = true;
      if (timer !== null) {
        this.t.clearTimeout(timer);
        this.timers.delete(timer);
      }
      this.dropProbe();
      // From polling, SSE is better than nothing: try it when WebSocket still fails.
      if (transport === "websocket" && this.mode === "polling") this.startProbe("sse");
      else this.scheduleProbe();
    };
    const onData = (data: unknown) => {
      if (done || gen !== this.generation) return;
      const event = parseEvent(data);
      if (!event || event.type !== "hello") return;
      done = true;
      if (timer !== null) {
        this.t.clearTimeout(timer);
        this.timers.delete(timer);
      }
      const probe = this.probe;
      this.probe = null; // kept open: it becomes the connection
      if (probe) this.connect(transport, { socket: probe.socket, source: probe.source, hello: event });
    };
    try {
      if (transport === "websocket") {
        const socket = this.t.websocket(this.base.wsUrl(this.window));
        this.probe = { transport, socket, source: null };
        socket.onmessage = (ev) => onData(ev.data);
        socket.onclose = () => giveUp();
        socket.onerror = () => undefined; // a close follows
      } else {
        const source = this.t.eventSource(this.base.sseUrl(this.window));
        this.probe = { transport, socket: null, source };
        source.onmessage = (ev) => onData(ev.data);
        source.onerror = () => giveUp();
      }
    } catch {
      giveUp();
      return;
    }
    timer = this.later(giveUp, HELLO_TIMEOUT_MS);
  }

  private connect(
    transport: "websocket" | "sse" | "polling",
    adopt?: { socket: SocketLike | null; source: SourceLike | null; hello: LiveEvent },
  ): void {
    this.teardown();
    if (transport === "polling") {
      this.setMode("polling");
      this.poll();
      this.scheduleProbe();
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
      handle(event);
    };
    const handle = (event: LiveEvent) => {
      if (event.type === "hello") {
        const first = !helloSeen;
        helloSeen = true;
        this.failures = 0;
        const hb = Number(event.heartbeat_s);
        if (Number.isFinite(hb) && hb > 0) this.heartbeatMs = hb * 1000;
        this.setMode(transport);
        if (first && transport === "sse") this.scheduleProbe(); // SSE is a fallback too
      }
      this.armWatchdog(fail, 3 * this.heartbeatMs);
      this.emit(event);
    };
    // No hello in time: this transport does not work here.
    this.armWatchdog(fail, HELLO_TIMEOUT_MS);
    if (transport === "websocket") {
      let ws: SocketLike;
      try {
        ws = adopt?.socket ?? this.t.websocket(this.base.wsUrl(this.window));
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
        es = adopt?.source ?? this.t.eventSource(this.base.sseUrl(this.window));
      } catch {
        fail();
        return;
      }
      this.es = es;
      es.onmessage = (ev) => onData(ev.data);
      es.onerror = () => fail(); // we reconnect ourselves, with backoff and fallback
    }
    if (adopt) {
      this.failures = 0;
      handle(adopt.hello); // the probe's hello: this connection works already
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
