"""Gateway overhead: latency added (p50/p99, one client at a time) and requests/s (concurrent
clients) through ``/gateway/agents/{name}/…`` versus calling the same fake upstream directly, in
the same run, with API keys and rate limits on (a registered agent with rpm/queue settings high
enough never to refuse). Targets (issue 11): < 2 ms added at p50, >= 0.5x direct throughput.

    .venv/bin/python bench/gateway.py [--requests 2000] [--clients 16] [--check]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_upstream(port: int) -> None:
    """A minimal upstream (the child process): POST /echo/... returns the body."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def echo(request: Request) -> Response:
        return Response(await request.body(), media_type="application/json")

    app = Starlette(routes=[Route("/echo/{rest:path}", echo, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def wait_up(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


async def sequential(url: str, n: int, headers: dict[str, str]) -> list[float]:
    body = b'{"input": "hello"}'
    out = []
    async with httpx.AsyncClient(timeout=30) as c:
        for _ in range(50):  # warm-up
            await c.post(url, content=body, headers=headers)
        for _ in range(n):
            t = time.perf_counter()
            r = await c.post(url, content=body, headers=headers)
            out.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, r.text
    return out


async def concurrent(url: str, n: int, clients: int, headers: dict[str, str]) -> float:
    body = b'{"input": "hello"}'
    left = n

    async def worker(c: httpx.AsyncClient) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            r = await c.post(url, content=body, headers=headers)
            assert r.status_code == 200, r.text

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=30, limits=limits) as c:
        started = time.perf_counter()
        await asyncio.gather(*(worker(c) for _ in range(clients)))
        return n / (time.perf_counter() - started)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process, all its threads (Linux /proc; None elsewhere).
    Unlike wall time, this does not grow when other work on the machine takes the cores."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_request(before: float | None, after: float | None, n: int) -> float | None:
    return None if before is None or after is None else (after - before) / n * 1e6


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    ap.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="pharos-bench-gw-"))
    db = f"sqlite:///{tmp / 'pharos.db'}"
    up_port, port = free_port(), free_port()
    env = {**os.environ, "PHAROS_LOG_LEVEL": "warning", "PHAROS_GRPC_ENABLED": "false"}
    procs = [
        subprocess.Popen([sys.executable, __file__, "--serve-upstream", str(up_port)], cwd=tmp),
    ]
    try:
        cli = [sys.executable, "-m", "pharos.cli"]
        key = (
            subprocess.run(
                [
                    *cli,
                    "keys",
                    "create",
                    "--name",
                    "bench",
                    "--scopes",
                    "admin",
                    "--database-url",
                    db,
                ],
                capture_output=True,
                text=True,
                check=True,
                cwd=tmp,
                env=env,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        subprocess.run(
            [
                *cli,
                "agents",
                "add",
                "bench",
                "--upstream",
                f"http://127.0.0.1:{up_port}",
                "--rpm",
                "10000000",
                "--max-queue",
                "1000",
                "--max-wait",
                "10s",
                "--database-url",
                db,
            ],
            capture_output=True,
            check=True,
            cwd=tmp,
            env=env,
        )
        procs.append(
            subprocess.Popen(
                [*cli, "serve", "--port", str(port), "--database-url", db],
                cwd=tmp,
                env=env,
                stdout=subprocess.DEVNULL,
            )
        )
        direct = f"http://127.0.0.1:{up_port}/echo/run"
        gateway = f"http://127.0.0.1:{port}/gateway/agents/bench/echo/run"
        wait_up(f"http://127.0.0.1:{up_port}/")
        wait_up(f"http://127.0.0.1:{port}/healthz")
        auth = {"x-api-key": key}
        n = args.requests
        up_pid, gw_pid = procs[0].pid, procs[1].pid
        d_lat = asyncio.run(sequential(direct, n, {}))
        g_lat = asyncio.run(sequential(gateway, n, auth))
        d_rps = asyncio.run(concurrent(direct, n, args.clients, {}))
        up0, gw0 = cpu_seconds(up_pid), cpu_seconds(gw_pid)
        g_rps = asyncio.run(concurrent(gateway, n, args.clients, auth))
        up1, gw1 = cpu_seconds(up_pid), cpu_seconds(gw_pid)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)

    result = {
        "requests": n,
        "clients": args.clients,
        "direct_p50_ms": statistics.median(d_lat),
        "direct_p99_ms": pct(d_lat, 0.99),
        "gateway_p50_ms": statistics.median(g_lat),
        "gateway_p99_ms": pct(g_lat, 0.99),
        "added_p50_ms": statistics.median(g_lat) - statistics.median(d_lat),
        "added_p99_ms": pct(g_lat, 0.99) - pct(d_lat, 0.99),
        "direct_rps": d_rps,
        "gateway_rps": g_rps,
        "throughput_ratio": g_rps / d_rps,
        # CPU per request through the gateway (throughput phase; warm-up requests included):
        # what bounds requests/s when the cores are shared.
        "gateway_cpu_us_per_request": cpu_per_request(gw0, gw1, n),
        "upstream_cpu_us_per_request": cpu_per_request(up0, up1, n),
        "load_average_1m": load,
    }
    print(f"gateway overhead ({n} requests; auth + rate limits on; same run)")
    print(
        f"  latency p50: direct {result['direct_p50_ms']:.2f} ms, gateway "
        f"{result['gateway_p50_ms']:.2f} ms -> added {result['added_p50_ms']:.2f} ms "
        "(target < 2 ms)"
    )
    print(
        f"  latency p99: direct {result['direct_p99_ms']:.2f} ms, gateway "
        f"{result['gateway_p99_ms']:.2f} ms -> added {result['added_p99_ms']:.2f} ms"
    )
    print(
        f"  throughput ({args.clients} clients): direct {d_rps:.0f} req/s, gateway "
        f"{g_rps:.0f} req/s -> {result['throughput_ratio']:.2f}x direct (target >= 0.5x)"
    )
    gw_cpu, up_cpu = result["gateway_cpu_us_per_request"], result["upstream_cpu_us_per_request"]
    if gw_cpu is not None and up_cpu is not None:
        print(
            f"  cpu per request: gateway process {gw_cpu:.0f} us, upstream {up_cpu:.0f} us "
            f"(load average {load or 0:.1f} on {os.cpu_count()} cores)"
        )
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "gateway.json").write_text(json.dumps(result, indent=2))
    ok = result["added_p50_ms"] < 2 and result["throughput_ratio"] >= 0.5
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
