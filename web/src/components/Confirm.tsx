import { useEffect, useRef, useState } from "react";

/** A destructive action behind an inline "Are you sure?" (no browser dialog): the first click
 * asks, the second does it; Escape or Cancel backs out. */
export function ConfirmButton({
  label,
  question,
  confirm,
  onConfirm,
  testId,
  disabled = false,
}: {
  label: string;
  question: string;
  /** The confirming button's text, e.g. "Delete rule". */
  confirm: string;
  onConfirm: () => Promise<void> | void;
  testId?: string;
  disabled?: boolean;
}) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const yes = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (asking) yes.current?.focus();
  }, [asking]);
  if (!asking) {
    return (
      <button type="button" className="danger-quiet" onClick={() => setAsking(true)} data-testid={testId} disabled={disabled}>
        {label}
      </button>
    );
  }
  return (
    <span className="confirm" role="group" aria-label={question} onKeyDown={(e) => e.key === "Escape" && setAsking(false)}>
      <span className="small">{question}</span>{" "}
      <button
        ref={yes}
        type="button"
        className="danger"
        disabled={busy}
        data-testid={testId ? `${testId}-confirm` : undefined}
        onClick={async () => {
          setBusy(true);
          try {
            await onConfirm();
          } finally {
            setBusy(false);
            setAsking(false);
          }
        }}
      >
        {confirm}
      </button>{" "}
      <button type="button" onClick={() => setAsking(false)}>
        Cancel
      </button>
    </span>
  );
}

/** The message of an error thrown by an API call. */
export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
