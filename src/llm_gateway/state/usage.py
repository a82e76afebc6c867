"""Usage accounting: weighted tokens and cost counted in process and flushed to the database
in batches.

The cache's `tokens_used` and `cost_used` are what budgets are checked against, so a request
never waits on the database. `flush` moves pending increments to the database in one
transaction; if that fails, they are put back and retried on the next flush, so nothing is lost
while the database is down.
`lock` serialises flushes with admin operations that overwrite usage (reset), so a flush can
never re-add usage that a reset in this process has just cleared. A reset in another process
stamps the key's `usage_reset_at`; a flush only lands on a key whose last reset is older than the
first charge of the batch, so counts made before a reset elsewhere are not re-added (at the
price of dropping the charges of the one flush interval in which the reset happened).

Budget periods. A charge belongs to the period its call ended in (a call admitted before the
boundary and finished after it counts in the new period). Pending counts carry their period;
the flush writes them with it: counts of the row's own period are added to, an older period's
are replaced, and counts for a period older than the row's are dropped (that period is over).
No job resets anything at the boundary.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from llm_gateway.db.tables import user_keys, utcnow
from llm_gateway.state.cache import Cache, KeyEntry

log = logging.getLogger("llm_gateway.usage")


@dataclass(slots=True)
class Pending:
    """Usage of one key counted here and not yet in the database."""

    period: datetime | None  # the budget period it belongs to (None: the key has none)
    since: datetime  # when the first of these counts was made
    tokens: int = 0  # weighted tokens
    cost: int = 0  # nano-USD


class SharedCounter(Protocol):
    def counted(
        self, key_id: uuid.UUID, tokens: int, cost: int, period: datetime | None
    ) -> None: ...


class UsageLedger:
    def __init__(self, cache: Cache, clock: Callable[[], float] | None = None) -> None:
        self._cache = cache
        self._clock = clock or cache.clock
        self.pending: dict[uuid.UUID, Pending] = {}
        self.lock = asyncio.Lock()
        self.shared: SharedCounter | None = None  # the Redis counters, when configured

    def add(
        self,
        key_id: uuid.UUID,
        weighted_tokens: int,
        cost: int = 0,
        entry: KeyEntry | None = None,
    ) -> None:
        """Charge a finished call to the key, in the budget period it ends in (`entry`: the
        key's cache entry as the call knew it, which spares a lookup)."""
        if weighted_tokens <= 0 and cost <= 0:
            return
        weighted_tokens, cost = max(0, weighted_tokens), max(0, cost)
        cache = self._cache
        entry = cache.key_by_id(key_id) if entry is None else cache.current(entry)
        period = None
        if entry is not None:
            if entry.period is not None:
                now = self._clock()
                if now >= entry.period_ends:
                    entry.roll(now)
                period = entry.period
            entry.tokens_used += weighted_tokens
            entry.cost_used += cost
        pending = self.pending.get(key_id)
        if pending is None or pending.period != period:
            if pending is not None and (pending.tokens or pending.cost):
                log.debug("usage of a finished budget period not flushed: %s", key_id)
            pending = self.pending[key_id] = Pending(period, utcnow())
        pending.tokens += weighted_tokens
        pending.cost += cost
        if self.shared is not None:
            self.shared.counted(key_id, weighted_tokens, cost, period)

    def forget(self, key_id: uuid.UUID) -> None:
        """Drop unflushed usage of a key whose usage was just reset (call under `lock`)."""
        self.pending.pop(key_id, None)

    async def flush(self, engine: AsyncEngine) -> int:
        """Write pending usage; returns how many keys were updated."""
        async with self.lock:
            return await self.flush_locked(engine)

    async def flush_locked(self, engine: AsyncEngine) -> int:
        if not self.pending:
            return 0
        # Keys in one order in every process: concurrent flushes of the same keys then queue
        # on their row locks instead of deadlocking.
        batch = dict(sorted(self.pending.items()))
        self.pending.clear()
        dropped = 0
        try:
            async with engine.begin() as conn:
                for key_id, charge in batch.items():
                    result = await conn.execute(_charge_statement(key_id, charge))
                    if result.rowcount == 0:
                        dropped += charge.tokens
        except Exception:
            for key_id, charge in batch.items():
                self._put_back(key_id, charge)
            raise
        if dropped:
            log.info("dropped %d tokens counted before a usage reset or period end", dropped)
        return len(batch)

    def _put_back(self, key_id: uuid.UUID, charge: Pending) -> None:
        newer = self.pending.get(key_id)
        if newer is None:
            self.pending[key_id] = charge
        elif newer.period == charge.period:
            newer.tokens += charge.tokens
            newer.cost += charge.cost
            newer.since = min(newer.since, charge.since)
        # else: the charges of a period that has ended since; dropped

    async def run_flusher(self, engine: AsyncEngine, interval: float) -> None:
        failing = False
        while True:
            await asyncio.sleep(interval)
            try:
                # Shielded: a stop while a flush runs lets it finish (the final flush at
                # shutdown waits for it on the lock) rather than losing or repeating its batch.
                await asyncio.shield(self.flush(engine))
                if failing:
                    log.warning("usage flush recovered")
                failing = False
            except Exception as exc:
                if not failing:
                    log.error("usage flush failed, will retry: %s", type(exc).__name__)
                failing = True


def _charge_statement(key_id: uuid.UUID, charge: Pending) -> sa.Update:
    c = user_keys.c
    conditions: list[Any] = [
        c.id == key_id,
        sa.or_(c.usage_reset_at.is_(None), c.usage_reset_at < charge.since),
    ]
    if charge.period is None:
        values: dict[str, Any] = {
            "tokens_used": c.tokens_used + charge.tokens,
            "cost_used_nanousd": c.cost_used_nanousd + charge.cost,
        }
    else:
        same = c.period_started_at == charge.period
        values = {
            "tokens_used": sa.case(
                (same, c.tokens_used + charge.tokens),
                else_=sa.literal(charge.tokens, sa.BigInteger),
            ),
            "cost_used_nanousd": sa.case(
                (same, c.cost_used_nanousd + charge.cost),
                else_=sa.literal(charge.cost, sa.BigInteger),
            ),
            "period_started_at": charge.period,
        }
        conditions.append(
            sa.or_(c.period_started_at.is_(None), c.period_started_at <= charge.period)
        )
    return sa.update(user_keys).where(*conditions).values(**values)
