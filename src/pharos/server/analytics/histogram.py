"""Mergeable latency histograms with log-spaced buckets and <= 1 % relative error (pure).

A value ``v`` (milliseconds) falls in bucket ``i = ceil(log(v / MIN_MS) / log(GAMMA))`` with
``GAMMA = (1 + a) / (1 - a)``, ``a = 0.01``: bucket ``i`` covers ``(MIN·GAMMA^(i-1), MIN·GAMMA^i]``
and is represented by ``MIN·2·GAMMA^i / (GAMMA + 1)``, which is within ``a`` of every value in it
(the DDSketch construction). Histograms merge by adding counts per bucket, so minute rollups
add up into hours, days and any window exactly.
"""

from __future__ import annotations

import functools
import math
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping

import orjson

RELATIVE_ACCURACY = 0.01
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
LOG_GAMMA = math.log(GAMMA)
MIN_MS = 0.001  # 1 µs: anything faster lands in bucket 0


def bucket_of(value_ms: float) -> int:
    if not value_ms > MIN_MS:  # also catches NaN
        return 0
    return max(1, math.ceil(math.log(value_ms / MIN_MS) / LOG_GAMMA))


def value_of(bucket: int) -> float:
    if bucket <= 0:
        return 0.0
    return MIN_MS * 2 * GAMMA**bucket / (GAMMA + 1)


def merge(target: Counter[int], other: Mapping[int, int]) -> Counter[int]:
    for bucket, count in other.items():
        target[bucket] += count
    return target


def quantile(
    histogram: Mapping[int, int], q: float, *, max_ms: float | None = None
) -> float | None:
    """The nearest-rank ``q`` quantile (0 < q <= 1): the value of rank ``ceil(q·n)``."""
    total = sum(histogram.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            value = value_of(bucket)
            return min(value, max_ms) if max_ms is not None else value
    return None  # unreachable: seen == total >= rank


def quantiles(
    histogram: Mapping[int, int], qs: Iterable[float], *, max_ms: float | None = None
) -> list[float | None]:
    return [quantile(histogram, q, max_ms=max_ms) for q in qs]


def dumps(histogram: Mapping[int, int]) -> str:
    """Compact JSON text for storage: ``{"412": 3, ...}``."""
    # orjson writes the int keys as JSON strings itself (4x faster than str() per key).
    data = histogram if all(histogram.values()) else {k: v for k, v in histogram.items() if v}
    return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS).decode("ascii")


def loads(text: str | None) -> Counter[int]:
    if not text:
        return Counter()
    return Counter({int(k): int(v) for k, v in orjson.loads(text).items()})


class SeenBefore:
    """Has this key been seen before? (by its hash; forgets everything at ``limit`` keys).

    The admission test of the caches below: a rollup row of a past minute has the same text on
    every dashboard refresh, but the rows of the current minute, hour and day change with every
    ingest commit, so most texts a busy server reads are seen once and never again. Caching them
    pushed the reused entries out and, until the caches were full, grew the heap for 20 minutes
    of the soak (bench/soak.py). A key is cached on its second sight, so only what is read again
    takes room. A hash collision only admits a key early; it never changes a result."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[int] = set()

    def __call__(self, key: object) -> bool:
        h = hash(key)
        if h in self._seen:
            return True
        if len(self._seen) >= self.limit:
            self._seen.clear()
        self._seen.add(h)
        return False


#: Parsed stored histograms kept (least recently used go first), for the texts read more than
#: once (SeenBefore). Packed arrays take ~16 bytes a bucket (tuples of ints took ~110), so even
#: histograms of 200 buckets stay under ~50 MB here.
PARSED_CACHE_SIZE = 8192


def _parse(text: str) -> tuple[array[int], array[int]]:
    data = orjson.loads(text)
    return array("q", map(int, data)), array("q", data.values())


_parsed = functools.lru_cache(maxsize=PARSED_CACHE_SIZE)(_parse)
_seen_text = SeenBefore(4 * PARSED_CACHE_SIZE)


def loads_many(texts: Iterable[str | None]) -> Counter[int]:
    """Merge stored histograms (the JSON texts of several rollup rows) into one."""
    total: Counter[int] = Counter()
    get = total.get
    for text in texts:
        if text:
            # Stored histograms of past minutes never change and dashboards re-read the same
            # window every few seconds: each text read again is parsed once.
            keys, counts = _parsed(text) if _seen_text(text) else _parse(text)
            for key, count in zip(keys, counts, strict=True):
                total[key] = get(key, 0) + count
    return total


def from_values(values: Iterable[float]) -> Counter[int]:
    return Counter(bucket_of(v) for v in values)
