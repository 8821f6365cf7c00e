"""Two real `pharos serve` processes on one PostgreSQL database and one Redis, as the README's
scale-out section runs them: ingest through both at once with the real OTLP exporter, every
acknowledged span stored exactly once and both instances answering the same numbers; a live
dashboard on B sees what A ingested; a key revoked on A is refused by B within the key cache
time; the gateway's rate limit is one budget across both; an alert fires once (not once per
instance), and when the instance evaluating alerts is SIGKILLed the other takes over."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode
from sqlalchemy import func, select
from websockets.sync.client import connect

from pharos.server.access.keys import create_key, parse_scopes
from pharos.server.db.engine import make_engine
from pharos.server.db.migrate import upgrade
from pharos.server.db.schema import spans
from tests.alert_receivers import receiver, wait_for
from tests.browser import seed
from tests.conftest import REQUIRE_SERVICES, free_port, postgres_database
from tests.fake_upstream import fake_upstream
from tests.ops_helpers import servers, stop_server

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
REDIS_URL = os.environ.get("PHAROS_TEST_REDIS_URL")
KEY_CACHE_SECONDS = 1.0
RUNS = 400  # agent runs, 5 spans each


def _need_redis() -> str:
    if not REDIS_URL:
        if REQUIRE_SERVICES:
            pytest.fail("PHAROS_TEST_REDIS_URL must be set when services are required (CI)")
        pytest.skip("PHAROS_TEST_REDIS_URL is not set")
    return REDIS_URL


def _agent_runs(agent: str) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "scale-test"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("scale")
    for i in range(RUNS):
        with tracer.start_as_current_span(
            f"invoke_agent {agent}",
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent},
        ) as root:
            for step in range(3):
                with tracer.start_as_current_span(
                    "chat gpt-4o-mini",
                    attributes={
                        "gen_ai.operation.name": "chat",
                        "gen_ai.request.model": "gpt-4o-mini",
                        "gen_ai.usage.input_tokens": 100 + step,
                        "gen_ai.usage.output_tokens": 20,
                    },
                ):
                    pass
            with tracer.start_as_current_span(
                "execute_tool lookup", attributes={"gen_ai.operation.name": "execute_tool"}
            ):
                pass
            if i % 10 == 0:
                root.set_status(Status(StatusCode.ERROR, "upstream said no"))
    provider.shutdown()
    return list(memory.get_finished_spans())


def _export_through(
    urls: list[str], batches: list[list[ReadableSpan]], key: str
) -> set[tuple[str, str]]:
    """Four exporter threads, two per instance; the spans of each SUCCESS are acknowledged."""
    acked: set[tuple[str, str]] = set()
    lock = threading.Lock()
    work = iter(enumerate(batches))

    def run(n: int) -> None:
        exporter = OTLPSpanExporter(
            endpoint=f"{urls[n % len(urls)]}/v1/traces",
            headers={"authorization": f"Bearer {key}"},
            timeout=30,
        )
        try:
            while True:
                with lock:
                    item = next(work, None)
                if item is None:
                    return
                _, batch = item
                if exporter.export(batch) is SpanExportResult.SUCCESS:
                    with lock:
                        acked.update(
                            (f"{s.context.trace_id:032x}", f"{s.context.span_id:016x}")
                            for s in batch
                        )
        finally:
            exporter.shutdown()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    return acked


def _leader(urls: list[str], key: str) -> list[bool]:
    out = []
    for url in urls:
        checks = httpx.get(f"{url}/readyz", timeout=5).json()["checks"]
        out.append(bool(checks["alerting"]["leader"]))
    return out


def _firings(hook: Any, rule: str) -> list[dict[str, Any]]:
    with hook.lock:
        got = [r.json for r in hook.accepted]
    return [p for p in got if p["event"] == "firing" and p["alert"]["rule"] == rule]


def test_two_instances_share_everything(tmp_path: Path) -> None:
    redis_url = _need_redis()
    agent = f"scale-{uuid.uuid4().hex[:8]}"
    with (
        postgres_database() as db_url,
        receiver(free_port()) as hook,
        fake_upstream() as upstream,
    ):
        upgrade(db_url)
        engine = make_engine(db_url)
        admin, _ = create_key(engine, "admin", parse_scopes("admin"))
        auth = {"authorization": f"Bearer {admin}"}
        env = {
            "PHAROS_REDIS_URL": redis_url,
            "PHAROS_KEY_CACHE_SECONDS": str(KEY_CACHE_SECONDS),
            "PHAROS_ALERT_EVAL_INTERVAL_SECONDS": "1",
            "PHAROS_ALERT_DEFAULT_RULES": "false",
            "PHAROS_ALERT_OUTBOX_POLL_SECONDS": "0.2",
            "PHAROS_ALERT_WEBHOOK_URL": hook.url,
            "PHAROS_LIVE_SUMMARY_SECONDS": "0.5",
        }
        with servers(db_url, tmp_path, 2, env) as (a, b):
            urls = [a.url, b.url]
            ca = httpx.Client(base_url=a.url, headers=auth, timeout=30)
            cb = httpx.Client(base_url=b.url, headers=auth, timeout=30)

            # -- live: a dashboard on B sees a trace posted to A --------------------------------
            ws_url = b.url.replace("http://", "ws://") + "/api/v1/live?window=15m"
            with connect(ws_url, additional_headers=auth, open_timeout=10) as ws:
                assert json.loads(ws.recv(timeout=10))["bus"] == "redis"
                trace_id, run = seed.agent_run(f"{agent}-live", steps=1, ago_s=1)
                r = ca.post(
                    "/v1/traces",
                    content=seed.request(run),
                    headers={"content-type": "application/x-protobuf"},
                )
                assert r.status_code == 200, r.text
                deadline = time.monotonic() + 20
                while True:
                    event = json.loads(ws.recv(timeout=20))
                    if event["type"] == "trace" and any(
                        t["trace_id"] == trace_id.hex() for t in event["traces"]
                    ):
                        break
                    assert time.monotonic() < deadline, "B never relayed A's trace"

            # -- ingest through both at once with the real exporter ----------------------------
            error_rule = ca.post(
                "/api/v1/alerts/rules",
                json={
                    "name": f"{agent}-errors",
                    "expression": f'errors(15m, agent="{agent}") > 0',
                    "severity": "critical",
                },
            )
            assert error_rule.status_code == 201, error_rule.text
            finished = _agent_runs(agent)
            batches = [finished[i : i + 50] for i in range(0, len(finished), 50)]
            acked = _export_through(urls, batches, admin)
            assert len(acked) == len(finished) == RUNS * 5
            with engine.connect() as conn:
                stored = {
                    (t, s) for t, s in conn.execute(select(spans.c.trace_id, spans.c.span_id))
                }
                dupes = conn.execute(
                    select(spans.c.trace_id, spans.c.span_id)
                    .group_by(spans.c.trace_id, spans.c.span_id)
                    .having(func.count() > 1)
                ).all()
            assert acked <= stored and not dupes
            figures = []
            for client in (ca, cb):
                summary = client.get(
                    "/api/v1/metrics/summary", params={"window": "15m", "agent": agent}
                ).json()
                page = client.get("/api/v1/traces", params={"agent": agent, "limit": 500}).json()
                figures.append((summary["requests"], summary["errors"], len(page["items"])))
            assert figures[0] == figures[1] == (RUNS, RUNS // 10, RUNS)

            # -- the alert fires once, though both instances run the engine ----------------------
            rule = f"{agent}-errors"
            wait_for(lambda: len(_firings(hook, rule)) >= 1, timeout=30)
            time.sleep(4)  # several more evaluation cycles on both instances
            assert len(_firings(hook, rule)) == 1
            assert sorted(_leader(urls, admin)) == [False, True]

            # -- a key revoked on A is refused by B within the key cache time ------------------
            made = ca.post("/api/v1/keys", json={"name": "temp", "scopes": ["read"]}).json()
            temp = {"authorization": f"Bearer {made['key']}"}
            assert httpx.get(f"{b.url}/api/v1/traces", headers=temp).status_code == 200
            assert ca.delete(f"/api/v1/keys/{made['id']}").status_code == 200
            time.sleep(KEY_CACHE_SECONDS + 0.5)
            assert httpx.get(f"{b.url}/api/v1/traces", headers=temp).status_code == 401

            # -- one rate-limit budget across both instances ----------------------------------
            limited = f"{agent}-gw"
            reg = ca.post(
                "/api/v1/agents/registry",
                json={
                    "name": limited,
                    "upstream_url": upstream.url + "/echo",
                    "rpm": 30,
                    "max_queue": 0,
                    "max_wait": 0,
                },
            )
            assert reg.status_code == 201, reg.text
            started = time.monotonic()

            def call(i: int) -> int:
                with httpx.Client(headers=auth, timeout=60) as c:
                    return c.post(
                        f"{urls[i % 2]}/gateway/agents/{limited}/x", content=b"x"
                    ).status_code

            with ThreadPoolExecutor(max_workers=16) as pool:
                codes = list(pool.map(call, range(90)))
            refill = int((time.monotonic() - started) * 30 / 60) + 1
            assert 30 <= codes.count(200) <= 30 + refill, codes
            assert codes.count(429) == 90 - codes.count(200)

            # -- failover: SIGKILL the instance evaluating alerts --------------------------------
            leader, survivor = (a, b) if _leader(urls, admin)[0] else (b, a)
            leader.proc.send_signal(signal.SIGKILL)
            leader.proc.wait(10)
            cs = httpx.Client(base_url=survivor.url, headers=auth, timeout=30)
            after = cs.post(
                "/api/v1/alerts/rules",
                json={
                    "name": f"{agent}-after",
                    "expression": f'requests(15m, agent="{agent}") > 0',
                    "severity": "warning",
                },
            )
            assert after.status_code == 201, after.text
            # The lease (max(3 x 1 s, 10 s)) expires, the survivor takes it and evaluates.
            wait_for(lambda: len(_firings(hook, f"{agent}-after")) >= 1, timeout=40)
            assert _leader([survivor.url], admin) == [True]
            time.sleep(3)
            assert len(_firings(hook, f"{agent}-after")) == 1
            assert len(_firings(hook, rule)) == 1  # the first alert did not fire again
            for client in (ca, cb, cs):
                client.close()
            stop_server(survivor)
        engine.dispose()
