import { useCallback, useEffect, useRef, useState } from "react";
import type { FormEvent } from "react";
import { useLocation, useNavigate } from "react-router-dom";
import { getJSON } from "../api";
import type { AgentRow, Page, TraceSummary } from "../api";
import { EmptyState } from "../components/EmptyState";
import { VirtualTraceTable } from "../components/VirtualTraceTable";
import { visible } from "../format";
import { useApi, useFilters, useLive } from "../hooks";
import { withParams } from "../query";
import { mergeNewest } from "../virtual";

/** Traces per page when loading further by cursor, and per live refresh of the newest. */
const PAGE = 200;
const FRESH = 50;

export function TracesPage() {
  const location = useLocation();
  const navigate = useNavigate();
  const [filters] = useFilters();
  const { tick } = useLive();
  const q = new URLSearchParams(location.search);
  const status = q.get("status") ?? "";
  const text = q.get("q") ?? "";
  const minDuration = q.get("min_duration_ms") ?? "";
  const params = {
    agent: filters.agent,
    status: status || null,
    q: text || null,
    min_duration_ms: minDuration || null,
    since: q.get("all") ? null : filters.range,
  };
  const key = JSON.stringify(params);
  const [items, setItems] = useState<TraceSummary[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [loadingMore, setLoadingMore] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [loaded, setLoaded] = useState(false);
  const [draft, setDraft] = useState(text);
  const [added, setAdded] = useState({ n: 0, seq: 0 });
  const [reload, setReload] = useState(0);
  const agents = useApi<{ items: AgentRow[] }>("/agents", { window: "7d" });
  const paramsRef = useRef(params);
  paramsRef.current = params;
  const itemsRef = useRef(items);
  itemsRef.current = items;
  const more = useRef<AbortController | null>(null);

  // The first page, whenever the filters change (or a live refresh found a gap).
  useEffect(() => {
    const ctrl = new AbortController();
    more.current?.abort();
    setLoadingMore(false);
    getJSON<Page<TraceSummary>>("/traces", { ...params, limit: PAGE }, ctrl.signal).then(
      (page) => {
        setError(null);
        setLoaded(true);
        setItems(page.items);
        setCursor(page.next_cursor);
      },
      (e: unknown) => {
        if (!ctrl.signal.aborted) setError(e instanceof Error ? e.message : String(e));
      },
    );
    return () => ctrl.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key, reload]);

  // Live: the newest traces go on top of what is loaded, without losing the reader's place.
  useEffect(() => {
    if (tick === 0 || !loaded) return;
    const ctrl = new AbortController();
    getJSON<Page<TraceSummary>>("/traces", { ...paramsRef.current, limit: FRESH }, ctrl.signal).then(
      (page) => {
        const m = mergeNewest(itemsRef.current, page.items, (t) => t.trace_id);
        if (m.gap) {
          setReload((r) => r + 1);
          return;
        }
        setItems(m.items);
        if (itemsRef.current.length === 0) setCursor(page.next_cursor);
        setAdded((a) => ({ n: m.added, seq: a.seq + 1 }));
      },
      () => undefined,
    );
    return () => ctrl.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [tick]);

  // The next page by cursor, when the list is scrolled near its end.
  const onMore = useCallback(() => {
    if (!cursor || more.current) return;
    const ctrl = new AbortController();
    more.current = ctrl;
    setLoadingMore(true);
    getJSON<Page<TraceSummary>>("/traces", { ...paramsRef.current, limit: PAGE, cursor }, ctrl.signal).then(
      (page) => {
        more.current = null;
        setLoadingMore(false);
        setItems((old) => {
          const ids = new Set(old.map((t) => t.trace_id));
          return [...old, ...page.items.filter((t) => !ids.has(t.trace_id))];
        });
        setCursor(page.next_cursor);
      },
      (e: unknown) => {
        more.current = null;
        setLoadingMore(false);
        if (!ctrl.signal.aborted) setError(e instanceof Error ? e.message : String(e));
      },
    );
  }, [cursor]);

  const set = (changes: Record<string, string | null>) =>
    navigate({ pathname: location.pathname, search: withParams(location.search, changes) }, { replace: true });

  const submit = (e: FormEvent) => {
    e.preventDefault();
    set({ q: draft || null });
  };

  return (
    <div className="page" data-testid="page-traces">
      <div className="page-head">
        <h1>Traces</h1>
        <form className="filters" onSubmit={submit} role="search">
          <label>
            Agent{" "}
            <select value={filters.agent ?? ""} onChange={(e) => set({ agent: e.target.value || null })} data-testid="traces-agent">
              <option value="">All agents</option>
              {[...new Set([...(filters.agent ? [filters.agent] : []), ...(agents.data?.items ?? []).map((a) => a.agent)])].map((a) => (
                <option key={a} value={a}>
                  {visible(a, 80)}
                </option>
              ))}
            </select>
          </label>
          <label>
            Status{" "}
            <select value={status} onChange={(e) => set({ status: e.target.value || null })} data-testid="traces-status">
              <option value="">Any</option>
              <option value="ok">OK</option>
              <option value="error">Error</option>
            </select>
          </label>
          <label>
            Slower than{" "}
            <select value={minDuration} onChange={(e) => set({ min_duration_ms: e.target.value || null })}>
              <option value="">any</option>
              <option value="500">500 ms</option>
              <option value="1000">1 s</option>
              <option value="5000">5 s</option>
              <option value="10000">10 s</option>
            </select>
          </label>
          <label>
            Search{" "}
            <input
              type="search"
              value={draft}
              placeholder="name, agent, error, trace id"
              onChange={(e) => setDraft(e.target.value)}
              data-testid="traces-search"
              maxLength={500}
            />
          </label>
          <button type="submit">Search</button>
        </form>
      </div>
      {error ? (
        <p className="error-box" role="alert">
          Could not load traces: {error}
        </p>
      ) : null}
      {loaded && items.length === 0 ? (
        !status && !text && !minDuration && !filters.agent ? (
          <EmptyState title={`No traces in the last ${filters.range}`} />
        ) : (
          <p className="muted card">No traces match these filters in the last {filters.range}.</p>
        )
      ) : null}
      {items.length > 0 ? (
        <section className="card">
          <VirtualTraceTable key={key} items={items} hasMore={cursor !== null} loading={loadingMore} onMore={onMore} added={added} testId="traces-table" />
          <div className="pager">
            <span className="muted" data-testid="traces-count">
              {items.length.toLocaleString("en-US")}
              {cursor ? "+" : ""} trace{items.length === 1 ? "" : "s"} in the last {filters.range}
              {cursor ? " (more load as you scroll)" : ""}
            </span>
            <span className="muted small">Focus the list: ↑ ↓ Page Up/Down Home End move, Enter opens.</span>
          </div>
        </section>
      ) : null}
    </div>
  );
}
