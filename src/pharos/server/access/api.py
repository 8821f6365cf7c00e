"""Routes of the access room: dashboard login/logout/session, API keys, the agent registry."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from pharos.server.access.keys import (
    ApiKey,
    KeyStore,
    create_key,
    list_keys,
    parse_scopes,
    revoke_key,
    update_key_limits,
)
from pharos.server.access.middleware import COOKIE, presented_key
from pharos.server.access.registry import (
    DEFAULT_MAX_QUEUE,
    DEFAULT_MAX_WAIT_MS,
    AgentConfig,
    RegistryError,
    add_agent,
    get_agent,
    list_agents,
    parse_budget,
    parse_wait_ms,
    remove_agent,
    replace_agent,
    seen_agents,
    update_agent,
)
from pharos.server.errors import ApiError
from pharos.server.responses import FastJSONResponse
from pharos.server.timeparse import iso_from_ns

router = APIRouter(prefix="/api/v1", tags=["access"])


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(_engine)]


def _store(request: Request) -> KeyStore:
    store: KeyStore = request.app.state.keystore
    return store


# --- dashboard session ---------------------------------------------------------------------------


class Login(BaseModel):
    key: str = Field(min_length=1, max_length=256, description="An API key (phk_…).")


@router.post("/auth/login", summary="Dashboard login: a key in, an HttpOnly session cookie out")
async def login(body: Login, request: Request) -> FastJSONResponse:
    store = _store(request)
    record = await anyio.to_thread.run_sync(store.verify, body.key.strip())
    if record is None:
        raise ApiError(401, "the API key is invalid or revoked")
    response = FastJSONResponse({"authenticated": True, "key": record.public()})
    response.set_cookie(
        COOKIE,
        body.key.strip(),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
        max_age=30 * 86400,
    )
    return response


@router.post("/auth/logout", summary="Dashboard logout: clears the session cookie")
async def logout() -> Response:
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/auth/session", summary="Whether the server is open, and who the caller is")
async def session(request: Request) -> dict[str, Any]:
    store = _store(request)
    is_open = await anyio.to_thread.run_sync(store.active_count) == 0
    key = presented_key(request.scope["headers"])
    record = await anyio.to_thread.run_sync(store.verify, key) if key else None
    return {
        "open": is_open,
        "authenticated": record is not None,
        "key": None if record is None else record.public(),
    }


# --- keys ----------------------------------------------------------------------------------------


class NewKey(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[str] = Field(min_length=1, max_length=3)
    rpm: int | None = Field(
        default=None, description="Gateway requests per minute (default PHAROS_KEY_RPM)."
    )
    tpm: int | None = Field(
        default=None,
        description="LLM tokens per minute via the LLM proxy (default PHAROS_KEY_TPM).",
    )


class KeyLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rpm: int | None = Field(default=None, description="null: back to PHAROS_KEY_RPM")
    tpm: int | None = Field(default=None, description="null: back to PHAROS_KEY_TPM")


def _key_json(request: Request, record: ApiKey) -> dict[str, Any]:
    """A key as the API shows it: its fields, and its effective rate limits with this
    instance's queue figures for them (the tokens are shared with Redis; queues are not)."""
    settings = request.app.state.settings
    gateway = getattr(request.app.state, "gateway", None)
    stats = gateway.gate.stats() if gateway is not None else {}

    def limit(kind: str, own: int | None, default: int | None) -> dict[str, Any] | None:
        value = own or default
        if value is None:
            return None
        s = stats.get(f"key:{record.prefix}:{kind}", {})
        return {
            "limit": value,
            "source": "key" if own else "default",
            "max_queue": settings.key_max_queue,
            "max_wait_seconds": settings.key_max_wait_seconds,
            "queued": s.get("queued", 0),
            "waited_total": s.get("waited_total", 0),
            "wait_seconds_total": s.get("wait_seconds_total", 0.0),
            "refused_total": s.get("refused_total", 0),
        }

    return {
        **record.public(),
        "rate_limits": {
            "rpm": limit("rpm", record.rpm, settings.key_rpm),
            "tpm": limit("tpm", record.tpm, settings.key_tpm),
        },
    }


@router.get("/keys", summary="API keys: name, prefix, scopes, created, last used, revoked")
async def keys_list(request: Request, engine: EngineDep) -> dict[str, Any]:
    keys = await anyio.to_thread.run_sync(list_keys, engine)
    return {"items": [_key_json(request, k) for k in keys]}


@router.post("/keys", status_code=201, summary="Create a key (the full key is shown only here)")
async def keys_create(body: NewKey, request: Request, engine: EngineDep) -> FastJSONResponse:
    try:
        scopes = parse_scopes(body.scopes)
    except ValueError as exc:
        raise ApiError(400, f"scopes: {exc}", "invalid_parameter") from None
    try:
        key, record = await anyio.to_thread.run_sync(
            lambda: create_key(engine, body.name, scopes, rpm=body.rpm, tpm=body.tpm)
        )
    except ValueError as exc:
        raise ApiError(400, str(exc), "invalid_parameter") from None
    _store(request).invalidate()
    return FastJSONResponse({"key": key, **_key_json(request, record)}, status_code=201)


@router.patch("/keys/{key_id}", summary="Change a key's rate limits (rpm, tpm; null = the default)")
async def keys_update(
    request: Request,
    engine: EngineDep,
    body: KeyLimits,
    key_id: Annotated[str, Path(min_length=1, max_length=64)],
) -> dict[str, Any]:
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    try:
        record = await anyio.to_thread.run_sync(
            lambda: update_key_limits(engine, key_id, **changes)
        )
    except ValueError as exc:
        raise ApiError(400, str(exc), "invalid_parameter") from None
    if record is None:
        raise ApiError(404, f"no API key {key_id!r}")
    _store(request).invalidate()
    return _key_json(request, record)


@router.delete("/keys/{key_id}", summary="Revoke a key (by id or prefix), on every instance")
async def keys_revoke(
    request: Request,
    engine: EngineDep,
    key_id: Annotated[str, Path(min_length=1, max_length=64)],
) -> dict[str, Any]:
    record = await anyio.to_thread.run_sync(revoke_key, engine, key_id)
    if record is None:
        raise ApiError(404, f"no API key {key_id!r}")
    _store(request).invalidate()
    return _key_json(request, record)


# --- agent registry ------------------------------------------------------------------------------


class AgentBody(BaseModel):
    name: str | None = Field(default=None, max_length=128)
    upstream_url: str | None = Field(default=None, max_length=2048)
    rpm: int | None = None
    tpm: int | None = None
    max_queue: int = 20
    max_wait: str | float = "10s"
    budget_usd: str | float | None = None
    budget_period: str | None = None
    labels: dict[str, Any] = Field(default_factory=dict)

    def config(self, name: str) -> AgentConfig:
        return AgentConfig(
            name=name,
            upstream_url=self.upstream_url,
            rpm=self.rpm,
            tpm=self.tpm,
            max_queue=self.max_queue,
            max_wait_ms=parse_wait_ms(self.max_wait),
            budget_nanousd=parse_budget(self.budget_usd),
            budget_period=self.budget_period,
            labels=self.labels,
        )


AgentName = Annotated[str, Path(min_length=1, max_length=128)]


def _seen_fields(seen: tuple[int, int] | None) -> dict[str, Any]:
    return {
        "first_seen": iso_from_ns(seen[0]) if seen else None,
        "last_seen": iso_from_ns(seen[1]) if seen else None,
    }


def _registered(config: AgentConfig, seen: tuple[int, int] | None) -> dict[str, Any]:
    return {**config.to_json(), "registered": True, **_seen_fields(seen)}


def _discovered(name: str, seen: tuple[int, int]) -> dict[str, Any]:
    """An agent seen in telemetry that nobody registered: no gateway settings yet."""
    return {
        "name": name,
        "registered": False,
        "upstream_url": None,
        "rpm": None,
        "tpm": None,
        "max_queue": None,
        "max_wait_seconds": None,
        "budget": None,
        "labels": {},
        "gateway_path": None,
        "created_ns": None,
        "updated_ns": None,
        **_seen_fields(seen),
    }


@router.get(
    "/agents/registry",
    summary="Registered agents and those seen in telemetry (registered: false), with first "
    "and last seen",
)
async def registry_list(engine: EngineDep) -> dict[str, Any]:
    def load() -> tuple[list[AgentConfig], dict[str, tuple[int, int]]]:
        return list_agents(engine), seen_agents(engine)

    agents, seen = await anyio.to_thread.run_sync(load)
    items = {a.name: _registered(a, seen.get(a.name)) for a in agents}
    for name, when in seen.items():
        items.setdefault(name, _discovered(name, when))
    return {"items": [items[name] for name in sorted(items)]}


@router.post("/agents/registry", status_code=201, summary="Register an agent")
async def registry_add(body: AgentBody, request: Request, engine: EngineDep) -> FastJSONResponse:
    if not body.name:
        raise ApiError(400, "name: required", "invalid_parameter")
    try:
        config = await anyio.to_thread.run_sync(add_agent, engine, body.config(body.name))
    except RegistryError as exc:
        status = 409 if "already registered" in str(exc) else 400
        raise ApiError(
            status, str(exc), "conflict" if status == 409 else "invalid_parameter"
        ) from None
    seen = await anyio.to_thread.run_sync(lambda: seen_agents(engine, config.name))
    return FastJSONResponse(_registered(config, seen.get(config.name)), status_code=201)


@router.get("/agents/registry/{name}", summary="One agent: registered, or only seen in telemetry")
async def registry_get(name: AgentName, engine: EngineDep) -> dict[str, Any]:
    def load() -> tuple[AgentConfig | None, dict[str, tuple[int, int]]]:
        return get_agent(engine, name), seen_agents(engine, name)

    config, seen = await anyio.to_thread.run_sync(load)
    if config is not None:
        return _registered(config, seen.get(name))
    if name in seen:
        return _discovered(name, seen[name])
    raise ApiError(404, f"agent {name!r} is neither registered nor seen in telemetry")


@router.put(
    "/agents/registry/{name}",
    summary="Replace a registered agent's settings, or register one (e.g. seen in telemetry)",
    responses={201: {"description": "Registered now"}},
)
async def registry_put(name: AgentName, body: AgentBody, engine: EngineDep) -> FastJSONResponse:
    def save() -> tuple[AgentConfig, bool]:
        config = replace_agent(engine, body.config(name))
        if config is not None:
            return config, False
        try:
            return add_agent(engine, body.config(name)), True
        except RegistryError as exc:
            if "already registered" not in str(exc):
                raise
            # registered by someone else meanwhile: replace it after all
            again = replace_agent(engine, body.config(name))
            assert again is not None
            return again, False

    try:
        config, created = await anyio.to_thread.run_sync(save)
    except RegistryError as exc:
        raise ApiError(400, str(exc), "invalid_parameter") from None
    seen = await anyio.to_thread.run_sync(lambda: seen_agents(engine, name))
    return FastJSONResponse(
        _registered(config, seen.get(name)), status_code=201 if created else 200
    )


class AgentPatch(BaseModel):
    """Only the fields sent change; ``null`` unsets one (no limit, no budget, the default queue
    and wait). ``labels`` are merged, a ``null`` value removes that label."""

    model_config = ConfigDict(extra="forbid")
    upstream_url: str | None = Field(default=None, max_length=2048)
    rpm: int | None = None
    tpm: int | None = None
    max_queue: int | None = None
    max_wait: str | float | None = None
    budget_usd: str | float | None = None
    budget_period: str | None = None
    labels: dict[str, Any] | None = None

    def changes(self) -> dict[str, Any]:
        given = self.model_fields_set
        out: dict[str, Any] = {
            k: getattr(self, k)
            for k in ("upstream_url", "rpm", "tpm", "budget_period")
            if k in given
        }
        if "max_queue" in given:
            out["max_queue"] = DEFAULT_MAX_QUEUE if self.max_queue is None else self.max_queue
        if "max_wait" in given:
            out["max_wait_ms"] = (
                DEFAULT_MAX_WAIT_MS if self.max_wait is None else parse_wait_ms(self.max_wait)
            )
        if "budget_usd" in given:
            out["budget_nanousd"] = parse_budget(self.budget_usd)
        return out


@router.patch("/agents/registry/{name}", summary="Change some of a registered agent's settings")
async def registry_patch(name: AgentName, body: AgentPatch, engine: EngineDep) -> dict[str, Any]:
    try:
        config = await anyio.to_thread.run_sync(
            update_agent, engine, name, body.changes(), body.labels
        )
    except RegistryError as exc:
        raise ApiError(400, str(exc), "invalid_parameter") from None
    if config is None:
        raise ApiError(404, f"agent {name!r} is not registered")
    seen = await anyio.to_thread.run_sync(lambda: seen_agents(engine, name))
    return _registered(config, seen.get(name))


@router.delete("/agents/registry/{name}", status_code=204, summary="Unregister an agent")
async def registry_delete(name: AgentName, engine: EngineDep) -> Response:
    if not await anyio.to_thread.run_sync(remove_agent, engine, name):
        raise ApiError(404, f"agent {name!r} is not registered")
    return Response(status_code=204)
