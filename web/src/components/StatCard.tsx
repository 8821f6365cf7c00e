import type { Trend } from "../api";
import { trendView } from "../format";
import type { Level, Tone } from "../format";

export function StatCard({
  label,
  value,
  sub,
  trend,
  upIs = "neutral",
  level = "ok",
  testId,
}: {
  label: string;
  value: string;
  sub?: string;
  trend?: Trend;
  upIs?: Tone;
  level?: Level;
  testId?: string;
}) {
  const t = trendView(trend?.direction, trend?.change_pct, upIs);
  return (
    <section className={`card stat level-${level}`} data-testid={testId} aria-label={label}>
      <div className="stat-label">{label}</div>
      <div className="stat-value" data-testid={testId ? `${testId}-value` : undefined}>
        {value}
      </div>
      <div className="stat-foot">
        {t.arrow ? (
          <span className={`trend tone-${t.tone}`} title="vs the previous window">
            {t.arrow} {t.label}
          </span>
        ) : null}
        {sub ? (
          <span className="stat-sub" title={sub}>
            {sub}
          </span>
        ) : null}
      </div>
    </section>
  );
}
