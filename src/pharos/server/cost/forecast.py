"""Spend forecasts (pure): where a budget period will end, and when a limit is reached.

Method (docs/costs.md): an **hour-of-day profile scaled by a smoothed daily level**.

1. Input: spend per complete hour for up to the last 7 days (oldest first), ending at the start
   of the current hour. Hours before the first spend are dropped (a new agent is not diluted by
   days it did not exist).
2. Spikes are capped: an hour above ``SPIKE_FACTOR`` x the median non-idle hour counts as that
   much (a one-off burst does not move the forecast for the rest of the month).
3. With a day or more of history, the complete days give a **shape** (the share of a day's spend
   that falls in each UTC hour of the day: idle nights get ~0) and a **level**, Holt's linear
   smoothing of the daily totals (follows a ramp instead of lagging it). The expected spend of a
   future hour is ``(level + trend x days ahead) x shape[hour of day]``, never below zero.
   With less than a day, the mean hourly rate since the first spend (the current hour
   included, counted as at least 15 minutes) is used for every hour.
4. Walking hour by hour from now to the end of the period gives the projected total and the
   instant cumulative spend reaches the limit (interpolated inside the hour).

Money in, money out is integer nano-USD; the walk itself is float (a forecast, not a ledger).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

NS = 1_000_000_000
HOUR_NS = 3600 * NS
HISTORY_HOURS = 7 * 24
SPIKE_FACTOR = 3.0
ALPHA = 0.5  # level smoothing
BETA = 0.3  # trend smoothing
MIN_ELAPSED_HOURS = 0.25


@dataclass(frozen=True, slots=True)
class Forecast:
    method: str  # "hourly_profile" | "flat_rate" | "no_data"
    projected_nanousd: int  # spend at the end of the period
    exhausts_at_ns: int | None  # when spend reaches the limit; None: not before the period ends
    next_24h_nanousd: int  # expected spend over the next 24 hours (the current burn rate)


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


class _Model:
    def __init__(
        self, hourly: Sequence[int], history_end_ns: int, current: int, elapsed_hours: float
    ) -> None:
        values = [float(max(v, 0)) for v in hourly[-HISTORY_HOURS:]]
        first = next((i for i, v in enumerate(values) if v > 0), len(values))
        values = values[first:]
        self.history_end_ns = history_end_ns
        self.shape: list[float] | None = None
        self.level = 0.0
        self.trend = 0.0
        self.flat = 0.0
        if not values and current <= 0:
            self.method = "no_data"
            return
        if values:
            cap = SPIKE_FACTOR * _median([v for v in values if v > 0])
            values = [min(v, cap) for v in values]
        if len(values) < 24:
            # Less than a day: the mean rate since the first spend, the current hour included
            # (counted as at least MIN_ELAPSED_HOURS, so a minute of data is not multiplied by 60).
            self.method = "flat_rate"
            hours = len(values) + max(elapsed_hours, MIN_ELAPSED_HOURS)
            self.flat = (sum(values) + max(current, 0)) / hours
            return
        self.method = "hourly_profile"
        days = len(values) // 24
        recent = values[-days * 24 :]
        first_start = history_end_ns - days * 24 * HOUR_NS
        by_hour = [0.0] * 24
        for j, v in enumerate(recent):
            by_hour[((first_start + j * HOUR_NS) // HOUR_NS) % 24] += v
        total = sum(by_hour)
        self.shape = [v / total for v in by_hour] if total > 0 else [1 / 24] * 24
        totals = [sum(recent[d * 24 : (d + 1) * 24]) for d in range(days)]
        level, trend = totals[0], 0.0
        for value in totals[1:]:
            previous = level
            level = ALPHA * value + (1 - ALPHA) * (level + trend)
            trend = BETA * (level - previous) + (1 - BETA) * trend
        self.level, self.trend = level, trend

    def hour_amount(self, hour_start_ns: int) -> float:
        """Expected spend in the hour starting at ``hour_start_ns`` (in the future)."""
        if self.shape is None:
            return self.flat
        days_ahead = (hour_start_ns - self.history_end_ns) / (24 * HOUR_NS)
        daily = max(self.level + self.trend * max(days_ahead, 0.0), 0.0)
        return daily * self.shape[(hour_start_ns // HOUR_NS) % 24]


def forecast(
    hourly: Sequence[int],
    *,
    history_end_ns: int,
    now_ns: int,
    period_end_ns: int,
    spend_nanousd: int,
    limit_nanousd: int | None = None,
    current_hour_nanousd: int = 0,
) -> Forecast:
    """Project spend from ``now_ns`` to ``period_end_ns``.

    ``hourly``: spend per complete hour, oldest first, the last one ending at
    ``history_end_ns`` (the start of the current hour). ``spend_nanousd``: spent so far in the
    period (the current partial hour included); ``current_hour_nanousd``: spent since
    ``history_end_ns`` (used while there is less than a day of history).
    """
    elapsed = max(now_ns - history_end_ns, 0) / HOUR_NS
    model = _Model(hourly, history_end_ns, current_hour_nanousd, elapsed)
    exhausts: int | None = None
    if limit_nanousd is not None and spend_nanousd >= limit_nanousd:
        exhausts = now_ns
    cumulative = float(spend_nanousd)
    t = now_ns
    while t < period_end_ns:
        hour_start = t // HOUR_NS * HOUR_NS
        segment_end = min(hour_start + HOUR_NS, period_end_ns)
        amount = model.hour_amount(hour_start) * (segment_end - t) / HOUR_NS
        if (
            exhausts is None
            and limit_nanousd is not None
            and amount > 0
            and cumulative + amount >= limit_nanousd
        ):
            exhausts = t + int((limit_nanousd - cumulative) / amount * (segment_end - t))
        cumulative += amount
        t = segment_end
    next_day = 0.0
    start = now_ns // HOUR_NS * HOUR_NS
    for k in range(24):
        next_day += model.hour_amount(start + k * HOUR_NS)
    return Forecast(model.method, round(cumulative), exhausts, round(next_day))
