"""Parse the time parameters of the API: ISO 8601 instants and relative durations."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)
#: Times and durations are signed 64-bit nanoseconds (the database's BIGINT): 1677..2262.
_MAX_NS = 2**63 - 1


def parse_duration_seconds(value: str) -> float:
    """``"15m"`` -> 900.0. Raises ValueError with a readable message."""
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a duration like 30s, 15m, 1h, 7d")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not seconds * 1_000_000_000 < _MAX_NS:  # also false for inf ("9" * 400 + "w")
        raise ValueError(f"{value!r} is too long a duration (at most 292 years)")
    return seconds


def parse_instant_ns(value: str, now_ns: int) -> int:
    """An ISO 8601 time (``2026-11-22T10:00:00Z``) or a duration ago (``1h`` = an hour ago)."""
    text = value.strip()
    if _DURATION.match(text):
        return now_ns - int(parse_duration_seconds(text) * 1_000_000_000)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{value!r} is not an ISO 8601 time (2026-11-22T10:00:00Z) or a duration (1h)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # Integer arithmetic: exact, and no OverflowError for year 1 with a positive offset.
    ns = (moment - _EPOCH) // _MICROSECOND * 1000
    if not -_MAX_NS <= ns <= _MAX_NS:
        raise ValueError(f"{value!r} is outside the years 1677..2262 that can be stored")
    return ns


def iso_from_ns(ns: int) -> str:
    """Nanoseconds since the epoch -> ISO 8601 UTC with microseconds and a Z."""
    seconds, rem = divmod(ns, 1_000_000_000)
    # Naive epoch + timedelta: the same text as an aware UTC datetime, twice as fast (trace
    # details format two of these per span).
    return (_NAIVE_EPOCH + timedelta(seconds=seconds, microseconds=rem // 1000)).isoformat() + "Z"
