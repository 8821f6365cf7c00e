"""The API's time parameters: durations, ISO 8601 instants or "a duration ago", and back."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pharos.server.timeparse import iso_from_ns, parse_duration_seconds, parse_instant_ns

NOW = 1_790_000_000_123_456_789
S = 1_000_000_000
INT64 = 2**63 - 1


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("15m", 900),
        ("1h", 3600),
        ("7d", 604800),
        ("2w", 1209600),
        ("250ms", 0.25),
        ("1.5h", 5400),
        ("0s", 0),
        (" 5 m ", 300),
        ("106751d", 106751 * 86400),  # the longest whole-day duration in 64-bit nanoseconds
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "h",
        "5",
        "5x",
        "5M",
        "-5m",
        "+5m",
        "1e3s",
        ".5h",
        "5.h",
        "5 minutes",
        "1h30m",
        "5y",
        "106752d",  # past 2**63 nanoseconds
        "9" * 400 + "w",  # float inf
        "9" * 300 + "w",  # finite seconds, infinite nanoseconds
    ],
)
def test_bad_durations_raise_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration_seconds(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22T10:00:00Z", datetime(2026, 11, 22, 10, tzinfo=UTC)),
        ("2026-11-22T10:00:00z", datetime(2026, 11, 22, 10, tzinfo=UTC)),
        ("2026-11-22T10:00:00+00:00", datetime(2026, 11, 22, 10, tzinfo=UTC)),
        ("2026-11-22T12:00:00+02:00", datetime(2026, 11, 22, 10, tzinfo=UTC)),
        ("2026-11-22T10:00:00", datetime(2026, 11, 22, 10, tzinfo=UTC)),  # naive means UTC
        ("2026-11-22", datetime(2026, 11, 22, tzinfo=UTC)),
        ("  2026-11-22T10:00:00Z  ", datetime(2026, 11, 22, 10, tzinfo=UTC)),
        ("1970-01-01T00:00:00Z", datetime(1970, 1, 1, tzinfo=UTC)),
    ],
)
def test_iso_instants(text: str, expected: datetime) -> None:
    assert parse_instant_ns(text, NOW) == int(expected.timestamp()) * S


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("2026-11-22T10:00:00.817083Z", 1_795_341_600_817_083_000),
        ("1970-01-01T00:00:00.000001Z", 1_000),
        ("1969-12-31T23:59:59.999999Z", -1_000),
        ("2262-04-11T23:47:16.854775Z", INT64 - 807),
        ("1677-09-21T00:12:43.145225Z", -(INT64 - 807)),
    ],
)
def test_iso_instants_are_exact_to_the_microsecond(text: str, ns: int) -> None:
    assert parse_instant_ns(text, NOW) == ns


@pytest.mark.parametrize(
    ("text", "ago_ns"),
    [("1h", 3600 * S), ("15m", 900 * S), (" 30s ", 30 * S), ("0s", 0), ("250ms", S // 4)],
)
def test_a_duration_means_that_long_before_now(text: str, ago_ns: int) -> None:
    assert parse_instant_ns(text, NOW) == NOW - ago_ns


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "2026-13-01",
        "2026-11-22T25:00:00Z",
        "22/11/2026",
        "now",
        "9999-12-31T23:59:59Z",  # a datetime, but past what 64-bit nanoseconds hold
        "2262-04-12T00:00:00Z",
        "1677-09-20T00:00:00Z",
        "0001-01-01T00:00:00+01:00",  # before the year 1 in UTC: no OverflowError
        "9" * 400 + "w",
    ],
)
def test_bad_instants_raise_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_instant_ns(text, NOW)


def test_the_error_says_what_is_expected() -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_instant_ns("soon", NOW)


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (1_795_341_600_817_083_999, "2026-11-22T10:00:00.817083Z"),  # nanoseconds truncated
        (1_795_341_600_000_000_000, "2026-11-22T10:00:00Z"),
        (-1, "1969-12-31T23:59:59.999999Z"),
        (INT64, "2262-04-11T23:47:16.854775Z"),
    ],
)
def test_iso_from_ns(ns: int, text: str) -> None:
    assert iso_from_ns(ns) == text


@settings(max_examples=500, deadline=None)
@given(st.integers(-(2**63) + 10**9, 2**63 - 1))
def test_iso_round_trip(ns: int) -> None:
    text = iso_from_ns(ns)
    assert text.endswith("Z")
    assert parse_instant_ns(text, NOW) == ns - ns % 1000


UNIT_NS = {"ms": 10**6, "s": S, "m": 60 * S, "h": 3600 * S, "d": 86400 * S, "w": 604800 * S}


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(sorted(UNIT_NS)))
def test_whole_durations(n: int, unit: str) -> None:
    ns = n * UNIT_NS[unit]
    assert parse_duration_seconds(f"{n}{unit}") == pytest.approx(ns / S)
    # computed in floating point: exact to a nanosecond or to double precision
    assert abs(parse_instant_ns(f"{n}{unit}", NOW) - (NOW - ns)) <= max(1, ns >> 50)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_text_parses_or_raises_value_error(text: str) -> None:
    for parse in (parse_duration_seconds, lambda t: parse_instant_ns(t, NOW)):
        with contextlib.suppress(ValueError):
            parse(text)
