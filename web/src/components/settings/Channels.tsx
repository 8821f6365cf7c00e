import { useEffect, useState } from "react";
import type { FormEvent } from "react";
import { getJSON, sendJSON } from "../../api";
import { visible } from "../../format";
import { useApi } from "../../hooks";
import { ConfirmButton, errorText } from "../Confirm";

interface Channel {
  id: number;
  name: string;
  type: string;
  config: Record<string, unknown>;
  severities: string[];
  enabled: boolean;
}
interface OutboxItem {
  idempotency_key: string;
  status: "pending" | "sent" | "failed";
  attempts: number;
  last_error: string | null;
}

const TYPES = ["slack", "pagerduty", "webhook", "email"] as const;
type ChannelType = (typeof TYPES)[number];
const SEVERITIES = ["info", "warning", "error", "critical"];

interface Field {
  key: string;
  label: string;
  placeholder?: string;
  required?: boolean;
  secret?: boolean;
  kind?: "number" | "checkbox" | "list";
}
/** What each channel type needs (alerting/api.py `_check_config`). */
export const FIELDS: Record<ChannelType, Field[]> = {
  slack: [{ key: "url", label: "Webhook URL", placeholder: "https://hooks.slack.com/services/…", required: true, secret: true }],
  pagerduty: [
    { key: "routing_key", label: "Routing key", placeholder: "Events API v2 integration key", required: true, secret: true },
    { key: "url", label: "Events API URL (optional)", placeholder: "https://events.pagerduty.com/v2/enqueue" },
  ],
  webhook: [
    { key: "url", label: "URL", placeholder: "https://example.com/pharos", required: true },
    { key: "secret", label: "Signing secret (optional)", secret: true },
  ],
  email: [
    { key: "host", label: "SMTP host", placeholder: "smtp.example.com", required: true },
    { key: "port", label: "Port", placeholder: "25", kind: "number" },
    { key: "from", label: "From", placeholder: "pharos@example.com" },
    { key: "to", label: "To (comma-separated)", placeholder: "oncall@example.com", required: true, kind: "list" },
    { key: "username", label: "Username (optional)" },
    { key: "password", label: "Password (optional)", secret: true },
    { key: "starttls", label: "STARTTLS", kind: "checkbox" },
  ],
};

/** The form's strings as the API's config object (empty optional fields left out). */
export function channelConfig(type: ChannelType, values: Record<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of FIELDS[type]) {
    const v = (values[f.key] ?? "").trim();
    if (f.kind === "checkbox") {
      if (v === "true") out[f.key] = true;
    } else if (!v) {
      continue;
    } else if (f.kind === "number") {
      out[f.key] = Number(v);
    } else if (f.kind === "list") {
      out[f.key] = v.split(",").map((x) => x.trim()).filter(Boolean);
    } else {
      out[f.key] = v;
    }
  }
  return out;
}

function target(c: Channel): string {
  const cfg = c.config;
  if (c.type === "email") return `${Array.isArray(cfg.to) ? cfg.to.join(", ") : ""} via ${String(cfg.host ?? "")}`;
  if (c.type === "pagerduty") return "PagerDuty Events API";
  return String(cfg.url ?? "");
}

/** After "Send test": follow the notification through the outbox until it is sent or fails. */
function TestStatus({ idempotencyKey }: { idempotencyKey: string }) {
  const [item, setItem] = useState<OutboxItem | null>(null);
  useEffect(() => {
    let stop = false;
    let timer: number | undefined;
    const poll = (n: number) => {
      getJSON<{ items: OutboxItem[] }>("/alerts/outbox", { limit: 100 }).then(
        (page) => {
          if (stop) return;
          const found = page.items.find((i) => i.idempotency_key === idempotencyKey) ?? null;
          setItem(found);
          if ((!found || found.status === "pending") && n < 60) timer = window.setTimeout(() => poll(n + 1), 1000);
        },
        () => undefined,
      );
    };
    poll(0);
    return () => {
      stop = true;
      window.clearTimeout(timer);
    };
  }, [idempotencyKey]);
  const text =
    item === null || item.status === "pending"
      ? `test queued${item && item.attempts > 0 ? ` (attempt ${item.attempts + 1}${item.last_error ? `, last: ${item.last_error}` : ""})` : ""}…`
      : item.status === "sent"
        ? "test delivered"
        : `test failed: ${item.last_error ?? "unknown error"}`;
  return (
    <span className={`small ${item?.status === "failed" ? "text-error" : item?.status === "sent" ? "text-good" : "muted"}`} data-testid="channel-test-status" data-status={item?.status ?? "pending"}>
      {visible(text, 300)}
    </span>
  );
}

export function ChannelsSection() {
  const [bump, setBump] = useState(0);
  const channels = useApi<{ items: Channel[] }>("/alerts/channels", {}, bump);
  const [name, setName] = useState("");
  const [type, setType] = useState<ChannelType>("slack");
  const [values, setValues] = useState<Record<string, string>>({});
  const [severities, setSeverities] = useState<string[]>(["warning", "error", "critical"]);
  const [error, setError] = useState<string | null>(null);
  const [tests, setTests] = useState<Record<number, string>>({});

  const add = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      await sendJSON("POST", "/alerts/channels", { name: name.trim(), type, config: channelConfig(type, values), severities });
      setName("");
      setValues({});
      setBump((b) => b + 1);
    } catch (err) {
      setError(errorText(err));
    }
  };
  const act = async (fn: () => Promise<unknown>) => {
    setError(null);
    try {
      await fn();
      setBump((b) => b + 1);
    } catch (err) {
      setError(errorText(err));
    }
  };
  const sendTest = (c: Channel) =>
    act(async () => {
      const r = await sendJSON<{ idempotency_key: string }>("POST", `/alerts/channels/${c.id}/test`);
      setTests((t) => ({ ...t, [c.id]: r.idempotency_key }));
    });

  const items = channels.data?.items ?? [];
  return (
    <section className="card" data-testid="channels">
      <h2>Notification channels</h2>
      {channels.error ? <p className="muted">Not available: {channels.error}</p> : null}
      {channels.data && items.length === 0 ? (
        <p className="muted">None yet. An alert notifies every enabled channel whose severities include its own (docs/alerting.md).</p>
      ) : null}
      {items.length > 0 ? (
        <table className="table" data-testid="channels-table">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Type</th>
              <th scope="col">Sends to</th>
              <th scope="col">Severities</th>
              <th scope="col">Enabled</th>
              <th scope="col" />
            </tr>
          </thead>
          <tbody>
            {items.map((c) => (
              <tr key={c.id} data-channel-id={c.id} data-channel={c.name}>
                <td className="tele">{visible(c.name, 100)}</td>
                <td>{visible(c.type, 20)}</td>
                <td className="tele small">{visible(target(c), 200)}</td>
                <td className="small">{c.severities.length ? c.severities.join(", ") : <span className="muted">only rules naming it</span>}</td>
                <td>
                  <input
                    type="checkbox"
                    checked={c.enabled}
                    onChange={() => void act(() => sendJSON("PATCH", `/alerts/channels/${c.id}`, { enabled: !c.enabled }))}
                    aria-label={`Enable channel ${c.name}`}
                    data-testid="channel-enabled"
                  />
                </td>
                <td>
                  <div className="actions">
                    <button type="button" onClick={() => void sendTest(c)} data-testid="channel-test">
                      Send test
                    </button>
                    <ConfirmButton
                      label="Delete"
                      question={`Delete “${visible(c.name, 60)}”?`}
                      confirm="Delete channel"
                      onConfirm={() => act(() => sendJSON("DELETE", `/alerts/channels/${c.id}`))}
                      testId="channel-delete"
                    />
                  </div>
                  {tests[c.id] ? <TestStatus idempotencyKey={tests[c.id]} /> : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {channels.error ? null : (
        <form className="settings-form" onSubmit={add} aria-label="New channel">
          <h3>Add a channel</h3>
          <div className="form-row">
            <label>
              Name <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={200} placeholder="on-call" data-testid="channel-name" />
            </label>
            <label>
              Type{" "}
              <select
                value={type}
                onChange={(e) => {
                  setType(e.target.value as ChannelType);
                  setValues({});
                }}
                data-testid="channel-type"
              >
                {TYPES.map((t) => (
                  <option key={t} value={t}>
                    {t === "pagerduty" ? "PagerDuty" : t === "email" ? "e-mail" : t === "slack" ? "Slack" : "webhook"}
                  </option>
                ))}
              </select>
            </label>
          </div>
          <div className="form-row">
            {FIELDS[type].map((f) =>
              f.kind === "checkbox" ? (
                <label key={f.key} className="check">
                  <input
                    type="checkbox"
                    checked={values[f.key] === "true"}
                    onChange={(e) => setValues((v) => ({ ...v, [f.key]: e.target.checked ? "true" : "" }))}
                    data-testid={`channel-${f.key}`}
                  />{" "}
                  {f.label}
                </label>
              ) : (
                <label key={f.key}>
                  {f.label}{" "}
                  <input
                    type={f.secret ? "password" : f.kind === "number" ? "number" : "text"}
                    autoComplete="off"
                    value={values[f.key] ?? ""}
                    onChange={(e) => setValues((v) => ({ ...v, [f.key]: e.target.value }))}
                    required={f.required}
                    placeholder={f.placeholder}
                    className={f.kind === "number" ? undefined : "wide"}
                    data-testid={`channel-${f.key}`}
                  />
                </label>
              ),
            )}
          </div>
          <div className="form-row">
            <fieldset className="checks">
              <legend>Severities</legend>
              {SEVERITIES.map((s) => (
                <label key={s}>
                  <input
                    type="checkbox"
                    checked={severities.includes(s)}
                    onChange={(e) => setSeverities((x) => (e.target.checked ? [...x, s] : x.filter((y) => y !== s)))}
                    data-testid={`channel-sev-${s}`}
                  />{" "}
                  {s}
                </label>
              ))}
            </fieldset>
            <button type="submit" data-testid="channel-add">
              Add channel
            </button>
          </div>
          <p className="muted small">No severity ticked: the channel gets only the rules that name it in their channels.</p>
        </form>
      )}
      {error ? (
        <p className="text-error" role="alert">
          {error}
        </p>
      ) : null}
    </section>
  );
}
