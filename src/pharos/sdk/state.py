"""Process-wide SDK state: the active runtime (None before ``init()`` and after
``shutdown()``), the internal logger and warn-once bookkeeping.

Importing this module starts nothing and imports no part of the OpenTelemetry SDK.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pharos.sdk.runtime import Runtime

#: The SDK's own messages (never exported to Pharos, to avoid feedback loops).
log = logging.getLogger("pharos.sdk")

_lock = threading.Lock()
_warned: set[str] = set()


class _Holder:
    runtime: Runtime | None = None
    #: The runtime stopped last (``pharos.stats()`` after ``shutdown()`` reads it).
    last: Runtime | None = None


holder = _Holder()


def runtime() -> Runtime | None:
    return holder.runtime


def warn_once(key: str, message: str, *args: Any, level: int = logging.WARNING) -> None:
    """Log ``message`` the first time ``key`` is seen in this process; never raises."""
    try:
        with _lock:
            if key in _warned:
                return
            _warned.add(key)
        log.log(level, message, *args)
    except Exception:  # noqa: S110 (logging itself failed, e.g. a closed stream at exit)
        pass


def forget_warnings(prefix: str = "") -> None:
    """Let warnings whose key starts with ``prefix`` be logged again (a new ``init()``)."""
    with _lock:
        for key in [k for k in _warned if k.startswith(prefix)]:
            _warned.discard(key)


def internal_error(where: str, exc: BaseException) -> None:
    """An SDK bug or an unexpected state: reported once per place, never raised."""
    warn_once(
        f"internal:{where}",
        "pharos: internal error in %s (telemetry may be incomplete; your code is unaffected): "
        "%s: %s",
        where,
        type(exc).__name__,
        exc,
    )
