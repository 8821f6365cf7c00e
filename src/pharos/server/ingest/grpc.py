"""OTLP/gRPC ingest on port 4317: ``TraceService/Export``, ``MetricsService/Export`` and
``LogsService/Export``.

The server is a ``grpc.aio`` server started in the app's lifespan, in the same event loop as
FastAPI, so it shares the app's parser (decode + normalize, possibly in worker processes) and
group-commit writer with OTLP/HTTP. The handlers are registered with no request deserializer:
they receive the raw protobuf bytes, which go through exactly the path an OTLP/HTTP protobuf
body takes. The same rules hold: the answer is sent only after the commit; an overloaded
writer answers ``RESOURCE_EXHAUSTED`` and an unreachable database ``UNAVAILABLE``, both with a
``google.rpc.RetryInfo`` (in ``grpc-status-details-bin``, as the OTLP spec says, and in
``google.rpc.retryinfo-bin``, which the Python exporter reads); bad data is
``INVALID_ARGUMENT`` with a message naming the problem. gzip (``grpc-encoding: gzip``) is
undone by gRPC itself; ``max_body_bytes`` caps a message (after decompression).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from pharos.server.forward.service import Forwarder
from pharos.server.ingest.decode import PROTOBUF, DecodeError
from pharos.server.ingest.log_store import LOGS, logs_response
from pharos.server.ingest.metric_store import METRIC_POINTS, metrics_response
from pharos.server.ingest.parsing import Parser
from pharos.server.ingest.writer import GroupCommitWriter, Overloaded, Unavailable

if TYPE_CHECKING:
    from pharos.server.prometheus import IngestRejections

log = logging.getLogger("pharos.ingest.grpc")

TRACE_SERVICE = trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name
METRICS_SERVICE = metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"].full_name
LOGS_SERVICE = logs_service_pb2.DESCRIPTOR.services_by_name["LogsService"].full_name

#: An export handler: raw request bytes in, serialized response bytes out, or an ExportError.
Handler = Callable[[bytes], Awaitable[bytes]]


@dataclass
class ExportError(Exception):
    """An export that must be answered with a non-OK gRPC status."""

    code: grpc.StatusCode
    message: str
    retry_after: float | None = None


class OtlpGrpcServer:
    """The OTLP/gRPC services, bound to ``host:port`` (``port`` 0 picks a free one)."""

    def __init__(
        self,
        *,
        parser: Parser,
        writer: GroupCommitWriter,
        max_message_bytes: int,
        retry_after_seconds: float,
        observe: Callable[[str, str, float], None] | None = None,
        rejections: IngestRejections | None = None,
    ) -> None:
        self._parser = parser
        self._writer = writer
        self._retry_after = retry_after_seconds
        self._max_message_bytes = max_message_bytes
        self._observe = observe
        #: Counts refused exports and partial_success items on /metrics (prometheus.py).
        self._rejections = rejections
        self._server: Any = None
        self.port = 0
        # Set by the app when API keys apply (access/startup.py): metadata -> None or a denial.
        self.authorize: Callable[[Any], Awaitable[tuple[Any, str] | None]] | None = None
        #: Set by the app when forwarding is configured (forward/service.py).
        self.forward: Forwarder | None = None
        self._handlers: dict[str, dict[str, Handler]] = {
            TRACE_SERVICE: {"Export": self._export_traces},
            METRICS_SERVICE: {"Export": self._export_metrics},
            LOGS_SERVICE: {"Export": self._export_logs},
        }

    def add_service(self, service: str, handler: Handler) -> None:
        """Register ``service``'s ``Export`` method (before :meth:`start`)."""
        self._handlers[service] = {"Export": handler}

    async def start(self, host: str, port: int) -> int:
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", self._max_message_bytes),
                ("grpc.max_send_message_length", 4 * 1024 * 1024),
                # Without this, a second server on the same port would silently share it.
                ("grpc.so_reuseport", 0),
            ],
        )
        for service, methods in self._handlers.items():
            server.add_generic_rpc_handlers(
                (
                    grpc.method_handlers_generic_handler(
                        service,
                        {
                            name: grpc.unary_unary_rpc_method_handler(
                                self._wrap(service, name, handler),
                                request_deserializer=None,  # raw bytes: the Parser decodes
                                response_serializer=None,  # handlers return bytes
                            )
                            for name, handler in methods.items()
                        },
                    ),
                )
            )
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError:
            raise OSError(
                f"cannot listen for OTLP/gRPC on {address}: the port is in use or the address "
                "is not local (set PHAROS_GRPC_PORT, or PHAROS_GRPC_ENABLED=false)"
            ) from None
        if not bound:
            raise OSError(f"cannot listen for OTLP/gRPC on {address}")
        await server.start()
        self._server = server
        self.port = bound
        return int(bound)

    async def stop(self, grace: float = 10.0) -> None:
        """Refuse new calls, let the ones in flight finish (their data is committed)."""
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None

    def _wrap(self, service: str, method: str, handler: Handler) -> Callable[..., Any]:
        route = f"/{service}/{method}"

        async def call(request: bytes, context: Any) -> bytes:
            if self.authorize is not None:
                denied = await self.authorize(context.invocation_metadata())
                if denied is not None:
                    await context.abort(denied[0], denied[1])
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                return await handler(request)
            except ExportError as exc:
                code = exc.code
                await context.abort(exc.code, exc.message, trailing_metadata=_status_metadata(exc))
                raise  # abort raises; this is never reached
            except Exception:
                code = grpc.StatusCode.INTERNAL
                log.exception("OTLP/gRPC %s failed", route)
                await context.abort(code, "internal error; see the server log")
                raise
            finally:
                if self._observe is not None:
                    self._observe(route, code.name, time.perf_counter() - started)

        return call

    # --- the signals --------------------------------------------------------------------------

    async def _export_traces(self, body: bytes) -> bytes:
        batch = await self._run("traces", self._parser.parse(body, PROTOBUF, None))
        forward = self._forward("traces", body, len(batch.spans))
        await self._run(
            "traces",
            self._writer.write(batch.spans, context=forward, derived=batch.derived),
        )
        self._rejected_items("traces", batch.rejected)
        response = trace_service_pb2.ExportTraceServiceResponse()
        if batch.rejected:
            response.partial_success.rejected_spans = batch.rejected
            response.partial_success.error_message = batch.error_message
        return bytes(response.SerializeToString())

    async def _export_metrics(self, body: bytes) -> bytes:
        batch = await self._run("metrics", self._parser.parse_metrics(body, PROTOBUF, None))
        forward = self._forward("metrics", body, len(batch.points), METRIC_POINTS)
        write = self._writer.write(extras={METRIC_POINTS: batch.points}, context=forward)
        await self._run("metrics", write)
        self._rejected_items("metrics", batch.rejected)
        return bytes(metrics_response(batch).SerializeToString())

    async def _export_logs(self, body: bytes) -> bytes:
        batch = await self._run("logs", self._parser.parse_logs(body, PROTOBUF, None))
        forward = self._forward("logs", body, len(batch.logs), LOGS)
        await self._run("logs", self._writer.write(extras={LOGS: batch.logs}, context=forward))
        self._rejected_items("logs", batch.rejected)
        return bytes(logs_response(batch).SerializeToString())

    def _rejected_items(self, signal: str, n: int) -> None:
        if self._rejections is not None:
            self._rejections.items(signal, "grpc", n)

    def _forward(self, signal: str, body: bytes, items: int, store: str | None = None) -> Any:
        """The writer context that queues this export for forwarding (None when off)."""
        if self.forward is None:
            return None
        return self.forward.context(signal, body, PROTOBUF, None, items, store)

    async def _run(self, signal: str, step: Awaitable[Any]) -> Any:
        """Await one step of the ingest path, mapping its failures onto gRPC statuses (and
        counting them by ``signal`` and reason)."""
        try:
            return await step
        except DecodeError as exc:
            self._refused(signal, "bad_request")
            raise ExportError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        except Overloaded:
            self._refused(signal, "overloaded")
            raise ExportError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "ingest queue is full; retry later",
                self._retry_after,
            ) from None
        except Unavailable as exc:
            self._refused(signal, "unavailable")
            raise ExportError(
                grpc.StatusCode.UNAVAILABLE, f"{exc}; retry later", self._retry_after
            ) from None
        except RuntimeError as exc:  # the writer could not store the data (not transient)
            self._refused(signal, "write_failed")
            raise ExportError(grpc.StatusCode.INTERNAL, str(exc)) from None

    def _refused(self, signal: str, reason: str) -> None:
        if self._rejections is not None:
            self._rejections.request(signal, "grpc", reason)


def _status_metadata(exc: ExportError) -> tuple[tuple[str, bytes], ...]:
    """``grpc-status-details-bin`` (a google.rpc.Status, with RetryInfo when retryable)."""
    status = status_pb2.Status(code=exc.code.value[0], message=exc.message)
    metadata: list[tuple[str, bytes]] = []
    if exc.retry_after is not None:
        seconds = int(exc.retry_after)
        retry = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(
                seconds=seconds, nanos=int((exc.retry_after - seconds) * 1e9)
            )
        )
        detail = any_pb2.Any()
        detail.Pack(retry)
        status.details.append(detail)
        metadata.append(("google.rpc.retryinfo-bin", retry.SerializeToString()))
    metadata.insert(0, ("grpc-status-details-bin", status.SerializeToString()))
    return tuple(metadata)
