import { useState } from "react";
import { Link } from "react-router-dom";
import { sendJSON } from "../api";
import type { Alert, Page, Silence } from "../api";
import { AlertActions } from "../components/AlertActions";
import { fmtAgo, fmtDate, visible } from "../format";
import { useApi, useLive } from "../hooks";
import { RulesEditor } from "../components/RulesEditor";

const STATES = ["", "firing", "pending", "resolved"] as const;
export function labelText(labels: Record<string, string>): string {
  return Object.entries(labels)
    .filter(([k]) => k !== "alertname" && k !== "severity")
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");
}

export function AlertsPage() {
  const { tick } = useLive();
  const [state, setState] = useState<(typeof STATES)[number]>("");
  const [bump, setBump] = useState(0);
  const [notice, setNotice] = useState<string | null>(null);
  const alerts = useApi<Page<Alert>>("/alerts", { state: state || null, limit: 200 }, tick + bump);
  const silences = useApi<{ items: Silence[] }>("/silences", {}, tick + bump);
  const done = (msg: string) => {
    setNotice(msg);
    setBump((b) => b + 1);
  };
  const end = async (id: number) => {
    try {
      await sendJSON("DELETE", `/silences/${id}`);
      done("Silence ended");
    } catch (err) {
      setNotice(err instanceof Error ? err.message : String(err));
    }
  };
  const items = alerts.data?.items ?? [];

  return (
    <div className="page" data-testid="page-alerts">
      <div className="page-head">
        <h1>Alerts</h1>
        <div className="range" role="group" aria-label="State">
          {STATES.map((s) => (
            <button key={s || "all"} type="button" className={s === state ? "active" : undefined} aria-pressed={s === state} onClick={() => setState(s)}>
              {s || "all"}
            </button>
          ))}
        </div>
      </div>
      {notice ? (
        <p className="notice" role="status" data-testid="notice">
          {notice}
        </p>
      ) : null}
      {alerts.error ? (
        <p className="error-box" role="alert">
          Could not load alerts: {alerts.error}
        </p>
      ) : null}
      <section className="card">
        {alerts.data && items.length === 0 ? (
          <p className="muted">
            No {state || ""} alerts. Rules are evaluated every 30 s; see <code>GET /api/v1/alerts/rules</code> and docs/alerting.md.
          </p>
        ) : null}
        {items.length > 0 ? (
          <table className="table" data-testid="alerts-table">
            <thead>
              <tr>
                <th scope="col">Severity</th>
                <th scope="col">Alert</th>
                <th scope="col">State</th>
                <th scope="col">Since</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {items.map((a) => (
                <tr key={a.id} data-alert-id={a.id}>
                  <td>
                    <span className={`badge sev-${a.severity}`}>{visible(a.severity, 20)}</span>
                  </td>
                  <td>
                    <div className="tele">
                      <Link to={`/alerts/${a.id}`} className="alert-link">
                        <strong>{visible(a.rule, 200)}</strong>
                      </Link>{" "}
                      <span className="muted">{visible(labelText(a.labels), 300)}</span>
                    </div>
                    <div className="tele small">{visible(a.message, 500)}</div>
                    {a.acknowledged ? (
                      <div className="small muted tele" data-testid="acked">
                        Acknowledged by {visible(a.acked_by ?? "", 100)}
                        {a.ack_comment ? `: ${visible(a.ack_comment, 300)}` : ""}
                      </div>
                    ) : null}
                    {a.silenced ? (
                      <div className="small muted" data-testid="silenced">
                        Silenced
                      </div>
                    ) : null}
                  </td>
                  <td>
                    <span className={`badge state-${a.state}`}>{a.state}</span>
                  </td>
                  <td title={fmtDate(a.resolved_at ?? a.fired_at ?? a.pending_since ?? a.updated_at)}>{fmtAgo(a.resolved_at ?? a.fired_at ?? a.pending_since ?? a.updated_at)}</td>
                  <td>
                    <AlertActions alert={a} onDone={done} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
      </section>
      <RulesEditor refresh={bump} onChange={done} />
      <section className="card">
        <h2>Silences</h2>
        {silences.data && silences.data.items.length === 0 ? <p className="muted">No active silences.</p> : null}
        {silences.data && silences.data.items.length > 0 ? (
          <table className="table" data-testid="silences-table">
            <thead>
              <tr>
                <th scope="col">Matches</th>
                <th scope="col">Until</th>
                <th scope="col">By</th>
                <th scope="col" />
              </tr>
            </thead>
            <tbody>
              {silences.data.items.map((s) => (
                <tr key={s.id}>
                  <td className="tele">{visible(s.matchers.map((m) => `${m.name}${m.op}${m.value}`).join(", "), 500)}</td>
                  <td>{fmtDate(s.ends_at)}</td>
                  <td className="tele">
                    {visible(s.created_by ?? "", 100)} {s.comment ? <span className="muted">{visible(s.comment, 200)}</span> : null}
                  </td>
                  <td>
                    <button type="button" onClick={() => void end(s.id)}>
                      End
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
      </section>
    </div>
  );
}
