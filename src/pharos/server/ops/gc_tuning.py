"""Garbage-collector tuning for the server process (and its parse workers).

A dashboard refresh reads thousands of rollup rows and an ingest batch builds thousands of row
tuples; with CPython's default thresholds (700, 10, 10) each of them runs dozens of young
collections and, every few calls, a full one that walks the whole heap (FastAPI, SQLAlchemy,
the caches): 100-180 ms pauses in the middle of a request, holding the GIL. Two standard
remedies:

- ``gc.freeze()`` once everything is imported and started: what exists then (modules, the app,
  the engines) lives as long as the process, so full collections stop walking it;
- a larger first-generation threshold: young collections run every 50,000 allocations, not 700.
  Reference counting still frees almost everything at once; the collector only finds cycles,
  which a server makes few of, so the memory held meanwhile is small.

bench/query.py (10M spans' worth, SQLite): the 24 h latency chart by agent went from p50/p95
38-52/140-168 ms to 29-30/49-54 ms with both; bench/README.md has the figures.
"""

from __future__ import annotations

import gc

#: First-generation threshold (allocations minus deallocations of container objects).
GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    """Raise the young-generation threshold and freeze what is alive now (idempotent)."""
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
    gc.collect()
    gc.freeze()
