import type { ExternalLink } from "../api";
import { safeHref, visible } from "../format";

/** Deep links to other tools. Only http(s) URLs become links; anything else is not shown. */
export function ExternalLinks({ links, testId, title }: { links: ExternalLink[]; testId: string; title?: string }) {
  const safe = links.flatMap((l) => {
    const href = safeHref(l.url);
    return href ? [{ ...l, href }] : [];
  });
  if (safe.length === 0) return null;
  return (
    <nav className="external-links" data-testid={testId} aria-label={title ?? "Open in other tools"}>
      {title ? <span className="muted">{title}</span> : null}
      {safe.map((l) => (
        <a
          key={`${l.system}-${l.href}`}
          href={l.href}
          target="_blank"
          rel="noopener noreferrer nofollow"
          className={`ext-link ext-${l.system.replace(/[^a-z0-9-]/gi, "")}`}
          title={l.span_name ? `${l.label}: ${l.span_name}` : l.label}
          data-system={l.system}
        >
          {visible(l.label, 60)}
          {l.span_name ? <span className="muted"> · {visible(l.span_name, 40)}</span> : null} ↗
        </a>
      ))}
    </nav>
  );
}
