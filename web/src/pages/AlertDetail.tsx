import { useState } from "react";
import { Link, useLocation, useParams } from "react-router-dom";
import type { AlertDetail, Page, TraceSummary } from "../api";
import { AlertActions } from "../components/AlertActions";
import { TraceTable } from "../components/TraceTable";
import { fmtAgo, fmtCount, fmtDate, visible } from "../format";
import { useApi, useLive } from "../hooks";
import { carry } from "../query";

function When({ iso }: { iso: string | null }) {
  if (!iso) return <span className="muted">—</span>;
  return (
    <span title={iso}>
      {fmtDate(iso)} <span className="muted">({fmtAgo(iso)})</span>
    </span>
  );
}

/** One alert: where notifications (Slack, PagerDuty, e-mail) link to, as /alerts/{id}. */
export function AlertDetailPage() {
  const { alertId = "" } = useParams();
  const { search } = useLocation();
  const keep = carry(search);
  const { tick } = useLive();
  const [bump, setBump] = useState(0);
  const [notice, setNotice] = useState<string | null>(null);
  const valid = /^[0-9]{1,18}$/.test(alertId);
  const { data, error, loading } = useApi<AlertDetail>(valid ? `/alerts/${alertId}` : null, {}, tick + bump);
  const agent = data?.labels.agent ?? null;
  const traces = useApi<Page<TraceSummary>>(agent ? "/traces" : null, { agent, limit: 10 }, tick);

  if (!valid || (error && !data)) {
    return (
      <div className="page" data-testid="page-alert">
        <Link to="/alerts" className="muted">
          ← Alerts
        </Link>
        <section className="card" role="alert">
          <h1>Alert not found</h1>
          <p className="muted">{valid ? error : `“${visible(alertId, 40)}” is not an alert id.`}</p>
        </section>
      </div>
    );
  }
  if (!data) return <p className="muted">{loading ? "Loading…" : ""}</p>;
  const labels = Object.entries(data.labels);
  const done = (msg: string) => {
    setNotice(msg);
    setBump((b) => b + 1);
  };

  return (
    <div className="page" data-testid="page-alert" data-alert-id={data.id}>
      <div className="page-head">
        <div>
          <Link to="/alerts" className="muted">
            ← Alerts
          </Link>
          <h1 className="tele">
            <span className={`badge sev-${data.severity}`}>{visible(data.severity, 20)}</span> {visible(data.rule, 200)}
          </h1>
        </div>
        <AlertActions alert={data} onDone={done} resolve />
      </div>
      {notice ? (
        <p className="notice" role="status" data-testid="notice">
          {notice}
        </p>
      ) : null}
      <section className="card">
        <dl className="facts" data-testid="alert-facts">
          <div>
            <dt>State</dt>
            <dd>
              <span className={`badge state-${data.state}`} data-testid="alert-state">
                {data.state}
              </span>
              {data.acknowledged ? <span className="muted small"> acknowledged</span> : null}
              {data.silenced ? <span className="muted small"> silenced</span> : null}
            </dd>
          </div>
          <div>
            <dt>Value</dt>
            <dd data-testid="alert-value">{data.value === null ? "—" : fmtCount(Math.round(data.value * 1000) / 1000)}</dd>
          </div>
          <div>
            <dt>Firing since</dt>
            <dd>
              <When iso={data.fired_at} />
            </dd>
          </div>
          {data.pending_since ? (
            <div>
              <dt>Pending since</dt>
              <dd>
                <When iso={data.pending_since} />
              </dd>
            </div>
          ) : null}
          {data.resolved_at ? (
            <div>
              <dt>Resolved</dt>
              <dd>
                <When iso={data.resolved_at} />
              </dd>
            </div>
          ) : null}
          <div>
            <dt>Last notified</dt>
            <dd>
              <When iso={data.last_notified_at} />
            </dd>
          </div>
          {agent ? (
            <div>
              <dt>Agent</dt>
              <dd>
                <Link to={`/agents/${encodeURIComponent(agent)}${keep}`} className="tele" data-testid="alert-agent">
                  {visible(agent, 120)}
                </Link>
              </dd>
            </div>
          ) : null}
        </dl>
        {data.message ? <p className="tele">{visible(data.message, 2000)}</p> : null}
        {data.acknowledged ? (
          <p className="small tele" data-testid="acked">
            Acknowledged by {visible(data.acked_by ?? "", 100)} {data.acked_at ? `at ${fmtDate(data.acked_at)}` : ""}
            {data.ack_comment ? `: ${visible(data.ack_comment, 1000)}` : ""}
          </p>
        ) : null}
        {data.silenced ? (
          <p className="small muted tele" data-testid="silenced">
            Silenced{data.silenced_by ? ` (${visible(data.silenced_by, 100)})` : ""}: notifications are muted, the alert stays listed.
          </p>
        ) : null}
        {data.expression ? (
          <p className="small">
            Rule: <code className="tele">{visible(data.expression, 2000)}</code>
          </p>
        ) : null}
      </section>
      <div className="grid-2">
        <section className="card">
          <h2>Labels</h2>
          <table className="kv" data-testid="alert-labels">
            <tbody>
              {labels.map(([k, v]) => (
                <tr key={k}>
                  <th scope="row" className="tele">
                    {visible(k, 200)}
                  </th>
                  <td className="tele">{visible(v, 1000)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <p className="muted small">Fingerprint {visible(data.fingerprint, 64)}</p>
        </section>
        <section className="card">
          <h2>History</h2>
          {data.history.length === 0 ? <p className="muted">No events yet.</p> : null}
          <table className="table" data-testid="alert-history">
            <tbody>
              {data.history.map((h, i) => (
                <tr key={i}>
                  <td className="nowrap" title={h.at ?? ""}>
                    {fmtDate(h.at)}
                  </td>
                  <td>
                    <strong>{visible(h.event, 40)}</strong> <span className={`badge state-${h.state}`}>{visible(h.state, 20)}</span>
                  </td>
                  <td className="num">{h.value === null ? "" : fmtCount(Math.round(h.value * 1000) / 1000)}</td>
                  <td className="tele">
                    {h.who ? visible(h.who, 100) : ""}
                    {h.comment ? <span className="muted">{`: ${visible(h.comment, 500)}`}</span> : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      </div>
      {agent ? (
        <section className="card">
          <h2>
            Recent traces of <span className="tele">{visible(agent, 80)}</span>{" "}
            <Link to={`/traces?${new URLSearchParams({ agent }).toString()}`} className="muted small" data-testid="alert-traces-link">
              all
            </Link>
          </h2>
          {traces.data && traces.data.items.length === 0 ? <p className="muted">No traces of this agent.</p> : null}
          <TraceTable items={traces.data?.items ?? []} testId="alert-traces" hideAgent />
        </section>
      ) : null}
    </div>
  );
}
