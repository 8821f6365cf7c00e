import type { Health, Summary } from "../api";
import { fmtCompact, fmtCount, fmtMs, fmtPct, fmtRate, fmtUsd, healthLevel, level } from "../format";
import { StatCard } from "./StatCard";

// Default health thresholds of the server (PHAROS_HEALTH_*): warning / critical.
const ERROR_RATE = [1, 5] as const;
const LATENCY_MS = [2000, 10000] as const;

export function SummaryCards({ summary, health, firing }: { summary: Summary | null; health: Health | null; firing?: number }) {
  const s = summary;
  const cards = firing !== undefined ? 8 : 7;
  return (
    // The health card is two columns wide (its reason is a sentence): one column more than cards.
    <div className="cards stat-cards" data-testid="summary-cards" style={{ ["--stat-columns" as string]: cards + 1 }}>
      <StatCard
        testId="card-health"
        label="Health"
        wide
        value={health?.score === null || health?.score === undefined ? "—" : String(Math.round(health.score))}
        sub={health ? [health.status, health.reasons?.[0], health.reasons && health.reasons.length > 1 ? `+${health.reasons.length - 1} more` : undefined] : undefined}
        level={healthLevel(health?.score, health?.status)}
      />
      <StatCard testId="card-requests" label="Requests" value={fmtCompact(s?.requests)} title={fmtCount(s?.requests)} trend={s?.trend.requests} />
      <StatCard testId="card-throughput" label="Throughput" value={fmtRate(s?.throughput)} trend={s?.trend.throughput} />
      <StatCard
        testId="card-error-rate"
        label="Error rate"
        value={fmtPct(s?.error_rate)}
        sub={s ? `${fmtCount(s.errors)} errors` : undefined}
        trend={s?.trend.error_rate}
        upIs="bad"
        level={level(s?.error_rate, ...ERROR_RATE)}
      />
      <StatCard
        testId="card-p95"
        label="p95 latency"
        value={fmtMs(s?.latency_ms.p95)}
        sub={s ? [`p50 ${fmtMs(s.latency_ms.p50)}`, `p99 ${fmtMs(s.latency_ms.p99)}`] : undefined}
        trend={s?.trend.latency_p95}
        upIs="bad"
        level={level(s?.latency_ms.p95, ...LATENCY_MS)}
      />
      <StatCard
        testId="card-tokens"
        label="Tokens"
        value={fmtCompact(s?.tokens.total)}
        title={fmtCount(s?.tokens.total)}
        trend={s?.trend.tokens} sub={s ? `${fmtCount(s.llm_calls)} LLM calls` : undefined} />
      <StatCard testId="card-cost" label="Cost" value={fmtUsd(s?.cost_usd)} trend={s?.trend.cost_usd} upIs="bad" />
      {firing !== undefined ? (
        <StatCard testId="card-alerts" label="Alerts" value={String(firing)} sub="firing" level={firing > 0 ? "critical" : "ok"} />
      ) : null}
    </div>
  );
}
