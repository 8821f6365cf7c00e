"""Routes of the SLO room: ``/api/v1/slos`` (CRUD, each SLO with its status)."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from pharos.server.db.engine import writing
from pharos.server.errors import ApiError
from pharos.server.responses import FastJSONResponse
from pharos.server.slo import store
from pharos.server.slo.core import SloDef
from pharos.server.timeparse import iso_from_ns

router = APIRouter(prefix="/api/v1", tags=["slos"])


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(_engine)]


class SloIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    agent: str | None = Field(default=None, min_length=1, max_length=512)
    kind: Literal["success", "latency"] | None = None
    objective: float | None = Field(
        default=None, gt=0, lt=100, description="Percent of good requests, e.g. 99.9"
    )
    threshold_ms: float | None = Field(
        default=None, gt=0, le=86_400_000, description="latency: a good request is this fast"
    )
    period_days: int | None = Field(default=None, ge=1, le=90)
    description: str | None = Field(default=None, max_length=2000)


def end_of_minute(now_s: float) -> int:
    return (int(now_s) // 60 + 1) * 60


def _check(merged: SloDef) -> None:
    if merged.kind == "latency" and merged.threshold_ms is None:
        raise ApiError(400, "threshold_ms: a latency SLO needs one (e.g. 200)", "invalid_parameter")
    if merged.kind == "success" and merged.threshold_ms is not None:
        raise ApiError(400, "threshold_ms: only a latency SLO has one", "invalid_parameter")


def _status_one(engine: Engine, slo_id: int) -> dict[str, Any] | None:
    with engine.connect() as conn:
        d = store.get_def(conn, slo_id)
        if d is None:
            return None
        return store.statuses(conn, [d], end_of_minute(time.time()))[0]


@router.get("/slos", summary="SLOs with attainment, error budget left and burn rates")
async def list_slos(
    engine: EngineDep, agent: Annotated[str | None, Query(max_length=512)] = None
) -> FastJSONResponse:
    end_s = end_of_minute(time.time())

    def run() -> list[dict[str, Any]]:
        with engine.connect() as conn:
            return store.statuses(conn, store.list_defs(conn, agent), end_s)

    items = await anyio.to_thread.run_sync(run)
    return FastJSONResponse({"items": items, "evaluated_at": iso_from_ns(end_s * 10**9)})


@router.post("/slos", status_code=201, summary="Create an SLO for an agent")
async def create_slo(body: SloIn, engine: EngineDep) -> FastJSONResponse:
    missing = [n for n in ("name", "agent", "kind", "objective") if getattr(body, n) is None]
    if missing:
        raise ApiError(400, f"missing: {', '.join(missing)}", "invalid_parameter")
    assert body.name and body.agent and body.kind and body.objective is not None
    values: dict[str, Any] = {
        "name": body.name.strip(),
        "agent": body.agent,
        "kind": body.kind,
        "objective": body.objective,
        "threshold_ms": body.threshold_ms,
        "period_days": body.period_days or 30,
        "description": body.description or "",
    }
    _check(SloDef(0, **values))

    def run() -> int:
        with writing(engine).begin() as conn:
            if store.name_taken(conn, values["name"]):
                raise ApiError(409, f"an SLO named {values['name']!r} exists", "conflict")
            return store.create(conn, values, time.time_ns())

    slo_id = await anyio.to_thread.run_sync(run)
    result = await anyio.to_thread.run_sync(_status_one, engine, slo_id)
    return FastJSONResponse(result, status_code=201)


@router.get("/slos/{slo_id}", summary="One SLO with its status")
async def get_slo(slo_id: int, engine: EngineDep) -> FastJSONResponse:
    result = await anyio.to_thread.run_sync(_status_one, engine, slo_id)
    if result is None:
        raise ApiError(404, f"SLO {slo_id} not found")
    return FastJSONResponse(result)


@router.patch("/slos/{slo_id}", summary="Change an SLO (any of its fields)")
async def update_slo(slo_id: int, body: SloIn, engine: EngineDep) -> FastJSONResponse:
    changes = body.model_dump(exclude_unset=True)
    if "name" in changes and changes["name"] is not None:
        changes["name"] = changes["name"].strip()
    for key in ("name", "agent", "kind", "objective", "period_days"):
        if key in changes and changes[key] is None:
            raise ApiError(400, f"{key}: cannot be null", "invalid_parameter")
    if "description" in changes and changes["description"] is None:
        changes["description"] = ""

    def run() -> bool:
        with writing(engine).begin() as conn:
            current = store.get_def(conn, slo_id)
            if current is None:
                return False
            merged = {
                "name": current.name,
                "agent": current.agent,
                "kind": current.kind,
                "objective": current.objective,
                "threshold_ms": current.threshold_ms,
                "period_days": current.period_days,
                "description": current.description,
                **changes,
            }
            if merged["kind"] == "success" and "kind" in changes and "threshold_ms" not in changes:
                merged["threshold_ms"] = None
            _check(SloDef(slo_id, **merged))
            if store.name_taken(conn, merged["name"], except_id=slo_id):
                raise ApiError(409, f"an SLO named {merged['name']!r} exists", "conflict")
            store.update_slo(conn, slo_id, merged, time.time_ns())
            return True

    if not await anyio.to_thread.run_sync(run):
        raise ApiError(404, f"SLO {slo_id} not found")
    result = await anyio.to_thread.run_sync(_status_one, engine, slo_id)
    return FastJSONResponse(result)


@router.delete("/slos/{slo_id}", status_code=204, summary="Delete an SLO")
async def delete_slo(slo_id: int, engine: EngineDep) -> Response:
    def run() -> bool:
        with writing(engine).begin() as conn:
            return store.delete_slo(conn, slo_id)

    if not await anyio.to_thread.run_sync(run):
        raise ApiError(404, f"SLO {slo_id} not found")
    return Response(status_code=204)
