"""OTLP/HTTP routes: ``POST /v1/traces``, ``/v1/metrics`` and ``/v1/logs`` (protobuf or JSON,
optionally gzip).

Thin: check the content type, read the body within limits, decode + normalize off the event
loop, hand the records to the group-commit writer and answer only once they are committed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

from pharos.server.errors import error_response
from pharos.server.forward.service import forward_context
from pharos.server.ingest.body import (
    BadEncoding,
    BodyTooLarge,
    UnsupportedEncoding,
    read_limited,
)
from pharos.server.ingest.decode import (
    PROTOBUF,
    DecodeError,
    UnsupportedContentType,
    media_type,
)
from pharos.server.ingest.log_store import LOGS, logs_response
from pharos.server.ingest.logs import NormalizedLogs
from pharos.server.ingest.metric_store import METRIC_POINTS, metrics_response
from pharos.server.ingest.metrics import MetricBatch
from pharos.server.ingest.normalize import NormalizedBatch
from pharos.server.ingest.parsing import Parser
from pharos.server.ingest.writer import GroupCommitWriter, Overloaded, Unavailable
from pharos.server.prometheus import IngestRejections
from pharos.server.settings import Settings

log = logging.getLogger("pharos.ingest")
router = APIRouter(tags=["ingest"])

_GRPC_INVALID_ARGUMENT = 3
_GRPC_RESOURCE_EXHAUSTED = 8
_GRPC_INTERNAL = 13
_GRPC_UNAVAILABLE = 14


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _parser(request: Request) -> Parser:
    parser: Parser = request.app.state.parser
    return parser


def _writer(request: Request) -> GroupCommitWriter:
    writer: GroupCommitWriter = request.app.state.writer
    return writer


SettingsDep = Annotated[Settings, Depends(_settings)]
WriterDep = Annotated[GroupCommitWriter, Depends(_writer)]
ParserDep = Annotated[Parser, Depends(_parser)]


def _otlp_error(
    status: int,
    grpc_code: int,
    message: str,
    content_type: str | None,
    headers: dict[str, str] | None = None,
) -> Response:
    """OTLP/HTTP errors carry a google.rpc.Status in the request's encoding."""
    if content_type == PROTOBUF:
        body = status_pb2.Status(code=grpc_code, message=message).SerializeToString()
        return Response(body, status_code=status, media_type=PROTOBUF, headers=headers)
    return error_response(status, message, headers=headers)


async def _export(
    request: Request,
    settings: Settings,
    signal: str,
    parse: Callable[[bytes, str, str | None], Awaitable[Any]],
    write: Callable[[Any, bytes, str], Awaitable[Any]],
    answer: Callable[[Any], Message],
) -> Response:
    """One OTLP/HTTP export: content type, body within limits, parse, commit, then the answer
    (``answer(batch)``, with partial_success) in the request's encoding. Every refusal is
    counted on /metrics by ``signal`` and reason (``pharos_ingest_rejected_total``)."""
    rejections: IngestRejections = request.app.state.metrics.ingest_rejections

    def refuse(reason: str, response: Response) -> Response:
        rejections.request(signal, "http", reason)
        return response

    try:
        content_type = media_type(request.headers.get("content-type"))
    except UnsupportedContentType as exc:
        return refuse("unsupported_media_type", error_response(415, str(exc)))
    retry = {"Retry-After": str(settings.retry_after_seconds)}
    try:
        body = await read_limited(
            request.stream(), request.headers.get("content-length"), settings.max_body_bytes
        )
        batch = await parse(body, content_type, request.headers.get("content-encoding"))
    except BodyTooLarge as exc:
        return refuse("too_large", _otlp_error(413, _GRPC_INVALID_ARGUMENT, str(exc), content_type))
    except UnsupportedEncoding as exc:
        error = _otlp_error(415, _GRPC_INVALID_ARGUMENT, str(exc), content_type)
        return refuse("unsupported_encoding", error)
    except (BadEncoding, DecodeError) as exc:
        error = _otlp_error(400, _GRPC_INVALID_ARGUMENT, str(exc), content_type)
        return refuse("bad_request", error)
    except Unavailable as exc:
        error = _otlp_error(503, _GRPC_UNAVAILABLE, f"{exc}; retry later", content_type, retry)
        return refuse("unavailable", error)
    try:
        await write(batch, body, content_type)
    except Overloaded:
        error = _otlp_error(
            503, _GRPC_RESOURCE_EXHAUSTED, "ingest queue is full; retry later", content_type, retry
        )
        return refuse("overloaded", error)
    except Unavailable as exc:
        error = _otlp_error(503, _GRPC_UNAVAILABLE, f"{exc}; retry later", content_type, retry)
        return refuse("unavailable", error)
    except RuntimeError as exc:
        return refuse("write_failed", _otlp_error(500, _GRPC_INTERNAL, str(exc), content_type))
    rejections.items(signal, "http", batch.rejected)  # partial_success
    response = answer(batch)
    if content_type == PROTOBUF:
        return Response(response.SerializeToString(), media_type=PROTOBUF)
    return Response(json_format.MessageToJson(response, indent=None), media_type="application/json")


def _traces_response(batch: NormalizedBatch) -> ExportTraceServiceResponse:
    response = ExportTraceServiceResponse()
    if batch.rejected:
        response.partial_success.CopyFrom(
            ExportTracePartialSuccess(
                rejected_spans=batch.rejected, error_message=batch.error_message
            )
        )
    return response


@router.post(
    "/v1/traces",
    summary="OTLP/HTTP trace export",
    responses={400: {}, 413: {}, 415: {}, 503: {}},
)
async def export_traces(
    request: Request, settings: SettingsDep, writer: WriterDep, parser: ParserDep
) -> Response:
    async def write(batch: NormalizedBatch, body: bytes, content_type: str) -> None:
        context = forward_context(request, "traces", body, content_type, len(batch.spans))
        await writer.write(batch.spans, context=context, derived=batch.derived)

    return await _export(request, settings, "traces", parser.parse, write, _traces_response)


@router.post(
    "/v1/metrics",
    summary="OTLP/HTTP metrics export",
    responses={400: {}, 413: {}, 415: {}, 503: {}},
)
async def export_metrics(
    request: Request, settings: SettingsDep, writer: WriterDep, parser: ParserDep
) -> Response:
    async def write(batch: MetricBatch, body: bytes, content_type: str) -> None:
        n = len(batch.points)
        context = forward_context(request, "metrics", body, content_type, n, METRIC_POINTS)
        await writer.write(extras={METRIC_POINTS: batch.points}, context=context)

    parse = parser.parse_metrics
    return await _export(request, settings, "metrics", parse, write, metrics_response)


@router.post(
    "/v1/logs",
    summary="OTLP/HTTP logs export",
    responses={400: {}, 413: {}, 415: {}, 503: {}},
)
async def export_logs(
    request: Request, settings: SettingsDep, writer: WriterDep, parser: ParserDep
) -> Response:
    async def write(batch: NormalizedLogs, body: bytes, content_type: str) -> None:
        context = forward_context(request, "logs", body, content_type, len(batch.logs), LOGS)
        await writer.write(extras={LOGS: batch.logs}, context=context)

    return await _export(request, settings, "logs", parser.parse_logs, write, logs_response)
