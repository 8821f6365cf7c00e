"""One error shape for the whole API: ``{"error": {"code": "...", "message": "..."}}``."""

from __future__ import annotations

import logging
import sqlite3

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from pharos.server.responses import FastJSONResponse

log = logging.getLogger("pharos.api")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_parameter",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """Raised by handlers and rooms for a client-visible error."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _CODES.get(status, "error")
        self.message = message
        self.headers = headers


def error_response(
    status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None
) -> FastJSONResponse:
    return FastJSONResponse(
        {"error": {"code": code or _CODES.get(status, "error"), "message": message}},
        status_code=status,
        headers=headers,
    )


#: The SQLite errors a retry can cure: the file is locked or busy, or cannot be opened or read
#: (a full disk, a vanished mount). SQLite reports every other problem, a syntax error in an
#: FTS5 MATCH expression among them, as ``OperationalError`` too: that is a bug (500).
SQLITE_TRANSIENT = (
    "database is locked",
    "database table is locked",
    "database is busy",
    "unable to open database file",
    "disk i/o error",
    "locking protocol",
    "database or disk is full",
)


def unavailable(exc: BaseException) -> bool:
    """Should this database error of a read API answer 503 (retry) rather than 500 (a bug)?

    SQLite errors must name a transient condition (:data:`SQLITE_TRANSIENT`), so an error
    caused by what a user typed is never taken for an outage; PostgreSQL's are judged by the
    writer's rule (connection lost, server shutting down, ...)."""
    from pharos.server.ingest.writer import database_unavailable

    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, sqlite3.Error):
        message = str(orig).lower()
        return isinstance(orig, sqlite3.OperationalError) and any(
            part in message for part in SQLITE_TRANSIENT
        )
    return database_unavailable(exc)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> FastJSONResponse:
        return error_response(exc.status, exc.message, exc.code, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> FastJSONResponse:
        return error_response(
            exc.status_code, str(exc.detail), headers=dict(exc.headers or {}) or None
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> FastJSONResponse:
        parts = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body")]
            name = ".".join(loc) or "request"
            parts.append(f"{name}: {err.get('msg', 'invalid')}")
        return error_response(400, "; ".join(parts) or "invalid request", "invalid_parameter")

    import psycopg

    @app.exception_handler(DBAPIError)
    @app.exception_handler(psycopg.OperationalError)  # raw cursors (analytics fast paths)
    @app.exception_handler(sqlite3.OperationalError)
    async def _database_error(_request: Request, exc: Exception) -> FastJSONResponse:
        # The database is down or restarting (issue 8): 503 + Retry-After, as ingest does, so
        # clients and load balancers retry instead of reporting a server bug.
        if unavailable(exc):  # not "no such table" (never migrated): that is a 500
            text = str(getattr(exc, "orig", None) or exc)
            log.warning("database unavailable: %s", text.splitlines()[0][:200] if text else exc)
            return error_response(
                503,
                "the database is unavailable; retry shortly",
                "unavailable",
                {"Retry-After": "1"},
            )
        log.exception("unhandled database error", exc_info=exc)
        return error_response(500, "internal error; see the server log")

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> FastJSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal error; see the server log")
