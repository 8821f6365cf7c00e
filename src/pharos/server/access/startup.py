"""The startup rule (DESIGN §6) and the OTLP/gRPC key check."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import grpc

from pharos.server.access.keys import KeyStore
from pharos.server.settings import Settings

Denial = tuple[grpc.StatusCode, str]


class PublicBindRefused(RuntimeError):
    pass


def check_public_bind(settings: Settings, store: KeyStore) -> None:
    """Refuse a non-loopback bind while no API key exists, unless ``insecure``."""
    if settings.binds_loopback or settings.insecure:
        return
    if store.active_count() == 0:
        raise PublicBindRefused(
            f"refusing to listen on {settings.host}: no API keys exist, so anyone who can reach "
            "it could read and write your telemetry. Create one (pharos keys create --name NAME "
            "--scopes admin), bind to 127.0.0.1, or pass --insecure (PHAROS_INSECURE=1) if a "
            "proxy in front of Pharos authenticates."
        )


def grpc_authorizer(
    store: KeyStore,
) -> Callable[[Sequence[tuple[str, Any]]], Awaitable[Denial | None]]:
    """OTLP/gRPC needs the ``ingest`` scope, from ``authorization: Bearer`` or ``x-api-key``."""

    async def authorize(metadata: Sequence[tuple[str, Any]]) -> Denial | None:
        if await anyio.to_thread.run_sync(store.active_count) == 0:
            return None
        key: str | None = None
        for name, value in metadata or ():
            text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
            if name == "authorization" and text[:7].lower() == "bearer ":
                key = text[7:].strip()
                break
            if name == "x-api-key":
                key = text.strip()
        if not key:
            return grpc.StatusCode.UNAUTHENTICATED, "an API key is required (authorization)"
        record = await anyio.to_thread.run_sync(store.verify, key)
        if record is None:
            return grpc.StatusCode.UNAUTHENTICATED, "the API key is invalid or revoked"
        if not record.allows("ingest"):
            return grpc.StatusCode.PERMISSION_DENIED, "the key lacks the ingest scope"
        return None

    return authorize
