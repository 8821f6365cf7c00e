"""OTLP/gRPC vs OTLP/HTTP ingest throughput through the same real `pharos serve`.

    .venv/bin/python bench/ingest_grpc.py          # 100k spans/run, 4 clients, 3 rounds, SQLite
    .venv/bin/python bench/ingest_grpc.py --quick  # 20k spans, 2 rounds
    .venv/bin/python bench/ingest_grpc.py --database-url postgresql+psycopg://postgres@127.0.0.1/test

The corpus is bench/ingest.py's (seeded demo traces in protobuf requests of 512 spans, serialised
before any timing). Each round starts a fresh server on a fresh database and sends the corpus
once over HTTP (POST /v1/traces, httpx) and once over gRPC (TraceService/Export, grpcio, raw
bytes so neither side pays for client-side serialisation), alternating which goes first. Both
count wall time from the first send to the last acknowledgement, retrying overload answers after
the delay the server asks for. After each run every span must be stored. The figure is the
median over rounds of gRPC spans/s / HTTP spans/s measured in the same round.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import grpc
from google.rpc import error_details_pb2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import (
    BIN,
    Corpus,
    _stop,
    _wait_ready,
    build_corpus,
    drop_database,
    free_port,
    fresh_database,
    send_all,
    stored_counts,
)

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


async def send_all_grpc(
    target: str, bodies: list[bytes], clients: int
) -> tuple[list[float], Counter[str], float]:
    """Every body once over gRPC with ``clients`` concurrent channels; retry RESOURCE_EXHAUSTED
    and UNAVAILABLE after the RetryInfo delay. Returns latencies (ms), retries, wall time."""
    pending = list(reversed(bodies))
    latencies: list[float] = []
    retried: Counter[str] = Counter()

    async def client() -> None:
        async with grpc.aio.insecure_channel(
            target, options=[("grpc.max_send_message_length", 64 << 20)]
        ) as channel:
            export = channel.unary_unary(
                TRACE_EXPORT, request_serializer=None, response_deserializer=None
            )
            while pending:
                body = pending.pop()
                sent = time.perf_counter()
                while True:
                    try:
                        await export(body, timeout=120)
                        break
                    except grpc.aio.AioRpcError as exc:
                        code = exc.code()
                        if code not in (
                            grpc.StatusCode.RESOURCE_EXHAUSTED,
                            grpc.StatusCode.UNAVAILABLE,
                        ):
                            raise SystemExit(f"server answered {code}: {exc.details()}") from None
                        retried[code.name] += 1
                        raw = dict(exc.trailing_metadata() or ()).get("google.rpc.retryinfo-bin")
                        delay = 1.0
                        if raw:
                            info = error_details_pb2.RetryInfo.FromString(raw)
                            delay = info.retry_delay.seconds + info.retry_delay.nanos / 1e9
                        await asyncio.sleep(delay)
                latencies.append((time.perf_counter() - sent) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, retried, time.perf_counter() - started


def run_once(
    transport: str, corpus: Corpus, base_url: str | None, workdir: Path, clients: int, n: int
) -> float:
    """Spans/s of one transport on a fresh server and database."""
    url = fresh_database(base_url, workdir, f"{transport}{n}")
    port, grpc_port = free_port(), free_port()
    env = {**os.environ, "PHAROS_LOG_LEVEL": "warning", "PHAROS_GRPC_PORT": str(grpc_port)}
    pharos = BIN / "pharos"
    command = [str(pharos)] if pharos.exists() else [sys.executable, "-m", "pharos.cli"]
    log = workdir / f"server-{transport}{n}.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*command, "serve", "--port", str(port), "--database-url", url],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(server, base, log)
        if transport == "http":
            _, retried, wall = asyncio.run(send_all(base, corpus.bodies, clients))
        else:
            _, retried, wall = asyncio.run(
                send_all_grpc(f"127.0.0.1:{grpc_port}", corpus.bodies, clients)
            )
    finally:
        _stop(server)
    spans, _ = stored_counts(url)
    if spans != corpus.spans:
        raise SystemExit(f"{transport}: {spans} spans stored, expected {corpus.spans}")
    drop_database(url, base_url)
    rate = corpus.spans / wall
    retries = sum(retried.values())
    print(f"  {transport:>4}: {rate:10,.0f} spans/s  ({wall:.2f} s, {retries} retried)")
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="20k spans, 2 rounds")
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (default SQLite)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.quick:
        args.spans, args.rounds = 20_000, 2
    corpus = build_corpus(args.spans, args.seed)
    print(
        f"corpus: {corpus.spans:,} spans in {len(corpus.bodies)} requests "
        f"({corpus.megabytes:.1f} MB), {args.clients} clients, {args.rounds} rounds"
    )
    ratios, http_rates, grpc_rates = [], [], []
    with tempfile.TemporaryDirectory(prefix="pharos-bench-grpc-") as tmp:
        workdir = Path(tmp)
        for n in range(args.rounds):
            print(f"round {n + 1}")
            order = ("http", "grpc") if n % 2 == 0 else ("grpc", "http")
            rates = {
                t: run_once(t, corpus, args.database_url, workdir, args.clients, n) for t in order
            }
            http_rates.append(rates["http"])
            grpc_rates.append(rates["grpc"])
            ratios.append(rates["grpc"] / rates["http"])
    print(
        f"median: http {statistics.median(http_rates):,.0f} spans/s, "
        f"grpc {statistics.median(grpc_rates):,.0f} spans/s"
    )
    print(f"gRPC / HTTP = {statistics.median(ratios):.2f}x (median of {len(ratios)} rounds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
