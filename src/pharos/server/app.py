"""``create_app(settings)``: wires routers, the lifespan (engines, writer, demo) and handlers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request, Response
from sqlalchemy import text

import pharos
from pharos.server.analytics.api import router as analytics_router
from pharos.server.db.engine import make_engine, make_writer_engine
from pharos.server.db.migrate import upgrade
from pharos.server.errors import install_error_handlers
from pharos.server.ingest.http import router as ingest_router
from pharos.server.ingest.normalize import Limits
from pharos.server.ingest.parsing import ParseConfig, Parser
from pharos.server.ingest.writer import GroupCommitWriter
from pharos.server.prometheus import HttpMetricsMiddleware, Metrics, RollupCollector
from pharos.server.query.api import router as query_router
from pharos.server.responses import FastJSONResponse
from pharos.server.settings import Settings

log = logging.getLogger("pharos")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            settings.check_servable()
            if settings.auto_migrate:
                await anyio.to_thread.run_sync(upgrade, settings.database_url)
            engine = make_engine(
                settings.database_url,
                sqlite_synchronous=settings.sqlite_synchronous,
                pool_size=8,
            )
            stack.callback(engine.dispose)
            writer_engine = make_writer_engine(
                settings.database_url, sqlite_synchronous=settings.sqlite_synchronous
            )
            stack.callback(writer_engine.dispose)
            writer = GroupCommitWriter(
                writer_engine,
                queue_size=settings.writer_queue_size,
                batch_spans=settings.writer_batch_spans,
            )
            writer.start()
            parser = Parser(
                ParseConfig(
                    settings.max_decompressed_bytes,
                    Limits(settings.max_attributes, settings.max_attribute_length),
                ),
                workers=settings.ingest_workers,
            )
            await anyio.to_thread.run_sync(parser.start)
            stack.callback(parser.close)
            # On shutdown: stop accepting, commit what is queued (in-flight requests get
            # their answer), then close the engines.
            stack.push_async_callback(_stop_writer, writer)
            app.state.settings = settings
            app.state.engine = engine
            app.state.writer = writer
            metrics.attach(
                RollupCollector(
                    engine,
                    writer,
                    max_agents=settings.metrics_max_agents,
                    firing_alerts=lambda: _firing_alerts(app),
                )
            )
            app.state.parser = parser
            if settings.demo:
                from pharos.server.demo import load_demo

                task = asyncio.create_task(load_demo(writer, settings))
                stack.callback(task.cancel)
            yield

    app = FastAPI(
        title="Pharos",
        version=pharos.__version__,
        summary="Observability for AI agents",
        lifespan=lifespan,
        default_response_class=FastJSONResponse,
    )
    app.state.settings = settings
    metrics = Metrics()
    app.state.metrics = metrics
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
    install_error_handlers(app)
    app.include_router(ingest_router)
    app.include_router(query_router)
    app.include_router(analytics_router)

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics (text exposition format)")
    async def prometheus_metrics() -> Response:
        body, content_type = await anyio.to_thread.run_sync(metrics.render)
        return Response(body, media_type=content_type)

    @app.api_route("/healthz", methods=["GET", "HEAD"], tags=["ops"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], summary="Readiness: database reachable, writer running")
    async def readyz(request: Request) -> FastJSONResponse:
        writer: GroupCommitWriter = request.app.state.writer
        checks: dict[str, Any] = {
            "writer": "running" if writer.running else "stopped",
            "queue_depth": writer.queue_depth,
            "queue_capacity": writer.queue_capacity,
        }
        ok = writer.running and writer.queue_depth < writer.queue_capacity
        try:
            await anyio.to_thread.run_sync(_ping, request.app.state.engine)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unreachable: {str(exc).splitlines()[0][:200]}"
            ok = False
        if writer.stats.last_error:
            checks["writer_last_error"] = writer.stats.last_error
        return FastJSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks},
            status_code=200 if ok else 503,
        )

    return app


def _firing_alerts(app: FastAPI) -> int:
    counter = getattr(app.state, "firing_alerts", None)
    return int(counter(None)) if callable(counter) else 0


async def _stop_writer(writer: GroupCommitWriter) -> None:
    await anyio.to_thread.run_sync(writer.stop)


def _ping(engine: Any) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
