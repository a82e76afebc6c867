"""The wall clock that key expiry, budget periods and rate windows read.

One object per running gateway, so a test can move time forward (`advance`, `set`) and watch a
key expire or a budget period end without waiting for it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    """Unix seconds, like `time.time()`, plus an offset that tests may change."""

    __slots__ = ("offset",)

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self(), UTC)

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def set(self, moment: datetime) -> None:
        """From now on, read `moment` (and let time run on from there)."""
        self.offset = moment.timestamp() - time.time()
