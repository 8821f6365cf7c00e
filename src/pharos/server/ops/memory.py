"""Keep a long-running server's memory from creeping up.

The 10-minute soak (bench/soak.py) grew the server's RSS ~17 MB/min with no plateau in
sight. Sampling the process every 20 s showed where (2026-12-06, 1,500 spans/s on SQLite):

- Python's own allocator (pymalloc, objects up to 512 bytes) stayed flat at ~70 MiB;
- glibc's malloc (larger objects: request bodies, row lists, histogram texts, SQLite's pages)
  had ~100 MB in use after 8 minutes, and another ~100 MB *free but not given back*: freed
  blocks in the middle of its heaps (one per thread that allocates: the thread pool, the
  writer) that the kernel still counts as resident, growing by the minute.

``malloc_trim(0)`` hands those free pages back (it walks every arena and ``madvise``-s whole
free pages away). :func:`trim_loop` calls it every ``PHAROS_MALLOC_TRIM_SECONDS`` in a worker
thread (ctypes drops the GIL for the call; it took 1-30 ms): the server's RSS after 8 minutes
went from 291 to 238 MB. glibc only; elsewhere (musl, macOS) it does nothing.

SQLite's page caches are the other part that grows as the database does: each connection keeps
up to ``cache_size`` pages of what it has read, and the pool holds up to 16 reading
connections. ``PRAGMA soft_heap_limit`` (``PHAROS_SQLITE_HEAP_LIMIT_MIB``, default 128: the
writer's 64 MiB cache and four readers' 16; one limit for the whole process) makes SQLite
reuse cached pages rather than allocate more once its heap is past the limit, so the sum stays
near it however many connections have read however much.

:func:`malloc_stats` and :func:`sqlite_memory_bytes` feed ``/metrics``
(``pharos_memory_bytes{pool=...}``), so an operator sees which part holds the memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import functools
import logging
import sys
from dataclasses import dataclass
from typing import Any

import anyio

log = logging.getLogger("pharos.ops")


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",  # bytes taken from the system by sbrk and for thread arenas
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",  # bytes in blocks mmap()ed one by one (large allocations)
            "usmblks",
            "fsmblks",
            "uordblks",  # bytes in use in the arenas
            "fordblks",  # bytes free in the arenas (resident unless trimmed)
            "keepcost",
        )
    ]


@dataclass(frozen=True)
class MallocStats:
    in_use: int  # bytes allocated and not freed (arenas and mmap()ed blocks)
    free: int  # bytes freed but kept by malloc in its arenas


@functools.cache
def _glibc() -> Any | None:
    """glibc's C library, or None where there is none (musl, macOS, Windows)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    if not hasattr(libc, "malloc_trim") or not hasattr(libc, "gnu_get_libc_version"):
        return None
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.malloc_trim.restype = ctypes.c_int
    if hasattr(libc, "mallinfo2"):  # glibc 2.33+
        libc.mallinfo2.restype = _MallInfo2
    return libc


def trim() -> bool:
    """Give malloc's free pages back to the kernel. True if there was a glibc to ask (and it
    released something or not); False where this does nothing."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def malloc_stats() -> MallocStats | None:
    """What glibc's malloc holds (None without glibc 2.33+)."""
    libc = _glibc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        return None
    info = libc.mallinfo2()
    return MallocStats(in_use=int(info.uordblks + info.hblkhd), free=int(info.fordblks))


def sqlite_memory_bytes() -> int | None:
    """Bytes SQLite has allocated in this process (all connections), via the library the
    sqlite3 module uses when it is a shared one; None when it cannot be asked."""
    lib = _sqlite_library()
    if lib is None:
        return None
    return int(lib.sqlite3_memory_used())


@functools.cache
def _sqlite_library() -> Any | None:
    import _sqlite3

    try:
        # The sqlite3 extension module links the library dynamically on Linux distributions'
        # and pyenv's Pythons; its symbols are then reachable through the module's own handle.
        lib = ctypes.CDLL(_sqlite3.__file__)
        func = lib.sqlite3_memory_used
    except (OSError, AttributeError):
        return None
    func.restype = ctypes.c_int64
    func.argtypes = []
    return lib


def limit_sqlite_heap(mib: int) -> None:
    """Set SQLite's soft heap limit for this process (0: none). The pragma sets a process-wide
    value whichever connection runs it; an in-memory one is enough."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(":memory:")) as conn:
        conn.execute(f"PRAGMA soft_heap_limit={int(mib) * 1024 * 1024}")


async def trim_loop(seconds: float) -> None:
    """Trim every ``seconds`` (in a worker thread: the call walks every arena) until cancelled."""
    if _glibc() is None:
        log.info("malloc trimming: not glibc, nothing to do")
        return
    while True:
        await asyncio.sleep(seconds)
        try:
            await anyio.to_thread.run_sync(trim)
        except Exception:  # never let housekeeping take the server down
            log.exception("malloc_trim failed")
