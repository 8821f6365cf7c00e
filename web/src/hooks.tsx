import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState } from "react";
import type { ReactNode } from "react";
import { useLocation, useNavigate } from "react-router-dom";
import { getJSON } from "./api";
import type { Params } from "./api";
import { LiveClient, browserEndpoints, browserTransports } from "./live";
import type { LiveEvent, Mode } from "./live";
import { parseFilters, withParams } from "./query";
import type { Filters } from "./query";

interface LiveState {
  mode: Mode;
  /** Bumped (at most about once a second) when new data was ingested or a poll is due. */
  tick: number;
  /** Trace ids of the latest `trace` event ("*" when polling: anything may have changed). */
  lastTraces: { ids: string[]; n: number } | null;
  lastSummary: LiveEvent | null;
  lastEventAt: number | null;
  /** Bumped (at most about once a second) when new logs were stored or a poll is due. */
  logTick: number;
}

const LiveContext = createContext<LiveState>({ mode: "connecting", tick: 0, lastTraces: null, lastSummary: null, lastEventAt: null, logTick: 0 });
const MIN_TICK_MS = 1000;

export function LiveProvider({ window, children }: { window: string; children: ReactNode }) {
  const [mode, setMode] = useState<Mode>("connecting");
  const [tick, setTick] = useState(0);
  const [lastSummary, setLastSummary] = useState<LiveEvent | null>(null);
  const [lastEventAt, setLastEventAt] = useState<number | null>(null);
  const [lastTraces, setLastTraces] = useState<{ ids: string[]; n: number } | null>(null);
  const client = useRef<LiveClient | null>(null);
  const pending = useRef<number | null>(null);
  const lastTickAt = useRef(0);
  const [logTick, setLogTick] = useState(0);
  const logPending = useRef<number | null>(null);
  const lastLogTickAt = useRef(0);

  useEffect(() => {
    const c = new LiveClient(browserEndpoints(), browserTransports(), window);
    client.current = c;
    const offMode = c.onMode(setMode);
    const off = c.subscribe((event) => {
      setLastEventAt(Date.now());
      if (event.type === "summary") setLastSummary(event);
      if (event.type === "trace" || event.type === "poll") {
        const ids = event.type === "poll" ? ["*"] : ((event.traces as { trace_id: string }[] | undefined) ?? []).map((t) => t.trace_id);
        setLastTraces((old) => ({ ids, n: (old?.n ?? 0) + 1 }));
      }
      if (event.type === "log" || event.type === "poll") {
        // The live tail: coalesced like the tick below.
        if (logPending.current === null) {
          const wait = Math.max(300, MIN_TICK_MS - (Date.now() - lastLogTickAt.current));
          logPending.current = globalThis.setTimeout(() => {
            logPending.current = null;
            lastLogTickAt.current = Date.now();
            setLogTick((t) => t + 1);
          }, wait) as unknown as number;
        }
      }
      if (event.type === "trace" || event.type === "poll" || event.type === "alert") {
        // Coalesce bursts: pages refetch at most about once a second, however busy ingest is.
        if (pending.current === null) {
          const wait = Math.max(300, MIN_TICK_MS - (Date.now() - lastTickAt.current));
          pending.current = globalThis.setTimeout(() => {
            pending.current = null;
            lastTickAt.current = Date.now();
            setTick((t) => t + 1);
          }, wait) as unknown as number;
        }
      }
    });
    c.start();
    return () => {
      off();
      offMode();
      c.stop();
      if (pending.current !== null) globalThis.clearTimeout(pending.current);
      pending.current = null;
      if (logPending.current !== null) globalThis.clearTimeout(logPending.current);
      logPending.current = null;
      client.current = null;
    };
    // The window is applied below without reconnecting the whole client.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  useEffect(() => {
    client.current?.setWindow(window);
    setLastSummary(null);
  }, [window]);

  const value = useMemo(
    () => ({ mode, tick, lastTraces, lastSummary, lastEventAt, logTick }),
    [mode, tick, lastTraces, lastSummary, lastEventAt, logTick],
  );
  return <LiveContext.Provider value={value}>{children}</LiveContext.Provider>;
}

export function useLive(): LiveState {
  return useContext(LiveContext);
}

export interface Loaded<T> {
  data: T | null;
  error: string | null;
  loading: boolean;
}

/** GET an API path; refetches when the path, params or `refresh` change, keeping old data meanwhile. */
export function useApi<T>(path: string | null, params: Params = {}, refresh = 0): Loaded<T> {
  const [state, setState] = useState<Loaded<T>>({ data: null, error: null, loading: path !== null });
  const key = path === null ? null : `${path}?${JSON.stringify(params)}`;
  const lastKey = useRef<string | null>(null);
  useEffect(() => {
    if (path === null) return;
    const ctrl = new AbortController();
    const sameKey = lastKey.current === key;
    lastKey.current = key;
    setState((s) => ({ data: sameKey ? s.data : null, error: null, loading: true }));
    getJSON<T>(path, params, ctrl.signal).then(
      (data) => setState({ data, error: null, loading: false }),
      (err: unknown) => {
        if (ctrl.signal.aborted) return;
        setState((s) => ({ data: s.data, error: err instanceof Error ? err.message : String(err), loading: false }));
      },
    );
    return () => ctrl.abort();
    // `key` stands for path + params.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key, refresh]);
  return state;
}

/** The global filters from the URL and a setter that keeps the rest of the query. */
export function useFilters(): [Filters, (changes: Record<string, string | null>) => void] {
  const location = useLocation();
  const navigate = useNavigate();
  const filters = useMemo(() => parseFilters(location.search), [location.search]);
  const set = useCallback(
    (changes: Record<string, string | null>) => {
      navigate({ pathname: location.pathname, search: withParams(location.search, changes) }, { replace: true });
    },
    [location.pathname, location.search, navigate],
  );
  return [filters, set];
}

export function useTheme(): [string, () => void] {
  const [theme, setTheme] = useState<string>(() => {
    const saved = localStorage.getItem("pharos-theme");
    if (saved === "light" || saved === "dark") return saved;
    return globalThis.matchMedia?.("(prefers-color-scheme: light)").matches ? "light" : "dark";
  });
  useEffect(() => {
    document.documentElement.dataset.theme = theme;
    localStorage.setItem("pharos-theme", theme);
  }, [theme]);
  return [theme, () => setTheme((t) => (t === "dark" ? "light" : "dark"))];
}

/** Several /metrics/timeseries in parallel (one chart can show p50, p95 and p99). */
export function useTimeseries(metrics: string[], params: Params, refresh = 0): import("./api").Timeseries[] | null {
  const [data, setData] = useState<import("./api").Timeseries[] | null>(null);
  const key = JSON.stringify([metrics, params]);
  const lastKey = useRef<string | null>(null);
  useEffect(() => {
    const ctrl = new AbortController();
    if (lastKey.current !== key) setData(null);
    lastKey.current = key;
    Promise.all(metrics.map((metric) => getJSON<import("./api").Timeseries>("/metrics/timeseries", { ...params, metric }, ctrl.signal))).then(
      setData,
      () => undefined,
    );
    return () => ctrl.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key, refresh]);
  return data;
}
