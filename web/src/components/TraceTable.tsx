import { Link, useLocation } from "react-router-dom";
import type { TraceSummary } from "../api";
import { fmtAgo, fmtCount, fmtMs, fmtUsd, visible } from "../format";
import { carry } from "../query";

export function StatusBadge({ status }: { status: string }) {
  return <span className={`badge status-${status === "error" ? "error" : "ok"}`}>{status === "error" ? "error" : "ok"}</span>;
}

export function TraceTable({
  items,
  testId,
  compact = false,
  hideAgent = false,
}: {
  items: TraceSummary[];
  testId?: string;
  compact?: boolean;
  hideAgent?: boolean;
}) {
  const { search } = useLocation();
  const keep = carry(search);
  if (items.length === 0) return null;
  return (
    <table className="table" data-testid={testId}>
      <thead>
        <tr>
          <th scope="col">Trace</th>
          {hideAgent ? null : <th scope="col">Agent</th>}
          <th scope="col">Status</th>
          <th scope="col" className="num">Duration</th>
          {compact ? null : <th scope="col" className="num">Spans</th>}
          {compact ? null : <th scope="col" className="num">Tokens</th>}
          {compact ? null : <th scope="col" className="num">Cost</th>}
          <th scope="col" className="num">Started</th>
        </tr>
      </thead>
      <tbody>
        {items.map((t) => (
          <tr key={t.trace_id} data-trace-id={t.trace_id}>
            <td className="cell-name">
              <Link to={`/traces/${t.trace_id}${keep}`} className="trace-link">
                <span className="tele">{visible(t.name, 200)}</span>
              </Link>
              {t.error_message ? <div className="cell-error tele">{visible(t.error_message, 200)}</div> : null}
            </td>
            {hideAgent ? null : (
              <td>
                <span className="tele clamp">{visible(t.agent, 80)}</span>
              </td>
            )}
            <td>
              <StatusBadge status={t.status} />
            </td>
            <td className="num">{fmtMs(t.duration_ms)}</td>
            {compact ? null : <td className="num">{fmtCount(t.span_count)}</td>}
            {compact ? null : <td className="num">{fmtCount(t.tokens.total)}</td>}
            {compact ? null : <td className="num">{fmtUsd(t.cost_usd)}</td>}
            <td className="num" title={t.start_time}>
              {fmtAgo(t.start_time)}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
