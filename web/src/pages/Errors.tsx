import { useState } from "react";
import { Link, useLocation, useNavigate, useParams } from "react-router-dom";
import { sendJSON } from "../api";
import type { AgentRow, ErrorDetail, ErrorGroup, ErrorList } from "../api";
import { Chart, Sparkline } from "../components/Chart";
import { fmtAgo, fmtCount, fmtDate, trendView, visible } from "../format";
import { useApi, useFilters, useLive } from "../hooks";
import { agentsText, groupState, occurrenceSeries } from "../logs";
import { carry, withParams } from "../query";

function StateBadge({ group }: { group: Pick<ErrorGroup, "status" | "regression" | "regressed_at"> }) {
  const s = groupState(group);
  return (
    <span
      className={`badge group-${s.tone}`}
      data-testid="group-state"
      title={group.regression && group.regressed_at ? `happened again at ${fmtDate(group.regressed_at)} after it was resolved` : undefined}
    >
      {s.label}
    </span>
  );
}

function Trend({ group }: { group: Pick<ErrorGroup, "trend" | "previous_count"> }) {
  const t = trendView(group.trend.direction ?? undefined, group.trend.change_pct, "bad");
  if (!t.arrow) return null;
  return (
    <span className={`trend tone-${t.tone}`} title={`${fmtCount(group.previous_count)} in the previous window`}>
      {t.arrow} {t.label}
    </span>
  );
}

/** Resolve or re-open; reports the new state to the parent. */
function StatusButton({ group, onChange }: { group: Pick<ErrorGroup, "fingerprint" | "status">; onChange: () => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const resolve = group.status === "open";
  const click = () => {
    setBusy(true);
    setError(null);
    sendJSON("POST", `/errors/${group.fingerprint}/${resolve ? "resolve" : "reopen"}`).then(
      () => {
        setBusy(false);
        onChange();
      },
      (e: unknown) => {
        setBusy(false);
        setError(e instanceof Error ? e.message : String(e));
      },
    );
  };
  return (
    <>
      <button type="button" onClick={click} disabled={busy} data-testid={resolve ? "resolve" : "reopen"}>
        {resolve ? "Resolve" : "Reopen"}
      </button>
      {error ? (
        <span className="text-error small" role="alert">
          {" "}
          {error}
        </span>
      ) : null}
    </>
  );
}

export function ErrorsPage() {
  const location = useLocation();
  const navigate = useNavigate();
  const [filters] = useFilters();
  const { tick } = useLive();
  const q = new URLSearchParams(location.search);
  const status = q.get("status") ?? "open";
  const [changed, setChanged] = useState(0);
  const list = useApi<ErrorList>(
    "/errors",
    { window: filters.range, agent: filters.agent, status: status === "all" ? null : status },
    tick + changed,
  );
  const agents = useApi<{ items: AgentRow[] }>("/agents", { window: "7d" });
  const keep = carry(location.search);
  const set = (changes: Record<string, string | null>) =>
    navigate({ pathname: location.pathname, search: withParams(location.search, changes) }, { replace: true });
  const items = list.data?.items ?? [];

  return (
    <div className="page" data-testid="page-errors">
      <div className="page-head">
        <h1>Errors</h1>
        <div className="filters">
          <label>
            Status{" "}
            <select value={status} onChange={(e) => set({ status: e.target.value === "open" ? null : e.target.value })} data-testid="errors-status">
              <option value="open">Open</option>
              <option value="resolved">Resolved</option>
              <option value="all">All</option>
            </select>
          </label>
          <label>
            Agent{" "}
            <select value={filters.agent ?? ""} onChange={(e) => set({ agent: e.target.value || null })} data-testid="errors-agent">
              <option value="">All agents</option>
              {[...new Set([...(filters.agent ? [filters.agent] : []), ...(agents.data?.items ?? []).map((a) => a.agent)])].map((a) => (
                <option key={a} value={a}>
                  {visible(a, 80)}
                </option>
              ))}
            </select>
          </label>
        </div>
      </div>
      {list.error ? (
        <p className="error-box" role="alert">
          Could not load errors: {list.error}
        </p>
      ) : null}
      {list.data && items.length === 0 ? (
        <p className="muted card" data-testid="errors-empty">
          No {status === "all" ? "" : `${status} `}errors in the last {filters.range}. Exceptions recorded on spans (span events named
          “exception”) and ERROR logs are grouped here.
        </p>
      ) : null}
      {items.length > 0 ? (
        <section className="card">
          <table className="table" data-testid="errors-table">
            <thead>
              <tr>
                <th scope="col">Error</th>
                <th scope="col" className="num">
                  Events
                </th>
                <th scope="col">Trend</th>
                <th scope="col">Agents</th>
                <th scope="col" className="num">
                  Last seen
                </th>
                <th scope="col">Status</th>
                <th scope="col">
                  <span className="sr-only">Action</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((g) => (
                <tr key={g.fingerprint} data-fingerprint={g.fingerprint}>
                  <td className="cell-name">
                    <Link to={`/errors/${g.fingerprint}${keep}`} data-testid="error-link">
                      <span className="tele">{visible(g.title, 300)}</span>
                    </Link>
                    <div className="muted small">
                      {g.source === "log" ? "from logs" : "from spans"} · first seen {fmtAgo(g.first_seen)}
                    </div>
                  </td>
                  <td className="num" data-testid="error-count">
                    {fmtCount(g.count)}
                  </td>
                  <td className="nowrap">
                    <Sparkline values={g.sparkline ?? []} /> <Trend group={g} />
                  </td>
                  <td>
                    <span className="tele clamp" title={g.agents.join(", ")}>
                      {visible(agentsText(g.agents), 200)}
                    </span>
                  </td>
                  <td className="num" title={g.last_seen}>
                    {fmtAgo(g.last_seen)}
                  </td>
                  <td>
                    <StateBadge group={g} />
                  </td>
                  <td>
                    <StatusButton group={g} onChange={() => setChanged((n) => n + 1)} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <p className="muted small">
            {items.length} group{items.length === 1 ? "" : "s"} with events in the last {filters.range}; the trend compares with the
            {" "}
            {filters.range} before.
          </p>
        </section>
      ) : null}
    </div>
  );
}

export function ErrorGroupPage() {
  const { fingerprint = "" } = useParams();
  const [filters] = useFilters();
  const { tick } = useLive();
  const { search } = useLocation();
  const keep = carry(search);
  const [changed, setChanged] = useState(0);
  const detail = useApi<ErrorDetail>(`/errors/${encodeURIComponent(fingerprint)}`, { window: filters.range, agent: filters.agent }, tick + changed);
  const d = detail.data;
  if (detail.error && !d) {
    return (
      <div className="page" data-testid="page-error">
        <p className="error-box" role="alert">
          {detail.error}
        </p>
        <Link to={`/errors${keep}`}>Back to errors</Link>
      </div>
    );
  }
  if (!d) return <p className="muted">Loading…</p>;
  return (
    <div className="page" data-testid="page-error">
      <div className="page-head">
        <div>
          <Link to={`/errors${keep}`} className="muted">
            ← Errors
          </Link>
          <h1 className="tele trace-title" data-testid="error-title">
            {visible(d.title, 500)}
          </h1>
        </div>
        <div className="actions">
          <StateBadge group={d} />
          <StatusButton group={d} onChange={() => setChanged((n) => n + 1)} />
        </div>
      </div>
      <dl className="facts card">
        <div>
          <dt>Events ({filters.range})</dt>
          <dd data-testid="error-window-count">
            {fmtCount(d.count)} <Trend group={d} />
          </dd>
        </div>
        <div>
          <dt>All time</dt>
          <dd data-testid="error-total">{fmtCount(d.total_count)}</dd>
        </div>
        <div>
          <dt>First seen</dt>
          <dd title={d.first_seen}>{fmtDate(d.first_seen)}</dd>
        </div>
        <div>
          <dt>Last seen</dt>
          <dd title={d.last_seen}>{fmtAgo(d.last_seen)}</dd>
        </div>
        {d.resolved_at ? (
          <div>
            <dt>Resolved</dt>
            <dd>{fmtDate(d.resolved_at)}</dd>
          </div>
        ) : null}
        {d.regressed_at ? (
          <div>
            <dt>Happened again</dt>
            <dd className="text-error">{fmtDate(d.regressed_at)}</dd>
          </div>
        ) : null}
        <div>
          <dt>Type</dt>
          <dd className="tele">{visible(d.type ?? (d.source === "log" ? "error log" : "—"), 200)}</dd>
        </div>
        <div>
          <dt>Grouped as</dt>
          <dd className="tele mono">{visible(d.message || "(empty message)", 500)}</dd>
        </div>
        <div>
          <dt>Fingerprint</dt>
          <dd className="mono">{d.fingerprint}</dd>
        </div>
      </dl>
      {d.regression ? (
        <p className="error-box" data-testid="regression">
          Regression: this error was resolved and happened again at {fmtDate(d.regressed_at)}.
        </p>
      ) : null}
      <section className="card">
        <Chart title={`Events per ${Math.round(d.interval_seconds / 60)} min`} data={[occurrenceSeries(d)]} format={(v) => fmtCount(v)} testId="error-chart" />
      </section>
      <div className="grid-2">
        <section className="card">
          <h2>Recent traces</h2>
          {d.recent_traces.length === 0 ? <p className="muted">No occurrence carried a trace id.</p> : null}
          <table className="table" data-testid="error-traces">
            <tbody>
              {d.recent_traces.map((t) => (
                <tr key={t.trace_id} data-trace-id={t.trace_id}>
                  <td className="mono">
                    {t.exists ? (
                      <Link to={`/traces/${t.trace_id}${keep}`}>{t.trace_id}</Link>
                    ) : (
                      <span className="muted" title="The trace has not arrived (yet)">
                        {t.trace_id} (pending)
                      </span>
                    )}
                  </td>
                  <td>
                    <span className="tele clamp">{visible(t.agent, 80)}</span>
                  </td>
                  <td className="num" title={t.time}>
                    {fmtAgo(t.time)}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
        <section className="card">
          <h2>By agent</h2>
          <table className="table" data-testid="error-agents">
            <tbody>
              {Object.entries(d.by_agent).map(([agent, n]) => (
                <tr key={agent}>
                  <td>
                    <Link to={`/agents/${encodeURIComponent(agent)}${keep}`} className="tele">
                      {visible(agent, 80)}
                    </Link>
                  </td>
                  <td className="num">{fmtCount(n)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {Object.keys(d.by_agent).length === 0 ? <p className="muted">No events in this window.</p> : null}
        </section>
      </div>
      <section className="card" data-testid="error-stack">
        <h2>Latest stack trace</h2>
        {d.sample_message ? <p className="tele text-error">{visible(d.sample_message, 4000)}</p> : null}
        {d.stacktrace ? <pre className="tele long stack">{visible(d.stacktrace, 50_000)}</pre> : <p className="muted">No stack trace was sent.</p>}
      </section>
    </div>
  );
}
