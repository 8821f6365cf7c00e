"""Routes of the report room: ``/api/v1/reports`` (JSON), ``/api/v1/reports/html`` (a page
with the chart inline) and ``/api/v1/reports/send`` (queue one to channels now)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from pharos.server.analytics.api import parse_window
from pharos.server.errors import ApiError
from pharos.server.report.render import chart_png, data_uri, to_html
from pharos.server.report.service import Reports, UnknownChannels
from pharos.server.responses import FastJSONResponse

router = APIRouter(prefix="/api/v1", tags=["reports"])
Period = Annotated[str, Query(description="The window: 24h (daily), 7d (weekly), or any")]


def _reports(request: Request) -> Reports:
    reports: Reports = request.app.state.reports
    return reports


def _end_s() -> int:
    return (int(time.time()) // 60 + 1) * 60


def _firing(request: Request) -> int:
    counter = getattr(request.app.state, "firing_alerts", None)
    return int(counter(None)) if callable(counter) else 0


async def _build(request: Request, period: str) -> dict[str, Any]:
    window_s = parse_window(period, "period")
    reports = _reports(request)
    firing = _firing(request)
    return await anyio.to_thread.run_sync(lambda: reports.build(window_s, _end_s(), firing))


@router.get("/reports", summary="A health/performance & cost report for a period (JSON)")
async def get_report(request: Request, period: Period = "24h") -> FastJSONResponse:
    return FastJSONResponse(await _build(request, period))


@router.get("/reports/html", summary="The same report as an HTML page with its chart inline")
async def get_report_html(request: Request, period: Period = "24h") -> Response:
    report = await _build(request, period)
    page = await anyio.to_thread.run_sync(lambda: to_html(report, data_uri(chart_png(report))))
    return Response(page, media_type="text/html; charset=utf-8")


class SendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period: str = Field(default="24h", max_length=16)
    channels: list[str] | None = Field(default=None, max_length=32)


@router.post("/reports/send", status_code=202, summary="Queue a report to channels now")
async def send_report(request: Request, body: SendIn) -> FastJSONResponse:
    reports = _reports(request)
    names = body.channels if body.channels is not None else reports.settings.report_channels
    if not names:
        raise ApiError(
            400,
            "channels: none given and PHAROS_REPORT_CHANNELS is empty",
            "invalid_parameter",
        )
    report = await _build(request, body.period)
    key = f"report:manual:{time.time_ns()}"
    try:
        queued = await anyio.to_thread.run_sync(lambda: reports.queue(report, key, list(names)))
    except UnknownChannels as exc:
        raise ApiError(400, f"channels: {exc}", "invalid_parameter") from None
    return FastJSONResponse({"queued": queued, "period": report["period"]}, status_code=202)
