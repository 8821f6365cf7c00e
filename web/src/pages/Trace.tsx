import { useEffect, useMemo, useState } from "react";
import { Link, useLocation, useParams } from "react-router-dom";
import type { TraceDetail } from "../api";
import { ExternalLinks } from "../components/ExternalLinks";
import { LogTable } from "../components/LogTable";
import { SpanDetails } from "../components/SpanDetails";
import { StatusBadge } from "../components/TraceTable";
import { Waterfall } from "../components/Waterfall";
import { fmtCount, fmtMs, fmtTime, fmtUsd, visible } from "../format";
import { useApi, useLive } from "../hooks";
import { carry } from "../query";

export function TracePage() {
  const { traceId = "" } = useParams();
  const { search } = useLocation();
  const { lastTraces } = useLive();
  // Refetch only when spans of this trace arrive (or while polling), not on every ingest.
  const [refresh, setRefresh] = useState(0);
  useEffect(() => {
    if (lastTraces && (lastTraces.ids.includes("*") || lastTraces.ids.includes(traceId.toLowerCase()))) {
      setRefresh((r) => r + 1);
    }
  }, [lastTraces, traceId]);
  const { data, error } = useApi<TraceDetail>(`/traces/${encodeURIComponent(traceId)}`, {}, refresh);
  const [selected, setSelected] = useState<string | null>(null);
  const byId = useMemo(() => new Map((data?.spans ?? []).map((s) => [s.span_id, s])), [data]);
  const current = (selected && byId.get(selected)) || data?.spans[0] || null;
  const spanNames = useMemo(() => new Map((data?.spans ?? []).map((s) => [s.span_id, s.name])), [data]);

  if (error && !data) {
    return (
      <div className="page" data-testid="page-trace">
        <p className="error-box" role="alert">
          {error}
        </p>
        <Link to={`/traces${carry(search)}`}>Back to traces</Link>
      </div>
    );
  }
  if (!data) return <p className="muted">Loading trace…</p>;
  const t = data.trace;
  return (
    <div className="page" data-testid="page-trace">
      <div className="page-head">
        <div>
          <Link to={`/traces${carry(search)}`} className="muted">
            ← Traces
          </Link>
          <h1 className="tele trace-title">{visible(t.name, 300)}</h1>
        </div>
        <StatusBadge status={t.status} />
      </div>
      <dl className="facts card">
        <div>
          <dt>Agent</dt>
          <dd className="tele">{visible(t.agent, 80)}</dd>
        </div>
        <div>
          <dt>Duration</dt>
          <dd>{fmtMs(t.duration_ms)}</dd>
        </div>
        <div>
          <dt>Spans</dt>
          <dd data-testid="trace-span-count">{fmtCount(t.span_count)}</dd>
        </div>
        <div>
          <dt>Errors</dt>
          <dd className={t.error_count ? "text-error" : undefined}>{fmtCount(t.error_count)}</dd>
        </div>
        <div>
          <dt>LLM / tool calls</dt>
          <dd>
            {t.llm_calls} / {t.tool_calls}
          </dd>
        </div>
        <div>
          <dt>Tokens</dt>
          <dd>{fmtCount(t.tokens.total)}</dd>
        </div>
        <div>
          <dt>Cost</dt>
          <dd>{fmtUsd(t.cost_usd)}</dd>
        </div>
        <div>
          <dt>Started</dt>
          <dd>{fmtTime(t.start_time)}</dd>
        </div>
        <div>
          <dt>Trace id</dt>
          <dd className="mono">{t.trace_id}</dd>
        </div>
      </dl>
      <ExternalLinks links={data.links ?? []} testId="trace-links" title="Open in" />
      {t.error_message ? <p className="error-box tele">{visible(t.error_message, 2000)}</p> : null}
      {data.truncated ? <p className="muted">This trace has more spans than shown: the earliest {data.spans.length} are drawn.</p> : null}
      {data.bottlenecks.top.length > 0 ? (
        <section className="card bottlenecks" data-testid="bottlenecks">
          <h2>Where the time went</h2>
          <ol>
            {data.bottlenecks.top.map((b) => (
              <li key={b.span_id}>
                <button type="button" className="linklike" onClick={() => setSelected(b.span_id)}>
                  <span className="tele">{visible(b.name, 120)}</span>
                </button>{" "}
                <span className="share">{Math.round(b.share * 100)}%</span> <span className="muted">self {fmtMs(b.self_ms)}</span>
              </li>
            ))}
          </ol>
        </section>
      ) : null}
      <div className="trace-body">
        <section className="card wf-card">
          <div className="legend" aria-label="Colours">
            {["agent", "llm", "tool", "retriever", "chain"].map((k) => (
              <span key={k} className={`legend-item kind-${k}`}>
                {k}
              </span>
            ))}
            <span className="legend-item kind-error">error</span>
            <span className="legend-item legend-critical">critical path</span>
          </div>
          <Waterfall
            spans={data.spans}
            totalMs={t.duration_ms}
            bottlenecks={data.bottlenecks.top}
            selected={current?.span_id ?? null}
            onSelect={setSelected}
          />
        </section>
        {current ? <SpanDetails span={current} /> : null}
      </div>
      <section className="card" data-testid="trace-logs">
        <h2>
          Logs{" "}
          <Link to={`/logs?trace_id=${t.trace_id}`} className="muted small">
            open in the log explorer
          </Link>
        </h2>
        {(data.logs ?? []).length === 0 ? <p className="muted">No logs carry this trace's id.</p> : null}
        <LogTable
          items={data.logs ?? []}
          showTrace={false}
          testId="trace-logs-table"
          spanNames={spanNames}
          onSpan={(id) => {
            setSelected(id);
            document.querySelector(`[data-span-id="${CSS.escape(id)}"]`)?.scrollIntoView({ block: "nearest" });
          }}
        />
        {data.logs_truncated ? <p className="muted">The first {data.logs?.length} logs are shown.</p> : null}
      </section>
    </div>
  );
}
