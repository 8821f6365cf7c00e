"""One ASGI middleware enforcing API keys and scopes on every HTTP and WebSocket request, plus
security headers and the JSON API body cap.

Open mode: while no (unrevoked) key exists the server serves everyone; ``pharos serve`` only
allows that on a loopback bind (or with ``--insecure``). Once a key exists every non-public
request needs one: ``Authorization: Bearer <key>``, ``x-api-key: <key>`` or the dashboard's
``pharos_session`` cookie (set by ``POST /api/v1/auth/login``).
"""

from __future__ import annotations

import contextlib
import logging
import re
from http.cookies import SimpleCookie
from typing import Any

import anyio
import orjson
from sqlalchemy.exc import DBAPIError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pharos.server.access.keys import ApiKey, KeyStore
from pharos.server.access.scopes import PUBLIC, required_scope
from pharos.server.ingest.writer import database_unavailable

COOKIE = "pharos_session"
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


def presented_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The key a request carries: a Bearer ``phk_`` key, then x-api-key, then the session
    cookie, then any other Bearer value (which will not verify)."""
    cookie_value: str | None = None
    api_key: str | None = None
    fallback: str | None = None
    for name, value in headers:
        if name == b"authorization":
            text = value.decode("latin-1").strip()
            if text[:7].lower() == "bearer ":
                bearer = text[7:].strip()
                if bearer.startswith("phk_"):  # else an upstream's own key (LLM proxy)
                    return bearer
                fallback = fallback or bearer
        elif name == b"x-api-key":
            api_key = value.decode("latin-1").strip()
        elif name == b"cookie" and cookie_value is None:
            jar: SimpleCookie = SimpleCookie()
            with contextlib.suppress(Exception):  # a malformed cookie header: no session
                jar.load(value.decode("latin-1"))
            if COOKIE in jar:
                cookie_value = jar[COOKIE].value
    return api_key or cookie_value or fallback


KEY_IN_TEXT = re.compile(r"(phk_[A-Za-z0-9_-]{8})[A-Za-z0-9_-]+")


def redact(text: str) -> str:
    """``text`` with every API key cut to its prefix (what lists show): ``phk_abcdefgh…``."""
    return KEY_IN_TEXT.sub("\\1…", text) if "phk_" in text else text


def install_log_redaction() -> None:
    """Cut API keys out of every log record of the process, whichever logger makes it: the
    websockets server (uvicorn's WebSocket protocol) logs every handshake header at DEBUG,
    ``Authorization`` and ``x-api-key`` included. Idempotent."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "pharos_redacts", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if isinstance(record.msg, str) and "phk_" in record.msg:
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple) and record.args:
            if any(isinstance(a, str | bytes) and "phk_" in str(a) for a in record.args):
                record.args = tuple(
                    redact(a.decode("latin-1") if isinstance(a, bytes) else a)
                    if isinstance(a, str | bytes)
                    else a
                    for a in record.args
                )
        elif isinstance(record.args, dict) and record.args:
            record.args = {
                k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
        return record

    factory.pharos_redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


class AccessMiddleware:
    def __init__(self, app: ASGIApp, max_json_body_bytes: int = 1024 * 1024) -> None:
        self.app = app
        self.max_json_body_bytes = max_json_body_bytes
        install_log_redaction()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET") if kind == "http" else "GET"
        path: str = scope["path"]
        if kind == "http":
            send = _with_security_headers(send)
            if path.startswith("/api/") and method not in ("GET", "HEAD", "OPTIONS"):
                refused = self._too_large(scope)
                if refused:
                    await _refuse(scope, receive, send, 413, "payload_too_large", refused)
                    return
                if not any(name == b"content-length" for name, _ in scope["headers"]):
                    # A chunked body: read it (up to the cap) before the app does.
                    replay = await _read_capped(receive, self.max_json_body_bytes)
                    if replay is None:
                        await _refuse(
                            scope,
                            receive,
                            send,
                            413,
                            "payload_too_large",
                            f"request body exceeds the API limit of "
                            f"{self.max_json_body_bytes} bytes",
                        )
                        return
                    receive = replay
        needed, _rule = required_scope(method, path)
        state = scope.setdefault("state", {})
        state["api_key"] = None
        state["auth_open"] = True
        store: KeyStore | None = getattr(scope["app"].state, "keystore", None)
        if needed == PUBLIC or store is None:  # no store: the lifespan has not run (tests)
            await self.app(scope, receive, send)
            return
        try:
            active = store.cached_active_count()
            if active is None:
                active = await anyio.to_thread.run_sync(store.active_count)
        except DBAPIError as exc:  # the database is down or restarting: retry later, not a 500
            if not database_unavailable(exc):
                raise
            await _unavailable(scope, receive, send)
            return
        if active == 0:
            await self.app(scope, receive, send)
            return
        state["auth_open"] = False
        key = presented_key(scope["headers"])
        if not key:
            await _refuse(
                scope,
                receive,
                send,
                401,
                "unauthorized",
                "an API key is required: send Authorization: Bearer <key> or x-api-key",
            )
            return
        answered, record = store.cached_verify(key)  # the 1 s cache, without a thread hop
        if not answered:
            try:
                record = await anyio.to_thread.run_sync(store.verify, key)
            except DBAPIError as exc:
                if not database_unavailable(exc):
                    raise
                await _unavailable(scope, receive, send)
                return
        if record is None:
            await _refuse(
                scope, receive, send, 401, "unauthorized", "the API key is invalid or revoked"
            )
            return
        if not record.allows(needed):
            await _refuse(
                scope,
                receive,
                send,
                403,
                "forbidden",
                f"the key {record.prefix}… lacks the {needed} scope needed for {method} {path}",
            )
            return
        state["api_key"] = record
        await self.app(scope, receive, send)

    def _too_large(self, scope: Scope) -> str | None:
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    size = int(value)
                except ValueError:
                    return None
                if size > self.max_json_body_bytes:
                    return (
                        f"request body of {size} bytes exceeds the API limit of "
                        f"{self.max_json_body_bytes} bytes"
                    )
        return None


async def _read_capped(receive: Receive, limit: int) -> Receive | None:
    """The whole body if it fits in ``limit`` bytes (as a replaying receive), else None."""
    parts: list[bytes] = []
    seen = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        body = message.get("body", b"")
        seen += len(body)
        if seen > limit:
            return None
        parts.append(body)
        if not message.get("more_body", False):
            break
    pending: list[Message] = [{"type": "http.request", "body": b"".join(parts), "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


def _with_security_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {name.lower() for name, _ in headers}
            headers.extend(h for h in SECURITY_HEADERS if h[0] not in present)
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


async def _refuse(
    scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str
) -> None:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="pharos"'))
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        if "websocket.http.response" in scope.get("extensions", {}):
            # Answer the handshake as HTTP would (401 without a key, 403 without the scope),
            # with the same JSON error (ASGI's WebSocket denial response extension).
            await send(
                {"type": "websocket.http.response.start", "status": status, "headers": headers}
            )
            await send({"type": "websocket.http.response.body", "body": body})
            return
        # Closing before accepting makes the server answer the handshake with 403.
        await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
        return
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _unavailable(scope: Scope, receive: Receive, send: Send) -> None:
    """503 + Retry-After while the keys cannot be read (the database is away)."""
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.close", "code": 1013, "reason": "database unavailable"})
        return
    body = orjson.dumps(
        {"error": {"code": "unavailable", "message": "the database is unavailable; retry shortly"}}
    )
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def current_key(state: Any) -> ApiKey | None:
    return getattr(state, "api_key", None)
