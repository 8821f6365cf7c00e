"""Deep link templates: values are percent-encoded, missing values give no link, and a template
cannot be anything but an http(s) URL."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from pharos.server.links import LinkTemplate, add_links, builtin_templates, render
from pharos.server.settings import Settings

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_builtins_are_off_until_configured() -> None:
    assert builtin_templates() == []
    assert builtin_templates(langfuse_url="https://cloud.langfuse.com") == []  # no project


def test_builtin_urls() -> None:
    t = {
        x.system: x
        for x in builtin_templates(
            jaeger_url="http://jaeger:16686",
            tempo_url="https://grafana.example",
            tempo_datasource="tempo-prod",
            langfuse_url="https://cloud.langfuse.com",
            langfuse_project="proj 1",
            langsmith_url="https://smith.langchain.com",
            langsmith_org="org-1",
            langsmith_project="p-9",
            langsmith_attributes=["langsmith.run_id", "langchain.run_id"],
        )
    }
    assert render(t["jaeger"], trace_id=TRACE) == f"http://jaeger:16686/trace/{TRACE}"
    tempo = render(t["tempo"], trace_id=TRACE)
    assert tempo is not None and tempo.startswith("https://grafana.example/explore?left=%7B")
    assert "tempo-prod" in tempo and TRACE in tempo
    assert (
        render(t["langfuse"], trace_id=TRACE)
        == f"https://cloud.langfuse.com/project/proj%201/traces/{TRACE}"
    )
    assert t["langsmith"].span_level and not t["jaeger"].span_level
    run = "1f0e-22"
    assert (
        render(t["langsmith"], trace_id=TRACE, attributes={"langchain.run_id": run})
        == f"https://smith.langchain.com/o/org-1/projects/p/p-9/r/{run}"
    )
    assert render(t["langsmith"], trace_id=TRACE, attributes={}) is None


@pytest.mark.parametrize(
    "hostile", ["javascript:alert(1)", "../../admin?x=1#y", "https://evil.example/", "a b/c"]
)
def test_attribute_values_cannot_change_where_a_link_goes(hostile: str) -> None:
    t = LinkTemplate("x", "X", "https://x.example/r/{attr:run}")
    url = render(t, trace_id=TRACE, attributes={"run": hostile})
    assert url is not None and url.startswith("https://x.example/r/")
    tail = url.removeprefix("https://x.example/r/")
    assert "/" not in tail and ":" not in tail and "#" not in tail and "?" not in tail


@pytest.mark.parametrize(
    "templates",
    [
        [{"system": "x", "url": "javascript:alert(1)//{trace_id}"}],
        [{"system": "x", "url": "{attr:url}"}],
        [{"system": "x", "url": "data:text/html,{trace_id}"}],
        [{"url": "https://x/{trace_id}"}],
    ],
)
def test_settings_refuse_templates_that_are_not_http_urls(templates: Any) -> None:
    with pytest.raises(ValidationError):
        Settings(link_templates=templates)
    with pytest.raises(ValidationError):
        Settings(link_jaeger_url="javascript:alert(1)")


def test_add_links_puts_trace_links_first_and_span_links_on_their_spans() -> None:
    detail: dict[str, Any] = {
        "trace": {"trace_id": TRACE, "root_span_id": "a1"},
        "spans": [
            {"span_id": "a1", "name": "root", "attributes": {}},
            {"span_id": "b2", "name": "chain", "attributes": {"run": "r-1"}},
            {"span_id": "c3", "name": "same run", "attributes": {"run": "r-1"}},
        ],
    }
    add_links(
        detail,
        [
            LinkTemplate("jaeger", "Jaeger", "http://j/trace/{trace_id}?uiFind={span_id}"),
            LinkTemplate("runs", "Run", "https://runs/{attr:run}"),
        ],
    )
    assert detail["links"] == [
        {"system": "jaeger", "label": "Jaeger", "url": f"http://j/trace/{TRACE}?uiFind=a1"},
        {
            "system": "runs",
            "label": "Run",
            "url": "https://runs/r-1",
            "span_id": "b2",
            "span_name": "chain",
        },
    ]
    assert detail["spans"][0]["external_links"] == []
    assert detail["spans"][2]["external_links"] == [
        {"system": "runs", "label": "Run", "url": "https://runs/r-1"}
    ]
