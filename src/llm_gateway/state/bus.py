"""The Redis link: change notices between processes and usage counters shared by all of them.

Change notices. Every committed admin change is published on one channel; every other process
reloads what changed from the database (the source of truth) on receipt. A full resync runs
after every (re)connect and periodically, repairing anything a lost notice missed.

Shared usage. Each process adds the weighted tokens it counts to one Redis counter per key
(`INCRBY`, batched every `sync_interval`), and reads back the totals of keys it served lately,
so a budget is checked against usage from every process. Keys with a cost budget have a second
counter, in nano-USD. A counter is named by the key, its last reset and its budget period, so
a new period (or a reset) starts a new counter and no job ever clears one. Near the end of a
budget, admission goes through the reservations in `shared_budget`, shared by all processes.
Each process still flushes its own counts to the database (the durable record), so the counters
are rebuilt from the database if Redis loses them.

Shared cooldowns. A deployment that cools down in one process is announced on the same channel
and kept in one hash (deployment id -> end of cooldown), read after every (re)connect; every
process then skips it within a notice's delivery time, with no Redis round trip per request.

Redis is an accelerator: when it is down, requests are served from the caches, admin writes
still succeed, counts wait locally (and still reach the database), and the link reconnects with
backoff and resyncs. One server, Sentinel and Cluster are all reached through `redis_link`; every
command here names one key, or keys of one key's hash tag, so each runs on a Cluster as is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline

from llm_gateway.routing.health import DeploymentHealth
from llm_gateway.state.cache import KeyEntry
from llm_gateway.state.redis_link import UNAVAILABLE, RedisLink
from llm_gateway.state.store import Store

log = logging.getLogger("llm_gateway.redis")

CHANNEL = "llm-gateway:changes"
COOLDOWNS = "llm-gateway:cooldowns"
RECENT_SECONDS = 120.0
MAX_BACKOFF_SECONDS = 2.0  # between attempts to subscribe again (a new primary is found fast)


COUNTER_TTL_SECONDS = 7 * 24 * 3600  # an idle key's counter is rebuilt from the database


def counter_name(
    key_id: uuid.UUID, generation: int, period: datetime | None = None, kind: str = "usage"
) -> str:
    """The shared counter of a key since its last reset (`generation`, ms since 1970), in its
    budget period (`period`, its start); `kind` is `usage` (weighted tokens) or `cost`.

    A reset or a new period starts a new counter, so a late increment from a process that had
    not yet seen it lands on the old one and is never counted against the new period. The key's
    id is the hash tag: every counter of a key lives on one Redis Cluster slot.
    """
    name = f"llm-gateway:{kind}:{{{key_id}}}:{generation}"
    return name if period is None else f"{name}:{int(period.timestamp())}"


@dataclass(slots=True)
class Unshared:
    """Counts made here and not yet added to the shared counters."""

    period: datetime | None
    tokens: int = 0
    cost: int = 0  # nano-USD


class ChangeBus:
    def __init__(
        self, url: str, store: Store, resync_seconds: float = 30.0, sync_interval: float = 0.05
    ) -> None:
        self.store = store
        self.instance = os.urandom(8).hex()
        self.link = RedisLink(url)
        self.client = self.link.client
        self.resync_seconds = resync_seconds
        self.sync_interval = sync_interval
        self.connected = False
        self.unshared: dict[uuid.UUID, Unshared] = {}
        self.recent: dict[uuid.UUID, float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._notices: set[asyncio.Task[None]] = set()  # cooldown notices being sent

    async def start(self) -> None:
        self.store.listeners.append(self.publish)
        self.store.ledger.shared = self
        self.store.health.publishers.append(self.share_health)
        self._tasks = [
            asyncio.create_task(self._listen_forever(), name="redis-listener"),
            asyncio.create_task(self._sync_forever(), name="redis-usage-sync"),
            asyncio.create_task(self._resync_forever(), name="redis-resync"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._notices, return_exceptions=True)
        with contextlib.suppress(*UNAVAILABLE):
            await self.sync_usage()
        await self.link.aclose()

    def counted(self, key_id: uuid.UUID, tokens: int, cost: int, period: datetime | None) -> None:
        """Called by the usage ledger for every charge."""
        unshared = self.unshared.get(key_id)
        if unshared is None or unshared.period != period:  # a new period: the old one is over
            unshared = self.unshared[key_id] = Unshared(period)
        unshared.tokens += tokens
        unshared.cost += cost
        self.recent[key_id] = time.monotonic()

    def unshared_tokens(self, key_id: uuid.UUID, period: datetime | None) -> int:
        unshared = self.unshared.get(key_id)
        return unshared.tokens if unshared is not None and unshared.period == period else 0

    def take_unshared(self, key_id: uuid.UUID, unshared: Unshared) -> None:
        """Put counts back that could not be sent (merged when still of the same period)."""
        current = self.unshared.get(key_id)
        if current is None:
            self.unshared[key_id] = unshared
        elif current.period == unshared.period:
            current.tokens += unshared.tokens
            current.cost += unshared.cost

    # change notices --------------------------------------------------------------------------
    async def publish(self, kind: str, ident: str) -> None:
        message = orjson.dumps({"kind": kind, "id": ident, "origin": self.instance})
        try:
            if kind == "key_reset":
                # Counted before the reset (the key's new counter starts from the database).
                self.unshared.pop(uuid.UUID(ident), None)
            await self.link.publish(CHANNEL, message)
        except UNAVAILABLE as exc:
            # The database already has the change; other processes pick it up on resync.
            log.warning("change notice not published (%s); peers resync later", type(exc).__name__)

    async def apply(self, raw: bytes) -> None:
        notice: dict[str, Any] = orjson.loads(raw)
        if notice.get("origin") == self.instance:
            return
        kind, ident = notice.get("kind"), notice.get("id")
        if kind in ("key", "key_reset") and isinstance(ident, str):
            key_id = uuid.UUID(ident)
            async with self.store.ledger.lock:
                if kind == "key_reset":
                    self.store.ledger.forget(key_id)
                    self.unshared.pop(key_id, None)
                async with self.store.engine.connect() as conn:
                    await self.store.cache.reload_key(
                        conn, key_id, self.store.ledger.pending.get(key_id)
                    )
        elif kind == "routes":
            await self.store.reload_routes()
        elif kind == "cooldown" and isinstance(ident, str):
            self.store.health.apply(
                uuid.UUID(ident),
                float(notice.get("until") or 0),
                int(notice.get("level") or 0),
                notice.get("error"),
            )

    # shared cooldowns ------------------------------------------------------------------------
    def share_health(self, deployment_id: uuid.UUID, state: DeploymentHealth) -> None:
        """Tell the other processes about a cooldown (or a recovery) found here."""
        task = asyncio.get_running_loop().create_task(
            self._send_health(deployment_id, state.cooling_until, state.level, state.last_error)
        )
        self._notices.add(task)
        task.add_done_callback(self._notices.discard)

    async def _send_health(
        self, deployment_id: uuid.UUID, until: float, level: int, error: str | None
    ) -> None:
        ident = str(deployment_id)
        notice = {"until": until, "level": level, "error": error}
        message = {"kind": "cooldown", "id": ident, "origin": self.instance, **notice}
        try:
            # Two calls (on a Cluster the hash and the channel may live on different nodes).
            if until:
                await self.client.hset(COOLDOWNS, ident, orjson.dumps(notice))
            else:
                await self.client.hdel(COOLDOWNS, ident)
            await self.link.publish(CHANNEL, orjson.dumps(message))
        except UNAVAILABLE as exc:
            log.warning(
                "cooldown not shared (%s); other processes find it themselves", type(exc).__name__
            )

    async def load_cooldowns(self) -> None:
        """Take the cooldowns other processes found (after a connect); forget ended ones."""
        now = time.time()
        ended = []
        for ident, raw in (await self.client.hgetall(COOLDOWNS)).items():
            notice = orjson.loads(raw)
            until = float(notice.get("until") or 0)
            if until <= now:
                ended.append(ident)
                continue
            deployment_id = uuid.UUID(ident.decode() if isinstance(ident, bytes) else ident)
            self.store.health.apply(
                deployment_id, until, int(notice.get("level") or 0), notice.get("error")
            )
        if ended:
            await self.client.hdel(COOLDOWNS, *ended)

    async def _listen_forever(self) -> None:
        backoff = 0.1
        while True:
            try:
                async with self.link.subscribe(CHANNEL) as messages:
                    if not self.connected:
                        log.info("redis connected; resyncing caches")
                    self.connected = True
                    backoff = 0.1
                    await self._resync()
                    try:
                        await self.load_cooldowns()
                    except (ValueError, TypeError) as exc:  # a malformed entry; skip them all
                        log.warning("shared cooldowns not read: %s", type(exc).__name__)
                    async for data in messages:
                        try:
                            await self.apply(data)
                        except Exception as exc:
                            log.warning("change notice not applied: %s", type(exc).__name__)
            except UNAVAILABLE as exc:
                if self.connected:
                    log.warning(
                        "redis connection lost (%s); serving from caches", type(exc).__name__
                    )
                self.connected = False
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def _resync(self) -> None:
        try:
            await self.store.resync()
        except Exception as exc:
            log.warning("cache resync failed: %s", type(exc).__name__)

    async def _resync_forever(self) -> None:
        while True:
            await asyncio.sleep(self.resync_seconds)
            await self._resync()

    # shared usage ----------------------------------------------------------------------------
    async def sync_usage(self) -> None:
        """Push counts made here; pull totals of keys served lately."""
        now = time.monotonic()
        for key_id, seen in list(self.recent.items()):
            if now - seen > RECENT_SECONDS:
                del self.recent[key_id]
        if not self.unshared and not self.recent:
            return
        batch = dict(self.unshared)
        self.unshared.clear()
        cache = self.store.cache
        # Not a transaction: on a Cluster the client splits it by node (each key's commands
        # stay in order on its node).
        pipe = self.client.pipeline(transaction=False)
        # (key, period, position of the usage total, of the cost total) in the results
        reads: list[tuple[uuid.UUID, datetime | None, int, int | None]] = []
        for key_id, unshared in batch.items():
            entry = cache.key_by_id(key_id)
            if entry is None or entry.period != unshared.period:
                continue  # a revoked key, or counts of a period that has ended
            reads.append((key_id, entry.period, *self.add_increment(pipe, key_id, unshared)))
        for key_id in self.recent:
            entry = cache.key_by_id(key_id)
            if key_id in batch or entry is None:
                continue
            usage_at = len(pipe)
            pipe.get(counter_name(key_id, entry.usage_generation, entry.period))
            cost_at = None
            if _cost_budgeted(entry):
                cost_at = len(pipe)
                pipe.get(counter_name(key_id, entry.usage_generation, entry.period, "cost"))
            reads.append((key_id, entry.period, usage_at, cost_at))
        try:
            results = await pipe.execute()
        except UNAVAILABLE:
            for key_id, unshared in batch.items():
                self.take_unshared(key_id, unshared)
            raise
        for key_id, period, usage_at, cost_at in reads:
            self.apply_totals(key_id, period, results, usage_at, cost_at)

    def apply_totals(
        self,
        key_id: uuid.UUID,
        period: datetime | None,
        results: list[Any],
        usage_at: int,
        cost_at: int | None,
    ) -> None:
        """Take the shared totals read at these positions as the key's usage (plus what was
        counted here since), unless the key moved to another period meanwhile."""
        entry = self.store.cache.key_by_id(key_id)
        if entry is None or entry.period != period:
            return
        unshared = self.unshared.get(key_id)
        if unshared is not None and unshared.period != period:
            unshared = None
        if results[usage_at] is not None:
            entry.tokens_used = int(results[usage_at]) + (unshared.tokens if unshared else 0)
        if cost_at is not None and results[cost_at] is not None:
            entry.cost_used = int(results[cost_at]) + (unshared.cost if unshared else 0)

    def add_increment(
        self, pipe: Pipeline | ClusterPipeline, key_id: uuid.UUID, unshared: Unshared
    ) -> tuple[int, int | None]:
        """Queue the commands adding these counts to the key's counters; returns where the
        new totals (usage, cost) will be in the pipeline's results.

        A missing counter (new period, or lost by Redis) starts from this process's view less
        the counts being added, which is the database value plus what it counted since.
        """
        entry = self.store.cache.key_by_id(key_id)
        generation = entry.usage_generation if entry else 0
        name = counter_name(key_id, generation, unshared.period)
        pipe.set(name, max(0, (entry.tokens_used if entry else 0) - unshared.tokens), nx=True)
        usage_at = len(pipe)
        pipe.incrby(name, unshared.tokens)
        pipe.expire(name, COUNTER_TTL_SECONDS)
        if entry is None or not _cost_budgeted(entry):
            return usage_at, None
        name = counter_name(key_id, generation, unshared.period, "cost")
        pipe.set(name, max(0, entry.cost_used - unshared.cost), nx=True)
        cost_at = len(pipe)
        pipe.incrby(name, unshared.cost)
        pipe.expire(name, COUNTER_TTL_SECONDS)
        return usage_at, cost_at

    async def _sync_forever(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.sync_interval)
            try:
                await self.sync_usage()
                failing = False
            except UNAVAILABLE as exc:
                if not failing:
                    log.warning(
                        "usage sync with redis failed (%s); counting locally", type(exc).__name__
                    )
                failing = True


def _cost_budgeted(entry: KeyEntry) -> bool:
    return entry.policy is not None and entry.policy.cost_budget is not None
