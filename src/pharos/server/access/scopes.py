"""Which scope each request needs: the one table every route of the app maps through.

:func:`required_scope` returns ``(scope, rule)``; ``scope`` is ``ingest``, ``read``, ``admin`` or
``public``. ``tests/unit/test_access_scopes.py`` walks every route of the app and fails when one
falls through to the fail-closed default (``admin``) instead of an explicit rule.
"""

from __future__ import annotations

PUBLIC = "public"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

#: Exact paths anyone may call: liveness/readiness for orchestrators, the login itself, and the
#: OpenAPI description (it lists routes, not data).
PUBLIC_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/api/v1/auth/login",
        "/api/v1/auth/logout",
        "/api/v1/auth/session",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
    }
)
#: Prefixes the dashboard middleware never serves (API, OTLP, gateway, ops).
RESERVED_PREFIXES = ("/api", "/v1", "/gateway", "/metrics")


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def required_scope(method: str, path: str) -> tuple[str, str]:
    """``(scope, rule name)`` for a request; websockets pass method ``GET``."""
    method = method.upper()
    if path in PUBLIC_PATHS:
        return PUBLIC, "public path"
    if _under(path, "/v1"):
        return "ingest", "OTLP/HTTP ingest"
    if _under(path, "/gateway"):
        return "ingest", "gateway (agent and LLM traffic)"
    if path == "/metrics":
        return "read", "Prometheus scrape"
    if _under(path, "/api/v1/keys"):
        return "admin", "API keys (even listing them)"
    if _under(path, "/api/v1"):
        if method in READ_METHODS:
            return "read", "API read"
        return "admin", "API change"
    if not any(_under(path, p) for p in RESERVED_PREFIXES) and method in {"GET", "HEAD"}:
        return PUBLIC, "dashboard files"
    return "admin", "default (fail closed)"
