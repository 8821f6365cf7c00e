"""Deep links from a trace to the other tools a team runs (pure; issue 9).

A link template is an http(s) URL with placeholders: ``{trace_id}``, ``{span_id}`` and
``{attr:key}`` (a span attribute; ``{attr:a|b}`` takes the first present). Every value is
percent-encoded, and a template must start with ``http://`` or ``https://`` and a host (checked
in settings), so a link can only lead where the operator pointed it: telemetry cannot turn it
into ``javascript:`` or another host. Templates with an ``{attr:...}`` placeholder are span
links (one per span that has the attribute); the others are trace links.

Built in, off until configured: Jaeger (``/trace/{trace_id}``), Grafana Tempo (Explore with a
TraceQL query for the trace id), Langfuse (``/project/{project}/traces/{trace_id}``: Langfuse
keeps OpenTelemetry trace ids) and LangSmith (``/o/{org}/projects/p/{project}/r/{run id}`` from
a span's ``langsmith.run_id``-style attribute).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

_PLACEHOLDER = re.compile(r"\{(trace_id|span_id|attr:[^{}]+)\}")
MAX_VALUE = 512
MAX_SPAN_LINKS = 200


@dataclass(frozen=True, slots=True)
class LinkTemplate:
    system: str
    label: str
    url: str

    @property
    def span_level(self) -> bool:
        return "{attr:" in self.url


def _q(value: str) -> str:
    return quote(value, safe="")


def builtin_templates(
    *,
    jaeger_url: str | None = None,
    tempo_url: str | None = None,
    tempo_datasource: str = "tempo",
    langfuse_url: str | None = None,
    langfuse_project: str | None = None,
    langsmith_url: str | None = None,
    langsmith_org: str | None = None,
    langsmith_project: str | None = None,
    langsmith_attributes: Sequence[str] = (),
) -> list[LinkTemplate]:
    out: list[LinkTemplate] = []
    if jaeger_url:
        out.append(LinkTemplate("jaeger", "Jaeger", f"{jaeger_url}/trace/{{trace_id}}"))
    if tempo_url:
        head = orjson.dumps({"datasource": tempo_datasource}).decode()[:-1]
        left = (
            _q(head + ',"queries":[{"refId":"A","queryType":"traceql","query":"')
            + "{trace_id}"
            + _q('"}],"range":{"from":"now-7d","to":"now"}}')
        )
        out.append(LinkTemplate("tempo", "Tempo (Grafana)", f"{tempo_url}/explore?left={left}"))
    if langfuse_url and langfuse_project:
        out.append(
            LinkTemplate(
                "langfuse",
                "Langfuse",
                f"{langfuse_url}/project/{_q(langfuse_project)}/traces/{{trace_id}}",
            )
        )
    if langsmith_url and langsmith_org and langsmith_project and langsmith_attributes:
        keys = "|".join(langsmith_attributes)
        out.append(
            LinkTemplate(
                "langsmith",
                "LangSmith run",
                f"{langsmith_url}/o/{_q(langsmith_org)}/projects/p/{_q(langsmith_project)}"
                f"/r/{{attr:{keys}}}",
            )
        )
    return out


def templates_from_settings(settings: Any) -> list[LinkTemplate]:
    out = builtin_templates(
        jaeger_url=settings.link_jaeger_url,
        tempo_url=settings.link_tempo_url,
        tempo_datasource=settings.link_tempo_datasource,
        langfuse_url=settings.link_langfuse_url,
        langfuse_project=settings.link_langfuse_project,
        langsmith_url=settings.link_langsmith_url,
        langsmith_org=settings.link_langsmith_org,
        langsmith_project=settings.link_langsmith_project,
        langsmith_attributes=settings.link_langsmith_attributes,
    )
    for t in settings.link_templates:
        out.append(LinkTemplate(t["system"], t.get("label") or t["system"], t["url"]))
    return out


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | str):
        text = str(value).strip()
        return text if 0 < len(text) <= MAX_VALUE else None
    return None


def render(
    template: LinkTemplate,
    *,
    trace_id: str,
    span_id: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> str | None:
    """The URL, or None when a placeholder has no value (the span lacks the attribute)."""
    missing = False

    def fill(match: re.Match[str]) -> str:
        nonlocal missing
        name = match.group(1)
        value: str | None
        if name == "trace_id":
            value = trace_id
        elif name == "span_id":
            value = span_id
        else:
            value = None
            for key in name.removeprefix("attr:").split("|"):
                value = _text((attributes or {}).get(key.strip()))
                if value is not None:
                    break
        if not value:
            missing = True
            return ""
        return _q(value)

    url = _PLACEHOLDER.sub(fill, template.url)
    if missing or not url.startswith(("http://", "https://")):
        return None
    return url


def add_links(detail: dict[str, Any], templates: Sequence[LinkTemplate]) -> dict[str, Any]:
    """Set ``links`` on a trace detail (trace links, then span links with their ``span_id``)
    and ``external_links`` on each span."""
    trace_id = detail["trace"]["trace_id"]
    root = detail["trace"].get("root_span_id")
    links: list[dict[str, Any]] = []
    for t in templates:
        if t.span_level:
            continue
        url = render(t, trace_id=trace_id, span_id=root)
        if url is not None:
            links.append({"system": t.system, "label": t.label, "url": url})
    span_templates = [t for t in templates if t.span_level]
    seen: set[str] = set()
    for node in detail["spans"]:
        mine: list[dict[str, Any]] = []
        for t in span_templates:
            url = render(
                t, trace_id=trace_id, span_id=node["span_id"], attributes=node.get("attributes")
            )
            if url is None:
                continue
            link = {"system": t.system, "label": t.label, "url": url}
            mine.append(link)
            if url not in seen and len(seen) < MAX_SPAN_LINKS:
                seen.add(url)
                links.append({**link, "span_id": node["span_id"], "span_name": node["name"]})
        node["external_links"] = mine
    detail["links"] = links
    return detail
