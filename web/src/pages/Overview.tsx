import { useState } from "react";
import { Link, useLocation } from "react-router-dom";
import type { AgentRow, AgentTable, ErrorGroup, FiringAlert, Health, Overview, Page, Summary, Timeseries, TraceSummary } from "../api";
import { Chart } from "../components/Chart";
import { EmptyState } from "../components/EmptyState";
import { SummaryCards } from "../components/SummaryCards";
import { TraceTable } from "../components/TraceTable";
import { fmtAgo, fmtCount, fmtDate, fmtMs, fmtPct, fmtUsd, visible } from "../format";
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
  const errors = useTimeseries(["errors"], { ...params, ...group }, refresh);
  const errorRate = useTimeseries(["error_rate"], { ...params, ...group }, refresh);
  const tokens = useTimeseries(["tokens"], { ...params, ...group }, refresh);
  const cost = useTimeseries(["cost"], { ...params, ...group }, refresh);
  return (
    <div className="charts" data-testid="charts">
      <Chart title="Requests" data={requests} format={(v) => fmtCount(v)} testId="chart-requests" />
      <Chart title={split ? "Latency p95" : "Latency p50 / p95 / p99"} data={latency} format={(v) => fmtMs(v)} testId="chart-latency" />
      <Chart title="Errors" data={errors} format={(v) => fmtCount(v)} testId="chart-error-count" />
      <Chart title="Error rate" data={errorRate} format={(v) => fmtPct(v)} testId="chart-errors" />
      <Chart title="Tokens" data={tokens} format={(v) => fmtCount(v)} testId="chart-tokens" />
      <Chart title="Cost" data={cost} format={money} testId="chart-cost" />
    </div>
  );
}

export function FiringAlerts({ items, total }: { items: FiringAlert[]; total: number }) {
  const { search } = useLocation();
  const keep = carry(search);
  if (items.length === 0) return null;
  return (
    <section className="card firing" data-testid="firing-alerts">
      <h2>
        Firing alerts{" "}
        <Link to="/alerts" className="muted small">
          all alerts
        </Link>
      </h2>
      <table className="table">
        <thead>
          <tr>
            <th scope="col">Severity</th>
            <th scope="col">Alert</th>
            <th scope="col">Agent</th>
            <th scope="col" className="num">
              Value
            </th>
            <th scope="col" className="num">
              Since
            </th>
          </tr>
        </thead>
        <tbody>
          {items.map((a) => (
            <tr key={a.id} data-alert-id={a.id} className={`sev-row sev-row-${a.severity}`}>
              <td>
                <span className={`badge sev-${a.severity}`}>{visible(a.severity, 20)}</span>
              </td>
              <td className="cell-name">
                <Link to={`/alerts/${a.id}`} className="tele" data-testid="firing-alert-link">
                  {visible(a.rule, 200)}
                </Link>
                {a.acknowledged ? <span className="muted small"> · acknowledged</span> : null}
                {a.silenced ? <span className="muted small"> · silenced</span> : null}
              </td>
              <td>
                {a.agent ? (
                  <Link to={`/agents/${encodeURIComponent(a.agent)}${keep}`} className="tele clamp">
                    {visible(a.agent, 80)}
                  </Link>
                ) : (
                  <span className="muted">—</span>
                )}
              </td>
              <td className="num">{a.value === null ? "—" : fmtCount(Math.round(a.value * 1000) / 1000)}</td>
              <td className="num" title={fmtDate(a.fired_at)}>
                {fmtAgo(a.fired_at)}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {total > items.length ? (
        <p className="muted small">
          {total - items.length} more firing: <Link to="/alerts">see all alerts</Link>.
        </p>
      ) : null}
    </section>
  );
}

function TopAgents({ rows, calls }: { rows: AgentRow[]; calls: boolean }) {
  const { search } = useLocation();
  const keep = carry(search);
  if (rows.length === 0) return <p className="muted">No agents in this window.</p>;
  return (
    <table className="table" data-testid="top-agents">
      <thead>
        <tr>
          <th scope="col">Agent</th>
          <th scope="col" className="num">{calls ? "Model calls" : "Requests"}</th>
          <th scope="col" className="num">Error rate</th>
          <th scope="col" className="num">p95</th>
          <th scope="col">Health</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((a) => (
          <tr key={a.agent} data-agent={a.agent}>
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
  // One call, narrowed by the filters in every part (summary, health, lists, alerts).
  const overview = useApi<Overview>("/overview", { window: filters.range, agent: filters.agent, model: filters.model }, tick);
  const agents = useApi<AgentTable>("/agents", { window: filters.range }, tick);
  const models = useApi<Timeseries>("/metrics/timeseries", { metric: "llm_calls", group_by: "model", window: filters.range });
  const anyTrace = useApi<Page<TraceSummary>>("/traces", { limit: 1 }, tick);

  let summary: Summary | null = overview.data?.summary ?? null;
  let health: Health | null = overview.data?.health ?? null;
  if (!filtered && lastSummary && lastSummary.window === filters.range && overview.data) {
    // Fresh numbers from the live feed (the same computation as /api/v1/overview).
    summary = lastSummary.summary as Summary;
    health = lastSummary.health as Health;
  }
  const agentNames = (agents.data?.items ?? []).map((a) => a.agent);
  const modelNames = (models.data?.series ?? []).map((s) => s.name).filter((n) => n && n !== "other" && n !== "all");
  const chartParams = { window: filters.range, agent: filters.agent, model: filters.model };
  const noTraces = anyTrace.data !== null && anyTrace.data.items.length === 0;
  const error = overview.error;
  const data = overview.data;
  const errorsByModel = filters.model !== null && data?.top_errors_scope?.model == null;

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
      <SummaryCards summary={summary} health={health} firing={data?.alerts.firing} />
      <FiringAlerts items={data?.alerts.items ?? []} total={data?.alerts.firing ?? 0} />
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
          {data && data.slow_traces.length === 0 ? <p className="muted">No traces in this window.</p> : null}
          <TraceTable items={data?.slow_traces ?? []} testId="slow-traces" compact />
        </section>
        <section className="card">
          <h2>Recent failed traces</h2>
          {data && data.recent_errors.length === 0 ? <p className="muted">No failed traces in this window.</p> : null}
          <TraceTable items={data?.recent_errors ?? []} testId="recent-errors" compact />
        </section>
      </div>
      <section className="card">
        <h2>
          Top errors{" "}
          <Link to={`/errors${carry(location.search)}`} className="muted small">
            all errors
          </Link>
        </h2>
        {errorsByModel ? (
          <p className="muted small" data-testid="top-errors-note">
            Error groups are counted per agent, not per model: this list is not narrowed to the model.
          </p>
        ) : null}
        <TopErrors items={data?.top_errors ?? null} />
      </section>
      <section className="card">
        <h2>Busiest agents</h2>
        <TopAgents rows={data?.top_agents ?? []} calls={filters.model !== null} />
      </section>
    </div>
  );
}
