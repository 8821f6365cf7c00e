import { useEffect, useRef, useState } from "react";
import type { FormEvent } from "react";
import { useLocation, useNavigate } from "react-router-dom";
import { getJSON } from "../api";
import type { AgentRow, Page, TraceSummary } from "../api";
import { EmptyState } from "../components/EmptyState";
import { TraceTable } from "../components/TraceTable";
import { visible } from "../format";
import { useApi, useFilters, useLive } from "../hooks";
import { withParams } from "../query";

const PAGE = 50;

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
    limit: PAGE,
  };
  const key = JSON.stringify(params);
  const [items, setItems] = useState<TraceSummary[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [pages, setPages] = useState(1);
  const [error, setError] = useState<string | null>(null);
  const [loaded, setLoaded] = useState(false);
  const [draft, setDraft] = useState(text);
  const lastKey = useRef(key);
  const agents = useApi<{ items: AgentRow[] }>("/agents", { window: "7d" });

  // First page: on filter change and on every live tick (new traces appear at the top).
  useEffect(() => {
    const ctrl = new AbortController();
    const changed = lastKey.current !== key;
    lastKey.current = key;
    getJSON<Page<TraceSummary>>("/traces", params, ctrl.signal).then(
      (page) => {
        setError(null);
        setLoaded(true);
        setItems((old) => {
          if (changed || pages === 1) return page.items;
          const ids = new Set(page.items.map((t) => t.trace_id));
          return [...page.items, ...old.filter((t) => !ids.has(t.trace_id))];
        });
        if (changed || pages === 1) {
          setCursor(page.next_cursor);
          setPages(1);
        }
      },
      (e: unknown) => {
        if (!ctrl.signal.aborted) setError(e instanceof Error ? e.message : String(e));
      },
    );
    return () => ctrl.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key, tick]);

  const more = () => {
    if (!cursor) return;
    getJSON<Page<TraceSummary>>("/traces", { ...params, cursor }).then(
      (page) => {
        setItems((old) => {
          const ids = new Set(old.map((t) => t.trace_id));
          return [...old, ...page.items.filter((t) => !ids.has(t.trace_id))];
        });
        setCursor(page.next_cursor);
        setPages((p) => p + 1);
      },
      (e: unknown) => setError(e instanceof Error ? e.message : String(e)),
    );
  };

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
          <TraceTable items={items} testId="traces-table" />
          <div className="pager">
            <span className="muted">
              {items.length} trace{items.length === 1 ? "" : "s"} in the last {filters.range}
            </span>
            {cursor ? (
              <button type="button" onClick={more} data-testid="load-more">
                Load {PAGE} more
              </button>
            ) : null}
          </div>
        </section>
      ) : null}
    </div>
  );
}
