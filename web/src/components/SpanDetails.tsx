import type { Span } from "../api";
import { fmtCount, fmtMs, fmtTime, fmtUsd, safeHref, visible } from "../format";
import { ExternalLinks } from "./ExternalLinks";

const PROMPT_KEYS = /^(gen_ai\.(prompt|completion|input|output)|llm\.(input|output)_messages|input\.value|output\.value|gen_ai\.(user|assistant|system)\.message)/;

function Value({ value }: { value: unknown }) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  const href = typeof value === "string" ? safeHref(value) : null;
  if (href) {
    return (
      <a href={href} target="_blank" rel="noopener noreferrer nofollow" className="tele">
        {visible(text, 500)}
      </a>
    );
  }
  if (text.length > 400 || text.includes("\n")) {
    return (
      <details>
        <summary className="tele">{visible(text.split("\n")[0], 120)}</summary>
        <pre className="tele long">{visible(text, 20000)}</pre>
      </details>
    );
  }
  return <span className="tele">{visible(text, 400)}</span>;
}

function KeyValues({ entries, testId }: { entries: [string, unknown][]; testId?: string }) {
  if (entries.length === 0) return <p className="muted">none</p>;
  return (
    <table className="kv" data-testid={testId}>
      <tbody>
        {entries.map(([k, v]) => (
          <tr key={k}>
            <th scope="row" className="tele">
              {visible(k, 200)}
            </th>
            <td>
              <Value value={v} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function SpanDetails({ span }: { span: Span }) {
  const attrs = Object.entries(span.attributes ?? {});
  const prompt = attrs.filter(([k]) => PROMPT_KEYS.test(k));
  const rest = attrs.filter(([k]) => !PROMPT_KEYS.test(k));
  const exceptions = span.events.filter((e) => e.name === "exception");
  const others = span.events.filter((e) => e.name !== "exception");
  return (
    <aside className="card span-details" data-testid="span-details" aria-label="Span details">
      <h3 className="tele">{visible(span.name, 300)}</h3>
      <dl className="facts">
        <div>
          <dt>Kind</dt>
          <dd>{visible(span.kind, 40)}</dd>
        </div>
        <div>
          <dt>Duration</dt>
          <dd>{fmtMs(span.duration_ms)}</dd>
        </div>
        <div>
          <dt>Self time</dt>
          <dd>{fmtMs(span.self_ms)}</dd>
        </div>
        <div>
          <dt>Status</dt>
          <dd className={span.status === "error" ? "text-error" : undefined}>{span.status}</dd>
        </div>
        <div>
          <dt>Agent</dt>
          <dd className="tele">{visible(span.agent, 80)}</dd>
        </div>
        {span.model ? (
          <div>
            <dt>Model</dt>
            <dd className="tele">{visible(span.model, 80)}</dd>
          </div>
        ) : null}
        {span.tokens.total !== null ? (
          <div>
            <dt>Tokens</dt>
            <dd>
              {fmtCount(span.tokens.input)} in / {fmtCount(span.tokens.output)} out
            </dd>
          </div>
        ) : null}
        {span.cost_usd !== null ? (
          <div>
            <dt>Cost</dt>
            <dd>{fmtUsd(span.cost_usd)}</dd>
          </div>
        ) : null}
        <div>
          <dt>Start</dt>
          <dd>{fmtTime(span.start_time)}</dd>
        </div>
        <div>
          <dt>Span id</dt>
          <dd className="mono">{span.span_id}</dd>
        </div>
      </dl>
      <ExternalLinks links={span.external_links ?? []} testId="span-links" title="This span in" />
      {span.status_message ? <p className="text-error tele">{visible(span.status_message, 2000)}</p> : null}
      {exceptions.map((e, i) => (
        <section key={`exc-${i}`} className="exception" data-testid="exception">
          <h4 className="text-error tele">
            {visible(e.attributes["exception.type"] ?? "Exception", 200)}: {visible(e.attributes["exception.message"] ?? "", 1000)}
          </h4>
          {e.attributes["exception.stacktrace"] ? (
            <details open>
              <summary>Stack trace</summary>
              <pre className="tele long">{visible(e.attributes["exception.stacktrace"], 50000)}</pre>
            </details>
          ) : null}
        </section>
      ))}
      {prompt.length > 0 ? (
        <details className="prompt">
          <summary>Prompt and response ({prompt.length})</summary>
          <KeyValues entries={prompt} />
        </details>
      ) : null}
      <h4>Attributes</h4>
      <KeyValues entries={rest} testId="span-attributes" />
      {others.length > 0 ? (
        <>
          <h4>Events</h4>
          <ul className="events">
            {others.map((e, i) => (
              <li key={`ev-${i}`}>
                <span className="tele">{visible(e.name, 200)}</span> <span className="muted">{fmtTime(e.time)}</span>
                <KeyValues entries={Object.entries(e.attributes ?? {})} />
              </li>
            ))}
          </ul>
        </>
      ) : null}
      <details>
        <summary>Resource</summary>
        <KeyValues entries={Object.entries(span.resource ?? {})} />
      </details>
    </aside>
  );
}
