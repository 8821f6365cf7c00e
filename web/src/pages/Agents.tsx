import { useMemo, useState } from "react";
import { Link, useLocation } from "react-router-dom";
import type { AgentRow, AgentTable } from "../api";
import { Sparkline } from "../components/Chart";
import { EmptyState } from "../components/EmptyState";
import { fmtAgo, fmtCount, fmtMs, fmtPct, fmtUsd, trendView, visible } from "../format";
import { useApi, useFilters, useLive } from "../hooks";
import { carry } from "../query";

type Key = "agent" | "requests" | "error_rate" | "p95" | "tokens" | "cost" | "health" | "last_seen";

const COLUMNS: [Key, string, boolean][] = [
  ["agent", "Agent", false],
  ["requests", "Requests", true],
  ["error_rate", "Error rate", true],
  ["p95", "p95", true],
  ["tokens", "Tokens", true],
  ["cost", "Cost", true],
  ["health", "Health", false],
  ["last_seen", "Last seen", true],
];

function sortValue(a: AgentRow, key: Key): number | string {
  switch (key) {
    case "agent":
      return a.agent.toLowerCase();
    case "requests":
      return a.requests;
    case "error_rate":
      return a.error_rate;
    case "p95":
      return a.latency_ms.p95 ?? -1;
    case "tokens":
      return a.tokens.total ?? 0;
    case "cost":
      return a.cost_usd;
    case "health":
      return a.health.score ?? -1;
    case "last_seen":
      return a.last_seen ?? "";
  }
}

export function sortAgents(rows: AgentRow[], key: Key, desc: boolean): AgentRow[] {
  return [...rows].sort((x, y) => {
    const a = sortValue(x, key);
    const b = sortValue(y, key);
    const c = a < b ? -1 : a > b ? 1 : x.agent.localeCompare(y.agent);
    return desc ? -c : c;
  });
}

export function AgentsPage() {
  const [filters] = useFilters();
  const { tick } = useLive();
  const { search } = useLocation();
  const keep = carry(search);
  // Each row carries its own sparkline: a grouped time series would keep only the 20 busiest.
  const { data, error } = useApi<AgentTable>("/agents", { window: filters.range, sparkline: "true" }, tick);
  const [sort, setSort] = useState<{ key: Key; desc: boolean }>({ key: "requests", desc: true });
  const rows = useMemo(() => sortAgents(data?.items ?? [], sort.key, sort.desc), [data, sort]);

  return (
    <div className="page" data-testid="page-agents">
      <div className="page-head">
        <h1>Agents</h1>
      </div>
      {error ? (
        <p className="error-box" role="alert">
          Could not load agents: {error}
        </p>
      ) : null}
      {data && data.items.length === 0 ? <EmptyState title="No agents yet" /> : null}
      {rows.length > 0 ? (
        <section className="card">
          <table className="table" data-testid="agents-table">
            <thead>
              <tr>
                {COLUMNS.map(([key, label, numeric]) => (
                  <th
                    key={key}
                    scope="col"
                    className={numeric ? "num" : undefined}
                    aria-sort={sort.key === key ? (sort.desc ? "descending" : "ascending") : "none"}
                  >
                    <button
                      type="button"
                      className="sort"
                      onClick={() => setSort((s) => ({ key, desc: s.key === key ? !s.desc : numeric }))}
                    >
                      {label}
                      {sort.key === key ? (sort.desc ? " ↓" : " ↑") : ""}
                    </button>
                  </th>
                ))}
                <th scope="col">Requests over {filters.range}</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((a) => {
                const tr = trendView(a.trend.requests?.direction, a.trend.requests?.change_pct, "neutral");
                return (
                  <tr key={a.agent} data-agent={a.agent}>
                    <td>
                      <Link to={`/agents/${encodeURIComponent(a.agent)}${keep}`} className="tele">
                        {visible(a.agent, 80)}
                      </Link>
                    </td>
                    <td className="num">
                      {fmtCount(a.requests)} <span className={`trend tone-${tr.tone}`}>{tr.arrow}</span>
                    </td>
                    <td className={`num${a.error_rate >= 5 ? " text-error" : ""}`}>{fmtPct(a.error_rate)}</td>
                    <td className="num">{fmtMs(a.latency_ms.p95)}</td>
                    <td className="num">{fmtCount(a.tokens.total)}</td>
                    <td className="num">{fmtUsd(a.cost_usd)}</td>
                    <td>
                      <span className={`badge health-${a.health.status}`} title={a.health.reasons.join("\n")}>
                        {a.health.score === null ? "—" : Math.round(a.health.score)} {a.health.status}
                      </span>
                    </td>
                    <td className="num">{fmtAgo(a.last_seen)}</td>
                    <td className="spark">
                      <Sparkline values={a.sparkline ?? []} />
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </section>
      ) : null}
    </div>
  );
}
