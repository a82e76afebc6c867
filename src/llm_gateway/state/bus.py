"""The Redis link: change notices between processes and usage counters shared by all of them.

Change notices. Every committed admin change is published on one channel; every other process
reloads what changed from the database (the source of truth) on receipt. A full resync runs
after every (re)connect and periodically, repairing anything a lost notice missed.

Shared usage. Each process adds the weighted tokens it counts to one Redis counter per key
(`INCRBY`, batched every `sync_interval`), and reads back the totals of keys it served lately,
so a budget is checked against usage from every process. Near the end of a budget, admission
goes through the reservations in `shared_budget`, shared by all processes.
Each process still flushes its own counts to the database (the durable record), so the counters
are rebuilt from the database if Redis loses them.

Shared cooldowns. A deployment that cools down in one process is announced on the same channel
and kept in one hash (deployment id -> end of cooldown), read after every (re)connect; every
process then skips it within a notice's delivery time, with no Redis round trip per request.

Redis is an accelerator: when it is down, requests are served from the caches, admin writes
still succeed, counts wait locally (and still reach the database), and the link reconnects with
backoff and resyncs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections import defaultdict
from typing import Any

import orjson
import redis.asyncio as redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from llm_gateway.routing.health import DeploymentHealth
from llm_gateway.state.store import Store

log = logging.getLogger("llm_gateway.redis")

CHANNEL = "llm-gateway:changes"
COOLDOWNS = "llm-gateway:cooldowns"
RECENT_SECONDS = 120.0


COUNTER_TTL_SECONDS = 7 * 24 * 3600  # an idle key's counter is rebuilt from the database


def counter_name(key_id: uuid.UUID, generation: int) -> str:
    """The shared usage counter of a key since its last reset (`generation`, ms since 1970).

    A reset starts a new counter, so a late increment from a process that had not yet heard of
    the reset lands on the old one and is never counted against the new period.
    """
    return f"llm-gateway:usage:{key_id}:{generation}"


class ChangeBus:
    def __init__(
        self, url: str, store: Store, resync_seconds: float = 30.0, sync_interval: float = 0.05
    ) -> None:
        self.store = store
        self.instance = os.urandom(8).hex()
        self.client = redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
        # The subscriber blocks on reads, so it has no read timeout; health checks find dead links.
        self._subscriber = redis.from_url(url, socket_connect_timeout=1, health_check_interval=5)
        self.resync_seconds = resync_seconds
        self.sync_interval = sync_interval
        self.connected = False
        self.unshared: defaultdict[uuid.UUID, int] = defaultdict(int)
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
        with contextlib.suppress(RedisError, OSError):
            await self.sync_usage()
        await self.client.aclose()
        await self._subscriber.aclose()

    def counted(self, key_id: uuid.UUID, tokens: int) -> None:
        """Called by the usage ledger for every charge."""
        self.unshared[key_id] += tokens
        self.recent[key_id] = time.monotonic()

    # change notices --------------------------------------------------------------------------
    async def publish(self, kind: str, ident: str) -> None:
        message = orjson.dumps({"kind": kind, "id": ident, "origin": self.instance})
        try:
            if kind == "key_reset":
                # Counted before the reset (the key's new counter starts from the database).
                self.unshared.pop(uuid.UUID(ident), None)
            await self.client.publish(CHANNEL, message)
        except (RedisError, OSError) as exc:
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
                        conn, key_id, self.store.ledger.pending.get(key_id, 0)
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
        pipe = self.client.pipeline(transaction=False)
        if until:
            pipe.hset(COOLDOWNS, ident, orjson.dumps(notice))
        else:
            pipe.hdel(COOLDOWNS, ident)
        pipe.publish(
            CHANNEL,
            orjson.dumps({"kind": "cooldown", "id": ident, "origin": self.instance, **notice}),
        )
        try:
            await pipe.execute()
        except (RedisError, OSError) as exc:
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
            pubsub = self._subscriber.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                if not self.connected:
                    log.info("redis connected; resyncing caches")
                self.connected = True
                backoff = 0.1
                await self._resync()
                try:
                    await self.load_cooldowns()
                except (ValueError, TypeError) as exc:  # a malformed entry; skip them all
                    log.warning("shared cooldowns not read: %s", type(exc).__name__)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        try:
                            await self.apply(message["data"])
                        except Exception as exc:
                            log.warning("change notice not applied: %s", type(exc).__name__)
            except (RedisError, OSError) as exc:
                if self.connected:
                    log.warning(
                        "redis connection lost (%s); serving from caches", type(exc).__name__
                    )
                self.connected = False
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

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
        refresh = [
            (key_id, entry)
            for key_id in self.recent
            if key_id not in batch and (entry := cache.key_by_id(key_id)) is not None
        ]
        pipe = self.client.pipeline(transaction=False)
        for key_id, tokens in batch.items():
            self.add_increment(pipe, key_id, tokens)
        if refresh:
            pipe.mget([counter_name(key_id, entry.usage_generation) for key_id, entry in refresh])
        try:
            results = await pipe.execute()
        except (RedisError, OSError):
            for key_id, tokens in batch.items():
                self.unshared[key_id] += tokens
            raise
        totals: dict[uuid.UUID, int] = {}
        for index, key_id in enumerate(batch):
            totals[key_id] = int(results[3 * index + 1])
        if refresh:
            for (key_id, _), value in zip(refresh, results[-1], strict=True):
                if value is not None:
                    totals[key_id] = int(value)
        for key_id, total in totals.items():
            entry = cache.key_by_id(key_id)
            if entry is not None:
                entry.tokens_used = total + self.unshared.get(key_id, 0)

    def add_increment(self, pipe: Pipeline, key_id: uuid.UUID, tokens: int) -> None:
        """Queue three commands adding `tokens` to the key's counter (the second is INCRBY).

        A missing counter (new period, or lost by Redis) starts from this process's view less
        the tokens being added, which is the database value plus what it counted since.
        """
        entry = self.store.cache.key_by_id(key_id)
        name = counter_name(key_id, entry.usage_generation if entry else 0)
        pipe.set(name, max(0, (entry.tokens_used if entry else 0) - tokens), nx=True)
        pipe.incrby(name, tokens)
        pipe.expire(name, COUNTER_TTL_SECONDS)

    async def _sync_forever(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.sync_interval)
            try:
                await self.sync_usage()
                failing = False
            except (RedisError, OSError) as exc:
                if not failing:
                    log.warning(
                        "usage sync with redis failed (%s); counting locally", type(exc).__name__
                    )
                failing = True
