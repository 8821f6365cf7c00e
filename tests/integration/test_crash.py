"""Acknowledged = committed: SIGKILL the real server mid-stream, restart it on the same
database, and every span that got a 200 is there (and the trace summaries agree with them)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, or_, select

from pharos.server.db.engine import make_engine
from pharos.server.db.schema import ROLLUP_TABLES, spans, traces
from pharos.server.demo import demo_requests
from tests.conftest import free_port

pytestmark = pytest.mark.slow


@contextmanager
def server_process(db_url: str, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = {
        **os.environ,
        "PHAROS_LOG_LEVEL": "warning",
        "PHAROS_WRITER_QUEUE_SIZE": "8",
        "PHAROS_GRPC_PORT": "0",
    }
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pharos.cli",
                "serve",
                "--port",
                str(port),
                "--database-url",
                db_url,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.1)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)


def _children(pid: int) -> list[int]:
    """Child processes of ``pid`` (Linux /proc), e.g. the ingest worker."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(c) for c in text]
    return found


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (FileNotFoundError, IndexError):
        return True


def _span_keys(request: object) -> list[tuple[str, str]]:
    return [
        (s.trace_id.hex(), s.span_id.hex())
        for rs in request.resource_spans  # type: ignore[attr-defined]
        for ss in rs.scope_spans
        for s in ss.spans
    ]


def test_sigkill_mid_stream_loses_no_acknowledged_span(db_url: str, tmp_path: Path) -> None:
    requests = list(demo_requests(4000, seed=99, max_spans=128))  # ~30k spans, ~235 requests
    acked: set[tuple[str, str]] = set()
    acked_lock = threading.Lock()
    stop = threading.Event()
    next_index = iter(range(len(requests)))
    index_lock = threading.Lock()

    def client(url: str) -> None:
        with httpx.Client(base_url=url, timeout=10) as c:
            while not stop.is_set():
                with index_lock:
                    i = next(next_index, None)
                if i is None:
                    return
                body = requests[i].SerializeToString()
                try:
                    r = c.post(
                        "/v1/traces",
                        content=body,
                        headers={"content-type": "application/x-protobuf"},
                    )
                except httpx.HTTPError:
                    return  # the server died under us: this request is not acknowledged
                if r.status_code == 200:
                    with acked_lock:
                        acked.update(_span_keys(requests[i]))

    log = tmp_path / "server.log"
    with server_process(db_url, log) as (proc, url):
        threads = [threading.Thread(target=client, args=(url,)) for _ in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(acked) < 5_000:  # well into the stream, with requests in flight
            assert time.monotonic() < deadline, "ingest too slow to reach the kill point"
            time.sleep(0.01)
        workers = _children(proc.pid)
        assert workers, "the server runs its ingest worker process"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        stop.set()
        for t in threads:
            t.join(30)
    deadline = time.monotonic() + 15
    while any(Path(f"/proc/{pid}").exists() and not _is_zombie(pid) for pid in workers):
        assert time.monotonic() < deadline, "ingest workers outlived the killed server"
        time.sleep(0.2)
    with acked_lock:
        acknowledged = set(acked)
    total = sum(len(_span_keys(r)) for r in requests)
    assert 5_000 <= len(acknowledged) < total, "the kill must land mid-stream"

    # Restart on the same database (recovery runs), then look at what is stored.
    with server_process(db_url, log) as (_proc, url):
        assert httpx.get(f"{url}/readyz").status_code == 200
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            stored = {(t, s) for t, s in conn.execute(select(spans.c.trace_id, spans.c.span_id))}
            missing = acknowledged - stored
            assert not missing, f"{len(missing)} acknowledged spans lost, e.g. {list(missing)[:3]}"
            # The summary rows were written in the same transactions: they agree with the spans.
            per_trace = dict(
                conn.execute(
                    select(spans.c.trace_id, func.count()).group_by(spans.c.trace_id)
                ).all()
            )
            summaries = dict(conn.execute(select(traces.c.trace_id, traces.c.span_count)).all())
            assert summaries == per_trace
            # So were the rollups: every resolution counts exactly the stored agent runs.
            runs = conn.execute(
                select(func.count())
                .select_from(spans)
                .where(or_(spans.c.parent_span_id.is_(None), spans.c.kind == "agent"))
            ).scalar_one()
            for table in ROLLUP_TABLES.values():
                counted = conn.execute(
                    select(func.sum(table.c["count"])).where(table.c.kind == "request")
                ).scalar_one()
                assert counted == runs, table.name
    finally:
        engine.dispose()
