"""Which scheduled reports are due (pure: the clock and the settings in, report slots out).

The daily report is due once a UTC day from ``PHAROS_REPORT_DAILY_TIME`` on and covers the 24
hours before that time; the weekly one is due on ``PHAROS_REPORT_WEEKLY_DAY`` from the same time
(08:00 when the daily time is empty) and covers the 7 days before it. Each slot has a key, so a
slot is queued once per channel however often (and on however many instances) it is checked;
a server that was down at the time sends the day's report when it starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True, slots=True)
class Slot:
    kind: str  # daily | weekly
    key: str  # report:daily:2026-11-24
    window_s: int
    end_s: int  # the scheduled time: the report covers [end_s - window_s, end_s)


def _at(now: datetime, hhmm: str) -> datetime:
    hour, minute = (int(x) for x in hhmm.split(":"))
    return now.astimezone(UTC).replace(hour=hour, minute=minute, second=0, microsecond=0)


def due(now: datetime, daily_time: str, weekly_day: str) -> list[Slot]:
    out: list[Slot] = []
    if daily_time:
        at = _at(now, daily_time)
        if now >= at:
            out.append(
                Slot("daily", f"report:daily:{at.date().isoformat()}", 86400, int(at.timestamp()))
            )
    if weekly_day:
        at = _at(now, daily_time or "08:00")
        if WEEKDAYS[at.weekday()] == weekly_day and now >= at:
            out.append(
                Slot(
                    "weekly",
                    f"report:weekly:{at.date().isoformat()}",
                    7 * 86400,
                    int(at.timestamp()),
                )
            )
    return out


def next_due(now: datetime, daily_time: str, weekly_day: str) -> datetime | None:
    """When the next slot after ``now`` falls (for the API and logs)."""
    candidates = []
    for days in range(8):
        day = now + timedelta(days=days)
        for slot in due(_at(day, "23:59"), daily_time, weekly_day):
            when = datetime.fromtimestamp(slot.end_s, tz=UTC)
            if when > now:
                candidates.append(when)
        if candidates:
            break
    return min(candidates) if candidates else None
