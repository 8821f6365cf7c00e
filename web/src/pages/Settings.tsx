import { fmtAgo, visible } from "../format";
import { useApi } from "../hooks";

interface Price {
  id: number | null;
  model: string;
  vendor: string | null;
  input_usd_per_mtok: string;
  output_usd_per_mtok: string;
  cached_usd_per_mtok: string | null;
  source: string;
}
interface Channel {
  id: number;
  name: string;
  type: string;
  severities?: string[];
  enabled?: boolean;
}
interface Key {
  id: number;
  name: string;
  prefix: string;
  scopes: string[];
  last_used_at?: string | null;
  revoked_at?: string | null;
}

function Unavailable({ error }: { error: string }) {
  return <p className="muted">Not available here: {error}</p>;
}

/** Read-only view of keys, notification channels and prices; changes go through the CLI or API. */
export function SettingsPage() {
  const keys = useApi<{ items: Key[] }>("/keys");
  const channels = useApi<{ items: Channel[] }>("/alerts/channels");
  const prices = useApi<{ as_of: string; prices: Price[] }>("/prices");
  const unknown = useApi<{ models: { model: string; calls?: number }[] }>("/prices/unknown");
  return (
    <div className="page" data-testid="page-settings">
      <div className="page-head">
        <h1>Settings</h1>
      </div>
      <section className="card">
        <h2>API keys</h2>
        {keys.error ? <Unavailable error={keys.error} /> : null}
        {keys.data && keys.data.items.length === 0 ? (
          <p className="muted">
            No keys: the server is open on its loopback address. Create one with <code>pharos keys create</code>.
          </p>
        ) : null}
        {keys.data && keys.data.items.length > 0 ? (
          <table className="table" data-testid="keys-table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Prefix</th>
                <th scope="col">Scopes</th>
                <th scope="col">Last used</th>
                <th scope="col">State</th>
              </tr>
            </thead>
            <tbody>
              {keys.data.items.map((k) => (
                <tr key={k.id}>
                  <td className="tele">{visible(k.name, 100)}</td>
                  <td className="mono">{visible(k.prefix, 40)}</td>
                  <td>{k.scopes.join(", ")}</td>
                  <td>{fmtAgo(k.last_used_at ?? null)}</td>
                  <td>{k.revoked_at ? "revoked" : "active"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
      </section>
      <section className="card">
        <h2>Notification channels</h2>
        {channels.error ? <Unavailable error={channels.error} /> : null}
        {channels.data && channels.data.items.length === 0 ? (
          <p className="muted">
            None yet. Add Slack, PagerDuty, a webhook or e-mail with <code>POST /api/v1/alerts/channels</code> or the
            <code> PHAROS_ALERT_*</code> settings (docs/alerting.md).
          </p>
        ) : null}
        <ul className="plain">
          {(channels.data?.items ?? []).map((c) => (
            <li key={c.id}>
              <strong className="tele">{visible(c.name, 100)}</strong> <span className="muted">{visible(c.type, 20)}</span>{" "}
              {c.severities ? <span className="muted small">{c.severities.join(", ")}</span> : null}
            </li>
          ))}
        </ul>
      </section>
      <section className="card">
        <h2>Model prices</h2>
        {prices.error ? <Unavailable error={prices.error} /> : null}
        {unknown.data && unknown.data.models.length > 0 ? (
          <p className="text-error">
            Models without a price (their cost counts as 0): {unknown.data.models.map((m) => visible(m.model, 80)).join(", ")}. Add one with{" "}
            <code>pharos prices set</code>.
          </p>
        ) : null}
        {prices.data ? (
          <>
            <p className="muted small">Bundled table as of {prices.data.as_of}; overrides come first. USD per million tokens.</p>
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
                  <th scope="col">Source</th>
                </tr>
              </thead>
              <tbody>
                {prices.data.prices.map((p) => (
                  <tr key={`${p.source}-${p.model}-${p.id ?? ""}`}>
                    <td className="tele">{visible(p.model, 100)}</td>
                    <td>{visible(p.vendor ?? "", 40)}</td>
                    <td className="num">{p.input_usd_per_mtok}</td>
                    <td className="num">{p.output_usd_per_mtok}</td>
                    <td className="num">{p.cached_usd_per_mtok ?? "—"}</td>
                    <td>{p.source}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </>
        ) : null}
      </section>
    </div>
  );
}
