"""Helpers for the operations tests: real `pharos serve` processes, an ingest load that records
what was acknowledged (and how every other request ended), and what a database holds."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from pharos.server.db.engine import make_engine
from pharos.server.db.schema import spans
from tests.conftest import free_port


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    url: str
    port: int
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(
    db_url: str,
    log: Path,
    *,
    port: int | None = None,
    env: dict[str, str] | None = None,
    new_session: bool = False,
    ready: bool = True,
) -> ServerProcess:
    port = port or free_port()
    full_env = {
        **os.environ,
        "PHAROS_LOG_LEVEL": "warning",
        "PHAROS_GRPC_PORT": "0",
        "PHAROS_DATABASE_URL": db_url,
        **(env or {}),
    }
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pharos.cli", "serve", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=new_session,  # its own process group (as systemd signals it)
        )
    server = ServerProcess(proc, f"http://127.0.0.1:{port}", port, log)
    if ready:
        wait_ready(server)
    return server


def wait_ready(server: ServerProcess, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert server.proc.poll() is None, server.output()
        assert time.monotonic() < deadline, f"server did not become ready:\n{server.output()}"
        time.sleep(0.1)


def stop_server(server: ServerProcess, timeout: float = 40) -> None:
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(10)


@contextmanager
def servers(db_url: str, tmp: Path, n: int, env: dict[str, str]) -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    try:
        for i in range(n):
            started.append(start_server(db_url, tmp / f"server{i}.log", env=env))
        yield started
    finally:
        for s in started:
            stop_server(s)


def span_keys(request: Any) -> list[tuple[str, str]]:
    return [
        (s.trace_id.hex(), s.span_id.hex())
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
    ]


@dataclass
class IngestLoad:
    """Threads posting OTLP requests round-robin to ``urls``. A 200 acknowledges the request's
    spans; 503/429 and refused connections are retried (as the OTLP exporters do) until
    :meth:`stop`. ``outcomes`` counts how every attempt ended; ``cut`` is a request sent whose
    connection then broke without an answer (what a graceful shutdown must never do)."""

    urls: Sequence[str]
    requests: Sequence[Any]
    threads: int = 4
    fresh_connections: bool = False
    acked: set[tuple[str, str]] = field(default_factory=set)
    acked_at: list[tuple[float, int]] = field(default_factory=list)  # (time, request index)
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._next = iter(range(len(self.requests)))
        self._workers: list[threading.Thread] = []

    def start(self) -> IngestLoad:
        for n in range(self.threads):
            t = threading.Thread(target=self._run, args=(n,), daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def stop(self, timeout: float = 60) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(timeout)

    def wait_done(self, timeout: float = 180) -> None:
        for t in self._workers:
            t.join(timeout)
            assert not t.is_alive(), "ingest load did not finish"

    def acked_count(self) -> int:
        with self.lock:
            return len(self.acked)

    def snapshot(self) -> set[tuple[str, str]]:
        with self.lock:
            return set(self.acked)

    def _take(self) -> int | None:
        with self.lock:
            return next(self._next, None)

    def _run(self, n: int) -> None:
        headers = {"content-type": "application/x-protobuf"}
        if self.fresh_connections:
            headers["connection"] = "close"
        client = httpx.Client(timeout=httpx.Timeout(30, connect=10))
        turn = n
        try:
            while not self._stop.is_set():
                index = self._take()
                if index is None:
                    return
                body = self.requests[index].SerializeToString()
                while not self._stop.is_set():
                    url = self.urls[turn % len(self.urls)]
                    turn += 1
                    outcome = self._post(client, url, body, headers)
                    with self.lock:
                        self.outcomes[outcome] += 1
                        if outcome == "200":
                            self.acked.update(span_keys(self.requests[index]))
                            self.acked_at.append((time.monotonic(), index))
                    if outcome == "200":
                        break
                    if outcome not in ("503", "429", "refused", "timeout"):
                        break  # a cut or another status: the test decides what it means
                    time.sleep(0.05)
        finally:
            client.close()

    def _post(self, client: httpx.Client, url: str, body: bytes, headers: dict[str, str]) -> str:
        try:
            r = client.post(f"{url}/v1/traces", content=body, headers=headers)
        except httpx.ConnectError:
            return "refused"
        except httpx.ConnectTimeout:
            return "timeout"
        except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError) as exc:
            with self.lock:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            return "cut"
        except httpx.HTTPError as exc:
            with self.lock:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            return type(exc).__name__
        if r.status_code not in (200, 429, 503):
            with self.lock:
                self.errors.append(f"{r.status_code}: {r.text[:300]}")
        return str(r.status_code)


def stored_span_counts(db_url: str) -> tuple[set[tuple[str, str]], int]:
    """The distinct (trace_id, span_id) stored, and the number of span rows."""
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            keys = {(t, s) for t, s in conn.execute(select(spans.c.trace_id, spans.c.span_id))}
            rows = int(conn.execute(select(func.count()).select_from(spans)).scalar_one())
    finally:
        engine.dispose()
    return keys, rows
