"""Budget reservations shared by every process, used only near the end of a key's budget.

Far from the end a process admits a budgeted request on its own view (usage synced through
Redis every 50 ms plus its own reservations): no request waits on Redis. Once the room a
process sees is below `NEAR_END_CALLS` calls at the model's recent cost, admission goes through
one atomic Redis script instead: it adds the reservations of all processes (a sorted set per
key, scored by expiry) to the shared usage counter and refuses when the budget is reached, or
records the reservation. When the call ends, its charge is added to the counter and its
reservation removed in the same transaction, so no other process ever sees neither. For a key
with rate limits the reservation rides in the rate-limit script's call (limits/shared.py), so
that request still makes one round trip.

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
from typing import Any

from llm_gateway.state.bus import ChangeBus, Unshared, counter_name
from llm_gateway.state.cache import KeyEntry
from llm_gateway.state.redis_link import UNAVAILABLE

log = logging.getLogger("llm_gateway.redis")

NEAR_END_CALLS = 256
RETRY_SECONDS = 1.0

# Two Lua functions shared with the rate-limit script (limits/shared.py), which folds a
# reservation into the same call. `room`: whether the budget has room for one more call once the
# counter (or this process's view, when the counter is missing) and every live reservation are
# added up; `hold`: record the reservation, scored by its expiry.
RESERVE_FUNCTIONS = """
local function room(counter_key, set_key, now, budget, view, unshared)
  redis.call('ZREMRANGEBYSCORE', set_key, '-inf', now)
  local counter = redis.call('GET', counter_key)
  local used = tonumber(view)
  if counter then
    used = math.max(used, tonumber(counter) + tonumber(unshared))
  end
  local reserved = 0
  for _, member in ipairs(redis.call('ZRANGE', set_key, 0, -1)) do
    reserved = reserved + tonumber(string.match(member, ':(%d+)$'))
  end
  return used + reserved < tonumber(budget)
end
local function hold(set_key, expiry, member)
  redis.call('ZADD', set_key, expiry, member)
  redis.call('PEXPIREAT', set_key, expiry)
end
"""
# KEYS: usage counter, reservation set. ARGV: now (ms), expiry (ms), member, budget,
# this process's view of usage (used when the counter is missing), its unshared counts.
_RESERVE = (
    RESERVE_FUNCTIONS
    + """
if not room(KEYS[1], KEYS[2], ARGV[1], ARGV[4], ARGV[5], ARGV[6]) then
  return 0
end
hold(KEYS[2], ARGV[2], ARGV[3])
return 1
"""
)


def reservations_name(key_id: uuid.UUID) -> str:
    return f"llm-gateway:reserved:{{{key_id}}}"  # the hash tag of the key's usage counters


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

    def request(self, key: KeyEntry, cost: int) -> tuple[list[str], list[Any], str]:
        """The Redis keys and arguments of a reservation of `cost` (for `_RESERVE`, or for the
        rate-limit script, which takes it with the key's rate limits in the same call), and the
        reservation's name."""
        assert key.token_budget is not None
        now = int(time.time() * 1000)
        member = f"{self._bus.instance}:{next(self._ids)}:{cost}"
        keys = [counter_name(key.id, key.usage_generation, key.period), reservations_name(key.id)]
        args: list[Any] = [
            now,
            now + self._ttl_ms,
            member,
            key.token_budget,
            key.tokens_used,
            self._bus.unshared_tokens(key.id, key.period),
        ]
        return keys, args, member

    async def reserve(self, key: KeyEntry, cost: int) -> str | None:
        """Reserve `cost` for a call across all processes.

        Returns the reservation's name, "" when Redis could not be asked (the caller goes on
        with its own view), or None when the budget is reached.
        """
        keys, args, member = self.request(key, cost)
        self.asked += 1
        try:
            admitted = await self._reserve(keys=keys, args=args)
        except UNAVAILABLE as exc:
            self.unreachable(exc)
            return ""
        return self.answered(bool(admitted), member)

    def answered(self, admitted: bool, member: str) -> str | None:
        """Count Redis's answer to a reservation; the reservation's name, or None if refused."""
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
        entry = self._bus.store.cache.key_by_id(key_id)
        unshared = self._bus.unshared.pop(key_id, None)
        if unshared is None or entry is None or unshared.period != entry.period:
            unshared = Unshared(entry.period if entry is not None else None)
        task = asyncio.create_task(self._settle(key_id, member, unshared))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _settle(self, key_id: uuid.UUID, member: str, unshared: Unshared) -> None:
        # One transaction: the key's counters and reservations share its hash tag (one slot).
        pipe = self._bus.client.pipeline(transaction=True)
        usage_at, cost_at = self._bus.add_increment(pipe, key_id, unshared)
        pipe.zrem(reservations_name(key_id), member)
        try:
            results = await pipe.execute()
        except UNAVAILABLE as exc:
            # The periodic sync pushes the counts later; the reservation expires on its own.
            self._bus.take_unshared(key_id, unshared)
            self.unreachable(exc)
            return
        self._bus.apply_totals(key_id, unshared.period, results, usage_at, cost_at)

    async def drain(self) -> None:
        """Wait for the settlements in progress (at shutdown, before the last usage sync)."""
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)

    def unreachable(self, exc: BaseException) -> None:
        self.failed += 1
        self._retry_at = time.monotonic() + RETRY_SECONDS
        if not self._failing:
            log.warning(
                "shared budget reservation failed (%s); admitting on this process's view",
                type(exc).__name__,
            )
        self._failing = True
