import { useEffect, useRef, useState } from "react";
import type { FormEvent } from "react";
import { useLocation, useNavigate } from "react-router-dom";
import { getJSON } from "../api";
import type { AgentRow, LogItem, Page } from "../api";
import { LogTable } from "../components/LogTable";
import { visible } from "../format";
import { useApi, useFilters, useLive } from "../hooks";
import { LEVEL_CHOICES, mergeNewest } from "../logs";
import { withParams } from "../query";

const PAGE = 100;

export function logsSnippet(origin: string): string {
  return `pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http

import logging
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

provider = LoggerProvider()
provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint="${origin}/v1/logs")))
logging.getLogger().addHandler(LoggingHandler(logger_provider=provider))`;
}

export function LogsPage() {
  const location = useLocation();
  const navigate = useNavigate();
  const [filters] = useFilters();
  const { logTick } = useLive();
  const q = new URLSearchParams(location.search);
  const level = q.get("level") ?? "";
  const text = q.get("q") ?? "";
  const traceId = q.get("trace_id") ?? "";
  const [tail, setTail] = useState(true);
  const params = {
    level: level || null,
    agent: filters.agent,
    q: text || null,
    trace_id: traceId || null,
    since: traceId ? null : filters.range,
    limit: PAGE,
  };
  const key = JSON.stringify(params);
  const [items, setItems] = useState<LogItem[]>([]);
  const [fresh, setFresh] = useState<Set<string>>(new Set());
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loaded, setLoaded] = useState(false);
  const [draft, setDraft] = useState(text);
  const lastKey = useRef<string | null>(null);
  const shown = useRef<LogItem[]>([]);
  shown.current = items;
  const agents = useApi<{ items: AgentRow[] }>("/agents", { window: "7d" });
  // Live tail: refetch the first page when new logs are stored (a `log` event, or each poll
  // when the live feed has fallen back to polling). Paused, the list stays as it is.
  const refresh = tail ? logTick : 0;

  useEffect(() => {
    const ctrl = new AbortController();
    const changed = lastKey.current !== key;
    lastKey.current = key;
    getJSON<Page<LogItem>>("/logs", params, ctrl.signal).then(
      (page) => {
        setError(null);
        setLoaded(true);
        if (changed) {
          setItems(page.items);
          setFresh(new Set());
          setCursor(page.next_cursor);
          return;
        }
        const merged = mergeNewest(shown.current, page.items);
        setItems(merged.items);
        setFresh(merged.fresh);
      },
      (e: unknown) => {
        if (!ctrl.signal.aborted) setError(e instanceof Error ? e.message : String(e));
      },
    );
    return () => ctrl.abort();
    // `key` stands for params.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key, refresh]);

  const more = () => {
    if (!cursor) return;
    getJSON<Page<LogItem>>("/logs", { ...params, cursor }).then(
      (page) => {
        setItems((old) => {
          const ids = new Set(old.map((l) => l.log_id));
          return [...old, ...page.items.filter((l) => !ids.has(l.log_id))];
        });
        setCursor(page.next_cursor);
      },
      (e: unknown) => setError(e instanceof Error ? e.message : String(e)),
    );
  };

  const set = (changes: Record<string, string | null>) =>
    navigate({ pathname: location.pathname, search: withParams(location.search, changes) }, { replace: true });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    set({ q: draft.trim() || null });
  };
  const filtered = Boolean(level || text || traceId || filters.agent);

  return (
    <div className="page" data-testid="page-logs">
      <div className="page-head">
        <h1>Logs</h1>
        <form className="filters" onSubmit={submit} role="search">
          <label>
            Level{" "}
            <select value={level} onChange={(e) => set({ level: e.target.value || null })} data-testid="logs-level">
              {LEVEL_CHOICES.map((c) => (
                <option key={c.value} value={c.value}>
                  {c.label}
                </option>
              ))}
            </select>
          </label>
          <label>
            Agent{" "}
            <select value={filters.agent ?? ""} onChange={(e) => set({ agent: e.target.value || null })} data-testid="logs-agent">
              <option value="">All agents</option>
              {[...new Set([...(filters.agent ? [filters.agent] : []), ...(agents.data?.items ?? []).map((a) => a.agent)])].map((a) => (
                <option key={a} value={a}>
                  {visible(a, 80)}
                </option>
              ))}
            </select>
          </label>
          <label>
            Text{" "}
            <input
              type="search"
              value={draft}
              placeholder="in the message"
              onChange={(e) => setDraft(e.target.value)}
              data-testid="logs-search"
              maxLength={256}
            />
          </label>
          <button type="submit">Search</button>
          <label className="toggle">
            <input type="checkbox" checked={tail} onChange={(e) => setTail(e.target.checked)} data-testid="logs-tail" /> Live tail
          </label>
        </form>
      </div>
      {traceId ? (
        <p className="notice">
          Logs of trace <span className="mono">{visible(traceId, 40)}</span>{" "}
          <button type="button" className="linklike" onClick={() => set({ trace_id: null })}>
            show all logs
          </button>
        </p>
      ) : null}
      {error ? (
        <p className="error-box" role="alert">
          Could not load logs: {error}
        </p>
      ) : null}
      {loaded && items.length === 0 ? (
        filtered ? (
          <p className="muted card">No logs match these filters{traceId ? "" : ` in the last ${filters.range}`}.</p>
        ) : (
          <section className="card empty" data-testid="logs-empty">
            <h2>No logs in the last {filters.range}</h2>
            <p>Send logs with any OpenTelemetry log exporter to POST /v1/logs (or gRPC on port 4317). From Python's logging:</p>
            <pre className="snippet">
              <code>{logsSnippet(window.location.origin)}</code>
            </pre>
          </section>
        )
      ) : null}
      {items.length > 0 ? (
        <section className="card">
          <LogTable items={items} fresh={fresh} testId="logs-table" />
          <div className="pager">
            <span className="muted" data-testid="logs-count">
              {items.length} log{items.length === 1 ? "" : "s"}
              {traceId ? "" : ` in the last ${filters.range}`}, newest first
              {tail ? " · live" : " · paused"}
            </span>
            {cursor ? (
              <button type="button" onClick={more} data-testid="logs-more">
                Load {PAGE} more
              </button>
            ) : null}
          </div>
        </section>
      ) : null}
    </div>
  );
}
