"""How fast the dashboard draws a 2,000-span trace's waterfall in Chromium.

Starts a real ``pharos serve`` on a temporary SQLite file, ingests one trace of ``--spans``
spans over OTLP/HTTP, and then, in Debian's Chromium through Playwright, times per round:

- **baseline**: loading the dashboard on a page with nothing to fetch (its "not found" route),
  from navigation to the text being on screen: the fixed cost of loading the app;
- **trace page**: from navigation to the waterfall's rows being drawn (includes fetching the
  trace from the API, which is timed on its own in the page as **API fetch**);
- **scroll to the end**: jumping to the last span and waiting until it is drawn (the waterfall
  draws only the rows near the viewport above 400 rows).

Prints medians and the trace page's ratio to the baseline; the target is a waterfall on screen in
under 1 s. Needs the dashboard built (``make web``) and /usr/bin/chromium.

    .venv/bin/python bench/waterfall.py [--spans 2000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
MS = 1_000_000


def kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def big_trace(n: int) -> tuple[str, ExportTraceServiceRequest]:
    """A root agent span, then steps (LLM calls) each with tool children: ``n`` spans."""
    trace_id = os.urandom(16)
    start = time.time_ns() - 120 * 10**9
    spans: list[Span] = []
    per_step = 10
    steps = max(1, (n - 1) // per_step)
    total_ms = steps * 20 + 10

    def add(sid: int, parent: int, name: str, off_ms: float, dur_ms: float, op: str) -> None:
        spans.append(
            Span(
                trace_id=trace_id,
                span_id=sid.to_bytes(8, "big"),
                parent_span_id=parent.to_bytes(8, "big") if parent else b"",
                name=name,
                start_time_unix_nano=start + int(off_ms * MS),
                end_time_unix_nano=start + int((off_ms + dur_ms) * MS),
                attributes=[kv("gen_ai.operation.name", op), kv("gen_ai.agent.name", "bench")],
                status=Status(
                    code=Status.STATUS_CODE_ERROR if sid % 97 == 0 else Status.STATUS_CODE_OK
                ),
            )
        )

    add(1, 0, "invoke_agent bench", 0, total_ms, "invoke_agent")
    sid = 2
    for s in range(steps):
        step_id = sid
        add(step_id, 1, f"chat step {s}", 5 + s * 20, 18, "chat")
        sid += 1
        for c in range(per_step - 1):
            if sid > n:
                break
            add(sid, step_id, f"execute_tool t{c}", 6 + s * 20 + c * 1.5, 1.2, "execute_tool")
            sid += 1
    while sid <= n:  # top up to exactly n spans
        add(sid, 1, f"execute_tool extra {sid}", 1, 1, "execute_tool")
        sid += 1
    req = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=[kv("service.name", "bench")]),
                scope_spans=[ScopeSpans(spans=spans)],
            )
        ]
    )
    return trace_id.hex(), req


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if not (ROOT / "src/pharos/server/web/dist/index.html").is_file():
        print("the dashboard is not built: run `make web` first", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PHAROS_DATABASE_URL": f"sqlite:///{tmp}/bench.db"}
        server = subprocess.Popen(
            [sys.executable, "-m", "pharos.cli", "serve", "--port", str(port), "--grpc-port", "0"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            trace_id, req = big_trace(args.spans)
            r = httpx.post(
                f"{base}/v1/traces",
                content=req.SerializeToString(),
                headers={"content-type": "application/x-protobuf"},
                timeout=60,
            )
            r.raise_for_status()
            detail = httpx.get(f"{base}/api/v1/traces/{trace_id}", timeout=60).json()
            spans = detail["spans"]
            assert len(spans) == args.spans, len(spans)
            last = spans[-1]["span_id"]
            baseline: list[float] = []
            trace_page: list[float] = []
            fetch: list[float] = []
            scroll: list[float] = []
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                for i in range(args.rounds + 1):  # the first round warms the caches up
                    t0 = time.perf_counter()
                    page.goto(f"{base}/no/such/page")
                    page.get_by_text("Page not found").wait_for()
                    t1 = time.perf_counter()
                    page.goto(f"{base}/traces/{trace_id}")
                    page.locator("[data-testid=waterfall] [data-span-id]").first.wait_for()
                    t2 = time.perf_counter()
                    page.locator(".wf-scroll").focus()
                    page.keyboard.press("End")
                    page.locator(f'[data-span-id="{last}"]').wait_for()
                    t3 = time.perf_counter()
                    api_ms = page.evaluate(
                        """async (id) => { const t = performance.now();
                           await (await fetch(`/api/v1/traces/${id}`)).json();
                           return performance.now() - t; }""",
                        trace_id,
                    )
                    if i == 0:
                        continue
                    baseline.append((t1 - t0) * 1000)
                    trace_page.append((t2 - t1) * 1000)
                    scroll.append((t3 - t2) * 1000)
                    fetch.append(float(api_ms))
                browser.close()
        finally:
            server.terminate()
            server.wait(30)

    def med(xs: list[float]) -> float:
        return statistics.median(xs)

    print(f"waterfall of a {args.spans}-span trace in Chromium, {args.rounds} rounds (medians)")
    print(f"  baseline (app loads, nothing to fetch)  {med(baseline):8.1f} ms")
    print(f"  trace page to waterfall drawn           {med(trace_page):8.1f} ms")
    print(f"    of which API fetch (in the page)      {med(fetch):8.1f} ms")
    print(f"  scroll to the last span drawn           {med(scroll):8.1f} ms")
    print(f"  ratio trace page / baseline             {med(trace_page) / med(baseline):8.2f}x")
    print(f"  target < 1000 ms: {'met' if med(trace_page) < 1000 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
