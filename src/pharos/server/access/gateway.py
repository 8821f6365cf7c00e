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
import random
import re
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx
import orjson
from fastapi import APIRouter, Request
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
        "proxy-connection",
    }
)
#: Set by the ASGI server on every response (uvicorn: one ``date`` and one ``server``): the
#: upstream's own would make them appear twice, so they are not relayed.
SERVER_SET = frozenset({"date", "server"})
VIA = "1.1 pharos"
#: Gateway spans go to the writer in groups: at most this long after the first answer ...
SPAN_FLUSH_SECONDS = 0.05
#: ... or as soon as this many are waiting.
SPAN_FLUSH_SPANS = 256
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
LLM_ROUTES = {"chat/completions": "llm", "embeddings": "embedding", "responses": "llm"}
#: Per LLM endpoint: (gen_ai.operation.name, openai.api.type). The Responses API is an inference
#: ("chat") operation in the OTel OpenAI conventions, told apart by ``openai.api.type``.
OPERATIONS: dict[str, tuple[str, str | None]] = {
    "chat/completions": ("chat", "chat_completions"),
    "embeddings": ("embeddings", None),
    "responses": ("chat", "responses"),
}


class Gateway:
    """Per-app gateway state: the upstream client, the limiter gate, registry/budget caches."""

    def __init__(self, settings: Settings, engine: Engine, gate: Gate, writer: Any) -> None:
        self.settings = settings
        self.engine = engine
        self.gate = gate
        self.writer = writer
        # Requests go straight to the connection pool (the transport), not through an
        # AsyncClient: a client keeps a cookie jar shared by every caller (one caller's
        # Set-Cookie sent with the next caller's request), adds its default headers (an
        # Accept-Encoding the caller did not send: a compressed answer it did not ask for) and
        # auth, redirect and event-hook steps a proxy does not want.
        self.transport = httpx.AsyncHTTPTransport(
            # Idle pooled connections are closed after 2 s, before common upstream keep-alive
            # timeouts (uvicorn and Node.js: 5 s): reusing one the upstream is closing at that
            # moment fails the request with "server disconnected" (a spurious 502).
            limits=httpx.Limits(
                max_connections=256, max_keepalive_connections=64, keepalive_expiry=2.0
            ),
        )
        self.timeout = httpx.Timeout(settings.gateway_timeout_seconds, connect=5.0).as_dict()
        self._lock = threading.Lock()
        self._agents: dict[str, tuple[float, AgentConfig | None]] = {}
        self._budgets: tuple[float, list[Any]] | None = None
        self.requests_total: dict[tuple[str, str], int] = {}
        self.pending: set[asyncio.Task[None]] = set()
        # Spans of answered requests, handed to the writer together every SPAN_FLUSH_SECONDS
        # (or SPAN_FLUSH_SPANS): one commit per request made the writer's thread take the GIL
        # from the event loop after every call (bench/README.md, gateway).
        self._spans: list[SpanRecord] = []
        self._flusher: asyncio.TimerHandle | None = None

    def record(self, span: SpanRecord) -> None:
        """Queue a span for the writer (not awaited: an answer never waits for a commit)."""
        self._spans.append(span)
        if len(self._spans) >= SPAN_FLUSH_SPANS:
            self.flush()
        elif self._flusher is None:
            self._flusher = asyncio.get_running_loop().call_later(SPAN_FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        spans, self._spans = self._spans, []
        if spans:  # the task is kept referenced until the writer has committed it
            task = asyncio.create_task(_write(self, spans))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)

    async def close(self) -> None:
        self.flush()  # (a test stops a server right after answering: those spans are stored)
        if self.pending:  # spans of answered requests: let the writer take them
            await asyncio.wait(self.pending, timeout=10)
        await self.transport.aclose()

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
        hit = self._budgets  # one attribute read: no lock needed to look
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
        from pharos.server.cost.budgets import (
            last_resets,
            period_bounds,
            registry_budget_id,
            spend_nanousd,
        )

        now = datetime.now(UTC)
        start_ns, end_ns = period_bounds(config.budget_period or "daily", now)
        now_s = int(now.timestamp())
        budget_id = registry_budget_id(config.name)
        with self.engine.connect() as conn:
            spend = spend_nanousd(conn, start_ns // 10**9, (now_s // 60 + 1) * 60, config.name)
            reset = last_resets(conn, [budget_id], start_ns).get(budget_id)
        if reset is not None:  # an admin reset it in this period: count from then
            spend = max(spend - reset[1], 0)
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
        limit = GaugeMetricFamily(
            "pharos_gateway_rate_limit_per_minute",
            "The bucket's limit per minute (requests or LLM tokens) at its last use",
            labels=["bucket"],
        )
        for key, s in self.gateway.gate.stats().items():
            limit.add_metric([key], s["limit_per_minute"])
            queued.add_metric([key], s["queued"])
            waited.add_metric([key], s["waited_total"])
            wait_s.add_metric([key], s["wait_seconds_total"])
            refused.add_metric([key], s["refused_total"])
        requests = CounterMetricFamily(
            "pharos_gateway_requests", "Requests through the gateway", labels=["route", "status"]
        )
        for (route, status), n in sorted(self.gateway.requests_total.items()):
            requests.add_metric([route, status], n)
        yield from (queued, waited, wait_s, refused, limit, requests)


# --- the request path ------------------------------------------------------------------------


class _Relay(Response):
    """Streams the upstream's answer to the client as it arrives, stopping when the client
    has gone (the request's body reader sees the disconnect). Leaner than StreamingResponse,
    whose own disconnect listener would also compete with that reader for ``receive``."""

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        status_code: int,
        headers: dict[str, str],
        gone: asyncio.Event,
    ) -> None:
        self.status_code = status_code
        self.chunks = chunks
        self.gone = gone
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        try:
            async for chunk in self.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if self.gone.is_set():
                    return
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await self.chunks.aclose()  # type: ignore[attr-defined]


class BodyTooLarge(Exception):
    """The client's request body passed ``PHAROS_GATEWAY_MAX_BODY_BYTES``."""

    def __init__(self, limit: int, size: int | None = None) -> None:
        super().__init__(limit)
        self.limit = limit
        self.size = size

    def response(self) -> Response:
        said = f"of {self.size} bytes " if self.size is not None else ""
        return error_response(
            413,
            f"request body {said}exceeds the gateway limit of {self.limit} bytes "
            "(PHAROS_GATEWAY_MAX_BODY_BYTES)",
            "payload_too_large",
        )


class _Body:
    """Reads the client's request in a task: the body for the upstream (bounded buffer, so
    back-pressure holds), counted against ``limit`` as it arrives, and the moment the client
    goes away (to free its queue place)."""

    def __init__(self, request: Request, limit: int) -> None:
        self.receive = request.receive
        self.limit = limit
        self.chunks: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=16)
        self.gone = asyncio.Event()
        self.size = 0
        self.too_large = False
        self.task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.gone.set()
                return
            chunk = message.get("body", b"")
            self.size += len(chunk)
            if self.size > self.limit:
                # Over the limit: stop reading and end the stream with the refusal (the
                # upstream request is aborted; the client gets 413).
                self.too_large = True
                await self.chunks.put(None)
                return
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
                if self.too_large:
                    raise BodyTooLarge(self.limit)
                return
            yield chunk

    async def read_all(self) -> bytes:
        parts = [chunk async for chunk in self.stream()]
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
    header = request.headers.get("traceparent")
    match = TRACEPARENT.match(header.strip().lower()) if header else None
    # Random, not secret, like the OTel SDK's ids: no system call per request.
    span_id = f"{random.getrandbits(64) or 1:016x}"
    if match and match.group(1) != "0" * 32 and match.group(2) != "0" * 16:
        return match.group(1), match.group(2), span_id, match.group(3)
    return f"{random.getrandbits(128) or 1:032x}", None, span_id, "01"


def _connection_tokens(headers: Any) -> frozenset[str]:
    """Header names a ``Connection`` header lists: hop-by-hop for this message (RFC 9110
    §7.6.1), not forwarded."""
    value = headers.get("connection")
    if not value:
        return frozenset()
    return frozenset(t.strip().lower() for t in value.split(",") if t.strip())


def _via(previous: str | None) -> str:
    return f"{previous}, {VIA}" if previous else VIA


def _forward_headers(
    request: Request, traceparent: str, upstream_key: str | None
) -> list[tuple[str, str]]:
    out = []
    listed = _connection_tokens(request.headers)
    via = None
    for name, value in request.headers.items():
        lower = name.lower()
        if lower in HOP_BY_HOP or lower in listed:
            continue
        if lower in ("x-api-key", "cookie", "traceparent", "x-pharos-agent"):
            continue
        if lower == "via":
            via = value
            continue
        if lower == "authorization" and (
            upstream_key is not None or value.split(" ", 1)[-1].strip().startswith("phk_")
        ):
            continue  # Pharos' own key stays here
        out.append((name, value))
    if upstream_key is not None:
        out.append(("authorization", f"Bearer {upstream_key}"))
    out.append(("traceparent", traceparent))
    out.append(("via", _via(via)))
    return out


def _response_headers(response: httpx.Response) -> dict[str, str]:
    """The upstream's headers as the client gets them: without hop-by-hop ones, without
    those the ASGI server sets itself (date, server), with our ``Via``."""
    listed = _connection_tokens(response.headers)
    headers: dict[str, str] = {}
    via = None
    for name, value in response.headers.multi_items():
        lower = name.lower()
        if lower in HOP_BY_HOP or lower in SERVER_SET or lower in listed:
            continue
        if lower == "via":
            via = value
            continue
        if lower in headers:  # repeated fields (other than set-cookie) fold into one
            headers[lower] = f"{headers[lower]}, {value}"
        else:
            headers[lower] = value
    length = response.headers.get("content-length")
    if length is not None and "transfer-encoding" not in response.headers:
        headers["content-length"] = length  # raw bytes are relayed: the length holds
    headers["via"] = _via(via)
    return headers


async def _limits(
    gw: Gateway, body: _Body, config: AgentConfig | None, key: ApiKey | None, tokens: float
) -> float:
    """Pass every applicable bucket (in order: API key rpm, key tpm, agent rpm, agent tpm),
    each with its FIFO queue; the seconds waited. A client that disconnects while waiting
    leaves its queue place at once."""
    checks: list[tuple[Limit, int, float]] = []
    settings = gw.settings
    if key is not None:
        key_queue, key_wait = settings.key_max_queue, settings.key_max_wait_seconds
        rpm = key.rpm or settings.key_rpm
        if rpm:
            checks.append((Limit(f"key:{key.prefix}:rpm", rpm), key_queue, key_wait))
        tpm = key.tpm or settings.key_tpm
        if tpm and tokens > 0:
            checks.append((Limit(f"key:{key.prefix}:tpm", tpm, tokens), key_queue, key_wait))
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
        if await gw.gate.try_acquire(limit):
            continue  # the common case: a token, nobody waiting (no tasks for the race below)
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


async def _charge_tokens(
    gw: Gateway, config: AgentConfig | None, key: ApiKey | None, want: float, used: float
) -> None:
    """After an LLM call: charge the tokens it used beyond those taken before it."""
    extra = used - want
    if not extra:
        return
    if key is not None:
        tpm = key.tpm or gw.settings.key_tpm
        if tpm:
            await gw.gate.buckets.charge(f"key:{key.prefix}:tpm", tpm, extra)
    if config is not None and config.tpm:
        await gw.gate.buckets.charge(f"agent:{config.name}:tpm", config.tpm, extra)


SMALL_BODY = 256 * 1024


def _small(request: Request) -> bool:
    length = request.headers.get("content-length")
    return length is not None and length.isdigit() and int(length) <= SMALL_BODY


def _declared_length(request: Request) -> int | None:
    length = request.headers.get("content-length")
    return int(length) if length is not None and length.isdigit() else None


class ClientGone(Exception):
    pass


def _limited_response(exc: Limited) -> Response:
    return error_response(
        429,
        f"{exc.reason} ({exc.bucket}); retry after {exc.retry_after} s",
        "rate_limited",
        headers={"retry-after": str(exc.retry_after)},
    )


def _error_type(exc: BaseException) -> str:
    """OTel ``error.type`` for an exception: its class' canonical name."""
    cls = type(exc)
    module = cls.__module__.split(".")[0]
    return f"{module}.{cls.__qualname__}" if module != "builtins" else cls.__qualname__


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
    error_type: str | None,
    attrs: dict[str, Any],
    model: str | None = None,
    usage: dict[str, int | None] | None = None,
) -> None:
    """The gateway's CLIENT span, per the OTel HTTP conventions for clients: an answer with
    a 4xx or 5xx status is an error (``error.type`` = the status code, no status description:
    it is the status code), as is no answer at all (``error.type`` = the exception's class,
    the status description says what happened)."""
    end_ns = time.time_ns()
    if status_code is not None:
        attrs["http.response.status_code"] = status_code
    if error_type is None and status_code is not None and status_code >= 400:
        error_type = str(status_code)
    failed = error_type is not None
    if failed:
        attrs["error.type"] = error_type
    usage = usage or {}
    if usage.get("input") is not None:
        attrs["gen_ai.usage.input_tokens"] = usage["input"]
    if usage.get("output") is not None:
        attrs["gen_ai.usage.output_tokens"] = usage["output"]
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
        status_message=error,
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
    # Not awaited by the request: the answer must not wait for a commit (an fsync).
    gw.record(record)


async def _write(gw: Gateway, spans: list[SpanRecord]) -> None:
    try:
        await gw.writer.write(spans)
    except Exception as exc:  # the answers went out already; lost spans are logged, not fatal
        log.warning("%d gateway span(s) not recorded: %s", len(spans), exc)


class _LlmCall:
    """What the LLM proxy learns from a request (model, max tokens, stream) and its answer
    (usage, model), and the span name and attributes (OTel GenAI conventions) from both."""

    def __init__(self, endpoint: str) -> None:
        self.operation, self.api_type = OPERATIONS[endpoint]
        self.endpoint = endpoint
        self.model: str | None = None
        self.max_tokens: int | None = None
        self.stream = False

    def read_request(self, doc: Any) -> bytes | None:
        """Learn from the request; the body to send instead (or None to send it as it is)."""
        if not isinstance(doc, dict):
            return None
        model = doc.get("model")
        self.model = model if isinstance(model, str) else None
        for field_name in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
            value = doc.get(field_name)
            if isinstance(value, int) and not isinstance(value, bool):
                self.max_tokens = value
                break
        self.stream = doc.get("stream") is True
        if self.stream and self.endpoint == "chat/completions":
            options = doc.get("stream_options")
            if not isinstance(options, dict) or "include_usage" not in options:
                # ask for the usage chunk so the span gets its tokens
                doc["stream_options"] = {**(options or {}), "include_usage": True}
                return orjson.dumps(doc)
        return None

    @property
    def want_tokens(self) -> float:
        return float(self.max_tokens) if self.max_tokens is not None else 1.0

    def name(self, response_model: str | None) -> str:
        model = self.model or response_model
        return f"{self.operation} {model}" if model else self.operation

    def attrs(self, response_model: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "gen_ai.operation.name": self.operation,
            "gen_ai.provider.name": "openai",
        }
        if self.api_type:
            out["openai.api.type"] = self.api_type
        if self.model:
            out["gen_ai.request.model"] = self.model
        if response_model:
            out["gen_ai.response.model"] = response_model
        if self.max_tokens is not None:
            out["gen_ai.request.max_tokens"] = self.max_tokens
        if self.stream:
            out["gen_ai.request.stream"] = True
        return out


async def _proxy(
    request: Request,
    *,
    route: str,
    url: str,
    agent: str,
    config: AgentConfig | None,
    kind: str,
    upstream_key: str | None,
    llm: _LlmCall | None,
) -> Response:
    gw = _gateway(request)
    start_ns = time.time_ns()
    limit = gw.settings.gateway_max_body_bytes
    status_label = "error"
    declared = _declared_length(request)
    if declared is not None and declared > limit:  # refused before reading or forwarding
        gw.requests_total[(route, "413")] = gw.requests_total.get((route, "413"), 0) + 1
        return BodyTooLarge(limit, declared).response()
    trace = _trace_context(request)
    traceparent = f"00-{trace[0]}-{trace[2]}-{trace[3]}"
    key: ApiKey | None = getattr(request.state, "api_key", None)
    body = _Body(request, limit)
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
        want_tokens = 0.0
        if llm is not None:
            raw = await body.read_all()
            content = raw
            try:
                doc = orjson.loads(raw) if raw else {}
            except orjson.JSONDecodeError:
                doc = {}
            content = llm.read_request(doc) or raw
            want_tokens = llm.want_tokens
        elif _small(request):
            # A small body with a length: one write upstream (a chunked stream of one chunk
            # costs a round of delayed ACKs); larger or chunked bodies stream.
            content = await body.read_all()
        else:
            content = body.stream()
        try:
            waited = await _limits(gw, body, config, key, want_tokens)
        except Limited as exc:
            status_label = "429"
            return _limited_response(exc)
        upstream = httpx.Request(
            request.method,
            url,
            headers=_forward_headers(request, traceparent, upstream_key),
            content=content,
            extensions={"timeout": gw.timeout},
        )
        attrs: dict[str, Any] = {
            "http.request.method": request.method,
            "url.full": url,
            "server.address": upstream.url.host,
            "server.port": upstream.url.port or (443 if upstream.url.scheme == "https" else 80),
            "pharos.gateway.route": route,
            "pharos.gateway.queue_wait_ms": round(waited * 1000, 3),
        }
        if llm is not None:
            attrs.update(llm.attrs(None))
        span_name = llm.name(None) if llm is not None else f"gateway {request.method} {agent}"
        try:
            response = await gw.transport.handle_async_request(upstream)
        except BodyTooLarge as exc:
            status_label = "413"
            return exc.response()
        except httpx.HTTPError as exc:
            timeout = isinstance(exc, httpx.TimeoutException)
            await _record(
                gw,
                trace=trace,
                name=span_name,
                kind=kind,
                agent=agent,
                start_ns=start_ns,
                status_code=None,
                error="upstream timed out"
                if timeout
                else f"upstream unreachable: {type(exc).__name__}",
                error_type=_error_type(exc),
                attrs=attrs,
                model=llm.model if llm else None,
            )
            if timeout:
                status_label = "504"
                return error_response(504, f"the upstream {url} timed out", "upstream_timeout")
            status_label = "502"
            return error_response(
                502, f"the upstream {url} is unreachable ({type(exc).__name__})", "bad_gateway"
            )
        status_label = str(response.status_code)
        headers = _response_headers(response)
        headers["traceparent"] = traceparent
        if warning:
            headers["x-pharos-budget-warning"] = warning[:500]
        sse = response.headers.get("content-type", "").startswith("text/event-stream")

        async def relay() -> AsyncIterator[bytes]:
            sent = 0
            scan = _SseScan() if sse else None
            whole = bytearray()
            error: str | None = None
            error_type: str | None = None
            try:
                async for chunk in response.aiter_raw():
                    sent += len(chunk)
                    if llm is not None:
                        if scan is not None:
                            scan.feed(chunk)
                        elif len(whole) < 8 * 1024 * 1024:
                            whole.extend(chunk)
                    yield chunk
            except httpx.HTTPError as exc:
                error = f"upstream stream broke: {type(exc).__name__}"
                error_type = _error_type(exc)
            finally:
                body.close()
                await response.aclose()
                usage: dict[str, int | None] | None = None
                got_model: str | None = None
                if llm is not None:
                    if scan is not None:
                        scan.end()
                        usage, got_model = scan.usage, scan.model
                    else:
                        usage, got_model = _usage(bytes(whole))
                    attrs.update(llm.attrs(got_model))
                attrs.update({"http.request.body.size": body.size, "http.response.body.size": sent})
                if llm is not None and usage and usage.get("total"):
                    await _charge_tokens(gw, config, key, want_tokens, float(usage["total"] or 0))
                await _record(
                    gw,
                    trace=trace,
                    name=llm.name(got_model) if llm is not None else span_name,
                    kind=kind,
                    agent=agent,
                    start_ns=start_ns,
                    status_code=response.status_code,
                    error=error,
                    error_type=error_type,
                    attrs=attrs,
                    model=got_model or (llm.model if llm else None),
                    usage=usage,
                )

        streaming = True
        return _Relay(relay(), response.status_code, headers, body.gone)
    except BodyTooLarge as exc:
        status_label = "413"
        return exc.response()
    except ClientGone:
        status_label = "499"
        return Response(status_code=499)
    finally:
        if not streaming:
            body.close()
        gw.requests_total[(route, status_label)] = (
            gw.requests_total.get((route, status_label), 0) + 1
        )


def _usage_of(doc: Any) -> tuple[dict[str, int | None] | None, str | None]:
    """Usage and model of one OpenAI-style document: a chat completion (or chunk), an
    embeddings answer, a Responses API ``response`` or a stream event wrapping one."""
    if not isinstance(doc, dict):
        return None, None
    inner = doc.get("response")  # Responses API events: response.created/completed/...
    if isinstance(inner, dict):
        doc = inner
    model = doc.get("model") if isinstance(doc.get("model"), str) else None
    usage = doc.get("usage")
    if not isinstance(usage, dict):
        return None, model
    inp = usage.get("prompt_tokens", usage.get("input_tokens"))
    out = usage.get("completion_tokens", usage.get("output_tokens"))
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    total = usage.get("total_tokens")
    ints = [v if isinstance(v, int) else None for v in (inp, out, cached, total)]
    if ints[3] is None and ints[0] is not None:
        ints[3] = ints[0] + (ints[1] or 0)
    return {"input": ints[0], "output": ints[1], "cached": ints[2], "total": ints[3]}, model


def _usage(raw: bytes) -> tuple[dict[str, int | None] | None, str | None]:
    """Usage and model from an OpenAI-style JSON answer."""
    try:
        return _usage_of(orjson.loads(raw))
    except orjson.JSONDecodeError:
        return None, None


class _SseScan:
    """Follows an SSE answer as it streams, line by line, keeping the last usage and model
    seen (chat completions: the final chunk; Responses API: ``response.completed``). Only
    the current line is buffered (up to 16 MiB: a longer one is skipped)."""

    MAX_LINE = 16 * 1024 * 1024

    def __init__(self) -> None:
        self.partial = bytearray()
        self.skipping = False
        self.usage: dict[str, int | None] | None = None
        self.model: str | None = None

    def feed(self, chunk: bytes) -> None:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                break
            if self.skipping:
                self.skipping = False
            else:
                self.partial += chunk[start:end]
                self._line(bytes(self.partial))
            self.partial.clear()
            start = end + 1
        if not self.skipping:
            self.partial += chunk[start:]
            if len(self.partial) > self.MAX_LINE:
                self.partial.clear()
                self.skipping = True

    def end(self) -> None:
        if self.partial and not self.skipping:
            self._line(bytes(self.partial))
        self.partial.clear()

    def _line(self, line: bytes) -> None:
        if not line.startswith(b"data:"):
            return
        data = line[5:].strip()
        if b'"usage"' not in data and (self.model is not None or b'"model"' not in data):
            return
        try:
            usage, model = _usage_of(orjson.loads(data))
        except orjson.JSONDecodeError:
            return
        if usage is not None:
            self.usage = usage
        if model is not None:
            self.model = model


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
        llm=None,
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
        llm=_LlmCall(endpoint),
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
