import { Fragment, useState } from "react";
import { Link, useLocation } from "react-router-dom";
import type { LogItem } from "../api";
import { fmtAgo, fmtTime, visible } from "../format";
import { bodyText, traceLink } from "../logs";
import { carry } from "../query";

export function LevelBadge({ level }: { level: string }) {
  return <span className={`badge level level-${level}`}>{visible(level, 10)}</span>;
}

function Fields({ title, entries }: { title: string; entries: [string, unknown][] }) {
  if (entries.length === 0) return null;
  return (
    <>
      <h4>{title}</h4>
      <table className="kv">
        <tbody>
          {entries.map(([k, v]) => (
            <tr key={k}>
              <th scope="row" className="tele">
                {visible(k, 200)}
              </th>
              <td>
                {typeof v === "string" && (v.includes("\n") || v.length > 300) ? (
                  <pre className="tele long">{visible(v, 50_000)}</pre>
                ) : (
                  <span className="tele">{visible(typeof v === "string" ? v : JSON.stringify(v), 2000)}</span>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

/** Logs as a table; a row opens to show the whole body, attributes, resource and ids. */
export function LogTable({
  items,
  fresh,
  testId,
  showTrace = true,
  showAgent = true,
  spanNames,
  onSpan,
}: {
  items: LogItem[];
  fresh?: Set<string>;
  testId?: string;
  showTrace?: boolean;
  showAgent?: boolean;
  /** On a trace's page: the names of its spans, and what selecting a log's span does. */
  spanNames?: Map<string, string>;
  onSpan?: (spanId: string) => void;
}) {
  const { search } = useLocation();
  const keep = carry(search);
  const [open, setOpen] = useState<Set<string>>(new Set());
  if (items.length === 0) return null;
  const toggle = (id: string) =>
    setOpen((old) => {
      const next = new Set(old);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });
  const columns = 3 + (showAgent ? 1 : 0) + (showTrace ? 1 : 0) + (onSpan ? 1 : 0);
  return (
    <table className="table logs-table" data-testid={testId}>
      <thead>
        <tr>
          <th scope="col">Time</th>
          <th scope="col">Level</th>
          {showAgent ? <th scope="col">Agent</th> : null}
          <th scope="col">Message</th>
          {showTrace ? <th scope="col">Trace</th> : null}
          {onSpan ? <th scope="col">Span</th> : null}
        </tr>
      </thead>
      <tbody>
        {items.map((l) => {
          const text = bodyText(l);
          const link = traceLink(l);
          const isOpen = open.has(l.log_id);
          return (
            <Fragment key={l.log_id}>
              <tr data-log-id={l.log_id} data-level={l.level} className={fresh?.has(l.log_id) ? "fresh" : undefined}>
                <td className="mono nowrap" title={fmtAgo(l.time)}>
                  {fmtTime(l.time)}
                </td>
                <td>
                  <LevelBadge level={l.level} />
                </td>
                {showAgent ? (
                  <td>
                    <span className="tele agent-cell" title={visible(l.agent, 200)}>
                      {visible(l.agent, 80)}
                    </span>
                  </td>
                ) : null}
                <td className="log-body">
                  <button
                    type="button"
                    className="linklike log-toggle"
                    aria-expanded={isOpen}
                    onClick={() => toggle(l.log_id)}
                    data-testid="log-toggle"
                  >
                    <span aria-hidden="true">{isOpen ? "▾" : "▸"}</span>
                  </button>{" "}
                  <span className={`tele body-text${l.body_type === "json" ? " mono" : ""}`} data-testid="log-body">
                    {visible(text, 600)}
                  </span>
                </td>
                {showTrace ? (
                  <td className="nowrap">
                    {link ? (
                      <Link to={`${link}${keep}`} className="mono" data-testid="log-trace-link" title={l.trace?.trace_id}>
                        {l.trace?.trace_id.slice(0, 8)}…
                      </Link>
                    ) : l.trace ? (
                      <span className="muted mono" title="The trace has not arrived (yet): the link appears when it does">
                        {l.trace.trace_id.slice(0, 8)}… (pending)
                      </span>
                    ) : (
                      <span className="muted">—</span>
                    )}
                  </td>
                ) : null}
                {onSpan ? (
                  <td>
                    {l.span_id && spanNames?.has(l.span_id) ? (
                      <button
                        type="button"
                        className="linklike agent-cell"
                        onClick={() => onSpan(l.span_id as string)}
                        data-testid="log-span"
                      >
                        <span className="tele">{visible(spanNames.get(l.span_id), 80)}</span>
                      </button>
                    ) : (
                      <span className="muted">{l.span_id ? "not in this trace (yet)" : "—"}</span>
                    )}
                  </td>
                ) : null}
              </tr>
              {isOpen ? (
                <tr className="log-details">
                  <td colSpan={columns}>
                    <pre className="tele long">{visible(text, 50_000)}</pre>
                    <dl className="facts">
                      <div>
                        <dt>Time</dt>
                        <dd className="mono">{l.time}</dd>
                      </div>
                      <div>
                        <dt>Severity</dt>
                        <dd>
                          {l.severity_number} <span className="tele">{visible(l.severity_text ?? "", 32)}</span>
                        </dd>
                      </div>
                      {l.trace_id ? (
                        <div>
                          <dt>Trace id</dt>
                          <dd className="mono">{l.trace_id}</dd>
                        </div>
                      ) : null}
                      {l.span_id ? (
                        <div>
                          <dt>Span id</dt>
                          <dd className="mono">{l.span_id}</dd>
                        </div>
                      ) : null}
                      {l.scope ? (
                        <div>
                          <dt>Scope</dt>
                          <dd className="tele">{visible(l.scope, 200)}</dd>
                        </div>
                      ) : null}
                    </dl>
                    <Fields title="Attributes" entries={Object.entries(l.attributes ?? {})} />
                    <Fields title="Resource" entries={Object.entries(l.resource ?? {})} />
                  </td>
                </tr>
              ) : null}
            </Fragment>
          );
        })}
      </tbody>
    </table>
  );
}
