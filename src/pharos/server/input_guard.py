"""Refuse NUL characters in request input before any room sees it.

PostgreSQL text cannot hold a NUL (``psycopg.DataError``: a 500), SQLite's ``LIKE`` and FTS5
stop reading a pattern at one (``q=%00`` matched every log), and no name, filter or text a
user sends ever needs one. So one ASGI middleware answers ``400 invalid_parameter`` naming the
input, for every route:

- a **query parameter** (name or value) containing ``%00``;
- a **path parameter** (``/api/v1/errors/{fingerprint}``, ``/api/v1/agents/registry/{name}``,
  ...): named by matching the path against the app's route templates, else ``path``;
- a string (or object key) in a **JSON body** sent to ``/api/*`` (alert rules, channels, SLOs,
  the agent registry, prices, budgets, keys, ...), named by its place in the document
  (``labels.team``, ``channels.0``). Those bodies are small (AccessMiddleware caps them), so
  the body is read here and handed on unchanged; the JSON is only parsed when the raw bytes
  contain the escape ``\\u0000``.

OTLP ingest bodies are not looked at here: the decoders strip NULs from what they store.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

NUL = "\x00"
_BODY_METHODS = frozenset(("POST", "PUT", "PATCH", "DELETE"))


class NulGuardMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        problem = query_problem(scope.get("query_string", b"")) or _path_problem(scope)
        if problem is None and scope["type"] == "http" and _has_json_body(scope):
            receive, problem = await _body_problem(receive)
        if problem is None:
            await self.app(scope, receive, send)
            return
        await _refuse(scope, receive, send, f"{problem}: must not contain a NUL character")


def query_problem(query_string: bytes) -> str | None:
    """The first query parameter whose name or value holds a NUL (as Starlette decodes them)."""
    if b"%00" not in query_string and b"\x00" not in query_string:
        return None
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if NUL in name:
            return f"{_shown(name)} (a parameter name)"
        if NUL in value:
            return name
    return None


def _path_problem(scope: Scope) -> str | None:
    path: str = scope.get("path", "")
    if NUL not in path:
        return None
    for regex in _path_templates(scope.get("app")):
        found = regex.match(path)
        if found is not None:
            for name, value in found.groupdict().items():
                if NUL in value:
                    return name
    return "path"


def _path_templates(app: Any) -> list[re.Pattern[str]]:
    """The app's route templates with parameters (``/api/v1/traces/{trace_id}``) as regexes,
    from its OpenAPI document (built once and cached by FastAPI)."""
    openapi = getattr(app, "openapi", None)
    if openapi is None:
        return []
    try:
        paths = openapi().get("paths", {})
    except Exception:  # no schema to name the parameter with: say "path"
        return []
    return [compile_path(template)[0] for template in paths if "{" in template]


def _has_json_body(scope: Scope) -> bool:
    return scope.get("method") in _BODY_METHODS and scope["path"].startswith("/api/")


async def _body_problem(receive: Receive) -> tuple[Receive, str | None]:
    """Read the whole body (a replaying ``receive`` for the app) and name a NUL in its JSON."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
    pending += [m for m in messages if m["type"] != "http.request"]
    pending.reverse()

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    if b"\\u0000" not in body:
        return replay, None
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:  # not JSON: the route answers that
        return replay, None
    return replay, next(json_nul_paths(document), None)


def json_nul_paths(value: Any, path: str = "") -> Iterator[str]:
    """Where NULs are in a JSON document: ``a.b`` for a value, ``a.b (key)`` for a key."""
    if isinstance(value, str):
        if NUL in value:
            yield _shown(path) or "body"
    elif isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if NUL in key:
                yield f"{_shown(here)} (a key)"
            yield from json_nul_paths(item, here)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from json_nul_paths(item, f"{path}.{i}" if path else str(i))


def _shown(text: str) -> str:
    return text.replace(NUL, "\\u0000")


async def _refuse(scope: Scope, receive: Receive, send: Send, message: str) -> None:
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
        return
    body = orjson.dumps({"error": {"code": "invalid_parameter", "message": message}})
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
