import { useState } from "react";
import { Link, useLocation } from "react-router-dom";
import type { AgentRow, ErrorGroup, Health, Overview, Page, Summary, Timeseries, TraceSummary } from "../api";
import { Chart } from "../components/Chart";
import { EmptyState } from "../components/EmptyState";
import { SummaryCards } from "../components/SummaryCards";
import { TraceTable } from "../components/TraceTable";
import { fmtAgo, fmtCount, fmtMs, fmtPct, fmtUsd, visible } from "../format";
import { useApi, useFilters, useLive, useTimeseries } from "../hooks";
import { carry } from "../query";

export function Filters({ agents, models }: { agents: string[]; models: string[] }) {
  const [filters, set] = useFilters();
  return (
    <div className="filters">
      <label>
        Agent{" "}
        <select value={filters.agent ?? ""} onChange={(e) => set({ agent: e.target.value || null })} data-testid="filter-agent">
          <option value="">All agents</option>
          {[...new Set([...(filters.agent ? [filters.agent] : []), ...agents])].map((a) => (
            <option key={a} value={a}>
              {visible(a, 80)}
            </option>
          ))}
        </select>
      </label>
      <label>
        Model{" "}
        <select value={filters.model ?? ""} onChange={(e) => set({ model: e.target.value || null })} data-testid="filter-model">
          <option value="">All models</option>
          {[...new Set([...(filters.model ? [filters.model] : []), ...models])].map((m) => (
            <option key={m} value={m}>
              {visible(m, 80)}
            </option>
          ))}
        </select>
      </label>
    </div>
  );
}

export function OverviewCharts({ params, refresh, split }: { params: Record<string, string | null>; refresh: number; split: boolean }) {
  const group = split ? { group_by: "agent" } : {};
  const money = (v: number | null) => fmtUsd(v);
  const requests = useTimeseries(["requests"], { ...params, ...group }, refresh);
  const latency = useTimeseries(split ? ["latency_p95"] : ["latency_p50", "latency_p95", "latency_p99"], { ...params, ...group }, refresh);
  const errors = useTimeseries(["error_rate"], { ...params, ...group }, refresh);
  const tokens = useTimeseries(["tokens"], { ...params, ...group }, refresh);
  const cost = useTimeseries(["cost"], { ...params, ...group }, refresh);
  return (
    <div className="charts">
      <Chart title="Requests" data={requests} format={(v) => fmtCount(v)} testId="chart-requests" />
      <Chart title={split ? "Latency p95" : "Latency p50 / p95 / p99"} data={latency} format={(v) => fmtMs(v)} testId="chart-latency" />
      <Chart title="Error rate" data={errors} format={(v) => fmtPct(v)} testId="chart-errors" />
      <Chart title="Tokens" data={tokens} format={(v) => fmtCount(v)} testId="chart-tokens" />
      <Chart title="Cost" data={cost} format={money} testId="chart-cost" />
    </div>
  );
}

function TopAgents({ rows }: { rows: AgentRow[] }) {
  const { search } = useLocation();
  const keep = carry(search);
  if (rows.length === 0) return <p className="muted">No agents in this window.</p>;
  return (
    <table className="table" data-testid="top-agents">
      <thead>
        <tr>
          <th scope="col">Agent</th>
          <th scope="col" className="num">Requests</th>
          <th scope="col" className="num">Error rate</th>
          <th scope="col" className="num">p95</th>
          <th scope="col">Health</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((a) => (
          <tr key={a.agent}>
            <td>
              <Link to={`/agents/${encodeURIComponent(a.agent)}${keep}`} className="tele">
                {visible(a.agent, 80)}
              </Link>
            </td>
            <td className="num">{fmtCount(a.requests)}</td>
            <td className="num">{fmtPct(a.error_rate)}</td>
            <td className="num">{fmtMs(a.latency_ms.p95)}</td>
            <td>
              <span className={`badge health-${a.health.status}`}>{a.health.status}</span>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function TopErrors({ items }: { items: ErrorGroup[] | null }) {
  const { search } = useLocation();
  const keep = carry(search);
  if (items === null) return null;
  if (items.length === 0) return <p className="muted">No exceptions or error logs in this window.</p>;
  return (
    <table className="table" data-testid="top-errors">
      <thead>
        <tr>
          <th scope="col">Error</th>
          <th scope="col" className="num">Events</th>
          <th scope="col">Agents</th>
          <th scope="col" className="num">Last seen</th>
        </tr>
      </thead>
      <tbody>
        {items.map((g) => (
          <tr key={g.fingerprint} data-fingerprint={g.fingerprint}>
            <td className="cell-name">
              <Link to={`/errors/${g.fingerprint}${keep}`}>
                <span className="tele">{visible(g.title, 200)}</span>
              </Link>
              {g.regression ? <span className="badge group-error">regression</span> : null}
            </td>
            <td className="num">{fmtCount(g.count)}</td>
            <td>
              <span className="tele clamp">{visible(g.agents.join(", "), 200)}</span>
            </td>
            <td className="num" title={g.last_seen}>
              {fmtAgo(g.last_seen)}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function OverviewPage() {
  const location = useLocation();
  const [filters] = useFilters();
  const { tick, lastSummary } = useLive();
  const [split, setSplit] = useState(false);
  const filtered = filters.agent !== null || filters.model !== null;
  const overview = useApi<Overview>("/overview", { window: filters.range }, tick);
  const scoped = useApi<Summary>(filtered ? "/metrics/summary" : null, { window: filters.range, agent: filters.agent, model: filters.model }, tick);
  const agents = useApi<{ items: AgentRow[] }>("/agents", { window: filters.range }, tick);
  const models = useApi<Timeseries>("/metrics/timeseries", { metric: "llm_calls", group_by: "model", window: filters.range });
  const anyTrace = useApi<Page<TraceSummary>>("/traces", { limit: 1 }, tick);

  let summary: Summary | null = filtered ? scoped.data : (overview.data?.summary ?? null);
  let health: Health | null = overview.data?.health ?? null;
  if (!filtered && lastSummary && lastSummary.window === filters.range && overview.data) {
    // Fresh numbers from the live feed (the same computation as /api/v1/overview).
    summary = lastSummary.summary as Summary;
    health = lastSummary.health as Health;
  }
  if (filters.agent && !filters.model) {
    health = agents.data?.items.find((a) => a.agent === filters.agent)?.health ?? null;
  }
  const agentNames = (agents.data?.items ?? []).map((a) => a.agent);
  const modelNames = (models.data?.series ?? []).map((s) => s.name).filter((n) => n && n !== "other" && n !== "all");
  const chartParams = { window: filters.range, agent: filters.agent, model: filters.model };
  const noTraces = anyTrace.data !== null && anyTrace.data.items.length === 0;
  const error = overview.error ?? scoped.error;

  return (
    <div className="page" data-testid="page-overview">
      <div className="page-head">
        <h1>Overview</h1>
        <Filters agents={agentNames} models={modelNames} />
      </div>
      {error ? (
        <p className="error-box" role="alert">
          Could not load the overview: {error}
        </p>
      ) : null}
      {noTraces ? <EmptyState /> : null}
      <SummaryCards summary={summary} health={health} firing={overview.data?.alerts.firing} />
      <div className="section-head">
        <h2>Over the last {filters.range}</h2>
        <label className="toggle">
          <input type="checkbox" checked={split} onChange={(e) => setSplit(e.target.checked)} data-testid="split-by-agent" /> Split by agent
        </label>
      </div>
      <OverviewCharts params={chartParams} refresh={tick} split={split} />
      <div className="grid-2">
        <section className="card">
          <h2>Slowest traces</h2>
          {overview.data && overview.data.slow_traces.length === 0 ? <p className="muted">No traces in this window.</p> : null}
          <TraceTable items={overview.data?.slow_traces ?? []} testId="slow-traces" compact />
        </section>
        <section className="card">
          <h2>Recent failed traces</h2>
          {overview.data && overview.data.recent_errors.length === 0 ? <p className="muted">No failed traces.</p> : null}
          <TraceTable items={overview.data?.recent_errors ?? []} testId="recent-errors" compact />
        </section>
      </div>
      <section className="card">
        <h2>
          Top errors{" "}
          <Link to={`/errors${carry(location.search)}`} className="muted small">
            all errors
          </Link>
        </h2>
        <TopErrors items={overview.data?.top_errors ?? null} />
      </section>
      <section className="card">
        <h2>Busiest agents</h2>
        <TopAgents rows={overview.data?.top_agents ?? []} />
      </section>
    </div>
  );
}
