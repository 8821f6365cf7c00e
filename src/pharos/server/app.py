"""``create_app(settings)``: wires routers, the lifespan (engines, writer, demo) and handlers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy import text

import pharos
from pharos.server.access.api import router as access_router
from pharos.server.access.gateway import router as gateway_router
from pharos.server.access.gateway import start_gateway
from pharos.server.access.keys import KeyStore
from pharos.server.access.middleware import AccessMiddleware
from pharos.server.access.startup import check_public_bind, grpc_authorizer
from pharos.server.alerting.api import router as alerting_router
from pharos.server.alerting.service import start_alerting
from pharos.server.analytics.api import router as analytics_router
from pharos.server.cost.api import budget_watcher
from pharos.server.cost.api import router as cost_router
from pharos.server.cost.book import CostHook, PriceBook
from pharos.server.db.engine import make_engine, make_writer_engine
from pharos.server.db.migrate import current_revision, head_revision, upgrade
from pharos.server.errors import install_error_handlers
from pharos.server.forward.service import start_forwarding
from pharos.server.ingest.error_store import (
    move_span_errors,
    record_log_errors,
    record_span_errors,
)
from pharos.server.ingest.grpc import OtlpGrpcServer
from pharos.server.ingest.http import router as ingest_router
from pharos.server.ingest.log_store import LOGS, LogStore
from pharos.server.ingest.metric_store import METRIC_POINTS, store_metric_points
from pharos.server.ingest.normalize import Limits
from pharos.server.ingest.parsing import ParseConfig, Parser
from pharos.server.ingest.writer import GroupCommitWriter
from pharos.server.input_guard import NulGuardMiddleware
from pharos.server.live import publish_ingested, publish_logs, start_live
from pharos.server.live.sse import router as live_sse_router
from pharos.server.live.websocket import router as live_ws_router
from pharos.server.ops.gc_tuning import tune_gc
from pharos.server.ops.service import readiness, start_ops
from pharos.server.ops.shutdown import DrainingMiddleware
from pharos.server.prometheus import HttpMetricsMiddleware, Metrics, RollupCollector
from pharos.server.query.api import router as query_router
from pharos.server.query.errors_api import router as errors_router
from pharos.server.query.logs_api import router as logs_router
from pharos.server.query.metrics_api import router as otlp_metrics_router
from pharos.server.report.api import router as report_router
from pharos.server.report.service import Reports
from pharos.server.responses import FastJSONResponse
from pharos.server.settings import Settings
from pharos.server.slo.api import router as slo_router
from pharos.server.web import DashboardMiddleware

log = logging.getLogger("pharos")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            settings.check_servable()
            if settings.auto_migrate:
                await anyio.to_thread.run_sync(upgrade, settings.database_url)
            else:  # every room reads its tables at start: refuse clearly rather than limp
                await anyio.to_thread.run_sync(_require_migrated, settings.database_url)
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
            app.state.draining = False  # set on SIGTERM (ops/shutdown.py)
            app.state.redis_links = []  # uses of Redis that degrade to local (ops/redis_link.py)
            app.state.keystore = KeyStore(engine, ttl=settings.key_cache_seconds)
            await anyio.to_thread.run_sync(check_public_bind, settings, app.state.keystore)
            writer = GroupCommitWriter(
                writer_engine,
                queue_size=settings.writer_queue_size,
                batch_spans=settings.writer_batch_spans,
            )
            price_book = PriceBook(
                engine,
                refresh_seconds=settings.prices_refresh_seconds,
                aliases=settings.model_aliases,
            )
            writer.cost = CostHook(price_book, engine.dialect.name)
            app.state.price_book = price_book
            bus = await start_live(app, stack, settings, engine, lambda: _firing_alerts(app))
            writer.on_commit = publish_ingested(bus)  # live `trace` events after each commit
            writer.stores[METRIC_POINTS] = store_metric_points
            writer.stores[LOGS] = LogStore(on_errors=record_log_errors)  # + error groups
            writer.span_steps.append(record_span_errors)  # exception events -> error groups
            writer.move_steps.append(move_span_errors)  # ... and their agent when it arrives
            writer.on_commit_extras[LOGS] = publish_logs(bus)  # live `log` events
            await start_forwarding(app, settings, stack, writer)  # queue + worker (issue 9)
            writer.start()
            parser = Parser(
                ParseConfig(
                    settings.max_decompressed_bytes,
                    Limits(settings.max_attributes, settings.max_attribute_length),
                    gc_tuning=settings.gc_tuning,
                ),
                workers=settings.ingest_workers,
                prices=price_book,  # trace requests are priced as they are parsed
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
            app.state.grpc_port = None
            if settings.grpc_enabled:  # OTLP/gRPC in this event loop, sharing parser + writer
                grpc_server = OtlpGrpcServer(
                    parser=parser,
                    writer=writer,
                    max_message_bytes=settings.max_body_bytes,
                    retry_after_seconds=settings.retry_after_seconds,
                    observe=metrics.observe_grpc,
                    rejections=metrics.ingest_rejections,
                )
                grpc_server.authorize = grpc_authorizer(app.state.keystore)
                grpc_server.forward = app.state.forwarder
                app.state.grpc_port = await grpc_server.start(
                    settings.grpc_bind_host, settings.grpc_port
                )
                stack.push_async_callback(grpc_server.stop)  # runs before the writer stops
                log.info("OTLP/gRPC on %s:%d", settings.grpc_bind_host, app.state.grpc_port)
            budgets_task = asyncio.create_task(
                budget_watcher(engine, settings.budget_check_seconds)  # alerts: alert engine
            )
            stack.callback(budgets_task.cancel)
            await start_gateway(app, stack, settings, engine, writer)  # /gateway/*, limits
            alerting = await start_alerting(app, settings, stack)  # engine loop + outbox worker
            app.state.reports = Reports(settings, engine, alerting)  # scheduled reports
            await app.state.reports.start(stack)
            await start_ops(app, stack, settings, engine)  # retention job, Redis ping
            if settings.demo:
                from pharos.server.cost.demo import ensure_demo_budgets
                from pharos.server.demo import load_demo

                await anyio.to_thread.run_sync(ensure_demo_budgets, engine)
                task = asyncio.create_task(load_demo(writer, settings))
                stack.callback(task.cancel)
            if settings.gc_tuning:  # everything started: freeze it (ops/gc_tuning.py)
                tune_gc()
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
    app.add_middleware(NulGuardMiddleware)  # 400 for a NUL in any parameter (innermost)
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
    app.add_middleware(DrainingMiddleware, state=app.state)  # Connection: close on SIGTERM
    app.add_middleware(DashboardMiddleware)  # the built dashboard at /, outside the API
    # API keys and scopes for every route, security headers, the JSON body cap (outermost).
    app.add_middleware(AccessMiddleware, max_json_body_bytes=settings.max_json_body_bytes)
    if settings.cors_origins:  # off by default
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["authorization", "x-api-key", "content-type"],
        )
    install_error_handlers(app)
    app.include_router(ingest_router)
    app.include_router(query_router)
    app.include_router(analytics_router)
    app.include_router(alerting_router)
    app.include_router(live_ws_router)
    app.include_router(live_sse_router)
    app.include_router(otlp_metrics_router)
    app.include_router(logs_router)
    app.include_router(errors_router)
    app.include_router(cost_router)
    app.include_router(access_router)
    app.include_router(gateway_router)
    app.include_router(slo_router)
    app.include_router(report_router)

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics (text exposition format)")
    async def prometheus_metrics() -> Response:
        body, content_type = await anyio.to_thread.run_sync(metrics.render)
        return Response(body, media_type=content_type)

    @app.get("/healthz", tags=["ops"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # Load balancers often probe with HEAD; one route per method keeps OpenAPI ids unique.
    app.head("/healthz", include_in_schema=False)(healthz)

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
        alerting = getattr(request.app.state, "alerting", None)
        if alerting is not None:
            checks["alerting"] = alerting.health()
        forwarder = getattr(request.app.state, "forwarder", None)
        if forwarder is not None and forwarder.enabled:
            checks["forwarding"] = forwarder.health()
        ok = await readiness(request.app, checks) and ok  # queue fraction, Redis, draining
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


def _require_migrated(url: str) -> None:
    engine = make_engine(url)
    try:
        current, head = current_revision(engine), head_revision()
    finally:
        engine.dispose()
    if current != head:
        raise RuntimeError(
            f"the database is at migration {current or 'none (empty)'}, this Pharos needs "
            f"{head}: run `pharos db upgrade` (or start with PHAROS_AUTO_MIGRATE=true)"
        )


def _ping(engine: Any) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
