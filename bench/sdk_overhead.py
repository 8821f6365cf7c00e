"""What the Pharos SDK costs the app: microseconds per decorated call, and ``import pharos``.

Each scenario runs in its own fresh Python process, calling a one-line function
(``def step(x): return x + 1``) in timed rounds of ``--calls`` calls with an untimed pause
between rounds (so the exporter does its work between them, as it would between an agent's
requests — it still competes for the GIL during the rounds):

- **plain**: the function undecorated (the baseline);
- **off**: ``@pharos.tool``, ``pharos.init()`` never called (the OpenTelemetry API's no-op);
- **otel**: the OpenTelemetry SDK by hand, no Pharos (``@tracer.start_as_current_span`` with
  the same attributes, a TracerProvider, BatchSpanProcessor and OTLP/HTTP exporter to the same
  server, OpenTelemetry's defaults: no compression, 5 s schedule): what Pharos' own layer adds on
  top of OpenTelemetry;
- **up**: ``@pharos.tool`` exporting to a real ``pharos serve`` (SQLite, temp dir);
- **down**: the same, nothing listening on the port (connection refused);
- **hang**: the same, to a socket that accepts connections and never answers.

Figures, medians over rounds: **wall** µs per call, **cpu** µs per call (the calling thread's
CPU time: steadier than wall time on a shared machine), and **total cpu** µs per call (every
thread of the process over the whole run: the exporter's encoding, redaction and HTTP
included); **added** = scenario - plain. Targets: added cpu < 30 µs per span with the server
up; down and hang within 10 % of up in wall time (ratio <= 1.10).
Also: ``import pharos`` (``-X importtime`` cumulative, median of runs) against
``import opentelemetry.trace`` (the API it needs), and the time ``pharos.init()`` takes.

    .venv/bin/python bench/sdk_overhead.py [--calls 1000] [--rounds 15] [--repeat 2] [--check]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ("plain", "off", "otel", "up", "down", "hang")


# --- the child: one scenario in a fresh process ---------------------------------------------------


def child(scenario: str, endpoint: str, calls: int, rounds: int, pause: float) -> dict[str, Any]:
    init_ms = None
    if scenario == "plain":

        def step(x: int) -> int:
            return x + 1

    elif scenario == "otel":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": "bench-otel"}))
        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint + "/v1/traces"))
        )
        tracer = provider.get_tracer("bench")

        # The attributes @pharos.tool sets, so the two export the same data.
        attributes = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.type": "function",
            "gen_ai.tool.name": "step",
        }

        @tracer.start_as_current_span("execute_tool step", attributes=attributes)
        def step(x: int) -> int:
            return x + 1

    else:
        import pharos

        if scenario != "off":
            started = time.perf_counter()
            pharos.init(
                service_name=f"bench-sdk-{scenario}",
                endpoint=endpoint,
                logs=False,
                json_logs=False,
                export_timeout=5,
                shutdown_timeout=2,
            )
            init_ms = (time.perf_counter() - started) * 1000

        @pharos.tool
        def step(x: int) -> int:
            return x + 1

    for i in range(2000):  # warm up
        step(i)
    time.sleep(pause)
    wall, cpu = [], []
    process_cpu = time.process_time()
    for _ in range(rounds):
        started, started_cpu = time.perf_counter(), time.thread_time()
        for i in range(calls):
            step(i)
        wall.append((time.perf_counter() - started) / calls * 1e6)
        cpu.append((time.thread_time() - started_cpu) / calls * 1e6)
        time.sleep(pause)
    out: dict[str, Any] = {"scenario": scenario, "wall_us": wall, "cpu_us": cpu, "init_ms": init_ms}
    if scenario in ("up", "down", "hang"):
        import pharos

        pharos.shutdown(timeout=2)
        out["stats"] = pharos.stats().get("spans")
    elif scenario == "otel":
        provider.shutdown()
    # Every thread's CPU (the exporter's encoding, redaction and HTTP included) per call.
    out["total_cpu_us"] = (time.process_time() - process_cpu) / (rounds * calls) * 1e6
    return out


# --- the parent: servers, scenarios, report ------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HangingServer:
    """Accepts connections and never reads or answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.sock.settimeout(0.2)
        self.held: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
                self.held.append(conn)
            except OSError:
                continue

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for conn in self.held:
            conn.close()
        self.sock.close()


def start_pharos(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        "PHAROS_DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
        "PHAROS_PORT": str(port),
        "PHAROS_GRPC_PORT": str(_free_port()),
        "PHAROS_LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "pharos"), "serve"],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("pharos serve did not become ready")


def run_child(scenario: str, endpoint: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        scenario,
        "--endpoint",
        endpoint,
        "--calls",
        str(args.calls),
        "--rounds",
        str(args.rounds),
        "--pause",
        str(args.pause),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    if result.returncode != 0:
        raise SystemExit(f"scenario {scenario} failed:\n{result.stderr[-3000:]}")
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def import_times(runs: int) -> dict[str, float]:
    """Median cumulative import time (ms) of ``pharos`` and of ``opentelemetry.trace``."""
    out: dict[str, float] = {}
    for module in ("pharos", "opentelemetry.trace"):
        samples = []
        for _ in range(runs):
            result = subprocess.run(
                [sys.executable, "-X", "importtime", "-c", f"import {module}"],
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
                check=True,
            )
            line = [ln for ln in result.stderr.splitlines() if ln.rstrip().endswith(f"| {module}")]
            samples.append(int(line[-1].split("|")[1]) / 1000)
        out[module] = statistics.median(samples)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="calls per timed round")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--pause", type=float, default=0.3, help="seconds between rounds")
    parser.add_argument("--repeat", type=int, default=2, help="runs of every scenario")
    parser.add_argument("--import-runs", type=int, default=9)
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--child", choices=SCENARIOS, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.endpoint, args.calls, args.rounds, args.pause)))
        return 0

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        server, url = start_pharos(Path(tmp))
        hanging = HangingServer()
        down = f"http://127.0.0.1:{_free_port()}"
        endpoints = {"up": url, "otel": url, "down": down, "hang": hanging.url}
        try:
            # Scenarios interleaved, --repeat times: load from other processes on a shared
            # machine then falls on all of them alike.
            for rep in range(args.repeat):
                for scenario in SCENARIOS:
                    print(f"  {rep + 1}/{args.repeat} {scenario} ...", file=sys.stderr, flush=True)
                    one = run_child(scenario, endpoints.get(scenario, down), args)
                    if scenario not in results:
                        results[scenario] = {**one, "total_cpu_runs": [one["total_cpu_us"]]}
                        continue
                    merged = results[scenario]
                    merged["wall_us"] += one["wall_us"]
                    merged["cpu_us"] += one["cpu_us"]
                    merged["total_cpu_runs"].append(one["total_cpu_us"])
                    merged["total_cpu_us"] = statistics.median(merged["total_cpu_runs"])
                    for key, value in (one.get("stats") or {}).items():
                        merged["stats"][key] += value
        finally:
            hanging.close()
            server.terminate()
            server.wait(30)
    imports = import_times(args.import_runs)

    wall = {name: statistics.median(r["wall_us"]) for name, r in results.items()}
    cpu = {name: statistics.median(r["cpu_us"]) for name, r in results.items()}
    total = {name: r["total_cpu_us"] for name, r in results.items()}
    print(
        f"\nSDK cost per decorated call ({args.repeat} x {args.rounds} rounds x {args.calls} "
        "calls; medians)"
    )
    print("  wall = elapsed time per call; cpu = the calling thread's CPU time; total cpu = every")
    print("  thread's CPU incl. the exporter's, over the whole run; 'added' is against plain")
    print(
        f"{'scenario':<8} {'wall us':>8} {'added':>8} {'cpu us':>8} {'added':>8} "
        f"{'total cpu':>10}  spans exported/failed/dropped"
    )
    for name in SCENARIOS:
        stats = results[name].get("stats") or {}
        counts = (
            f"{stats.get('exported', 0)}/{stats.get('failed', 0)}/{stats.get('dropped', 0)}"
            if stats
            else ""
        )
        print(
            f"{name:<8} {wall[name]:>8.2f} {wall[name] - wall['plain']:>8.2f} {cpu[name]:>8.2f} "
            f"{cpu[name] - cpu['plain']:>8.2f} {total[name]:>10.2f}  {counts}"
        )
    added_up = cpu["up"] - cpu["plain"]
    down_ratio = wall["down"] / wall["up"]
    hang_ratio = wall["hang"] / wall["up"]
    print(f"\nadded per span, server up (cpu):   {added_up:6.2f} us   (target < 30)")
    print(f"  of which Pharos' layer over raw OTel: {cpu['up'] - cpu['otel']:6.2f} us")
    print(f"  with the exporter's share (total cpu): {total['up'] - total['plain']:6.2f} us")
    print(f"server down / up (wall):           {down_ratio:6.3f}      (target <= 1.10)")
    print(f"server hanging / up (wall):        {hang_ratio:6.3f}      (target <= 1.10)")
    print(f"pharos.init() (up):                {results['up']['init_ms']:6.1f} ms")
    print(
        f"import pharos:                     {imports['pharos']:6.1f} ms   (target < 150; "
        f"opentelemetry.trace alone {imports['opentelemetry.trace']:.1f} ms)"
    )

    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    report = {
        "wall_us": wall,
        "cpu_us": cpu,
        "total_cpu_us": total,
        "added_up_us": added_up,
        "down_over_up": down_ratio,
        "hang_over_up": hang_ratio,
        "import_ms": imports,
        "raw": results,
    }
    path = out_dir / f"sdk_overhead-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"\nwritten to {path.relative_to(ROOT)}")
    missed = [
        name
        for name, ok in (
            ("added < 30 us", added_up < 30),
            ("down/up <= 1.10", down_ratio <= 1.10),
            ("hang/up <= 1.10", hang_ratio <= 1.10),
            ("import < 150 ms", imports["pharos"] < 150),
        )
        if not ok
    ]
    if missed:
        print("MISSED: " + ", ".join(missed))
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
