"""How late the event loop runs: the largest delay since the last scrape, so a stall shows.

A task asks to wake every `interval` seconds and notes how much later than asked it woke: work
that holds the loop (a long computation, a blocking call, a long garbage collection) delays it
by as much. `take()` returns the largest delay seen since the previous call and starts again.
"""

from __future__ import annotations

import asyncio
import time


class LoopLag:
    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.worst = 0.0

    async def run(self) -> None:
        interval = self.interval
        clock = time.perf_counter
        while True:
            asked = clock()
            await asyncio.sleep(interval)
            late = clock() - asked - interval
            if late > self.worst:
                self.worst = late

    def take(self) -> float:
        worst, self.worst = self.worst, 0.0
        return max(0.0, worst)
