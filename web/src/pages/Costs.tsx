import { useState } from "react";
import type { Params } from "../api";
import { Chart } from "../components/Chart";
import { fmtChange, fmtCount, fmtDate, fmtPct, fmtUsd, visible } from "../format";
import { useApi, useFilters, useLive, useTimeseries } from "../hooks";
import { rangeSeconds } from "../query";

interface CostGroup {
  agent?: string;
  model?: string;
  day?: string;
  cost_usd: number;
  requests?: number;
  calls: number;
  tokens: { total: number | null };
  per_request_usd?: number | null;
  per_call_usd?: number | null;
  share_percent: number;
  trend_percent?: number | null;
}
interface Costs {
  total: {
    cost_usd: number;
    requests: number;
    calls: number;
    per_request_usd: number | null;
    daily_average_usd: number;
    monthly_run_rate_usd: number;
  };
  trend: { cost_percent: number | null };
  groups: CostGroup[];
}
interface Budget {
  id: number;
  name: string;
  agent: string | null;
  period: string;
  limit_usd: number;
  spend_usd: number;
  spent_percent: number;
  forecast: { projected_usd: number | null; projected_percent: number | null; exhausts_at: string | null };
  status: string;
}
interface Suggestion {
  type: string;
  title: string;
  estimated_monthly_saving_usd: number;
}

const GROUPS = ["agent", "model", "day"] as const;
type Group = (typeof GROUPS)[number];

/** Day buckets for the "by day" chart from a week up (fewer would be a chart of one or two points). */
const DAY_BUCKETS_FROM_S = 7 * 86400;

/** The cost chart's /metrics/timeseries parameters for the table's grouping: a series per agent
 * or per model, or (by day) one total, in day buckets over a week or more. */
export function costChartParams(group: Group, range: string, agent: string | null): Params {
  const params: Params = { window: range, agent };
  if (group !== "day") return { ...params, group_by: group };
  const seconds = rangeSeconds(range);
  return seconds !== null && seconds >= DAY_BUCKETS_FROM_S ? { ...params, interval: "1d" } : params;
}

/** The width (in percent) of a row's share bar: the share, kept within the track. */
export function shareWidth(percent: number | null | undefined): number {
  if (percent == null || !Number.isFinite(percent)) return 0;
  return Math.min(100, Math.max(0, percent));
}

function ShareBar({ percent }: { percent: number }) {
  const width = shareWidth(percent);
  return (
    <span className="sharebar">
      <span className="sharebar-track" aria-hidden="true">
        {width > 0 ? <span className="sharebar-fill" style={{ width: `${width}%` }} /> : null}
      </span>
      <span className="sharebar-text">{fmtPct(percent)}</span>
    </span>
  );
}

/** "+12% vs before", "new vs before" (the previous window cost about nothing), or nothing. */
export function costTrend(percent: number | null | undefined, cost: number | null | undefined): string {
  if (percent == null) return cost ? "new vs before" : "";
  return `${fmtChange(percent)} vs before`;
}

export function CostsPage() {
  const [filters] = useFilters();
  const { tick } = useLive();
  const [group, setGroup] = useState<Group>("agent");
  const costs = useApi<Costs>("/costs", { window: filters.range, group_by: group, agent: filters.agent }, tick);
  const chart = useTimeseries(["cost"], costChartParams(group, filters.range, filters.agent), tick);
  const budgets = useApi<{ budgets: Budget[] }>("/budgets", {}, tick);
  const suggestions = useApi<{ suggestions: Suggestion[] }>("/costs/suggestions", {});
  const t = costs.data?.total;
  return (
    <div className="page" data-testid="page-costs">
      <div className="page-head">
        <h1>Costs</h1>
        <div className="range" role="group" aria-label="Group by">
          {GROUPS.map((g) => (
            <button key={g} type="button" className={g === group ? "active" : undefined} aria-pressed={g === group} onClick={() => setGroup(g)}>
              by {g}
            </button>
          ))}
        </div>
      </div>
      {costs.error ? (
        <p className="error-box" role="alert">
          Could not load costs: {costs.error}
        </p>
      ) : null}
      <div className="cards cards-wide">
        <section className="card stat">
          <div className="stat-label">Cost ({filters.range})</div>
          <div className="stat-value" data-testid="cost-total">
            {fmtUsd(t?.cost_usd)}
          </div>
          <div className="stat-foot" data-testid="cost-trend">{costTrend(costs.data?.trend.cost_percent, t?.cost_usd)}</div>
        </section>
        <section className="card stat">
          <div className="stat-label">Per request</div>
          <div className="stat-value">{fmtUsd(t?.per_request_usd)}</div>
        </section>
        <section className="card stat">
          <div className="stat-label">Daily average</div>
          <div className="stat-value">{fmtUsd(t?.daily_average_usd)}</div>
        </section>
        <section className="card stat">
          <div className="stat-label">Monthly run rate</div>
          <div className="stat-value">{fmtUsd(t?.monthly_run_rate_usd)}</div>
        </section>
      </div>
      <Chart
        title={group === "day" ? "Cost over time" : `Cost over time by ${group}`}
        data={chart}
        format={(v) => fmtUsd(v)}
        height={220}
        testId="chart-costs"
      />
      <section className="card">
        <h2>By {group}</h2>
        <table className="table" data-testid="costs-table">
          <thead>
            <tr>
              <th scope="col">{group}</th>
              <th scope="col" className="num">
                Cost
              </th>
              <th scope="col" className="num">
                Share
              </th>
              <th scope="col" className="num">
                {group === "model" ? "Calls" : "Requests"}
              </th>
              <th scope="col" className="num">
                Tokens
              </th>
              <th scope="col" className="num">
                {group === "model" ? "Per call" : "Per request"}
              </th>
              <th scope="col" className="num">
                Trend
              </th>
            </tr>
          </thead>
          <tbody>
            {(costs.data?.groups ?? []).map((g) => {
              const name = g.agent ?? g.model ?? g.day ?? "";
              return (
                <tr key={name}>
                  <td className="tele">{visible(name, 120)}</td>
                  <td className="num">{fmtUsd(g.cost_usd)}</td>
                  <td className="num">
                    <ShareBar percent={g.share_percent} />
                  </td>
                  <td className="num">{fmtCount(group === "model" ? g.calls : (g.requests ?? g.calls))}</td>
                  <td className="num">{fmtCount(g.tokens.total)}</td>
                  <td className="num">{fmtUsd(group === "model" ? g.per_call_usd : g.per_request_usd)}</td>
                  <td className="num">{g.trend_percent == null ? (g.cost_usd > 0 ? "new" : "—") : fmtChange(g.trend_percent)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </section>
      <div className="grid-2">
        <section className="card">
          <h2>Budgets</h2>
          {budgets.data && budgets.data.budgets.length === 0 ? (
            <p className="muted">
              No budgets. Create one with <code>POST /api/v1/budgets</code> (docs/costs.md).
            </p>
          ) : null}
          <table className="table" data-testid="budgets-table">
            <tbody>
              {(budgets.data?.budgets ?? []).map((b) => (
                <tr key={b.id}>
                  <td>
                    <div className="tele">
                      <strong>{visible(b.name, 120)}</strong> <span className="muted">{b.period}</span>
                    </div>
                    <div className="small muted">
                      forecast {fmtUsd(b.forecast.projected_usd)} ({fmtPct(b.forecast.projected_percent)})
                      {b.forecast.exhausts_at ? ` · runs out ${fmtDate(b.forecast.exhausts_at)}` : ""}
                    </div>
                  </td>
                  <td className="num">
                    {fmtUsd(b.spend_usd)} / {fmtUsd(b.limit_usd)}
                    <meter className="budget-meter" min={0} max={100} low={75} high={90} optimum={0} value={Math.min(100, b.spent_percent)} />
                  </td>
                  <td>
                    <span className={`badge budget-${b.status}`}>{visible(b.status, 20)}</span>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
        <section className="card">
          <h2>Savings suggestions</h2>
          {suggestions.data && suggestions.data.suggestions.length === 0 ? <p className="muted">Nothing to suggest yet.</p> : null}
          <ul className="plain">
            {(suggestions.data?.suggestions ?? []).map((s, i) => (
              <li key={i}>
                <span className="tele">{visible(s.title, 300)}</span> <span className="share">~{fmtUsd(s.estimated_monthly_saving_usd)}/month</span>
              </li>
            ))}
          </ul>
        </section>
      </div>
    </div>
  );
}
