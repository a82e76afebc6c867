"""The rolling minute: two fixed one-minute windows, the previous one weighted by how much of
it still lies within the last 60 seconds.

    used = previous * (60 - elapsed) / 60 + current

where `elapsed` is the time since the current window began. This is the usual sliding-window
counter: O(1) per request and per limit, exact while the previous window is empty, and it
assumes the previous window's requests were spread evenly over it. Both the in-process limiter
and the Redis script apply these rules; the waits and header values below come from the same
counts, so `Retry-After` is what the window says, not a constant.
"""

from __future__ import annotations

import math

WINDOW_SECONDS = 60.0


def window_index(now: float) -> tuple[int, float]:
    """(the fixed window `now` falls in, seconds elapsed in it)."""
    index = int(now // WINDOW_SECONDS)
    return index, now - index * WINDOW_SECONDS


def used(previous: float, current: float, elapsed: float) -> float:
    return max(0.0, previous) * (WINDOW_SECONDS - elapsed) / WINDOW_SECONDS + max(0.0, current)


def fits(previous: float, current: float, elapsed: float, limit: int, amount: int) -> bool:
    return used(previous, current, elapsed) + amount <= limit


def wait_for_room(
    previous: float, current: float, elapsed: float, limit: int, amount: int
) -> float:
    """Seconds until `amount` more fits under `limit`, if nothing else is taken meanwhile.

    While in the current window, the previous window's weight falls linearly; once the current
    window ends, its count becomes the previous one and falls the same way. `amount` is at most
    `limit` (larger requests are capped by the caller), so the wait is at most two windows.
    """
    previous, current = max(0.0, previous), max(0.0, current)
    w = WINDOW_SECONDS
    left_in_window = w - elapsed
    room = limit - current - amount
    if room >= 0:
        if previous <= 0:
            return 0.0
        wait = left_in_window - room * w / previous
        return max(0.0, wait)
    if current <= 0:  # amount > limit: never fits
        return math.inf
    into_next = w * (1 - (limit - amount) / current)
    return left_in_window + max(0.0, into_next)


def remaining(previous: float, current: float, elapsed: float, limit: int) -> int:
    return max(0, math.floor(limit - used(previous, current, elapsed) + 1e-9))


def until_reset(previous: float, current: float, elapsed: float) -> float:
    """Seconds until nothing counts any more (the window back to its initial state)."""
    if current > 0:
        return 2 * WINDOW_SECONDS - elapsed
    if previous > 0:
        return WINDOW_SECONDS - elapsed
    return 0.0


def duration_text(seconds: float) -> str:
    """A reset time as OpenAI writes it: `20ms`, `1.5s`, `6m0s`."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    if seconds < 60:
        return f"{math.ceil(seconds * 10) / 10:g}s"
    minutes, rest = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{rest}s"
