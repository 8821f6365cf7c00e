"""Serves the built dashboard (``web/`` → ``src/pharos/server/web/dist``) at ``/``.

An ASGI middleware, not a catch-all route: GET/HEAD requests outside the API's prefixes get a
file from ``dist`` or, for client-side routes (``/traces/…``), ``index.html``; everything else
passes through untouched, so ``/api``, ``/v1``, ``/metrics``, ``/healthz``, ``/readyz`` and
``/docs`` keep their own 404/405 answers. Every dashboard response carries a strict
Content-Security-Policy (no inline scripts, same-origin connections only).
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

DIST = Path(__file__).parent / "dist"
RESERVED = (
    "/api",
    "/v1",
    "/gateway",
    "/metrics",
    "/healthz",
    "/readyz",
    "/docs",
    "/redoc",
    "/openapi.json",
)
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
NOT_BUILT = (
    b"The Pharos dashboard is not built.\n\n"
    b"Run `make serve` (it builds it), or: cd web && npm ci && npm run build\n"
    b"The API is at /api/v1 and its documentation at /docs.\n"
)


def _reserved(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in RESERVED)


class DashboardMiddleware:
    def __init__(self, app: ASGIApp, dist: Path = DIST) -> None:
        self.app = app
        self.dist = dist.resolve()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in ("GET", "HEAD")
            or _reserved(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        head = scope["method"] == "HEAD"
        index = self.dist / "index.html"
        if not index.is_file():
            await _send(send, 503, NOT_BUILT, "text/plain; charset=utf-8", "no-store", head)
            return
        target = self._file(path)
        if target is not None:
            immutable = path.startswith("/assets/")
            cache = "public, max-age=31536000, immutable" if immutable else "no-cache"
            media = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            if media.startswith("text/") or media in ("application/javascript", "image/svg+xml"):
                media += "; charset=utf-8"
            await _send(send, 200, target.read_bytes(), media, cache, head)
            return
        if path.startswith("/assets/"):  # a stale hashed asset: say so, not the app
            await _send(send, 404, b"not found\n", "text/plain; charset=utf-8", "no-store", head)
            return
        # A client-side route (agent names may contain dots): the app decides what to show.
        await _send(send, 200, index.read_bytes(), "text/html; charset=utf-8", "no-cache", head)

    def _file(self, path: str) -> Path | None:
        rel = path.lstrip("/")
        if not rel or "\x00" in rel:
            return None
        try:
            target = (self.dist / rel).resolve()
        except (OSError, ValueError):
            return None
        if target.is_file() and target.is_relative_to(self.dist):
            return target
        return None


async def _send(send: Send, status: int, body: bytes, media: str, cache: str, head: bool) -> None:
    headers = [
        (b"content-type", media.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", cache.encode()),
        *SECURITY_HEADERS,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})
