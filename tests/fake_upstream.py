"""A real local OpenAI-compatible upstream (and a plain agent upstream) for the gateway tests and
bench: uvicorn on a free loopback port, recording what it receives."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
MODEL = "gpt-4o-mini-2024-07-18"
#: The Responses API's usage (``response.usage``): other names than chat completions' usage.
RESPONSES_USAGE = {
    "input_tokens": 13,
    "input_tokens_details": {"cached_tokens": 4},
    "output_tokens": 9,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 22,
}


@dataclass
class Upstream:
    url: str
    seen: list[dict[str, Any]] = field(default_factory=list)
    #: set by a test to let a stream continue after its first chunk (proves no buffering)
    release: threading.Event = field(default_factory=threading.Event)
    stream_gate: bool = False


def _app(up: Upstream) -> Starlette:
    async def record(request: Request) -> bytes:
        body = await request.body()
        up.seen.append(
            {
                "path": request.url.path,
                "query": request.url.query,
                "method": request.method,
                "headers": dict(request.headers),
                "body": body,
            }
        )
        return body

    async def chat(request: Request) -> Response:
        doc = orjson.loads(await record(request))
        if doc.get("stream"):
            include = (doc.get("stream_options") or {}).get("include_usage")

            async def events() -> Any:
                base = {"id": "c1", "object": "chat.completion.chunk", "model": MODEL}
                for word in ("Hel", "lo"):
                    delta = {"choices": [{"index": 0, "delta": {"content": word}}]}
                    yield b"data: " + orjson.dumps({**base, **delta}) + b"\n\n"
                    if up.stream_gate:
                        await asyncio.to_thread(up.release.wait, 30)
                if include:
                    yield (
                        b"data: " + orjson.dumps({**base, "choices": [], "usage": USAGE}) + b"\n\n"
                    )
                yield b"data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        return JSONResponse(
            {
                "id": "c1",
                "object": "chat.completion",
                "model": MODEL,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}}],
                "usage": USAGE,
            }
        )

    async def responses(request: Request) -> Response:
        """``POST /v1/responses`` like OpenAI's Responses API: a ``response`` object, or (with
        ``stream``) typed SSE events ending in ``response.completed`` that carries the usage
        (and, like the real one, no ``[DONE]``)."""
        doc = orjson.loads(await record(request))
        base = {"id": "resp_1", "object": "response", "created_at": 1, "model": MODEL}
        message = {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hello", "annotations": []}],
        }
        if not doc.get("stream"):
            return JSONResponse(
                {**base, "status": "completed", "output": [message], "usage": RESPONSES_USAGE}
            )

        async def events() -> Any:
            def event(kind: str, data: dict[str, Any]) -> bytes:
                body = orjson.dumps({"type": kind, **data})
                return b"event: " + kind.encode() + b"\ndata: " + body + b"\n\n"

            yield event("response.created", {"response": {**base, "status": "in_progress"}})
            for word in ("Hel", "lo"):
                yield event("response.output_text.delta", {"item_id": "msg_1", "delta": word})
                if up.stream_gate:
                    await asyncio.to_thread(up.release.wait, 30)
            done = {**base, "status": "completed", "output": [message], "usage": RESPONSES_USAGE}
            yield event("response.completed", {"response": done})

        return StreamingResponse(events(), media_type="text/event-stream")

    async def embeddings(request: Request) -> Response:
        await record(request)
        return JSONResponse(
            {
                "object": "list",
                "model": "text-embedding-3-small",
                "data": [{"embedding": [0.1, 0.2]}],
                "usage": {"prompt_tokens": 5, "total_tokens": 5},
            }
        )

    async def echo(request: Request) -> Response:
        body = await record(request)
        return Response(body, headers={"x-upstream": "yes"}, media_type="application/octet-stream")

    async def slow(request: Request) -> Response:
        await record(request)
        await asyncio.sleep(float(request.query_params.get("s", "3")))
        return JSONResponse({"slow": True})

    async def fail(request: Request) -> Response:
        await record(request)
        return JSONResponse({"error": {"message": "upstream broke"}}, status_code=500)

    async def status(request: Request) -> Response:
        """``/status/{code}``: answers that status with a JSON error body."""
        await record(request)
        code = int(request.path_params["code"])
        return JSONResponse({"error": {"message": f"status {code}"}}, status_code=code)

    async def sink(request: Request) -> Response:
        """Reads the whole body and says how much it got (size limits)."""
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        up.seen.append({"path": request.url.path, "size": size, "headers": dict(request.headers)})
        return JSONResponse({"received": size})

    async def cookie(request: Request) -> Response:
        """Sets a session cookie for whoever calls, and says which cookie it was sent."""
        await record(request)
        response = JSONResponse({"got": request.headers.get("cookie")})
        response.set_cookie("upstream_session", f"for-{request.query_params.get('who')}")
        return response

    return Starlette(
        routes=[
            Route("/cookie", cookie, methods=["GET", "POST"]),
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/responses", responses, methods=["POST"]),
            Route("/status/{code:int}", status, methods=["GET", "POST"]),
            Route("/sink", sink, methods=["POST", "PUT"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/echo/{rest:path}", echo, methods=["GET", "POST", "PUT", "DELETE"]),
            Route("/slow", slow, methods=["GET", "POST"]),
            Route("/fail", fail, methods=["GET", "POST"]),
        ]
    )


@contextmanager
def fake_upstream() -> Iterator[Upstream]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    up = Upstream(f"http://127.0.0.1:{sock.getsockname()[1]}")
    server = uvicorn.Server(uvicorn.Config(_app(up), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("fake upstream did not start")
        time.sleep(0.02)
    try:
        yield up
    finally:
        up.release.set()
        server.should_exit = True
        thread.join(10)
        sock.close()
