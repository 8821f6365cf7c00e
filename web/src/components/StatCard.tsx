import type { Trend } from "../api";
import { splitUnit, trendView } from "../format";
import type { Level, Tone } from "../format";

export function StatCard({
  label,
  value,
  sub,
  trend,
  upIs = "neutral",
  level = "ok",
  testId,
  wide = false,
  title,
}: {
  label: string;
  value: string;
  /** Lines under the figure (each may wrap; nothing is cut off). */
  sub?: string | (string | undefined)[];
  trend?: Trend;
  upIs?: Tone;
  level?: Level;
  testId?: string;
  wide?: boolean;
  /** The exact figure, when `value` is rounded for room. */
  title?: string;
}) {
  const t = trendView(trend?.direction, trend?.change_pct, upIs);
  const [figure, unit] = splitUnit(value);
  const lines = (Array.isArray(sub) ? sub : [sub]).filter((l): l is string => !!l);
  return (
    <section className={`card stat level-${level}${wide ? " stat-wide" : ""}`} data-testid={testId} aria-label={label}>
      <div className="stat-label">{label}</div>
      <div className="stat-value" data-testid={testId ? `${testId}-value` : undefined} title={title}>
        {figure}
        {unit ? <span className="stat-unit">{unit}</span> : null}
      </div>
      <div className="stat-foot">
        {t.arrow ? (
          <span
            className={`trend tone-${t.tone}`}
            title={trend?.change_pct != null ? `${trend.change_pct > 0 ? "+" : ""}${trend.change_pct}% vs the previous window` : "vs the previous window"}
            data-testid={testId ? `${testId}-trend` : undefined}
            data-direction={trend?.direction ?? undefined}
          >
            {t.arrow} {t.label}
          </span>
        ) : null}
        {lines.map((line, i) => (
          <span key={i} className="stat-sub">
            {line}
          </span>
        ))}
      </div>
    </section>
  );
}
