"""Alert evaluation benchmark: 1,000 rules x 50 agents over the rollups, against a same-run
baseline of reading those rollups alone.

    .venv/bin/python bench/alerts.py                      # SQLite in a temp dir
    .venv/bin/python bench/alerts.py --database-url postgresql+psycopg://postgres@127.0.0.1/bench

Two days of minute/hour/day rollups for 50 agents (a request row and two model rows per agent per
bucket) are generated straight into the rollup tables, as the writer would have written them. The
rules mix every function of the language over five windows (5m, 10m, 15m, 1h, 1d), mostly ``by
agent``, some with agent/model filters. Each cycle is ``AlertEngine.run_cycle(now)`` with the
clock moving 30 s per cycle: read the rules, the rollups (one query per table for all windows),
evaluate every rule for every agent, step the state machines and write the transitions. The
baseline reads the same rollups with one query per window (as the engine did before it read each
table once) and does nothing else; a second baseline is the cycle's own read alone. Printed: wall
p50/p95 per cycle, CPU per cycle, and the ratios to the baseline. Target: a cycle under 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import insert, text

from pharos.server.alerting import store as alert_store
from pharos.server.alerting.engine import AlertEngine
from pharos.server.alerting.figures import read_plan
from pharos.server.analytics import histogram as hist
from pharos.server.analytics import store as rollup_store
from pharos.server.db.engine import make_engine
from pharos.server.db.migrate import upgrade
from pharos.server.db.schema import ROLLUP_TABLES, alert_rules

ROOT = Path(__file__).resolve().parents[1]
console = Console()
NS = 1_000_000_000
WINDOWS = ("5m", "10m", "15m", "1h", "1d")
MODELS = ("gpt-4o", "claude-3-5-sonnet")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))]


def populate(engine, agents: list[str], end_s: int, hours: int, rng: random.Random) -> int:
    """Rollup rows for ``hours`` before ``end_s`` at the three resolutions."""
    rows = 0
    for name, size in (("1m", 60), ("1h", 3600), ("1d", 86400)):
        start = (end_s - hours * 3600) // size * size
        batch = []
        for bucket in range(start, end_s, size):
            scale = size / 60
            for i, agent in enumerate(agents):
                n = max(1, int(rng.uniform(2, 12) * scale))
                errors = int(n * (0.12 if i % 10 == 0 else 0.01))
                durations = [rng.lognormvariate(6.5 + (i % 7) * 0.1, 0.8) for _ in range(12)]
                h = hist.from_values(durations)
                factor = n / 12
                h = type(h)({k: max(1, round(v * factor)) for k, v in h.items()})
                base = {
                    "bucket_start": bucket,
                    "agent": agent,
                    "errors": errors,
                    "duration_sum_ms": sum(durations) * factor,
                    "duration_max_ms": max(durations),
                    "cached_tokens": 0,
                    "histogram": hist.dumps(h),
                }
                batch.append(
                    {
                        **base,
                        "model": "",
                        "kind": "request",
                        "count": n,
                        "input_tokens": 0,
                        "output_tokens": 0,
                        "cost_nanousd": 0,
                    }
                )
                for model in MODELS:
                    calls = n * 2
                    batch.append(
                        {
                            **base,
                            "model": model,
                            "kind": "llm",
                            "count": calls,
                            "errors": 0,
                            "input_tokens": calls * 800,
                            "output_tokens": calls * 150,
                            "cost_nanousd": calls * 3_000_000,
                        }
                    )
            if len(batch) >= 20000:
                with engine.begin() as conn:
                    conn.execute(insert(ROLLUP_TABLES[name]), batch)
                rows += len(batch)
                batch = []
        if batch:
            with engine.begin() as conn:
                conn.execute(insert(ROLLUP_TABLES[name]), batch)
            rows += len(batch)
    return rows


# Thresholds: "typical" fires for a few agents (the 1 in 10 with a 12 % error rate);
# "stress" fires for ~40 % of all rule x agent pairs (18k alerts firing at once).
THRESHOLDS = {
    "typical": {
        "t": [5, 10, 50],
        "ms": [5000, 10000, 20000],
        "r": [0.001, 0.01],
        "tok": [100_000_000, 1_000_000_000],
        "usd": [1000, 10000],
    },
    "stress": {
        "t": [2, 5, 10, 50],
        "ms": [500, 1000, 2000, 5000],
        "r": [0.01, 0.05, 0.5],
        "tok": [10_000, 1_000_000, 100_000_000],
        "usd": [1, 50, 1000],
    },
}


def rules(n: int, agents: list[str], rng: random.Random, profile: str = "typical") -> list[dict]:
    th = THRESHOLDS[profile]
    templates = [
        "error_rate({w}) > {t} by agent",
        "error_rate({w}) > {t} and requests({w}) > 20 by agent",
        "p95(latency, {w}) > {ms} by agent",
        'p99(latency, {w}, model="{m}") > {ms}',
        "throughput({w}) < {r} by agent",
        "requests({w}) == 0 by agent",
        "sum(tokens, {w}) > {tok} by agent",
        "sum(cost, {w}) > {usd} by agent",
        "abs(p50(latency, {w}) - avg(latency, {w})) > {ms} by agent",
        'p95(latency, {w}, agent="{a}") > {ms} or error_rate({w}, agent="{a}") > {t}',
        "max(error_rate({w}), errors({w}) / 10) > {t} by agent",
        "p90(latency, {w}) > {ms} by agent, model",
    ]
    out = []
    for i in range(n):
        expr = templates[i % len(templates)].format(
            w=rng.choice(WINDOWS),
            t=rng.choice(th["t"]),
            ms=rng.choice(th["ms"]),
            r=rng.choice(th["r"]),
            tok=rng.choice(th["tok"]),
            usd=rng.choice(th["usd"]),
            m=rng.choice(MODELS),
            a=rng.choice(agents),
        )
        out.append(
            {
                "name": f"rule {i}",
                "expression": expr,
                "severity": ("info", "warning", "error", "critical")[i % 4],
                "for_s": rng.choice([0, 60, 300]),
                "keep_firing_for_s": rng.choice([0, 300]),
                "repeat_interval_s": 3600,
                "labels": "{}",
                "message": "",
                "channels": "[]",
                "enabled": True,
                "created_ns": 0,
                "updated_ns": 0,
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="default: a SQLite file in a temp directory")
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--hours", type=int, default=48)
    parser.add_argument("--cycles", type=int, default=15)
    parser.add_argument(
        "--profile",
        choices=sorted(THRESHOLDS),
        default="typical",
        help="typical: a few alerts fire; stress: ~40%% of rule x agent pairs fire",
    )
    args = parser.parse_args()
    rng = random.Random(7)
    tmp = tempfile.TemporaryDirectory()
    url = args.database_url or f"sqlite:///{tmp.name}/alerts-bench.db"
    upgrade(url)
    read = make_engine(url, pool_size=2)
    write = make_engine(url, sqlite_begin="IMMEDIATE", pool_size=2)
    with write.begin() as conn:
        for t in (
            "alert_events",
            "alerts",
            "outbox",
            "alert_rules",
            *(tb.name for tb in ROLLUP_TABLES.values()),
        ):
            conn.execute(text(f"DELETE FROM {t}"))
    agents = [f"agent-{i:02d}" for i in range(args.agents)]
    # A fixed place in the hour (17 minutes past), so that every run reads the same rows: how
    # many minute rows a window's cover takes depends on where its ends fall in their hours.
    now_s = int(time.time()) // 3600 * 3600 - 3600 + 17 * 60
    end_s = now_s + 60
    t0 = time.perf_counter()
    rows = populate(write, agents, end_s, args.hours, rng)
    with write.begin() as conn:
        conn.execute(insert(alert_rules), rules(args.rules, agents, rng, args.profile))
    console.print(
        f"{rows:,} rollup rows, {args.rules} rules ({args.profile}), {args.agents} agents "
        f"({time.perf_counter() - t0:.1f}s to generate); {url.split('://')[0]}"
    )
    engine = AlertEngine(read, write)
    windows_s = sorted({int(w[:-1]) * {"m": 60, "h": 3600, "d": 86400}[w[-1]] for w in WINDOWS})

    def baseline() -> int:
        with read.connect() as conn:
            rows = sum(len(rollup_store.fetch_rollups(conn, end_s - w, end_s)) for w in windows_s)
            rollup_store.known_agents(conn, end_s - 7 * 86400)
        return rows

    def own_read() -> int:
        with read.connect() as conn:
            rows = sum(
                len(alert_store.rollup_tuples(conn, name, lo, hi))
                for name, lo, hi in read_plan(windows_s, end_s)
            )
            rollup_store.known_agents(conn, end_s - 7 * 86400)
        return rows

    first = engine.run_cycle(now_s * NS)
    console.print(
        f"first cycle: {first.seconds:.3f}s, {first.groups:,} groups, "
        f"{first.transitions:,} transitions (alerts created), {first.rollup_rows:,} rows read"
    )
    cycle_wall, cycle_cpu, base_wall, base_cpu, read_part = [], [], [], [], []
    own_wall, own_cpu = [], []
    reads_before = engine._active.reads
    base_rows = own_rows = 0
    last = first
    for i in range(args.cycles):
        # Interleave baselines and cycle so all see the same cache and machine load.
        c0, w0 = time.process_time(), time.perf_counter()
        base_rows = baseline()
        base_wall.append(time.perf_counter() - w0)
        base_cpu.append(time.process_time() - c0)
        c0, w0 = time.process_time(), time.perf_counter()
        own_rows = own_read()
        own_wall.append(time.perf_counter() - w0)
        own_cpu.append(time.process_time() - c0)
        c0, w0 = time.process_time(), time.perf_counter()
        last = engine.run_cycle((now_s + 30 * (i + 1)) * NS)
        cycle_wall.append(time.perf_counter() - w0)
        cycle_cpu.append(time.process_time() - c0)
        read_part.append(last.read_seconds)
    table = Table("", "p50 wall (s)", "p95 wall (s)", "CPU/cycle (s)", "CPU share")
    table.add_row(
        f"baseline: read the rollups, a query per window ({base_rows:,} rows)",
        f"{_pct(base_wall, 0.5):.3f}",
        f"{_pct(base_wall, 0.95):.3f}",
        f"{statistics.median(base_cpu):.3f}",
        f"{statistics.median(base_cpu) / max(1e-9, statistics.median(base_wall)):.0%}",
    )
    table.add_row(
        f"the cycle's read alone, a query per table ({own_rows:,} rows)",
        f"{_pct(own_wall, 0.5):.3f}",
        f"{_pct(own_wall, 0.95):.3f}",
        f"{statistics.median(own_cpu):.3f}",
        f"{statistics.median(own_cpu) / max(1e-9, statistics.median(own_wall)):.0%}",
    )
    table.add_row(
        "alert cycle (1 read + evaluate + write)",
        f"{_pct(cycle_wall, 0.5):.3f}",
        f"{_pct(cycle_wall, 0.95):.3f}",
        f"{statistics.median(cycle_cpu):.3f}",
        f"{statistics.median(cycle_cpu) / max(1e-9, statistics.median(cycle_wall)):.0%}",
    )
    console.print(table)
    ratio = _pct(cycle_wall, 0.95) / max(1e-9, _pct(base_wall, 0.95))
    cpu_ratio = statistics.median(cycle_cpu) / max(1e-9, statistics.median(base_cpu))
    interval = 30.0
    console.print(
        f"cycle p95 / baseline p95 = {ratio:.2f}x; CPU per cycle / baseline = {cpu_ratio:.2f}x; "
        f"at 30 s intervals: {statistics.median(cycle_cpu) / interval:.1%} of a core; "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    reread = (engine._active.reads - reads_before) / max(1, args.cycles)
    console.print(
        f"steady cycle: {last.groups:,} groups, {engine.firing.total:,} alerts firing, "
        f"{last.transitions} transitions, {last.rollup_rows:,} rows read, "
        f"{len(engine._histograms)} histograms carried to the next cycle, "
        f"{reread:.0f} active alerts read again per cycle; target p95 < 1 s: "
        + ("[green]met[/green]" if _pct(cycle_wall, 0.95) < 1 else "[red]missed[/red]")
    )
    report = {
        "database": url.split("://")[0],
        "rules": args.rules,
        "profile": args.profile,
        "firing_alerts": engine.firing.total,
        "agents": args.agents,
        "rollup_rows": rows,
        "rows_read_per_cycle": last.rollup_rows,
        "groups_per_cycle": last.groups,
        "first_cycle_s": first.seconds,
        "cycle_wall_p50_s": _pct(cycle_wall, 0.5),
        "cycle_wall_p95_s": _pct(cycle_wall, 0.95),
        "cycle_cpu_median_s": statistics.median(cycle_cpu),
        "baseline_wall_p50_s": _pct(base_wall, 0.5),
        "baseline_wall_p95_s": _pct(base_wall, 0.95),
        "baseline_cpu_median_s": statistics.median(base_cpu),
        "own_read_wall_p95_s": _pct(own_wall, 0.95),
        "own_read_cpu_median_s": statistics.median(own_cpu),
        "load_average": os.getloadavg(),
        "ratio_p95": ratio,
        "ratio_cpu": cpu_ratio,
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"alerts-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2))
    console.print(f"results: {path}")
    read.dispose()
    write.dispose()


if __name__ == "__main__":
    main()
