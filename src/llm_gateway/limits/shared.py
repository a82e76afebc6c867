"""Rate limits shared by every process through Redis: one script call per admitted request.

The script reads both windows of both limits of the key, and either takes one request and the
token estimate or takes nothing, atomically; every key it touches carries the key's id as its
hash tag (`{id}`), so it runs on Redis Cluster too. Token settlements (real usage minus estimate)
are added in batches every `SETTLE_SECONDS`, off the request path.

When Redis cannot be reached, admission falls back to this process's own counts with the limits
divided by the number of live processes, counted through a heartbeat set while Redis worked and
remembered since. Redis is tried again after `RETRY_SECONDS`; until then no request waits on it.
`local_share` (a metric) says which way limits are being enforced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict
from typing import Any

from llm_gateway.limits import window
from llm_gateway.limits.local import Admission, Headers, LocalLimiter, decide
from llm_gateway.limits.policy import KeyPolicy
from llm_gateway.state.bus import ChangeBus
from llm_gateway.state.redis_link import UNAVAILABLE
from llm_gateway.state.shared_budget import RESERVE_FUNCTIONS

log = logging.getLogger("llm_gateway.redis")

RETRY_SECONDS = 1.0
SETTLE_SECONDS = 0.05
HEARTBEAT_SECONDS = 5.0
PROCESSES = "llm-gateway:processes"  # sorted set: process -> last heartbeat (unix ms)
_WINDOW_MS = int(window.WINDOW_SECONDS * 1000)
_TTL_MS = 3 * _WINDOW_MS  # a window is read for two minutes; settlements may land a bit later

# KEYS: requests in the previous and the current window, tokens in the previous and the current;
# then, near the end of a token budget, the key's usage counter and reservation set.
# ARGV: ms elapsed in the current window, window ms, request limit, token limit (0: none),
# tokens to take, counter lifetime ms; then the reservation's now, expiry, member, budget,
# view and unshared counts (see state/shared_budget.py).
# Returns {admitted, the four counts after the attempt, budget room (1, or 0 when refused)}:
# either everything is taken (both limits and the reservation) or nothing.
_TAKE = (
    RESERVE_FUNCTIONS
    + """
local elapsed, span = tonumber(ARGV[1]), tonumber(ARGV[2])
local rpm, tpm, take, ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local weight = (span - elapsed) / span
local function count(key)
  return math.max(0, tonumber(redis.call('GET', key) or '0'))
end
local rp, rc, tp, tc = 0, 0, 0, 0
local admitted, budget = 1, 1
if rpm > 0 then
  rp, rc = count(KEYS[1]), count(KEYS[2])
  if rp * weight + rc + 1 > rpm then admitted = 0 end
end
if tpm > 0 then
  tp, tc = count(KEYS[3]), count(KEYS[4])
  if tp * weight + tc + take > tpm then admitted = 0 end
end
if admitted == 1 and #KEYS == 6 then
  if not room(KEYS[5], KEYS[6], ARGV[7], ARGV[10], ARGV[11], ARGV[12]) then
    admitted, budget = 0, 0
  end
end
if admitted == 1 then
  if rpm > 0 then
    rc = redis.call('INCR', KEYS[2])
    redis.call('PEXPIRE', KEYS[2], ttl)
  end
  if tpm > 0 and take > 0 then
    tc = math.max(0, redis.call('INCRBY', KEYS[4], take))
    redis.call('PEXPIRE', KEYS[4], ttl)
  end
  if #KEYS == 6 then
    hold(KEYS[6], ARGV[8], ARGV[9])
  end
end
return {admitted, rp, rc, tp, tc, budget}
"""
)
BudgetAsk = tuple[list[str], list[Any]]  # a reservation's Redis keys and arguments


def counter_key(key_id: uuid.UUID, kind: str, index: int) -> str:
    return f"llm-gateway:rate:{{{key_id}}}:{kind}:{index}"


class SharedLimiter:
    def __init__(self, bus: ChangeBus) -> None:
        self._bus = bus
        self._take = bus.client.register_script(_TAKE)
        self.local = LocalLimiter()
        self.processes = 1  # live processes, as last counted
        self.local_mode = False  # the last admission was decided here, not in Redis
        self._failing = False
        self._retry_at = 0.0
        self._settlements: defaultdict[tuple[uuid.UUID, int], int] = defaultdict(int)
        self._tasks: list[asyncio.Task[None]] = []
        self.failed = 0  # admissions that could not reach Redis

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._heartbeat_forever(), name="rate-limit-heartbeat"),
            asyncio.create_task(self._settle_forever(), name="rate-limit-settle"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(*UNAVAILABLE):
            await self._send_settlements()
            await self._bus.client.zrem(PROCESSES, self._bus.instance)

    @property
    def local_share(self) -> float:
        """0 while limits are shared through Redis, else the share of each limit kept here."""
        local = self.local_mode or not self._bus.connected
        return 1 / self.processes if local else 0.0

    @property
    def usable(self) -> bool:
        """Whether the next admission asks Redis (else it is decided here, at once)."""
        return self._bus.connected and not (self._failing and time.monotonic() < self._retry_at)

    async def take(
        self,
        key_id: uuid.UUID,
        policy: KeyPolicy,
        tokens: int,
        now: float,
        budget: BudgetAsk | None = None,
    ) -> Admission:
        """Check and take every rate limit of the key at once; with `budget`, also reserve a
        share of its token budget in the same call (`Admission.budget_room` says how that went:
        None when Redis was not asked)."""
        if self.usable:
            index, elapsed = window.window_index(now)
            elapsed = round(elapsed, 3)
            rpm, tpm = policy.rpm_limit or 0, policy.tpm_limit or 0
            amount = min(tokens, tpm) if tpm else 0
            keys = [
                counter_key(key_id, "r", index - 1),
                counter_key(key_id, "r", index),
                counter_key(key_id, "t", index - 1),
                counter_key(key_id, "t", index),
            ]
            args: list[Any] = [round(elapsed * 1000), _WINDOW_MS, rpm, tpm, amount, _TTL_MS]
            if budget is not None:
                keys += budget[0]
                args += budget[1]
            try:
                result = await self._take(keys=keys, args=args)
            except UNAVAILABLE as exc:
                self._warn(exc)
            else:
                if self._failing or self.local_mode:
                    log.info("rate limits shared through redis again")
                self._failing = self.local_mode = False
                admitted, *counts, room = (int(value) for value in result)
                admission = decide(
                    policy,
                    elapsed,
                    index,
                    (counts[0], counts[1], counts[2], counts[3]),
                    tokens,
                    bool(admitted) or not room,
                )
                admission.shared = True
                if budget is not None:
                    admission.budget_room = bool(room)
                    if not room:  # refused for the budget: nothing was taken
                        admission.tokens = 0
                return admission
        if not self.local_mode:
            log.warning(
                "rate limits kept in this process: 1/%d of each limit until redis is back",
                self.processes,
            )
        self.local_mode = True
        return self.local.take(key_id, policy, tokens, now, self.processes)

    async def peek(self, key_id: uuid.UUID, policy: KeyPolicy, now: float) -> Headers:
        """The key's headers as its windows stand now, taking nothing (one MGET of one hash
        tag's keys; only for answers refused before admission, which never go upstream)."""
        if self.usable:
            index, elapsed = window.window_index(now)
            names = [
                counter_key(key_id, kind, i) for kind in ("r", "t") for i in (index - 1, index)
            ]
            try:
                values = await self._bus.client.mget(names)
            except UNAVAILABLE as exc:
                self._warn(exc)
            else:
                counts = [max(0, int(value)) if value is not None else 0 for value in values]
                return decide(
                    policy, elapsed, index, (counts[0], counts[1], counts[2], counts[3]), 0, True
                ).headers
        return self.local.peek(key_id, policy, now, self.processes)

    def settle(self, admission: Admission, key_id: uuid.UUID, used_tokens: int) -> None:
        if not admission.shared:  # decided by this process's share while Redis was away
            self.local.settle(admission, key_id, used_tokens)
            return
        delta = used_tokens - admission.tokens
        if delta:
            self._settlements[(key_id, admission.index)] += delta

    # background ------------------------------------------------------------------------------
    async def _send_settlements(self) -> None:
        if not self._settlements:
            return
        batch = dict(self._settlements)
        self._settlements.clear()
        pipe = self._bus.client.pipeline(transaction=False)  # on a Cluster: split by node
        for (key_id, index), delta in batch.items():
            if delta:
                name = counter_key(key_id, "t", index)
                pipe.incrby(name, delta)
                pipe.pexpire(name, _TTL_MS)
        await pipe.execute()

    async def _settle_forever(self) -> None:
        while True:
            await asyncio.sleep(SETTLE_SECONDS)
            try:
                await self._send_settlements()
            except UNAVAILABLE as exc:
                # A correction of estimates: lost, it only makes the window's view cruder.
                log.debug("token settlements not sent (%s)", type(exc).__name__)

    async def heartbeat(self) -> None:
        now = int(time.time() * 1000)
        pipe = self._bus.client.pipeline(transaction=False)
        pipe.zadd(PROCESSES, {self._bus.instance: now})
        pipe.zremrangebyscore(PROCESSES, "-inf", now - int(3 * HEARTBEAT_SECONDS * 1000))
        pipe.zcard(PROCESSES)
        pipe.pexpire(PROCESSES, int(6 * HEARTBEAT_SECONDS * 1000))
        results = await pipe.execute()
        self.processes = max(1, int(results[2]))

    async def _heartbeat_forever(self) -> None:
        # Known to Redis before the first request needs it (else that request's call would
        # be refused as unknown, and sent again after loading it).
        with contextlib.suppress(*UNAVAILABLE):
            await self._bus.client.script_load(_TAKE)
        while True:
            with contextlib.suppress(*UNAVAILABLE):  # the count is remembered
                await self.heartbeat()
            await asyncio.sleep(HEARTBEAT_SECONDS)

    def _warn(self, exc: BaseException) -> None:
        self.failed += 1
        self._retry_at = time.monotonic() + RETRY_SECONDS
        if not self._failing:
            log.warning("rate limit check in redis failed (%s)", type(exc).__name__)
        self._failing = True
