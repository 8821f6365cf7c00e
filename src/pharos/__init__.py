"""Pharos: observability for AI agents.

This package's top level is the SDK's public API::

    import pharos

    pharos.init(service_name="support-bot")
    log = pharos.get_logger(__name__)

    @pharos.agent(name="support-bot")
    async def handle(ticket): ...

Importing it starts nothing and loads only the OpenTelemetry API; ``init()`` loads the
OpenTelemetry SDK and exporters. The server lives in :mod:`pharos.server` and is imported by
the CLI only. Guide: docs/sdk.md.
"""

__version__ = "0.1.0"

from pharos.sdk.api import flush, init, shutdown, stats
from pharos.sdk.context import bind, request_id
from pharos.sdk.logs import Logger, get_logger, structlog_processor
from pharos.sdk.redact import REDACTED
from pharos.sdk.spans import (
    AgentRun,
    LLMCall,
    SpanHandle,
    ToolCall,
    agent,
    current_span,
    llm,
    span,
    tool,
)

__all__ = [
    "REDACTED",
    "AgentRun",
    "LLMCall",
    "Logger",
    "SpanHandle",
    "ToolCall",
    "__version__",
    "agent",
    "bind",
    "current_span",
    "flush",
    "get_logger",
    "init",
    "llm",
    "request_id",
    "shutdown",
    "span",
    "stats",
    "structlog_processor",
    "tool",
]
