"""Faults under load, each on services this test owns (the shared PostgreSQL and Redis are never
touched): a PostgreSQL restarted mid-ingest, Redis killed and brought back, and SIGTERM during
ingest. What must hold: nothing acknowledged is lost, clients get 503 (and retry) or a refused
connection but never a request cut after sending, and the server recovers by itself."""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from pharos.server.demo import demo_requests
from tests.browser import seed
from tests.conftest import REQUIRE_SERVICES, RunningServer, free_port, run_server
from tests.ops_helpers import IngestLoad, start_server, stop_server, stored_span_counts

pytestmark = pytest.mark.slow


def _missing(what: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is needed when services are required (CI)")
    pytest.skip(f"{what} not found: fault test skipped")


# --- a throwaway PostgreSQL cluster --------------------------------------------------------------


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        _missing(f"/usr/lib/postgresql/*/bin/{name}")
    return found[-1]


def _as_postgres(args: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres user then."""
    if os.geteuid() != 0:
        return args
    if shutil.which("runuser") is None:
        _missing("runuser (to run PostgreSQL as the postgres user)")
    return ["runuser", "-u", "postgres", "--", *args]


@contextmanager
def own_postgres(tmp: Path) -> Iterator[tuple[str, Any]]:
    """A PostgreSQL cluster in ``tmp`` on a free port (trust auth); yields its URL and a
    ``restart()`` that restarts it (fast shutdown: connections are cut)."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    # Not under pytest's tmp_path: the postgres user cannot enter root's 0700 directories.
    home = Path(tempfile.mkdtemp(prefix="pharos-pg-"))
    data = home / "pgdata"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(home, "postgres", "postgres")
        shutil.chown(data, "postgres", "postgres")
    port = free_port()
    subprocess.run(
        _as_postgres([initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"]),
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    log = data / "server.log"

    def ctl(*args: str) -> None:
        subprocess.run(
            _as_postgres([pg_ctl, "-D", str(data), "-l", str(log), "-o", opts, "-w", *args]),
            check=True,
            capture_output=True,
            timeout=60,
        )

    ctl("start")
    try:
        subprocess.run(
            _as_postgres(
                [
                    _pg_bin("createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    "postgres",
                    "pharos",
                ]
            ),
            check=True,
            capture_output=True,
        )
        yield (
            f"postgresql+psycopg://postgres@127.0.0.1:{port}/pharos",
            lambda: ctl("restart", "-m", "fast"),
        )
    finally:
        subprocess.run(
            _as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(home, ignore_errors=True)


def test_postgres_restart_mid_ingest_loses_nothing(tmp_path: Path) -> None:
    with own_postgres(tmp_path) as (db_url, restart):
        server = start_server(
            db_url, tmp_path / "server.log", env={"PHAROS_WRITER_QUEUE_SIZE": "32"}
        )
        try:
            requests = list(demo_requests(2500, seed=21, max_spans=64))
            load = IngestLoad([server.url], requests, threads=4).start()
            reads: list[int] = []
            reading = threading.Event()

            def reader() -> None:  # a dashboard polling meanwhile: 200 or 503, never a 500
                with httpx.Client(base_url=server.url, timeout=30) as c:
                    while not reading.is_set():
                        reads.append(c.get("/api/v1/traces", params={"limit": 5}).status_code)
                        reads.append(c.get("/api/v1/metrics/summary").status_code)
                        time.sleep(0.02)

            watcher = threading.Thread(target=reader)
            watcher.start()
            deadline = time.monotonic() + 60
            while load.acked_count() < 3000:
                assert time.monotonic() < deadline, "ingest too slow"
                time.sleep(0.05)
            restart()  # connections cut mid-transaction; back after a moment
            load.wait_done(180)
            reading.set()
            watcher.join(30)
            assert server.proc.poll() is None, "the server died with its database"
            ready = httpx.get(f"{server.url}/readyz", timeout=10)
            assert ready.status_code == 200, ready.text
        finally:
            stop_server(server)
        assert load.outcomes["503"] > 0, f"the restart was never seen: {load.outcomes}"
        assert set(reads) <= {200, 503} and 200 in reads, sorted(set(reads))
        assert set(load.outcomes) <= {"200", "503", "429"}, (load.outcomes, load.errors[:5])
        keys, rows = stored_span_counts(db_url)
        total = {k for r in requests for k in _keys(r)}
        assert load.acked == total  # every request was eventually acknowledged
        assert load.acked <= keys and rows == len(keys)


def _keys(request: Any) -> list[tuple[str, str]]:
    from tests.ops_helpers import span_keys

    return span_keys(request)


# --- Redis killed and brought back --------------------------------------------------------------


@contextmanager
def own_redis(port: int) -> Iterator[Any]:
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("redis-server")
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--bind",
                "127.0.0.1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(proc)
        deadline = time.monotonic() + 10
        while True:
            try:
                with __import__("socket").create_connection(("127.0.0.1", port), timeout=0.2):
                    return
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def kill() -> None:
        procs[-1].kill()
        procs[-1].wait(10)

    start()
    try:
        yield start, kill
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)


def _post_run(server: RunningServer, agent: str) -> str:
    trace_id, run = seed.agent_run(agent, steps=1, ago_s=1)
    r = server.post(
        "/v1/traces", content=seed.request(run), headers={"content-type": "application/x-protobuf"}
    )
    assert r.status_code == 200, r.text
    return trace_id.hex()


def _sees(ws: Any, trace_id: str, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            event = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        except TimeoutError:
            return False
        if event["type"] == "trace" and any(t["trace_id"] == trace_id for t in event["traces"]):
            return True
    return False


def _ws(server: RunningServer) -> Any:
    return connect(server.url.replace("http://", "ws://") + "/api/v1/live", open_timeout=10)


def test_redis_down_degrades_to_local_and_recovers(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.fake_upstream import fake_upstream

    port = free_port()
    redis_url = f"redis://127.0.0.1:{port}/0"
    caplog.set_level(logging.WARNING)
    with (
        own_redis(port) as (start_redis, kill_redis),
        fake_upstream() as upstream,
        run_server(sqlite_url, redis_url=redis_url, live_summary_seconds=30) as a,
        run_server(sqlite_url, redis_url=redis_url, live_summary_seconds=30) as b,
    ):
        reg = a.post(
            "/api/v1/agents/registry",
            json={"name": "gw", "upstream_url": upstream.url + "/echo", "rpm": 600},
        )
        assert reg.status_code == 201, reg.text
        with _ws(b) as on_b, _ws(a) as on_a:
            assert _sees(on_b, _post_run(a, "fan")), "fan-out through Redis"

            kill_redis()
            # Ingest goes on; this instance's own dashboards still get its events.
            for _ in range(3):
                trace_id = _post_run(a, "local")
                assert _sees(on_a, trace_id), "local delivery while Redis is down"
            # The gateway's limiter falls back to this instance's buckets.
            codes = [a.post("/gateway/agents/gw/x", content=b"x").status_code for _ in range(10)]
            assert codes == [200] * 10
            ready = a.get("/readyz")
            assert ready.status_code == 200  # still serving (PHAROS_READY_REQUIRES_REDIS=false)
            checks = ready.json()["checks"]
            assert checks["redis"].startswith("unreachable")
            assert set(checks["redis_fallback"].values()) == {"unreachable (local fallback)"}
            warnings = [
                r.getMessage() for r in caplog.records if "Redis unreachable" in r.getMessage()
            ]
            # once per use of Redis (rate limits, live events) per instance, not per request
            assert 1 <= sum("rate limits" in w for w in warnings) <= 2
            assert 1 <= sum("live events" in w for w in warnings) <= 2

            start_redis()
            deadline = time.monotonic() + 30
            while True:  # the relay resubscribes by itself; fan-out resumes
                trace_id = _post_run(a, "back")
                if _sees(on_b, trace_id, timeout=2):
                    break
                assert time.monotonic() < deadline, "fan-out did not recover"
            # The limiter tries Redis again at most once a second (RedisLink.retry_seconds):
            # a call within a second of its last failed try still uses the local buckets.
            deadline = time.monotonic() + 10
            while True:
                assert a.post("/gateway/agents/gw/x", content=b"x").status_code == 200
                checks = a.get("/readyz").json()["checks"]
                if set(checks["redis_fallback"].values()) == {"ok"}:
                    break
                assert time.monotonic() < deadline, f"rate limits stayed local: {checks}"
                time.sleep(0.3)
            assert checks["redis"] == "ok"
            assert any("Redis reachable again" in r.getMessage() for r in caplog.records)


# --- SIGTERM during load ----------------------------------------------------------------------


def test_sigterm_during_load_loses_nothing_and_cuts_nothing(db_url: str, tmp_path: Path) -> None:
    server = start_server(
        db_url, tmp_path / "server.log", new_session=True, env={"PHAROS_LOG_LEVEL": "info"}
    )
    requests = list(demo_requests(3000, seed=33, max_spans=64))
    # Each request on a new connection: what a client sees when the server goes away.
    load = IngestLoad([server.url], requests, threads=6, fresh_connections=True).start()
    try:
        deadline = time.monotonic() + 60
        while load.acked_count() < 2000:
            assert time.monotonic() < deadline, "ingest too slow"
            time.sleep(0.02)
        os.killpg(server.proc.pid, signal.SIGTERM)  # the whole group, as systemd does
        code = server.proc.wait(60)
        time.sleep(0.5)
    finally:
        load.stop()
        stop_server(server)
    # uvicorn re-raises the signal once it has shut down gracefully: the exit is "by SIGTERM".
    assert code in (0, -signal.SIGTERM), server.output()
    assert "Application shutdown complete" in server.output()
    assert load.outcomes["cut"] == 0, (load.outcomes, load.errors[:5])
    assert set(load.outcomes) <= {"200", "503", "refused", "timeout"}, load.outcomes
    assert load.outcomes["refused"] + load.outcomes["timeout"] > 0, "the stop was mid-load"
    keys, rows = stored_span_counts(db_url)
    missing = load.acked - keys
    assert not missing, f"{len(missing)} acknowledged spans lost"
    assert rows == len(keys)


# --- readiness -------------------------------------------------------------------------------


def test_readyz_goes_503_when_the_writer_queue_saturates(sqlite_url: str) -> None:
    import sqlite3
    from concurrent.futures import ThreadPoolExecutor

    with run_server(sqlite_url, writer_queue_size=10, retention_enabled=False) as server:
        assert server.get("/readyz").status_code == 200
        # Hold SQLite's write lock: the writer waits on it and the queue fills up.
        lock = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")

        def post(i: int) -> int:
            _, run = seed.agent_run(f"q{i}", steps=1, ago_s=1)
            return server.post(
                "/v1/traces",
                content=seed.request(run),
                headers={"content-type": "application/x-protobuf"},
            ).status_code

        with ThreadPoolExecutor(max_workers=30) as pool:
            posts = [pool.submit(post, i) for i in range(30)]
            deadline = time.monotonic() + 20
            while True:
                ready = server.get("/readyz")
                if ready.status_code == 503:
                    break
                assert time.monotonic() < deadline, ready.json()
                time.sleep(0.05)
            assert ready.json()["checks"]["queue"].startswith("saturated")
            lock.execute("ROLLBACK")  # the writer drains the queue; every request is stored
            lock.close()
            codes = [p.result(timeout=60) for p in posts]
        assert set(codes) <= {200, 503} and 200 in codes  # 503 = queue full: retried by clients
        assert server.get("/readyz").status_code == 200


def test_draining_answers_503_and_closes_connections(server: RunningServer) -> None:
    server.app.state.draining = True  # what GracefulServer sets on SIGTERM
    try:
        ready = server.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["shutdown"] == "draining"
        assert ready.headers["connection"] == "close"
        assert server.get("/healthz").headers["connection"] == "close"
    finally:
        server.app.state.draining = False
    assert "connection" not in server.get("/healthz").headers or (
        server.get("/healthz").headers["connection"] != "close"
    )
