import { useState } from "react";
import type { FormEvent } from "react";
import { sendJSON } from "../api";
import type { Alert, Page, Silence } from "../api";
import { fmtAgo, fmtTime, visible } from "../format";
import { useApi, useLive } from "../hooks";
import { RulesEditor } from "../components/RulesEditor";

const STATES = ["", "firing", "pending", "resolved"] as const;
const DURATIONS = ["1h", "4h", "24h", "7d"];

function labelText(labels: Record<string, string>): string {
  return Object.entries(labels)
    .filter(([k]) => k !== "alertname" && k !== "severity")
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");
}

function AlertActions({ alert, onDone }: { alert: Alert; onDone: (msg: string) => void }) {
  const [mode, setMode] = useState<"ack" | "silence" | null>(null);
  const [who, setWho] = useState(() => localStorage.getItem("pharos-who") ?? "");
  const [comment, setComment] = useState("");
  const [duration, setDuration] = useState("1h");
  const [error, setError] = useState<string | null>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    localStorage.setItem("pharos-who", who);
    try {
      if (mode === "ack") {
        await sendJSON("POST", `/alerts/${alert.id}/ack`, { who: who || "dashboard", comment: comment || undefined });
        onDone(`Acknowledged “${alert.rule}”`);
      } else {
        const matchers = Object.entries(alert.labels).map(([name, value]) => ({ name, op: "=", value }));
        await sendJSON("POST", "/silences", { matchers, duration, created_by: who || "dashboard", comment });
        onDone(`Silenced “${alert.rule}” for ${duration}`);
      }
      setMode(null);
      setComment("");
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };

  if (mode === null) {
    return (
      <div className="actions">
        {alert.state === "firing" && !alert.acknowledged ? (
          <button type="button" onClick={() => setMode("ack")} data-testid="ack">
            Ack
          </button>
        ) : null}
        {alert.state !== "resolved" && !alert.silenced ? (
          <button type="button" onClick={() => setMode("silence")} data-testid="silence">
            Silence
          </button>
        ) : null}
      </div>
    );
  }
  return (
    <form className="inline-form" onSubmit={submit} aria-label={mode === "ack" ? "Acknowledge alert" : "Silence alert"}>
      <input placeholder="your name" value={who} onChange={(e) => setWho(e.target.value)} maxLength={100} aria-label="Your name" />
      <input
        placeholder={mode === "silence" ? "why (required)" : "comment"}
        required={mode === "silence"}
        value={comment}
        onChange={(e) => setComment(e.target.value)}
        maxLength={1000}
        aria-label="Comment"
        data-testid="action-comment"
      />
      {mode === "silence" ? (
        <select value={duration} onChange={(e) => setDuration(e.target.value)} aria-label="For how long" data-testid="silence-duration">
          {DURATIONS.map((d) => (
            <option key={d} value={d}>
              for {d}
            </option>
          ))}
        </select>
      ) : null}
      <button type="submit" data-testid="action-submit">
        {mode === "ack" ? "Acknowledge" : "Silence"}
      </button>
      <button type="button" onClick={() => setMode(null)}>
        Cancel
      </button>
      {error ? (
        <span className="text-error" role="alert">
          {error}
        </span>
      ) : null}
    </form>
  );
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
                      <strong>{visible(a.rule, 200)}</strong> <span className="muted">{visible(labelText(a.labels), 300)}</span>
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
                  <td title={fmtTime(a.fired_at ?? a.pending_since ?? a.updated_at)}>{fmtAgo(a.resolved_at ?? a.fired_at ?? a.pending_since ?? a.updated_at)}</td>
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
                  <td>{fmtTime(s.ends_at)}</td>
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
