"""Context that follows a request through threads of control: the current agent, the request
id and fields bound for logs. Plain :mod:`contextvars`, so asyncio tasks created inside a
request inherit them (``asyncio.create_task`` copies the context), and a worker thread gets them
with ``contextvars.copy_context().run(...)``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

#: The innermost agent's name (set by ``@pharos.agent``; logs carry it as gen_ai.agent.name).
current_agent: ContextVar[str | None] = ContextVar("pharos_agent", default=None)
#: The request id of the current agent run or of ``pharos.bind(request_id=...)``.
current_request_id: ContextVar[str | None] = ContextVar("pharos_request_id", default=None)
#: Extra fields every log line carries (``pharos.bind(user="u1")``).
bound_fields: ContextVar[Mapping[str, Any]] = ContextVar(
    "pharos_fields",
    default=MappingProxyType({}),  # read-only: bind() sets a new mapping, never mutates
)


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


def request_id() -> str | None:
    """The current request id, if any."""
    return current_request_id.get()


@contextmanager
def bind(request_id: str | None = None, **fields: Any) -> Iterator[str]:
    """Bind a request id (a new one when not given and none is bound) and extra fields to every
    log line written inside the block, in this task and the tasks it starts::

        with pharos.bind(request_id=headers.get("x-request-id"), user=user.id):
            await handle(ticket)

    Yields the request id.
    """
    rid = request_id or current_request_id.get() or new_request_id()
    rid_token = current_request_id.set(str(rid))
    fields_token = bound_fields.set({**bound_fields.get(), **fields}) if fields else None
    try:
        yield str(rid)
    finally:
        if fields_token is not None:
            bound_fields.reset(fields_token)
        current_request_id.reset(rid_token)
