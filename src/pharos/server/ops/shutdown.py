"""Graceful shutdown (SIGTERM) that loses nothing and cuts no request mid-flight.

1. ``/readyz`` answers 503 at once and every response carries ``Connection: close`` (clients stop
   reusing connections); for ``shutdown_delay_seconds`` the server otherwise keeps serving, so a
   load balancer polling /readyz takes it out of rotation first.
2. New connection attempts are dropped at the listening socket (a socket filter drops TCP
   segments with SYN and no ACK), while handshakes already under way complete and are accepted:
   nothing is left in the kernel's accept queue to be reset when the socket closes. Clients whose
   SYN was dropped retry it and then get "connection refused".
3. uvicorn closes the listening sockets and waits for the requests in flight (their spans are
   committed by the writer, which keeps running), then the lifespan drains the writer queue and
   stops the rest.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import socket
import struct
from typing import Any

import uvicorn

log = logging.getLogger("pharos")
SO_ATTACH_FILTER = 26  # Linux
#: Time for TCP handshakes already under way to complete and be accepted (loopback: µs).
HANDSHAKE_GRACE_SECONDS = 0.25

# Classic BPF over the TCP header (a TCP socket filter sees the segment from its TCP header):
# A = flags byte; drop when (A & (SYN|ACK)) == SYN, i.e. a new connection attempt; keep the rest.
_SYN_DROP = (
    (0x30, 0, 0, 13),  # ldb [13]
    (0x54, 0, 0, 0x12),  # and #0x12
    (0x15, 0, 1, 0x02),  # jeq #0x02, drop, keep
    (0x06, 0, 0, 0),  # drop: ret #0
    (0x06, 0, 0, 0xFFFFFFFF),  # keep: ret #-1
)


def refuse_new_connections(sock: Any) -> bool:
    """Drop new connection attempts on the listening ``sock`` (Linux); False if unsupported."""
    if getattr(sock, "family", None) not in (socket.AF_INET, socket.AF_INET6):
        return False
    code = b"".join(struct.pack("HBBI", *ins) for ins in _SYN_DROP)
    buffer = ctypes.create_string_buffer(code)
    prog = struct.pack("HL", len(_SYN_DROP), ctypes.addressof(buffer))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, prog)
    except OSError as exc:
        log.debug("cannot attach the SYN filter: %s", exc)
        return False
    return True


class DrainingMiddleware:
    """While the app is draining, answer with ``Connection: close`` (plain ASGI)."""

    def __init__(self, app: Any, state: Any) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Any) -> None:
            if message["type"] == "http.response.start" and getattr(self.state, "draining", False):
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"
                ]
                headers.append((b"connection", b"close"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_closing)


class GracefulServer(uvicorn.Server):
    """uvicorn's server with the drain steps above before its own shutdown."""

    def __init__(self, config: uvicorn.Config, state: Any, delay_seconds: float = 0.0) -> None:
        super().__init__(config)
        self.app_state = state
        self.delay_seconds = delay_seconds

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.app_state.draining = True
        if self.delay_seconds and not self.force_exit:
            log.info("draining: /readyz is 503, still serving for %.1fs", self.delay_seconds)
            await asyncio.sleep(self.delay_seconds)
        listening = [s for server in self.servers for s in (server.sockets or ())]
        if all(refuse_new_connections(s) for s in listening) and listening:
            await asyncio.sleep(HANDSHAKE_GRACE_SECONDS)  # accept the handshakes under way
        await super().shutdown(sockets)
