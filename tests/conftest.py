"""Shared fixtures: real databases (SQLite file, PostgreSQL database per test) and a real
Pharos server (uvicorn on a free loopback port) built from typed settings."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from pharos.server.app import create_app
from pharos.server.settings import Settings

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
if not FIXTURES.exists():  # a checkout laid out without ../shared beside it
    FIXTURES = Path(os.environ.get("PHAROS_SHARED_FIXTURES", "/work/shared/fixtures"))
POSTGRES_URL = os.environ.get("PHAROS_TEST_POSTGRES_URL")
REQUIRE_SERVICES = os.environ.get("PHAROS_TEST_REQUIRE_SERVICES") == "1"


def _need_postgres() -> str:
    if not POSTGRES_URL:
        if REQUIRE_SERVICES:
            pytest.fail("PHAROS_TEST_POSTGRES_URL must be set when services are required (CI)")
        pytest.skip("PHAROS_TEST_POSTGRES_URL is not set: PostgreSQL tests skipped")
    return POSTGRES_URL


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    admin_url = make_url(_need_postgres()).set(drivername="postgresql+psycopg")
    name = f"pharos_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        if REQUIRE_SERVICES:
            raise
        pytest.skip(f"PostgreSQL at {admin_url.render_as_string()} unreachable: {exc}")
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL for each dialect (tests using it run twice)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'pharos.db'}"
    else:
        with postgres_database() as url:
            yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'pharos.db'}"


@dataclass
class RunningServer:
    url: str
    settings: Settings
    app: Any
    server: uvicorn.Server

    @property
    def grpc_target(self) -> str:
        """``host:port`` of the server's OTLP/gRPC endpoint."""
        return f"127.0.0.1:{self.app.state.grpc_port}"

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        with self.client() as client:
            return client.get(path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        with self.client() as client:
            return client.post(path, **kwargs)


@contextmanager
def run_server(
    database_url: str, *, http_port: int = 0, **overrides: Any
) -> Iterator[RunningServer]:
    # gc_tuning off: gc.freeze() in a test process would keep each test server's cycles for
    # good (servers started as processes, e.g. the crash tests, run with it on).
    settings = Settings(
        database_url=database_url, **{"port": 0, "grpc_port": 0, "gc_tuning": False, **overrides}
    )
    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", http_port))  # 0: a free port
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=10)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield RunningServer(f"http://127.0.0.1:{port}", settings, app, server)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


ServerFactory = Callable[..., RunningServer]


@pytest.fixture
def make_server(db_url: str) -> Iterator[ServerFactory]:
    """Start a real server on ``db_url`` with setting overrides; stopped after the test."""
    stack: list[Any] = []

    def factory(**overrides: Any) -> RunningServer:
        cm = run_server(db_url, **overrides)
        stack.append(cm)
        return cm.__enter__()

    yield factory
    while stack:
        stack.pop().__exit__(None, None, None)


@pytest.fixture
def server(make_server: ServerFactory) -> RunningServer:
    return make_server()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
