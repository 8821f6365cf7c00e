"""The gateway: ``/gateway/agents/{name}/{path}`` forwards to a registered agent's upstream and
``/gateway/openai/v1/...`` to an OpenAI-compatible LLM upstream, streaming both ways, after the
checks (budget, rate limits with the FIFO queue), recording a span per request through the
ingest writer.

Flow of one request: budget check (402) → rate limits (wait in the queue, else 429) → forward
(``traceparent`` continued or created) → stream the answer back as it arrives → record a span
(agent, status, latency, bytes; for the LLM proxy model and tokens from the response's or the
last stream chunk's ``usage``; the writer's price book adds the cost).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine
from starlette.responses import Response

from pharos.server.access.keys import ApiKey
from pharos.server.access.limits import Gate, Limit, Limited
from pharos.server.access.registry import AgentConfig, get_agent
from pharos.server.errors import ApiError, error_response
from pharos.server.ingest.normalize import RANK_EXPLICIT_ROOT, SpanRecord
from pharos.server.settings import Settings

log = logging.getLogger("pharos.gateway")
router = APIRouter(tags=["gateway"])

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
LLM_ROUTES = {"chat/completions": "llm", "embeddings": "embedding", "responses": "llm"}


class Gateway:
    """Per-app gateway state: the upstream client, the limiter gate, registry/budget caches."""

    def __init__(self, settings: Settings, engine: Engine, gate: Gate, writer: Any) -> None:
        self.settings = settings
        self.engine = engine
        self.gate = gate
        self.writer = writer
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.gateway_timeout_seconds, connect=5.0),
            follow_redirects=False,
            # Idle pooled connections are closed after 2 s, before common upstream keep-alive
            # timeouts (uvicorn and Node.js: 5 s): reusing one the upstream is closing at that
            # moment fails the request with "server disconnected" (a spurious 502).
            limits=httpx.Limits(
                max_connections=256, max_keepalive_connections=64, keepalive_expiry=2.0
            ),
        )
        self._lock = threading.Lock()
        self._agents: dict[str, tuple[float, AgentConfig | None]] = {}
        self._budgets: tuple[float, list[Any]] | None = None
        self.requests_total: dict[tuple[str, str], int] = {}
        self.pending: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        if self.pending:  # spans of answered requests: let the writer take them
            await asyncio.wait(self.pending, timeout=10)
        await self.client.aclose()

    # --- caches (1 s for the registry, PHAROS_BUDGET_CACHE_SECONDS for budgets) ---------------

    def cached_agent(self, name: str) -> tuple[bool, AgentConfig | None]:
        hit = self._agents.get(name)
        if hit is not None and time.monotonic() - hit[0] < self.settings.key_cache_seconds:
            return True, hit[1]
        return False, None

    async def agent_async(self, name: str) -> AgentConfig | None:
        found, config = self.cached_agent(name)
        return config if found else await anyio.to_thread.run_sync(self.agent, name)

    def budgets_fresh(self, config: AgentConfig | None) -> bool:
        hit = self._budgets
        return (
            hit is not None
            and time.monotonic() - hit[0] < self.settings.budget_cache_seconds
            and (config is None or config.budget_nanousd is None)
        )

    def agent(self, name: str) -> AgentConfig | None:
        now = time.monotonic()
        with self._lock:
            hit = self._agents.get(name)
        if hit is not None and now - hit[0] < self.settings.key_cache_seconds:
            return hit[1]
        config = get_agent(self.engine, name)
        with self._lock:
            if len(self._agents) > 10_000:
                self._agents.clear()
            self._agents[name] = (now, config)
        return config

    def budget_states(self) -> list[Any]:
        """D's budgets (cost/budgets.py) evaluated now, cached a few seconds."""
        now = time.monotonic()
        with self._lock:
            hit = self._budgets
        if hit is not None and now - hit[0] < self.settings.budget_cache_seconds:
            return hit[1]
        from pharos.server.cost.budgets import budget_statuses

        with self.engine.connect() as conn:
            states = budget_statuses(conn, datetime.now(UTC))
        with self._lock:
            self._budgets = (now, states)
        return states

    def registry_budget(self, config: AgentConfig) -> dict[str, Any] | None:
        """The registry's ``--budget`` for ``config``: spend this period vs the limit."""
        if config.budget_nanousd is None:
            return None
        from pharos.server.cost.budgets import period_bounds, spend_nanousd

        now = datetime.now(UTC)
        start_ns, end_ns = period_bounds(config.budget_period or "daily", now)
        now_s = int(now.timestamp())
        with self.engine.connect() as conn:
            spend = spend_nanousd(conn, start_ns // 10**9, (now_s // 60 + 1) * 60, config.name)
        return {
            "name": f"agent {config.name} (registry)",
            "period": config.budget_period or "daily",
            "spend_nanousd": spend,
            "limit_nanousd": config.budget_nanousd,
            "soft_limit_nanousd": config.budget_nanousd * 8 // 10,
            "period_end_ns": end_ns,
        }

    def check_budgets(self, agent: str, config: AgentConfig | None) -> str | None:
        """Raise 402 if a hard budget covering ``agent`` is exhausted; the soft warning text
        for the ``x-pharos-budget-warning`` header otherwise (None if all is well)."""
        candidates: list[dict[str, Any]] = []
        for s in self.budget_states():
            if s.agent is None or s.agent == agent:
                candidates.append(
                    {
                        "name": s.name,
                        "period": s.period,
                        "spend_nanousd": s.spend_nanousd,
                        "limit_nanousd": s.limit_nanousd,
                        "soft_limit_nanousd": s.soft_limit_nanousd,
                        "period_end_ns": s.period_end_ns,
                    }
                )
        if config is not None:
            own = self.registry_budget(config)
            if own is not None:
                candidates.append(own)
        warnings = []
        for b in candidates:
            if b["spend_nanousd"] >= b["limit_nanousd"]:
                raise BudgetExhausted(b)
            if b["spend_nanousd"] >= b["soft_limit_nanousd"]:
                warnings.append(
                    f"{b['name']}: {_usd(b['spend_nanousd'])} of {_usd(b['limit_nanousd'])} "
                    f"{b['period']}"
                )
        return "; ".join(warnings) or None


class BudgetExhausted(Exception):
    def __init__(self, budget: dict[str, Any]) -> None:
        super().__init__(budget["name"])
        self.budget = budget

    def response(self) -> Response:
        b = self.budget
        resets = datetime.fromtimestamp(b["period_end_ns"] / 1e9, UTC)
        body = {
            "error": {
                "code": "budget_exceeded",
                "message": (
                    f"budget {b['name']!r} is exhausted for this {b['period']} period: spent "
                    f"{_usd(b['spend_nanousd'])} of {_usd(b['limit_nanousd'])}; it resets at "
                    f"{resets.isoformat().replace('+00:00', 'Z')}"
                ),
                "budget": {
                    "name": b["name"],
                    "period": b["period"],
                    "spend_usd": b["spend_nanousd"] / 1e9,
                    "limit_usd": b["limit_nanousd"] / 1e9,
                    "resets_at": resets.isoformat().replace("+00:00", "Z"),
                },
            }
        }
        retry = max(1, int((resets - datetime.now(UTC)).total_seconds()))
        return Response(
            orjson.dumps(body),
            status_code=402,
            media_type="application/json",
            headers={"retry-after": str(retry)},
        )


def _usd(nano: int) -> str:
    return f"${nano / 1e9:.2f}"


class GatewayCollector(Collector):
    """Queue lengths, waits and refusals per bucket on /metrics."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def collect(self) -> Any:
        queued = GaugeMetricFamily(
            "pharos_gateway_queue_length",
            "Requests waiting for rate-limit capacity",
            labels=["bucket"],
        )
        waited = CounterMetricFamily(
            "pharos_gateway_queue_waits", "Requests that waited and then passed", labels=["bucket"]
        )
        wait_s = CounterMetricFamily(
            "pharos_gateway_queue_wait_seconds",
            "Seconds spent waiting in the queue",
            labels=["bucket"],
        )
        refused = CounterMetricFamily(
            "pharos_gateway_rate_limited", "Requests refused with 429", labels=["bucket"]
        )
        for key, s in self.gateway.gate.stats().items():
            queued.add_metric([key], s["queued"])
            waited.add_metric([key], s["waited_total"])
            wait_s.add_metric([key], s["wait_seconds_total"])
            refused.add_metric([key], s["refused_total"])
        requests = CounterMetricFamily(
            "pharos_gateway_requests", "Requests through the gateway", labels=["route", "status"]
        )
        for (route, status), n in sorted(self.gateway.requests_total.items()):
            requests.add_metric([route, status], n)
        yield from (queued, waited, wait_s, refused, requests)


# --- the request path ------------------------------------------------------------------------


class _Body:
    """Reads the client's request in a task: the body for the upstream (bounded buffer, so
    back-pressure holds) and the moment the client goes away (to free its queue place)."""

    def __init__(self, request: Request) -> None:
        self.receive = request.receive
        self.chunks: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=16)
        self.gone = asyncio.Event()
        self.size = 0
        self.task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.gone.set()
                return
            chunk = message.get("body", b"")
            self.size += len(chunk)
            if chunk:
                await self.chunks.put(chunk)
            if not message.get("more_body", False):
                await self.chunks.put(None)
                # keep listening: a disconnect while queued or streaming back
                message = await self.receive()
                if message["type"] == "http.disconnect":
                    self.gone.set()
                return

    async def stream(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self.chunks.get()
            if chunk is None:
                return
            yield chunk

    async def read_all(self, limit: int) -> bytes:
        parts = []
        total = 0
        async for chunk in self.stream():
            total += len(chunk)
            if total > limit:
                raise ApiError(413, f"request body exceeds {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    def close(self) -> None:
        self.task.cancel()


def _gateway(request: Request) -> Gateway:
    gw: Gateway | None = getattr(request.app.state, "gateway", None)
    if gw is None:
        raise ApiError(503, "the gateway is not running")
    return gw


def _trace_context(request: Request) -> tuple[str, str | None, str, str]:
    """(trace_id, parent span id, this span's id, flags) from ``traceparent`` or new."""
    match = TRACEPARENT.match(request.headers.get("traceparent", "").strip().lower())
    span_id = secrets.token_hex(8)
    if match and match.group(1) != "0" * 32 and match.group(2) != "0" * 16:
        return match.group(1), match.group(2), span_id, match.group(3)
    return secrets.token_hex(16), None, span_id, "01"


def _forward_headers(
    request: Request, traceparent: str, upstream_key: str | None
) -> list[tuple[str, str]]:
    out = []
    for name, value in request.headers.items():
        lower = name.lower()
        if lower in HOP_BY_HOP or lower in ("x-api-key", "cookie", "traceparent", "x-pharos-agent"):
            continue
        if lower == "authorization" and (
            upstream_key is not None or value.split(" ", 1)[-1].strip().startswith("phk_")
        ):
            continue  # Pharos' own key stays here
        out.append((name, value))
    if upstream_key is not None:
        out.append(("authorization", f"Bearer {upstream_key}"))
    out.append(("traceparent", traceparent))
    return out


async def _limits(
    gw: Gateway, body: _Body, config: AgentConfig | None, key: ApiKey | None, tokens: float
) -> float:
    """Pass every applicable bucket (in order: API key, agent rpm, agent tpm); the seconds
    waited. A client that disconnects while waiting leaves its queue place at once."""
    checks: list[tuple[Limit, int, float]] = []
    settings = gw.settings
    if key is not None and settings.key_rpm:
        checks.append((Limit(f"key:{key.prefix}:rpm", settings.key_rpm), 0, 0.0))
    if config is not None:
        wait_s = config.max_wait_ms / 1000
        if config.rpm:
            checks.append((Limit(f"agent:{config.name}:rpm", config.rpm), config.max_queue, wait_s))
        if config.tpm and tokens > 0:
            checks.append(
                (Limit(f"agent:{config.name}:tpm", config.tpm, tokens), config.max_queue, wait_s)
            )
    waited = 0.0
    for limit, max_queue, max_wait in checks:
        acquire = asyncio.ensure_future(gw.gate.acquire(limit, max_queue, max_wait))
        gone = asyncio.ensure_future(body.gone.wait())
        done, _ = await asyncio.wait({acquire, gone}, return_when=asyncio.FIRST_COMPLETED)
        if acquire not in done:
            acquire.cancel()
            with contextlib.suppress(asyncio.CancelledError, Limited):
                await acquire
            raise ClientGone
        gone.cancel()
        waited += acquire.result()
    return waited


SMALL_BODY = 256 * 1024


def _small(request: Request) -> bool:
    length = request.headers.get("content-length")
    return length is not None and length.isdigit() and int(length) <= SMALL_BODY


class ClientGone(Exception):
    pass


def _limited_response(exc: Limited) -> Response:
    return error_response(
        429,
        f"{exc.reason} ({exc.bucket}); retry after {exc.retry_after} s",
        "rate_limited",
        headers={"retry-after": str(exc.retry_after)},
    )


async def _record(
    gw: Gateway,
    *,
    trace: tuple[str, str | None, str, str],
    name: str,
    kind: str,
    agent: str,
    start_ns: int,
    status_code: int | None,
    error: str | None,
    attrs: dict[str, Any],
    model: str | None = None,
    usage: dict[str, int | None] | None = None,
) -> None:
    end_ns = time.time_ns()
    failed = error is not None or (status_code is not None and status_code >= 500)
    usage = usage or {}
    record = SpanRecord(
        trace_id=trace[0],
        span_id=trace[2],
        parent_span_id=trace[1],
        name=name,
        kind=kind,
        span_kind=3,  # CLIENT: the gateway calls the upstream
        agent=agent,
        agent_rank=RANK_EXPLICIT_ROOT,
        model=model,
        service="pharos-gateway",
        start_ns=start_ns,
        end_ns=end_ns,
        duration_ms=(end_ns - start_ns) / 1e6,
        status="error" if failed else "ok",
        status_message=error or (f"HTTP {status_code}" if failed else None),
        input_tokens=usage.get("input"),
        output_tokens=usage.get("output"),
        cached_tokens=usage.get("cached"),
        cost_nanousd=None,  # priced by the writer's price book (cost/book.py)
        attributes=orjson.dumps(attrs).decode(),
        events="[]",
        links="[]",
        resource=orjson.dumps({"service.name": "pharos-gateway"}).decode(),
        scope="pharos.gateway",
    )
    # Not awaited by the request: the answer must not wait for a commit (an fsync). The task
    # is kept referenced until done; the writer commits it with the next group.
    task = asyncio.create_task(_write(gw, record))
    gw.pending.add(task)
    task.add_done_callback(gw.pending.discard)


async def _write(gw: Gateway, record: SpanRecord) -> None:
    try:
        await gw.writer.write([record])
    except Exception as exc:  # the answer went out already; a lost span is logged, not fatal
        log.warning("gateway span not recorded: %s", exc)


async def _proxy(
    request: Request,
    *,
    route: str,
    url: str,
    agent: str,
    config: AgentConfig | None,
    kind: str,
    upstream_key: str | None,
    llm: bool,
) -> Response:
    gw = _gateway(request)
    start_ns = time.time_ns()
    trace = _trace_context(request)
    traceparent = f"00-{trace[0]}-{trace[2]}-{trace[3]}"
    key: ApiKey | None = getattr(request.state, "api_key", None)
    body = _Body(request)
    status_label = "error"
    streaming = False
    try:
        try:
            if gw.budgets_fresh(config):  # cached: no I/O, no thread hop
                warning = gw.check_budgets(agent, config)
            else:
                warning = await anyio.to_thread.run_sync(gw.check_budgets, agent, config)
        except BudgetExhausted as exc:
            status_label = "402"
            return exc.response()
        content: bytes | AsyncIterator[bytes]
        model: str | None = None
        want_tokens = 0.0
        if llm:
            raw = await body.read_all(gw.settings.max_json_body_bytes * 16)
            content = raw
            try:
                doc = orjson.loads(raw) if raw else {}
            except orjson.JSONDecodeError:
                doc = {}
            if isinstance(doc, dict):
                model = doc.get("model") if isinstance(doc.get("model"), str) else None
                max_tokens = doc.get("max_tokens") or doc.get("max_completion_tokens")
                want_tokens = float(max_tokens) if isinstance(max_tokens, int) else 1.0
                if doc.get("stream") is True and route.endswith("chat/completions"):
                    options = doc.get("stream_options")
                    if not isinstance(options, dict) or "include_usage" not in options:
                        # ask for the usage chunk so the span gets its tokens
                        doc["stream_options"] = {**(options or {}), "include_usage": True}
                        content = orjson.dumps(doc)
        elif _small(request):
            # A small body with a length: one write upstream (a chunked stream of one chunk
            # costs a round of delayed ACKs); larger or chunked bodies stream.
            content = await body.read_all(SMALL_BODY)
        else:
            content = body.stream()
        try:
            waited = await _limits(gw, body, config, key, want_tokens)
        except Limited as exc:
            status_label = "429"
            return _limited_response(exc)
        upstream = gw.client.build_request(
            request.method,
            url,
            headers=_forward_headers(request, traceparent, upstream_key),
            content=content,
        )
        attrs: dict[str, Any] = {
            "http.request.method": request.method,
            "url.full": url,
            "pharos.gateway.route": route,
            "pharos.gateway.queue_wait_ms": round(waited * 1000, 3),
        }
        try:
            response = await gw.client.send(upstream, stream=True)
        except httpx.TimeoutException:
            await _record(
                gw,
                trace=trace,
                name=f"gateway {agent}",
                kind=kind,
                agent=agent,
                start_ns=start_ns,
                status_code=None,
                error="upstream timed out",
                attrs=attrs,
                model=model,
            )
            status_label = "504"
            return error_response(504, f"the upstream {url} timed out", "upstream_timeout")
        except httpx.HTTPError as exc:
            await _record(
                gw,
                trace=trace,
                name=f"gateway {agent}",
                kind=kind,
                agent=agent,
                start_ns=start_ns,
                status_code=None,
                error=f"upstream unreachable: {type(exc).__name__}",
                attrs=attrs,
                model=model,
            )
            status_label = "502"
            return error_response(
                502, f"the upstream {url} is unreachable ({type(exc).__name__})", "bad_gateway"
            )
        status_label = str(response.status_code)
        headers = {k: v for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP}
        length = response.headers.get("content-length")
        if length is not None and "transfer-encoding" not in response.headers:
            headers["content-length"] = length  # raw bytes are relayed: the length holds
        headers["traceparent"] = traceparent
        if warning:
            headers["x-pharos-budget-warning"] = warning[:500]
        sse = response.headers.get("content-type", "").startswith("text/event-stream")

        async def relay() -> AsyncIterator[bytes]:
            sent = 0
            tail = bytearray()
            whole = bytearray()
            error: str | None = None
            try:
                async for chunk in response.aiter_raw():
                    sent += len(chunk)
                    if llm:
                        if sse:
                            tail.extend(chunk)
                            if len(tail) > 65536:
                                del tail[: len(tail) - 65536]
                        elif len(whole) < 8 * 1024 * 1024:
                            whole.extend(chunk)
                    yield chunk
            except httpx.HTTPError as exc:
                error = f"upstream stream broke: {type(exc).__name__}"
            finally:
                body.close()
                await response.aclose()
                usage, got_model = (
                    (_usage(bytes(tail), sse=True) if sse else _usage(bytes(whole), sse=False))
                    if llm
                    else (None, None)
                )
                attrs.update(
                    {
                        "http.response.status_code": response.status_code,
                        "http.request.body.size": body.size,
                        "http.response.body.size": sent,
                    }
                )
                if config is not None and config.tpm and usage and usage.get("total"):
                    extra = float(usage["total"] or 0) - want_tokens
                    if extra:
                        await gw.gate.buckets.charge(f"agent:{config.name}:tpm", config.tpm, extra)
                await _record(
                    gw,
                    trace=trace,
                    name=f"{'chat' if kind == 'llm' else kind} {got_model or model}"
                    if llm
                    else f"gateway {request.method} {agent}",
                    kind=kind,
                    agent=agent,
                    start_ns=start_ns,
                    status_code=response.status_code,
                    error=error,
                    attrs=attrs,
                    model=got_model or model,
                    usage=usage,
                )

        streaming = True
        return StreamingResponse(relay(), status_code=response.status_code, headers=headers)
    except ClientGone:
        status_label = "499"
        return Response(status_code=499)
    finally:
        if not streaming:
            body.close()
        gw.requests_total[(route, status_label)] = (
            gw.requests_total.get((route, status_label), 0) + 1
        )


def _usage(raw: bytes, *, sse: bool) -> tuple[dict[str, int | None] | None, str | None]:
    """Usage and model from an OpenAI-style JSON answer, or the last SSE chunk that has them."""
    docs: list[Any] = []
    if sse:
        for line in raw.split(b"\n"):
            line = line.strip()
            if line.startswith(b"data:") and line[5:].strip() not in (b"[DONE]", b""):
                with contextlib.suppress(orjson.JSONDecodeError):
                    docs.append(orjson.loads(line[5:].strip()))
    else:
        with contextlib.suppress(orjson.JSONDecodeError):
            docs.append(orjson.loads(raw))
    model = None
    for doc in reversed(docs):
        if not isinstance(doc, dict):
            continue
        model = model or (doc.get("model") if isinstance(doc.get("model"), str) else None)
        usage = doc.get("usage")
        if isinstance(doc.get("response"), dict):  # /v1/responses streaming: response.completed
            usage = usage or doc["response"].get("usage")
        if isinstance(usage, dict):
            inp = usage.get("prompt_tokens", usage.get("input_tokens"))
            out = usage.get("completion_tokens", usage.get("output_tokens"))
            details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
            cached = details.get("cached_tokens") if isinstance(details, dict) else None
            total = usage.get("total_tokens")
            ints = [v if isinstance(v, int) else None for v in (inp, out, cached, total)]
            if ints[3] is None and ints[0] is not None:
                ints[3] = ints[0] + (ints[1] or 0)
            return {"input": ints[0], "output": ints[1], "cached": ints[2], "total": ints[3]}, model
    return None, model


@router.api_route(
    "/gateway/agents/{name}/{path:path}",
    methods=METHODS,
    # Hidden from /openapi.json (its {path:path} would appear there as another route); it is
    # documented in docs/access.md.
    include_in_schema=False,
    summary="Forward to a registered agent's upstream (rate limits, budget, a recorded span)",
)
async def agent_gateway(request: Request, name: str, path: str) -> Response:
    gw = _gateway(request)
    config = await gw.agent_async(name)
    if config is None:
        raise ApiError(404, f"agent {name!r} is not registered (pharos agents add)")
    if not config.upstream_url:
        raise ApiError(409, f"agent {name!r} has no upstream_url", "no_upstream")
    url = f"{config.upstream_url}/{path}"
    if request.url.query:
        url += f"?{request.url.query}"
    return await _proxy(
        request,
        route="agent",
        url=url,
        agent=name,
        config=config,
        kind="agent",
        upstream_key=None,
        llm=False,
    )


async def _llm(request: Request, endpoint: str) -> Response:
    gw = _gateway(request)
    base = gw.settings.llm_upstream_url
    if not base:
        raise ApiError(503, "no LLM upstream: set PHAROS_LLM_UPSTREAM_URL", "not_configured")
    key: ApiKey | None = getattr(request.state, "api_key", None)
    agent = request.headers.get("x-pharos-agent") or (key.name if key else None) or "gateway"
    config = await gw.agent_async(agent)
    return await _proxy(
        request,
        route=f"openai/{endpoint}",
        url=f"{base.rstrip('/')}/{endpoint}",
        agent=agent,
        config=config,
        kind=LLM_ROUTES[endpoint],
        upstream_key=gw.settings.llm_upstream_api_key,
        llm=True,
    )


@router.post(
    "/gateway/openai/v1/chat/completions",
    summary="LLM proxy: OpenAI-compatible chat completions (SSE streamed through)",
)
async def llm_chat(request: Request) -> Response:
    return await _llm(request, "chat/completions")


@router.post("/gateway/openai/v1/embeddings", summary="LLM proxy: OpenAI-compatible embeddings")
async def llm_embeddings(request: Request) -> Response:
    return await _llm(request, "embeddings")


@router.post("/gateway/openai/v1/responses", summary="LLM proxy: OpenAI-compatible responses")
async def llm_responses(request: Request) -> Response:
    return await _llm(request, "responses")


@router.get("/api/v1/gateway/queues", summary="Rate-limit buckets: queue length, waits, refusals")
async def queues(request: Request) -> dict[str, Any]:
    gw = _gateway(request)
    return {"buckets": gw.gate.stats()}


async def start_gateway(
    app: Any, stack: contextlib.AsyncExitStack, settings: Settings, engine: Engine, writer: Any
) -> Gateway:
    """Build the gateway for the lifespan: buckets in Redis with ``PHAROS_REDIS_URL`` (shared
    by every instance), else in the process; closed on shutdown before the writer stops."""
    from pharos.server.access.limits import MemoryBuckets, RedisBuckets, SharedBuckets
    from pharos.server.ops.redis_link import RedisLink
    from pharos.server.ops.redis_link import namespace as redis_namespace

    buckets: MemoryBuckets | SharedBuckets
    if settings.redis_url:
        link = RedisLink("rate limits", logging.getLogger("pharos.access"))
        namespace = await anyio.to_thread.run_sync(redis_namespace, engine)
        buckets = SharedBuckets(RedisBuckets(settings.redis_url, f"pharos:rl:{namespace}:"), link)
        stack.push_async_callback(buckets.close)
        app.state.redis_links = [*getattr(app.state, "redis_links", []), link]
    else:
        buckets = MemoryBuckets()
    gateway = Gateway(settings, engine, Gate(buckets), writer)
    stack.push_async_callback(gateway.close)
    app.state.gateway = gateway
    app.state.metrics.attach(GatewayCollector(gateway))
    return gateway
