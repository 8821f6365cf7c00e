import { useState } from "react";
import type { FormEvent } from "react";
import { sendJSON } from "../api";
import type { Alert } from "../api";

export const SILENCE_DURATIONS = ["1h", "4h", "24h", "7d"];

type Mode = "ack" | "resolve" | "silence";

const TITLES: Record<Mode, string> = { ack: "Acknowledge", resolve: "Resolve", silence: "Silence" };

/** Ack (with a comment), resolve now, or silence (all the alert's labels, for a while, with a
 * reason): each opens a small form; `onDone` gets a sentence saying what happened. */
export function AlertActions({
  alert,
  onDone,
  resolve = false,
}: {
  alert: Pick<Alert, "id" | "rule" | "state" | "acknowledged" | "silenced" | "labels">;
  onDone: (msg: string) => void;
  /** Offer "Resolve" too (the detail page). */
  resolve?: boolean;
}) {
  const [mode, setMode] = useState<Mode | null>(null);
  const [who, setWho] = useState(() => localStorage.getItem("pharos-who") ?? "");
  const [comment, setComment] = useState("");
  const [duration, setDuration] = useState("1h");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setBusy(true);
    localStorage.setItem("pharos-who", who);
    const by = who.trim() || "dashboard";
    try {
      if (mode === "ack") {
        await sendJSON("POST", `/alerts/${alert.id}/ack`, { who: by, comment: comment || undefined });
        onDone(`Acknowledged “${alert.rule}”`);
      } else if (mode === "resolve") {
        await sendJSON("POST", `/alerts/${alert.id}/resolve`, { who: by, comment: comment || undefined });
        onDone(`Resolved “${alert.rule}”`);
      } else {
        const matchers = Object.entries(alert.labels).map(([name, value]) => ({ name, op: "=", value }));
        await sendJSON("POST", "/silences", { matchers, duration, created_by: by, comment });
        onDone(`Silenced “${alert.rule}” for ${duration}`);
      }
      setMode(null);
      setComment("");
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  if (mode === null) {
    const active = alert.state === "firing" || alert.state === "pending";
    return (
      <div className="actions">
        {alert.state === "firing" && !alert.acknowledged ? (
          <button type="button" onClick={() => setMode("ack")} data-testid="ack">
            Ack
          </button>
        ) : null}
        {resolve && active ? (
          <button type="button" onClick={() => setMode("resolve")} data-testid="resolve">
            Resolve
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
    <form className="inline-form" onSubmit={submit} aria-label={`${TITLES[mode]} alert`}>
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
          {SILENCE_DURATIONS.map((d) => (
            <option key={d} value={d}>
              for {d}
            </option>
          ))}
        </select>
      ) : null}
      <button type="submit" data-testid="action-submit" disabled={busy}>
        {TITLES[mode]}
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
