"""Which scheduled reports are due at a given moment (UTC)."""

from __future__ import annotations

from datetime import UTC, datetime

from pharos.server.report.schedule import due, next_due


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_daily_from_its_time_on_covering_the_day_before() -> None:
    assert due(at("2026-11-24T07:59:00"), "08:00", "") == []
    [slot] = due(at("2026-11-24T08:00:00"), "08:00", "")
    assert slot.kind == "daily" and slot.key == "report:daily:2026-11-24"
    assert slot.window_s == 86400 and slot.end_s == int(at("2026-11-24T08:00:00").timestamp())
    # Later the same day: the same slot (queued once by its key).
    assert due(at("2026-11-24T23:00:00"), "08:00", "") == [slot]


def test_weekly_on_its_day_at_the_daily_time() -> None:
    monday = at("2026-11-23T09:00:00")  # a Monday
    kinds = {s.kind: s for s in due(monday, "08:00", "monday")}
    assert set(kinds) == {"daily", "weekly"}
    assert (
        kinds["weekly"].window_s == 7 * 86400 and kinds["weekly"].key == "report:weekly:2026-11-23"
    )
    assert [s.kind for s in due(at("2026-11-24T09:00:00"), "08:00", "monday")] == ["daily"]
    # No daily time: the weekly one still goes at 08:00.
    assert [s.kind for s in due(monday, "", "monday")] == ["weekly"]
    assert due(monday, "", "") == []


def test_next_due() -> None:
    assert next_due(at("2026-11-24T07:00:00"), "08:00", "") == at("2026-11-24T08:00:00")
    assert next_due(at("2026-11-24T09:00:00"), "08:00", "") == at("2026-11-25T08:00:00")
    assert next_due(at("2026-11-24T09:00:00"), "", "monday") == at("2026-11-30T08:00:00")
    assert next_due(at("2026-11-24T09:00:00"), "", "") is None
