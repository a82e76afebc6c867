"""Budget periods on the UTC calendar: days, ISO weeks (starting Monday) and months.

A period is named by its start. Nothing resets counters at the boundary: whoever charges or
reads a key's usage compares the period it has with the one the clock is in, and a newer
period starts from zero.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

Period = Literal["daily", "weekly", "monthly"]
PERIODS: tuple[Period, ...] = ("daily", "weekly", "monthly")


def period_start(period: str, moment: datetime) -> datetime:
    """The start of the period that contains `moment`."""
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        return day
    if period == "weekly":
        return day - timedelta(days=day.weekday())
    if period == "monthly":
        return day.replace(day=1)
    raise ValueError(f"unknown budget period {period!r}")


def next_start(period: str, start: datetime) -> datetime:
    """The start of the period after the one starting at `start`."""
    if period == "daily":
        return start + timedelta(days=1)
    if period == "weekly":
        return start + timedelta(days=7)
    if period == "monthly":
        return (
            start.replace(year=start.year + 1, month=1)
            if start.month == 12
            else (start.replace(month=start.month + 1))
        )
    raise ValueError(f"unknown budget period {period!r}")


def bounds(period: str, moment: datetime) -> tuple[datetime, datetime]:
    """(start, end) of the period that contains `moment`."""
    start = period_start(period, moment)
    return start, next_start(period, start)
