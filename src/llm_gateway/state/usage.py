"""Usage accounting: weighted tokens counted in process and flushed to the database in batches.

The cache's `tokens_used` is what budgets are checked against, so a request never waits on the
database. `flush` moves pending increments to the database in one transaction; if that fails,
they are put back and retried on the next flush, so nothing is lost while the database is down.
`lock` serialises flushes with admin operations that overwrite usage (reset), so a flush can
never re-add usage that a reset in this process has just cleared. A reset in another process
stamps the key's `usage_reset_at`; a flush only lands on a key whose last reset is older than the
first charge of the batch, so counts made before a reset elsewhere are not re-added (at the
price of dropping the charges of the one flush interval in which the reset happened).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from datetime import datetime
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from llm_gateway.db.tables import user_keys, utcnow
from llm_gateway.state.cache import Cache

log = logging.getLogger("llm_gateway.usage")


class SharedCounter(Protocol):
    def counted(self, key_id: uuid.UUID, tokens: int) -> None: ...


class UsageLedger:
    def __init__(self, cache: Cache) -> None:
        self._cache = cache
        self.pending: dict[uuid.UUID, int] = defaultdict(int)
        self.since: dict[uuid.UUID, datetime] = {}  # when the pending count of a key began
        self.lock = asyncio.Lock()
        self.shared: SharedCounter | None = None  # the Redis counters, when configured

    def add(self, key_id: uuid.UUID, weighted_tokens: int) -> None:
        if weighted_tokens <= 0:
            return
        if key_id not in self.since:
            self.since[key_id] = utcnow()
        self.pending[key_id] += weighted_tokens
        if self.shared is not None:
            self.shared.counted(key_id, weighted_tokens)
        entry = self._cache.key_by_id(key_id)
        if entry is not None:
            entry.tokens_used += weighted_tokens

    def forget(self, key_id: uuid.UUID) -> None:
        """Drop unflushed usage of a key whose usage was just reset (call under `lock`)."""
        self.pending.pop(key_id, None)
        self.since.pop(key_id, None)

    async def flush(self, engine: AsyncEngine) -> int:
        """Write pending usage; returns how many keys were updated."""
        async with self.lock:
            return await self.flush_locked(engine)

    async def flush_locked(self, engine: AsyncEngine) -> int:
        if not self.pending:
            return 0
        batch, since = dict(self.pending), dict(self.since)
        self.pending.clear()
        self.since.clear()
        dropped = 0
        try:
            async with engine.begin() as conn:
                for key_id, tokens in batch.items():
                    result = await conn.execute(
                        sa.update(user_keys)
                        .where(
                            user_keys.c.id == key_id,
                            sa.or_(
                                user_keys.c.usage_reset_at.is_(None),
                                user_keys.c.usage_reset_at < since[key_id],
                            ),
                        )
                        .values(tokens_used=user_keys.c.tokens_used + tokens)
                    )
                    if result.rowcount == 0:
                        dropped += tokens
        except Exception:
            for key_id, tokens in batch.items():
                self.pending[key_id] += tokens
                self.since[key_id] = min(since[key_id], self.since.get(key_id, since[key_id]))
            raise
        if dropped:
            log.info("dropped %d tokens counted before a usage reset", dropped)
        return len(batch)

    async def run_flusher(self, engine: AsyncEngine, interval: float) -> None:
        failing = False
        while True:
            await asyncio.sleep(interval)
            try:
                await self.flush(engine)
                if failing:
                    log.warning("usage flush recovered")
                failing = False
            except Exception as exc:
                if not failing:
                    log.error("usage flush failed, will retry: %s", type(exc).__name__)
                failing = True
