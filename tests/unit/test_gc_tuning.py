"""The server's garbage-collector tuning (ops/gc_tuning.py), in a fresh interpreter: it changes
process-wide state a test process must not keep."""

from __future__ import annotations

import subprocess
import sys

from pharos.server.ops.gc_tuning import GEN0_THRESHOLD
from pharos.server.settings import Settings

SCRIPT = """
import gc
before = gc.get_threshold()
from pharos.server.ops.gc_tuning import tune_gc
objects = [[i] for i in range(1000)]  # alive now: frozen
tune_gc()
tune_gc()  # idempotent
print(before[1], before[2], *gc.get_threshold(), gc.get_freeze_count())
"""


def test_tune_gc_raises_the_young_threshold_and_freezes_what_is_alive() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    gen1_before, gen2_before, gen0, gen1, gen2, frozen = map(int, out)
    assert gen0 == GEN0_THRESHOLD
    assert (gen1, gen2) == (gen1_before, gen2_before)  # the older generations as they were
    assert frozen >= 1000


def test_servers_tune_by_default_and_it_can_be_turned_off() -> None:
    assert Settings().gc_tuning is True
    assert Settings(gc_tuning=False).gc_tuning is False
