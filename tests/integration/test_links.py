"""Deep links in GET /api/v1/traces/{trace_id}: none until configured; with templates, trace
links from the trace id and span links from a span attribute."""

from __future__ import annotations

from tests.conftest import ServerFactory
from tests.otlp_helpers import PROTOBUF, request, span


def test_trace_links_from_settings(make_server: ServerFactory) -> None:
    body = request(
        [span(5, 1, name="root"), span(5, 2, parent=1, attrs={"langchain.run_id": "r-7"})]
    ).SerializeToString()
    trace_id = (5).to_bytes(16, "big").hex()

    plain = make_server()
    assert plain.post("/v1/traces", content=body, headers=PROTOBUF).status_code == 200
    detail = plain.get(f"/api/v1/traces/{trace_id}").json()
    assert detail["links"] == []
    assert all(s["external_links"] == [] for s in detail["spans"])

    linked = make_server(
        link_langfuse_url="https://langfuse.example/",
        link_langfuse_project="p1",
        link_langsmith_url="https://smith.example",
        link_langsmith_org="o",
        link_langsmith_project="p",
        link_templates=[
            {"system": "kibana", "label": "Logs", "url": "https://kibana.example/t?q={trace_id}"}
        ],
    )
    detail = linked.get(f"/api/v1/traces/{trace_id}").json()
    assert detail["links"] == [
        {
            "system": "langfuse",
            "label": "Langfuse",
            "url": f"https://langfuse.example/project/p1/traces/{trace_id}",
        },
        {"system": "kibana", "label": "Logs", "url": f"https://kibana.example/t?q={trace_id}"},
        {
            "system": "langsmith",
            "label": "LangSmith run",
            "url": "https://smith.example/o/o/projects/p/p/r/r-7",
            "span_id": (2).to_bytes(8, "big").hex(),
            "span_name": "step",
        },
    ]
    by_id = {s["span_id"]: s for s in detail["spans"]}
    assert by_id[(2).to_bytes(8, "big").hex()]["external_links"][0]["system"] == "langsmith"
    assert by_id[(1).to_bytes(8, "big").hex()]["external_links"] == []
