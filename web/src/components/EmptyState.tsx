import { useState } from "react";

export function firstTraceSnippet(origin: string): string {
  return `pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http

export OTEL_EXPORTER_OTLP_ENDPOINT=${origin}
export OTEL_SERVICE_NAME=my-agent

# or send one span right now:
curl -s ${origin}/v1/traces -H 'content-type: application/json' -d '{
  "resourceSpans": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my-agent"}}]},
    "scopeSpans": [{"spans": [{
      "traceId": "'$(openssl rand -hex 16)'", "spanId": "'$(openssl rand -hex 8)'",
      "name": "invoke_agent my-agent",
      "startTimeUnixNano": "'$(date +%s)000000000'", "endTimeUnixNano": "'$(date +%s)500000000'",
      "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "invoke_agent"}}]
    }]}]
  }]
}'`;
}

export function EmptyState({ title = "No traces yet" }: { title?: string }) {
  const snippet = firstTraceSnippet(window.location.origin);
  const [copied, setCopied] = useState(false);
  return (
    <section className="card empty" data-testid="empty-state">
      <h2>{title}</h2>
      <p>
        Point any OpenTelemetry exporter (Python, JS, the OTel Collector, OpenInference, OpenLLMetry) at this server, or the
        Pharos SDK. The first trace shows up here within seconds.
      </p>
      <pre className="snippet">
        <code>{snippet}</code>
      </pre>
      <button
        type="button"
        onClick={() => {
          void navigator.clipboard?.writeText(snippet).then(() => setCopied(true));
        }}
      >
        {copied ? "Copied" : "Copy"}
      </button>
    </section>
  );
}
