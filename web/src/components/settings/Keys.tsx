import { useState } from "react";
import type { FormEvent } from "react";
import { sendJSON } from "../../api";
import { fmtAgo, fmtDate, visible } from "../../format";
import { useApi } from "../../hooks";
import { AUTH_EVENT } from "../AuthGate";
import { ConfirmButton, errorText } from "../Confirm";

interface Key {
  id: number;
  name: string;
  prefix: string;
  scopes: string[];
  created_ns: number;
  last_used_ns: number | null;
  revoked: boolean;
  revoked_ns: number | null;
}
interface Session {
  open: boolean;
  authenticated: boolean;
  key: { prefix?: string; name?: string } | null;
}

const SCOPES = [
  ["ingest", "send telemetry (OTLP, the gateway)"],
  ["read", "read the API and the dashboard"],
  ["admin", "everything, keys included"],
] as const;

function iso(ns: number | null): string | null {
  return ns === null ? null : new Date(ns / 1e6).toISOString();
}

/** Whether a new key can be the first one: the server leaves open mode when it exists, so this
 * browser signs in with it, and it must be able to read. */
export function canBeFirstKey(scopes: string[]): boolean {
  return scopes.includes("read") || scopes.includes("admin");
}

export function KeysSection() {
  const [bump, setBump] = useState(0);
  const keys = useApi<{ items: Key[] }>("/keys", {}, bump);
  const session = useApi<Session>("/auth/session", {}, bump);
  const [name, setName] = useState("");
  const [scopes, setScopes] = useState<string[]>(["read"]);
  const [created, setCreated] = useState<{ key: string; name: string; signedIn: boolean } | null>(null);
  const [copied, setCopied] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const open = session.data?.open === true;
  const firstBlocked = open && !canBeFirstKey(scopes);
  const mine = session.data?.key?.prefix ?? null;

  const create = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      const made = await sendJSON<Key & { key: string }>("POST", "/keys", { name: name.trim(), scopes });
      let signedIn = false;
      if (open) {
        // The server needs keys from now on: keep this browser signed in with the new one.
        await sendJSON("POST", "/auth/login", { key: made.key });
        signedIn = true;
        window.dispatchEvent(new Event(AUTH_EVENT));
      }
      setCreated({ key: made.key, name: made.name, signedIn });
      setCopied(false);
      setName("");
      setBump((b) => b + 1);
    } catch (err) {
      setError(errorText(err));
    }
  };

  const revoke = async (k: Key) => {
    setError(null);
    try {
      await sendJSON("DELETE", `/keys/${k.id}`);
      setBump((b) => b + 1);
    } catch (err) {
      setError(errorText(err));
    }
  };

  return (
    <section className="card" data-testid="keys">
      <h2>API keys</h2>
      {keys.error ? (
        <p className="muted" data-testid="keys-unavailable">
          Not available: {keys.error}. Managing keys needs a key with the <code>admin</code> scope.
        </p>
      ) : null}
      {created ? (
        <div className="new-key" role="status" data-testid="new-key">
          <p>
            <strong>Key “{visible(created.name, 100)}” created.</strong> Copy it now: it is shown only once (the server keeps
            only its hash).
            {created.signedIn ? " This browser is signed in with it, since the server now requires keys." : ""}
          </p>
          <div className="key-row">
            <input readOnly value={created.key} className="mono grow" aria-label="The new API key" data-testid="new-key-value" onFocus={(e) => e.target.select()} />
            <button
              type="button"
              onClick={() => {
                void navigator.clipboard?.writeText(created.key).then(() => setCopied(true));
              }}
            >
              {copied ? "Copied" : "Copy"}
            </button>
            <button type="button" onClick={() => setCreated(null)} data-testid="new-key-done">
              Done
            </button>
          </div>
        </div>
      ) : null}
      {keys.data && keys.data.items.length === 0 ? (
        <p className="muted">No keys: the server is open on its loopback address (anyone who can reach it can read and send).</p>
      ) : null}
      {keys.data && keys.data.items.length > 0 ? (
        <table className="table" data-testid="keys-table">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Prefix</th>
              <th scope="col">Scopes</th>
              <th scope="col">Created</th>
              <th scope="col">Last used</th>
              <th scope="col">State</th>
              <th scope="col" />
            </tr>
          </thead>
          <tbody>
            {keys.data.items.map((k) => (
              <tr key={k.id} data-key-id={k.id} data-prefix={k.prefix}>
                <td className="tele">
                  {visible(k.name, 100)} {mine === k.prefix ? <span className="badge">this browser</span> : null}
                </td>
                <td className="mono">{visible(k.prefix, 40)}…</td>
                <td>{k.scopes.join(", ")}</td>
                <td>{fmtDate(iso(k.created_ns))}</td>
                <td>{fmtAgo(iso(k.last_used_ns))}</td>
                <td data-testid="key-state">{k.revoked ? `revoked ${fmtDate(iso(k.revoked_ns))}` : "active"}</td>
                <td>
                  {k.revoked ? null : (
                    <ConfirmButton
                      label="Revoke"
                      question={mine === k.prefix ? "This browser is signed in with it: revoke and sign out?" : `Revoke “${visible(k.name, 60)}”?`}
                      confirm="Revoke key"
                      onConfirm={() => revoke(k)}
                      testId="revoke-key"
                    />
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {keys.error ? null : (
        <form className="settings-form" onSubmit={create} aria-label="New API key">
          <h3>New key</h3>
          <div className="form-row">
            <label>
              Name{" "}
              <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={200} placeholder="checkout agent" data-testid="key-name" />
            </label>
            <fieldset className="checks">
              <legend>Scopes</legend>
              {SCOPES.map(([scope, what]) => (
                <label key={scope} title={what}>
                  <input
                    type="checkbox"
                    checked={scopes.includes(scope)}
                    onChange={(e) => setScopes((s) => (e.target.checked ? [...s, scope] : s.filter((x) => x !== scope)))}
                    data-testid={`key-scope-${scope}`}
                  />{" "}
                  {scope}
                </label>
              ))}
            </fieldset>
            <button type="submit" disabled={scopes.length === 0 || firstBlocked} data-testid="key-create">
              Create key
            </button>
          </div>
          {open ? (
            <p className={`small ${firstBlocked ? "text-error" : "muted"}`} data-testid="first-key-note">
              This will be the first key: from then on every request needs one, and this browser signs in with it — so the first key
              needs the <code>read</code> or <code>admin</code> scope.
            </p>
          ) : null}
          {error ? (
            <p className="text-error" role="alert">
              {error}
            </p>
          ) : null}
        </form>
      )}
    </section>
  );
}
