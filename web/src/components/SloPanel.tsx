import type { Slo } from "../api";
import { visible } from "../format";
import { useApi } from "../hooks";

const STATE_TEXT: Record<Slo["status"]["state"], string> = {
  ok: "on track",
  burning: "burning fast",
  breached: "budget spent",
  no_data: "no data",
};

function pct(value: number | null, digits = 2): string {
  return value === null ? "—" : `${value.toFixed(digits)}%`;
}

function burn(value: number | null | undefined): string {
  return value === null || value === undefined ? "—" : `${value.toFixed(2)}×`;
}

/** The error budget left, as a bar (empty and red once spent). */
function BudgetBar({ remaining }: { remaining: number | null }) {
  const width = remaining === null ? 0 : Math.max(0, Math.min(100, remaining));
  const tone = remaining === null ? "none" : remaining <= 0 ? "spent" : remaining < 25 ? "low" : "ok";
  return (
    <div className={`budget-bar budget-${tone}`} role="img" aria-label={`Error budget left: ${pct(remaining, 1)}`}>
      <div className="budget-fill" style={{ width: `${width}%` }} />
    </div>
  );
}

/** SLOs of one agent with attainment, error budget and burn rates (GET /api/v1/slos). */
export function SloPanel({ agent, refresh }: { agent: string; refresh: number }) {
  const { data, error } = useApi<{ items: Slo[] }>("/slos", { agent }, refresh);
  if (error) return null;
  const items = data?.items ?? [];
  if (items.length === 0) return null;
  return (
    <section className="card slo-panel" data-testid="slo-panel">
      <h2>Service level objectives</h2>
      <div className="slo-list">
        {items.map((s) => {
          const period = `${s.period_days}d`;
          return (
            <article key={s.id} className={`slo slo-${s.status.state}`} data-testid="slo" data-slo={s.name}>
              <header>
                <strong className="tele">{visible(s.name, 80)}</strong>{" "}
                <span className={`slo-state state-${s.status.state}`} data-testid="slo-state">
                  {STATE_TEXT[s.status.state]}
                </span>
                <div className="muted small">
                  {visible(s.target, 120)} over {period}
                </div>
              </header>
              <dl className="facts">
                <div>
                  <dt>Attainment</dt>
                  <dd data-testid="slo-attainment">{pct(s.status.attainment, 3)}</dd>
                </div>
                <div>
                  <dt>Budget left</dt>
                  <dd data-testid="slo-budget">{pct(s.status.error_budget_remaining, 1)}</dd>
                </div>
                {["1h", "6h", "24h", period].map((w) => (
                  <div key={w}>
                    <dt>Burn {w}</dt>
                    <dd data-testid={`slo-burn-${w}`}>{burn(s.status.burn_rates[w])}</dd>
                  </div>
                ))}
              </dl>
              <BudgetBar remaining={s.status.error_budget_remaining} />
            </article>
          );
        })}
      </div>
    </section>
  );
}
