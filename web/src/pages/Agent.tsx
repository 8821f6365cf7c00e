import { useState } from "react";
import { Link, useLocation, useParams } from "react-router-dom";
import type { AgentRow, Page, Summary, Timeseries, TraceSummary } from "../api";
import { SloPanel } from "../components/SloPanel";
import { SummaryCards } from "../components/SummaryCards";
import { TraceTable } from "../components/TraceTable";
import { fmtCount, visible } from "../format";
import { useApi, useFilters, useLive } from "../hooks";
import { carry } from "../query";
import { OverviewCharts } from "./Overview";

export function AgentPage() {
  const { agent = "" } = useParams();
  const [filters] = useFilters();
  const { tick } = useLive();
  const { search } = useLocation();
  const [split] = useState(false);
  const summary = useApi<Summary>("/metrics/summary", { window: filters.range, agent }, tick);
  const agents = useApi<{ items: AgentRow[] }>("/agents", { window: filters.range }, tick);
  const models = useApi<Timeseries>("/metrics/timeseries", { metric: "llm_calls", group_by: "model", agent, window: filters.range }, tick);
  const traces = useApi<Page<TraceSummary>>("/traces", { agent, since: filters.range, limit: 10 }, tick);
  const errors = useApi<Page<TraceSummary>>("/traces", { agent, status: "error", since: filters.range, limit: 10 }, tick);
  const row = agents.data?.items.find((a) => a.agent === agent) ?? null;
  const usage = (models.data?.series ?? [])
    .map((s) => ({ name: s.name, calls: s.values.reduce<number>((n, v) => n + (v ?? 0), 0) }))
    .filter((m) => m.calls > 0);
  const keep = carry(search);

  return (
    <div className="page" data-testid="page-agent">
      <div className="page-head">
        <div>
          <Link to={`/agents${keep}`} className="muted">
            ← Agents
          </Link>
          <h1 className="tele">{visible(agent, 120)}</h1>
        </div>
      </div>
      {summary.error ? (
        <p className="error-box" role="alert">
          {summary.error}
        </p>
      ) : null}
      <SummaryCards summary={summary.data} health={row?.health ?? null} />
      <SloPanel agent={agent} refresh={tick} />
      <OverviewCharts params={{ window: filters.range, agent, model: null }} refresh={tick} split={split} />
      <div className="grid-2">
        <section className="card">
          <h2>Models used</h2>
          {usage.length === 0 ? <p className="muted">No model calls in this window.</p> : null}
          <ul className="plain">
            {usage.map((m) => (
              <li key={m.name}>
                <span className="tele">{visible(m.name, 80)}</span> <span className="muted">{fmtCount(m.calls)} calls</span>
              </li>
            ))}
          </ul>
        </section>
        <section className="card">
          <h2>Recent errors</h2>
          {errors.data && errors.data.items.length === 0 ? <p className="muted">No failed traces in this window.</p> : null}
          <TraceTable items={errors.data?.items ?? []} compact hideAgent />
        </section>
      </div>
      <section className="card">
        <h2>
          Recent traces{" "}
          <Link to={`/traces?${new URLSearchParams({ ...Object.fromEntries(new URLSearchParams(keep)), agent }).toString()}`} className="muted small">
            all
          </Link>
        </h2>
        <TraceTable items={traces.data?.items ?? []} testId="agent-traces" hideAgent />
      </section>
    </div>
  );
}
