"""Budget reservations shared by every process, used only near the end of a key's budget.

Far from the end a process admits a budgeted request on its own view (usage synced through
Redis every 50 ms plus its own reservations): no request waits on Redis. Once the room a
process sees is below `NEAR_END_CALLS` calls at the model's recent cost, admission goes through
one atomic Redis script instead: it adds the reservations of all processes (a sorted set per
key, scored by expiry) to the shared usage counter and refuses when the budget is reached, or
records the reservation. When the call ends, its charge is added to the counter and its
reservation removed in the same transaction, so no other process ever sees neither.

If Redis fails, admission falls back to the process's own view (the per-process bound holds)
and stops asking Redis for `RETRY_SECONDS`, so requests do not each wait on a dead link.
A reservation left by a process that died expires after the longest a call may take.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid

from redis.exceptions import RedisError

from llm_gateway.state.bus import ChangeBus, counter_name
from llm_gateway.state.cache import KeyEntry

log = logging.getLogger("llm_gateway.redis")

NEAR_END_CALLS = 256
RETRY_SECONDS = 1.0

# KEYS: usage counter, reservation set. ARGV: now (ms), expiry (ms), member, budget,
# this process's view of usage (used when the counter is missing), its unshared counts.
_RESERVE = """
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
local counter = redis.call('GET', KEYS[1])
local used = tonumber(ARGV[5])
if counter then
  used = math.max(used, tonumber(counter) + tonumber(ARGV[6]))
end
local reserved = 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  reserved = reserved + tonumber(string.match(member, ':(%d+)$'))
end
if used + reserved >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('PEXPIREAT', KEYS[2], ARGV[2])
return 1
"""


def reservations_name(key_id: uuid.UUID) -> str:
    return f"llm-gateway:reserved:{key_id}"


class SharedBudget:
    def __init__(self, bus: ChangeBus, longest_call_seconds: float) -> None:
        self._bus = bus
        self._ttl_ms = int(longest_call_seconds * 1000)
        self._reserve = bus.client.register_script(_RESERVE)
        self._ids = itertools.count()
        self._settling: set[asyncio.Task[None]] = set()
        self._failing = False
        self._retry_at = 0.0  # after a failure, calls do not wait on Redis until then
        # Counts for /metrics: admissions asked of Redis, refused by it, failed to reach it.
        self.asked = 0
        self.refused = 0
        self.failed = 0

    def near_end(self, key: KeyEntry, cost: int) -> bool:
        if key.token_budget is None or not self._bus.connected:
            return False
        if self._failing and time.monotonic() < self._retry_at:
            return False
        room = key.token_budget - key.tokens_used - key.reserved
        return room < NEAR_END_CALLS * max(cost, 1)

    async def reserve(self, key: KeyEntry, cost: int) -> str | None:
        """Reserve `cost` for a call across all processes.

        Returns the reservation's name, "" when Redis could not be asked (the caller goes on
        with its own view), or None when the budget is reached.
        """
        assert key.token_budget is not None
        now = int(time.time() * 1000)
        member = f"{self._bus.instance}:{next(self._ids)}:{cost}"
        self.asked += 1
        try:
            admitted = await self._reserve(
                keys=[counter_name(key.id, key.usage_generation), reservations_name(key.id)],
                args=[
                    now,
                    now + self._ttl_ms,
                    member,
                    key.token_budget,
                    key.tokens_used,
                    self._bus.unshared.get(key.id, 0),
                ],
            )
        except (RedisError, OSError) as exc:
            self._warn(exc)
            return ""
        self._failing = False
        if not admitted:
            self.refused += 1
            return None
        return member

    def settle(self, key_id: uuid.UUID, member: str) -> None:
        """Move the key's counts made here to the shared counter and drop the reservation.

        The counts are taken now, so the periodic sync cannot push them on its own while
        the reservation still stands (which would count the call twice for a moment).
        """
        tokens = self._bus.unshared.pop(key_id, 0)
        task = asyncio.create_task(self._settle(key_id, member, tokens))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _settle(self, key_id: uuid.UUID, member: str, tokens: int) -> None:
        pipe = self._bus.client.pipeline(transaction=True)
        self._bus.add_increment(pipe, key_id, tokens)
        pipe.zrem(reservations_name(key_id), member)
        try:
            results = await pipe.execute()
        except (RedisError, OSError) as exc:
            # The periodic sync pushes the counts later; the reservation expires on its own.
            self._bus.unshared[key_id] += tokens
            self._warn(exc)
            return
        entry = self._bus.store.cache.key_by_id(key_id)
        if entry is not None:
            entry.tokens_used = int(results[1]) + self._bus.unshared.get(key_id, 0)

    async def drain(self) -> None:
        """Wait for the settlements in progress (at shutdown, before the last usage sync)."""
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)

    def _warn(self, exc: BaseException) -> None:
        self.failed += 1
        self._retry_at = time.monotonic() + RETRY_SECONDS
        if not self._failing:
            log.warning(
                "shared budget reservation failed (%s); admitting on this process's view",
                type(exc).__name__,
            )
        self._failing = True
