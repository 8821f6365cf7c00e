import { useEffect, useState } from "react";
import type { FormEvent } from "react";
import { sendJSON } from "../api";
import { visible } from "../format";
import { useApi } from "../hooks";

interface Rule {
  id: number;
  name: string;
  expression: string;
  for: string;
  severity: string;
  enabled: boolean;
}
interface Validation {
  valid: boolean;
  by?: string[];
  error?: { message: string; line: number; column: number };
}

const SEVERITIES = ["info", "warning", "error", "critical"];

/** Alert rules: list, enable/disable, and a new rule checked by the server's grammar as you type. */
export function RulesEditor({ refresh, onChange }: { refresh: number; onChange: (msg: string) => void }) {
  const rules = useApi<{ items: Rule[] }>("/alerts/rules", {}, refresh);
  const [name, setName] = useState("");
  const [expression, setExpression] = useState("");
  const [severity, setSeverity] = useState("warning");
  const [forDuration, setFor] = useState("5m");
  const [check, setCheck] = useState<Validation | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    if (!expression.trim()) {
      setCheck(null);
      return;
    }
    const t = setTimeout(() => {
      sendJSON<Validation>("POST", "/alerts/rules/validate", { expression }).then(setCheck, (e: unknown) =>
        setCheck({ valid: false, error: { message: e instanceof Error ? e.message : String(e), line: 0, column: 0 } }),
      );
    }, 300);
    return () => clearTimeout(t);
  }, [expression]);

  const create = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      await sendJSON("POST", "/alerts/rules", { name, expression, severity, for: forDuration });
      onChange(`Rule “${name}” created`);
      setName("");
      setExpression("");
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };

  const toggle = async (rule: Rule) => {
    try {
      await sendJSON("PATCH", `/alerts/rules/${rule.id}`, { enabled: !rule.enabled });
      onChange(`Rule “${rule.name}” ${rule.enabled ? "disabled" : "enabled"}`);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };

  return (
    <section className="card" data-testid="rules">
      <h2>Rules</h2>
      <table className="table">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Expression</th>
            <th scope="col">Severity</th>
            <th scope="col">For</th>
            <th scope="col">Enabled</th>
          </tr>
        </thead>
        <tbody>
          {(rules.data?.items ?? []).map((r) => (
            <tr key={r.id}>
              <td className="tele">{visible(r.name, 200)}</td>
              <td>
                <code className="tele">{visible(r.expression, 500)}</code>
              </td>
              <td>
                <span className={`badge sev-${r.severity}`}>{visible(r.severity, 20)}</span>
              </td>
              <td>{r.for}</td>
              <td>
                <input type="checkbox" checked={r.enabled} onChange={() => void toggle(r)} aria-label={`Enable rule ${r.name}`} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form className="rule-form" onSubmit={create} aria-label="New rule">
        <h3>New rule</h3>
        <div className="rule-fields">
          <input placeholder="name" value={name} onChange={(e) => setName(e.target.value)} required maxLength={200} aria-label="Rule name" data-testid="rule-name" />
          <input
            className="mono grow"
            placeholder="p95(latency, 10m) > 2000 by agent"
            value={expression}
            onChange={(e) => setExpression(e.target.value)}
            required
            maxLength={2000}
            aria-label="Expression"
            aria-invalid={check ? !check.valid : undefined}
            data-testid="rule-expression"
          />
          <select value={severity} onChange={(e) => setSeverity(e.target.value)} aria-label="Severity">
            {SEVERITIES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
          <input value={forDuration} onChange={(e) => setFor(e.target.value)} size={5} aria-label="Holds for" placeholder="for" />
          <button type="submit" disabled={check !== null && !check.valid} data-testid="rule-create">
            Create
          </button>
        </div>
        <p className="small" role="status" data-testid="rule-check">
          {check === null ? (
            <span className="muted">Checked against the rule language as you type (docs/alerting.md).</span>
          ) : check.valid ? (
            <span className="text-good">Valid{check.by && check.by.length ? ` · one alert per ${check.by.join(", ")}` : ""}</span>
          ) : (
            <span className="text-error tele">
              {check.error?.line ? `line ${check.error.line}, column ${check.error.column}: ` : ""}
              {visible(check.error?.message ?? "invalid", 500)}
            </span>
          )}
        </p>
        {error ? (
          <p className="text-error" role="alert">
            {error}
          </p>
        ) : null}
      </form>
    </section>
  );
}
