import { Fragment, useEffect, useState } from "react";
import type { FormEvent } from "react";
import { sendJSON } from "../api";
import { visible } from "../format";
import { useApi } from "../hooks";
import { ConfirmButton, errorText } from "./Confirm";

interface Rule {
  id: number;
  name: string;
  expression: string;
  for: string;
  severity: string;
  message: string;
  enabled: boolean;
}
export interface Validation {
  valid: boolean;
  by?: string[];
  error?: { message: string; line: number; column: number; position?: number };
}

const SEVERITIES = ["info", "warning", "error", "critical"];

/** The line of `text` an error is on, and a caret under its column (1-based). */
export function caretLines(text: string, line: number, column: number): [string, string] | null {
  const lines = text.split("\n");
  if (line < 1 || line > lines.length || column < 1) return null;
  const src = lines[line - 1];
  return [src, `${" ".repeat(Math.min(column - 1, src.length))}^`];
}

/** Checks an expression with the server's grammar as it is typed (debounced). */
function useValidation(expression: string): Validation | null {
  const [check, setCheck] = useState<Validation | null>(null);
  useEffect(() => {
    if (!expression.trim()) {
      setCheck(null);
      return;
    }
    let live = true;
    const t = setTimeout(() => {
      sendJSON<Validation>("POST", "/alerts/rules/validate", { expression }).then(
        (v) => live && setCheck(v),
        (e: unknown) => live && setCheck({ valid: false, error: { message: errorText(e), line: 0, column: 0 } }),
      );
    }, 250);
    return () => {
      live = false;
      clearTimeout(t);
    };
  }, [expression]);
  return check;
}

function CheckResult({ check, expression }: { check: Validation | null; expression: string }) {
  const caret = check && !check.valid && check.error?.line ? caretLines(expression, check.error.line, check.error.column) : null;
  return (
    <div className="small" role="status" data-testid="rule-check">
      {check === null ? (
        <span className="muted">Checked against the rule language as you type (docs/alerting.md).</span>
      ) : check.valid ? (
        <span className="text-good">Valid{check.by && check.by.length ? ` · one alert per ${check.by.join(", ")}` : ""}</span>
      ) : (
        <>
          <span className="text-error tele">
            {check.error?.line ? `line ${check.error.line}, column ${check.error.column}: ` : ""}
            {visible(check.error?.message ?? "invalid", 500)}
          </span>
          {caret ? (
            <pre className="rule-caret" data-testid="rule-caret" aria-hidden="true">
              {visible(caret[0], 2000)}
              {"\n"}
              <span className="text-error">{caret[1]}</span>
            </pre>
          ) : null}
        </>
      )}
    </div>
  );
}

interface Draft {
  name: string;
  expression: string;
  severity: string;
  for: string;
  message: string;
}

/** The fields of a rule, with the expression validated live; used to create and to edit. */
function RuleForm({
  initial,
  submitLabel,
  onSubmit,
  onCancel,
  label,
  testPrefix,
}: {
  initial: Draft;
  submitLabel: string;
  onSubmit: (d: Draft) => Promise<void>;
  onCancel?: () => void;
  label: string;
  testPrefix: string;
}) {
  const [d, setD] = useState<Draft>(initial);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const check = useValidation(d.expression);
  const set = (k: keyof Draft) => (e: { target: { value: string } }) => setD((x) => ({ ...x, [k]: e.target.value }));
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setBusy(true);
    try {
      await onSubmit(d);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="rule-form" onSubmit={submit} aria-label={label} data-testid={`${testPrefix}-form`}>
      <div className="rule-fields">
        <input placeholder="name" value={d.name} onChange={set("name")} required maxLength={200} aria-label="Rule name" data-testid={`${testPrefix}-name`} />
        <textarea
          className="mono grow"
          rows={Math.min(6, Math.max(1, d.expression.split("\n").length))}
          placeholder="p95(latency, 10m) > 2000 by agent"
          value={d.expression}
          onChange={set("expression")}
          required
          maxLength={2000}
          aria-label="Expression"
          aria-invalid={check ? !check.valid : undefined}
          spellCheck={false}
          data-testid={`${testPrefix}-expression`}
        />
        <select value={d.severity} onChange={set("severity")} aria-label="Severity" data-testid={`${testPrefix}-severity`}>
          {SEVERITIES.map((s) => (
            <option key={s}>{s}</option>
          ))}
        </select>
        <input value={d.for} onChange={set("for")} size={5} aria-label="Holds for" placeholder="for" title="How long the condition must hold before firing (0 = at once)" data-testid={`${testPrefix}-for`} />
      </div>
      <div className="rule-fields">
        <input
          className="grow"
          placeholder="message, e.g. {agent}: {value} % errors (optional)"
          value={d.message}
          onChange={set("message")}
          maxLength={2000}
          aria-label="Message"
          data-testid={`${testPrefix}-message`}
        />
        <button type="submit" disabled={busy || (check !== null && !check.valid)} data-testid={testPrefix === "rule" ? "rule-create" : `${testPrefix}-submit`}>
          {submitLabel}
        </button>
        {onCancel ? (
          <button type="button" onClick={onCancel}>
            Cancel
          </button>
        ) : null}
      </div>
      <CheckResult check={check} expression={d.expression} />
      {error ? (
        <p className="text-error" role="alert">
          {error}
        </p>
      ) : null}
    </form>
  );
}

const EMPTY: Draft = { name: "", expression: "", severity: "warning", for: "5m", message: "" };

/** Alert rules: list, enable/disable, edit, delete, and a new rule — the expression checked by
 * the server's grammar as you type, with the error's position marked. */
export function RulesEditor({ refresh, onChange }: { refresh: number; onChange: (msg: string) => void }) {
  const rules = useApi<{ items: Rule[] }>("/alerts/rules", {}, refresh);
  const [editing, setEditing] = useState<number | null>(null);
  const [formKey, setFormKey] = useState(0);
  const [error, setError] = useState<string | null>(null);

  const create = async (d: Draft) => {
    await sendJSON("POST", "/alerts/rules", { name: d.name, expression: d.expression, severity: d.severity, for: d.for, message: d.message || undefined });
    onChange(`Rule “${d.name}” created`);
    setFormKey((k) => k + 1);
  };
  const save = (rule: Rule) => async (d: Draft) => {
    const changes: Record<string, string> = {};
    if (d.name !== rule.name) changes.name = d.name;
    if (d.expression !== rule.expression) changes.expression = d.expression;
    if (d.severity !== rule.severity) changes.severity = d.severity;
    if (d.for !== rule.for) changes.for = d.for;
    if (d.message !== rule.message) changes.message = d.message;
    if (Object.keys(changes).length) await sendJSON("PATCH", `/alerts/rules/${rule.id}`, changes);
    setEditing(null);
    onChange(`Rule “${d.name}” saved`);
  };
  const toggle = async (rule: Rule) => {
    setError(null);
    try {
      await sendJSON("PATCH", `/alerts/rules/${rule.id}`, { enabled: !rule.enabled });
      onChange(`Rule “${rule.name}” ${rule.enabled ? "disabled" : "enabled"}`);
    } catch (err) {
      setError(errorText(err));
    }
  };
  const remove = async (rule: Rule) => {
    setError(null);
    try {
      await sendJSON("DELETE", `/alerts/rules/${rule.id}`);
      if (editing === rule.id) setEditing(null);
      onChange(`Rule “${rule.name}” deleted`);
    } catch (err) {
      setError(errorText(err));
    }
  };

  return (
    <section className="card" data-testid="rules">
      <h2>Rules</h2>
      <table className="table" data-testid="rules-table">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Expression</th>
            <th scope="col">Severity</th>
            <th scope="col">For</th>
            <th scope="col">Enabled</th>
            <th scope="col" />
          </tr>
        </thead>
        <tbody>
          {(rules.data?.items ?? []).map((r) => (
            <Fragment key={r.id}>
              <tr data-rule-id={r.id} data-rule={r.name}>
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
                <td>
                  <div className="actions">
                    <button type="button" onClick={() => setEditing(editing === r.id ? null : r.id)} aria-expanded={editing === r.id} data-testid="rule-edit">
                      Edit
                    </button>
                    <ConfirmButton
                      label="Delete"
                      question="Delete this rule? Its alerts are resolved."
                      confirm="Delete rule"
                      onConfirm={() => remove(r)}
                      testId="rule-delete"
                    />
                  </div>
                </td>
              </tr>
              {editing === r.id ? (
                <tr className="rule-edit-row">
                  <td colSpan={6}>
                    <RuleForm
                      initial={{ name: r.name, expression: r.expression, severity: r.severity, for: r.for, message: r.message ?? "" }}
                      submitLabel="Save"
                      onSubmit={save(r)}
                      onCancel={() => setEditing(null)}
                      label={`Edit rule ${r.name}`}
                      testPrefix="edit"
                    />
                  </td>
                </tr>
              ) : null}
            </Fragment>
          ))}
        </tbody>
      </table>
      {error ? (
        <p className="text-error" role="alert">
          {error}
        </p>
      ) : null}
      <h3 className="rule-new-title">New rule</h3>
      <RuleForm key={formKey} initial={EMPTY} submitLabel="Create" onSubmit={create} label="New rule" testPrefix="rule" />
    </section>
  );
}
