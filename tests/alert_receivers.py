"""Real local receivers for notification tests: an HTTP server that fails on purpose (500s,
timeouts, refused connections) before it recovers, and records what it accepted."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers the first requests with the ``failures`` script ("500", "timeout", "hang":
    hold the request until ``release`` is set, then accept it), then 2xx."""

    port: int
    failures: list[str] = field(default_factory=list)
    status: int = 200
    sleep_on_timeout: float = 1.5
    accepted: list[Received] = field(default_factory=list)
    attempts: int = 0
    hanging: int = 0  # requests held by "hang" right now
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.attempts += 1
                    mode = receiver.failures.pop(0) if receiver.failures else "ok"
                if mode == "timeout":
                    time.sleep(receiver.sleep_on_timeout)  # the client gave up long ago
                    self._answer(500)
                    return
                if mode == "500":
                    self._answer(500)
                    return
                if mode == "hang":
                    with receiver.lock:
                        receiver.hanging += 1
                    receiver.release.wait(60)
                    with receiver.lock:
                        receiver.hanging -= 1
                with receiver.lock:
                    receiver.accepted.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                self._answer(receiver.status)

            def _answer(self, status: int) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:
                    pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@contextmanager
def receiver(
    port: int, failures: list[str] | None = None, *, started: bool = True
) -> Iterator[Receiver]:
    r = Receiver(port, list(failures or []))
    if started:
        r.start()
    try:
        yield r
    finally:
        r.stop()


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)
