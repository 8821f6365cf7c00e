"""ops/memory.py: freed heap goes back to the kernel, SQLite's caches stay under one limit, and
the figures /metrics shows are real. Each check that changes process-wide state (malloc's
arenas, SQLite's heap limit) runs in a fresh interpreter."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest

from pharos.server.ops import memory
from pharos.server.settings import Settings

glibc = pytest.mark.skipif(memory.malloc_stats() is None, reason="needs glibc 2.33+ (mallinfo2)")


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout.strip()


@glibc
def test_trim_gives_freed_pages_back() -> None:
    # 200k blocks of 2 KB (malloc's, not pymalloc's), then all but every 100th freed: the
    # survivors pin the heap's top, so malloc keeps ~400 MB of free pages until trimmed.
    code = """
        import gc
        from pharos.server.ops import memory

        def rss_mb():
            with open("/proc/self/status") as f:
                return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024

        blocks = [bytes(2048) for _ in range(200_000)]
        kept = blocks[::100]
        del blocks
        gc.collect()
        before = rss_mb()
        free_before = memory.malloc_stats().free
        assert memory.trim() is True
        print(before, rss_mb(), free_before, len(kept))
    """
    before, after, free_before, kept = (float(x) for x in _run(code).split())
    assert kept == 2000
    assert free_before > 300e6  # malloc held it as free
    assert before - after > 250  # and the trim handed it back (MB)


@glibc
def test_malloc_stats_follow_allocations() -> None:
    before = memory.malloc_stats()
    assert before is not None and before.in_use > 0
    blocks = [bytes(4096) for _ in range(10_000)]  # 40 MB through malloc
    after = memory.malloc_stats()
    assert after is not None
    assert after.in_use - before.in_use > 35e6
    del blocks


def test_sqlite_heap_limit_bounds_every_connections_cache(tmp_path) -> None:
    # Four connections each allowed a 64 MiB page cache read a 60 MB table: without a limit
    # SQLite's heap holds ~4 x 60 MB; with an 8 MiB soft limit it recycles pages instead.
    path = tmp_path / "big.db"
    code = f"""
        import sqlite3, sys
        from pharos.server.ops import memory

        if sys.argv[1:] == ["limit"]:
            memory.limit_sqlite_heap(8)
        db = sqlite3.connect({str(path)!r})
        db.execute("CREATE TABLE IF NOT EXISTS t (x BLOB)")
        if db.execute("SELECT count(*) FROM t").fetchone()[0] == 0:
            db.executemany("INSERT INTO t VALUES (?)", [(bytes(600),) for _ in range(100_000)])
            db.commit()
        db.close()
        readers = [sqlite3.connect({str(path)!r}) for _ in range(4)]
        for conn in readers:
            conn.execute("PRAGMA cache_size=-65536")
            conn.execute("SELECT sum(length(x)) FROM t").fetchone()
        limit = readers[0].execute("PRAGMA soft_heap_limit").fetchone()[0]
        print(memory.sqlite_memory_bytes(), limit)
    """
    unlimited, no_limit = (int(x) for x in _run(code.replace("sys.argv[1:]", "[]")).split())
    limited, limit = (int(x) for x in _run(code.replace("sys.argv[1:]", '["limit"]')).split())
    assert no_limit == 0 and limit == 8 * 1024 * 1024
    assert unlimited > 150e6  # each connection cached the whole table
    assert limited < 24e6  # near the limit, whatever the connections' own cache_size


def test_sqlite_memory_is_measured() -> None:
    import sqlite3

    before = memory.sqlite_memory_bytes()
    if before is None:
        pytest.skip("this Python's sqlite3 does not expose the library's symbols")
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (x)")
    conn.executemany("INSERT INTO t VALUES (?)", [(bytes(100),) for _ in range(50_000)])
    grown = memory.sqlite_memory_bytes()
    conn.close()
    assert grown is not None and grown - before > 4e6


def test_trim_loop_trims_until_cancelled(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(memory, "_glibc", lambda: object())

    async def run() -> None:
        loop = asyncio.get_running_loop()
        third = asyncio.Event()

        def trim() -> bool:  # runs in a worker thread
            calls.append(1)
            if len(calls) == 3:
                loop.call_soon_threadsafe(third.set)
            return True

        monkeypatch.setattr(memory, "trim", trim)
        task = asyncio.create_task(memory.trim_loop(0.01))
        await third.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(run(), 30))
    assert len(calls) >= 3


def test_settings() -> None:
    assert Settings().malloc_trim_seconds == 30
    assert Settings().sqlite_heap_limit_mib == 128
    assert Settings(malloc_trim_seconds=0, sqlite_heap_limit_mib=0).malloc_trim_seconds == 0
