import { useRef, useState } from "react";
import type { FormEvent } from "react";
import { sendJSON } from "../../api";
import { fmtCount, fmtDate, visible } from "../../format";
import { useApi } from "../../hooks";
import { ConfirmButton, errorText } from "../Confirm";

interface Price {
  id: number | null;
  model: string;
  vendor: string | null;
  input_usd_per_mtok: string;
  output_usd_per_mtok: string;
  cached_usd_per_mtok: string | null;
  effective_from: string | null;
  source: string;
}
interface Unknown {
  model: string | null;
  calls: number;
  tokens: { total: number };
  agents: string[];
}

/** The effective_from the API takes: "" = now, "always", or a local date-time as ISO UTC. */
export function effectiveFrom(when: "now" | "always" | "from", local: string): string | undefined {
  if (when === "always") return "always";
  if (when === "from" && local) {
    const t = Date.parse(local);
    if (!Number.isNaN(t)) return new Date(t).toISOString();
  }
  return undefined;
}

export function PricesSection() {
  const [bump, setBump] = useState(0);
  const prices = useApi<{ as_of: string; prices: Price[] }>("/prices", {}, bump);
  const unknown = useApi<{ models: Unknown[] }>("/prices/unknown", {}, bump);
  const [model, setModel] = useState("");
  const [input, setInput] = useState("");
  const [output, setOutput] = useState("");
  const [cached, setCached] = useState("");
  const [when, setWhen] = useState<"now" | "always" | "from">("now");
  const [local, setLocal] = useState("");
  const [filter, setFilter] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const form = useRef<HTMLFormElement>(null);
  const modelInput = useRef<HTMLInputElement>(null);

  const save = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setNotice(null);
    try {
      const saved = await sendJSON<Price>("POST", "/prices", {
        model: model.trim(),
        input: input.trim(),
        output: output.trim(),
        cached: cached.trim() || undefined,
        effective_from: effectiveFrom(when, local),
      });
      setNotice(`Price of “${saved.model}” set${saved.effective_from ? ` from ${fmtDate(saved.effective_from)}` : " for all time"}.`);
      setModel("");
      setInput("");
      setOutput("");
      setCached("");
      setBump((b) => b + 1);
    } catch (err) {
      setError(errorText(err));
    }
  };
  const remove = async (p: Price) => {
    setError(null);
    try {
      await sendJSON("DELETE", `/prices/${p.id}`);
      setNotice(`Override of “${p.model}” deleted.`);
      setBump((b) => b + 1);
    } catch (err) {
      setError(errorText(err));
    }
  };
  const priceThis = (name: string) => {
    setModel(name);
    form.current?.scrollIntoView({ block: "center" });
    modelInput.current?.focus();
  };

  const needle = filter.trim().toLowerCase();
  const rows = (prices.data?.prices ?? []).filter((p) => !needle || p.model.includes(needle) || (p.vendor ?? "").toLowerCase().includes(needle));
  const missing = (unknown.data?.models ?? []).filter((m) => m.model);
  return (
    <section className="card" data-testid="prices">
      <h2>Model prices</h2>
      {prices.error ? <p className="muted">Not available: {prices.error}</p> : null}
      {missing.length > 0 ? (
        <div className="unknown-models" data-testid="unknown-models">
          <p className="text-error">Models without a price in the last 7 days (their cost counts as 0):</p>
          <ul className="plain">
            {missing.map((m) => (
              <li key={m.model} data-model={m.model}>
                <span className="tele">{visible(m.model, 100)}</span>{" "}
                <span className="muted small">
                  {fmtCount(m.calls)} calls, {fmtCount(m.tokens.total)} tokens · {visible(m.agents.join(", "), 120)}
                </span>{" "}
                <button type="button" onClick={() => priceThis(m.model ?? "")} data-testid="set-price">
                  Set price
                </button>
              </li>
            ))}
          </ul>
        </div>
      ) : null}
      <form ref={form} className="settings-form" onSubmit={save} aria-label="Set a price">
        <h3>Set a price (USD per million tokens)</h3>
        <div className="form-row">
          <label>
            Model{" "}
            <input ref={modelInput} value={model} onChange={(e) => setModel(e.target.value)} required maxLength={512} placeholder="gpt-4o" className="wide" data-testid="price-model" />
          </label>
          <label>
            Input <input value={input} onChange={(e) => setInput(e.target.value)} required inputMode="decimal" pattern="[0-9]+(\.[0-9]+)?" size={8} placeholder="2.50" data-testid="price-input" />
          </label>
          <label>
            Output <input value={output} onChange={(e) => setOutput(e.target.value)} required inputMode="decimal" pattern="[0-9]+(\.[0-9]+)?" size={8} placeholder="10" data-testid="price-output" />
          </label>
          <label>
            Cached input{" "}
            <input value={cached} onChange={(e) => setCached(e.target.value)} inputMode="decimal" pattern="[0-9]+(\.[0-9]+)?" size={8} placeholder="= input" data-testid="price-cached" />
          </label>
        </div>
        <div className="form-row">
          <fieldset className="checks">
            <legend>Applies</legend>
            <label>
              <input type="radio" name="when" checked={when === "now"} onChange={() => setWhen("now")} /> from now
            </label>
            <label>
              <input type="radio" name="when" checked={when === "from"} onChange={() => setWhen("from")} data-testid="price-when-from" /> from{" "}
              <input
                type="datetime-local"
                value={local}
                onChange={(e) => {
                  setLocal(e.target.value);
                  setWhen("from");
                }}
                aria-label="Effective from"
                data-testid="price-effective"
              />
            </label>
            <label>
              <input type="radio" name="when" checked={when === "always"} onChange={() => setWhen("always")} data-testid="price-when-always" /> always (all past
              usage too)
            </label>
          </fieldset>
          <button type="submit" data-testid="price-save">
            Save price
          </button>
        </div>
      </form>
      {notice ? (
        <p className="notice" role="status" data-testid="price-notice">
          {notice}
        </p>
      ) : null}
      {error ? (
        <p className="text-error" role="alert">
          {error}
        </p>
      ) : null}
      {prices.data ? (
        <>
          <div className="section-head">
            <p className="muted small">Bundled table as of {prices.data.as_of}; your overrides come first.</p>
            <input type="search" value={filter} onChange={(e) => setFilter(e.target.value)} placeholder="filter models" aria-label="Filter models" data-testid="price-filter" />
          </div>
          <table className="table" data-testid="prices-table">
            <thead>
              <tr>
                <th scope="col">Model</th>
                <th scope="col">Vendor</th>
                <th scope="col" className="num">
                  Input
                </th>
                <th scope="col" className="num">
                  Output
                </th>
                <th scope="col" className="num">
                  Cached input
                </th>
                <th scope="col">From</th>
                <th scope="col">Source</th>
                <th scope="col" />
              </tr>
            </thead>
            <tbody>
              {rows.map((p) => (
                <tr key={`${p.source}-${p.model}-${p.id ?? ""}-${p.effective_from ?? ""}`} data-model={p.model} data-source={p.source}>
                  <td className="tele">{visible(p.model, 100)}</td>
                  <td>{visible(p.vendor ?? "", 40)}</td>
                  <td className="num">{p.input_usd_per_mtok}</td>
                  <td className="num">{p.output_usd_per_mtok}</td>
                  <td className="num">{p.cached_usd_per_mtok ?? "—"}</td>
                  <td className="small">{p.effective_from ? fmtDate(p.effective_from) : "always"}</td>
                  <td>{p.source}</td>
                  <td>
                    {p.source === "override" && p.id !== null ? (
                      <ConfirmButton label="Delete" question="Delete this override?" confirm="Delete override" onConfirm={() => remove(p)} testId="price-delete" />
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : null}
    </section>
  );
}
