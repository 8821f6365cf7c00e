import { useCallback, useEffect, useState } from "react";
import type { FormEvent, ReactNode } from "react";
import { ApiError, getJSON, sendJSON } from "../api";

interface Session {
  open: boolean;
  authenticated: boolean;
  key: { name?: string; prefix?: string } | null;
}

/** Fired by API calls that get a 401, so the gate asks for a key again. */
export const AUTH_EVENT = "pharos:unauthorized";

/**
 * When the server has API keys, the dashboard needs one: it is exchanged once for an HttpOnly
 * session cookie (POST /api/v1/auth/login) that fetch, EventSource and WebSocket all send.
 * A server without the access room (no /auth/session) or in open mode shows the app directly.
 */
export function AuthGate({ children }: { children: (signOut: (() => void) | null) => ReactNode }) {
  const [session, setSession] = useState<Session | null | "none">(null);
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(null);

  const check = useCallback(() => {
    getJSON<Session>("/auth/session").then(
      (s) => setSession(s),
      (e: unknown) => {
        // 404: this server has no access control at all.
        setSession(e instanceof ApiError && e.status === 404 ? "none" : { open: true, authenticated: false, key: null });
      },
    );
  }, []);

  useEffect(() => {
    check();
    const onUnauthorized = () => check();
    window.addEventListener(AUTH_EVENT, onUnauthorized);
    return () => window.removeEventListener(AUTH_EVENT, onUnauthorized);
  }, [check]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      await sendJSON("POST", "/auth/login", { key });
      setKey("");
      check();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };

  const signOut = async () => {
    await sendJSON("POST", "/auth/logout").catch(() => undefined);
    check();
  };

  if (session === null) return <p className="muted center">Loading…</p>;
  if (session === "none" || session.open || session.authenticated) {
    return <>{children(session !== "none" && !session.open ? () => void signOut() : null)}</>;
  }
  return (
    <div className="login-wrap">
      <form className="card login" onSubmit={submit} data-testid="login" aria-label="Sign in">
        <h1>Pharos</h1>
        <p>This server needs an API key with the read scope. It is kept as an HttpOnly cookie for this browser.</p>
        <label>
          API key{" "}
          <input
            type="password"
            autoComplete="current-password"
            value={key}
            onChange={(e) => setKey(e.target.value)}
            placeholder="phk_…"
            required
            maxLength={256}
            data-testid="login-key"
          />
        </label>
        <button type="submit" data-testid="login-submit">
          Sign in
        </button>
        {error ? (
          <p className="text-error" role="alert">
            {error}
          </p>
        ) : null}
        <p className="muted small">
          Create one with <code>pharos keys create --scope read dashboard</code>.
        </p>
      </form>
    </div>
  );
}
