"""Request-log retention and partition upkeep, hourly.

On PostgreSQL (request_logs partitioned by day, services/partitions.py) each run makes the
partitions ahead, then detaches and drops the days wholly past the retention: no row is deleted
one by one. On SQLite (one table), and on a PostgreSQL table not partitioned, rows older than the
retention are deleted in small batches, each its own short transaction so the table is never
locked for long; on PostgreSQL a transaction-scoped advisory lock lets one instance delete at a
time. With a retention of 0 days nothing expires, but partitions are still made ahead.

The stats rollups follow, to the hour: the rows of `request_stats_hourly` for the hours wholly
before the log rows kept are deleted, and those of `request_stats_daily` for the days that begin
before them (stats/`_since` reads a partly expired day from its hours).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from llm_gateway.db.tables import (
    request_logs,
    request_stats_daily,
    request_stats_hourly,
    utcnow,
)
from llm_gateway.services.partitions import (
    drop_expired_partitions,
    ensure_partitions,
    is_partitioned,
    list_partitions,
)

log = logging.getLogger("llm_gateway.retention")
RETENTION_LOCK_ID = 0x6C6C6D68
BATCH_SIZE = 5000


async def delete_expired(engine: AsyncEngine, days: int, batch_size: int = BATCH_SIZE) -> int:
    """Delete rows older than `days`; returns how many were deleted (0 if another instance is)."""
    cutoff = utcnow() - timedelta(days=days)
    oldest = (
        sa.select(request_logs.c.id)
        .where(request_logs.c.created_at < cutoff)
        .order_by(request_logs.c.id)
        .limit(batch_size)
    )
    deleted = 0
    while True:
        async with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                locked = await conn.scalar(
                    sa.text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": RETENTION_LOCK_ID}
                )
                if not locked:
                    return deleted
            result = await conn.execute(
                sa.delete(request_logs).where(request_logs.c.id.in_(oldest.scalar_subquery()))
            )
        deleted += result.rowcount
        if result.rowcount < batch_size:
            return deleted
        await asyncio.sleep(0.05)  # let other writers in between batches


async def delete_stats_before(engine: AsyncEngine, hour: datetime) -> None:
    """Delete the stats rollups' rows of the hours, and days, that begin before `hour`."""
    async with engine.begin() as conn:
        await conn.execute(
            sa.delete(request_stats_hourly).where(request_stats_hourly.c.hour < hour)
        )
        await conn.execute(sa.delete(request_stats_daily).where(request_stats_daily.c.day < hour))


async def expire(engine: AsyncEngine, days: int) -> None:
    """One run: partitions made ahead (PostgreSQL), then what is past `days` days removed."""
    await ensure_partitions(engine)
    if days <= 0:
        return
    cutoff = utcnow() - timedelta(days=days)  # no later than the cutoff of the log rows
    if await is_partitioned(engine):
        dropped = await drop_expired_partitions(engine, days)
        if dropped:
            log.info("retention dropped request-log partitions %s", ", ".join(dropped))
        # The days dropped, and before; not a day whose partition could not be dropped.
        kept = datetime.combine(cutoff.date(), time(), UTC)
        oldest = next((p for p in await list_partitions(engine) if not p.is_default), None)
        if oldest is not None and oldest.lower is not None:
            kept = min(kept, oldest.lower)
    else:
        deleted = await delete_expired(engine, days)
        if deleted:
            log.info("retention deleted %d request-log rows older than %d days", deleted, days)
        kept = cutoff.replace(minute=0, second=0, microsecond=0)
    await delete_stats_before(engine, kept)


async def run_retention(engine: AsyncEngine, days: int, interval: float = 3600.0) -> None:
    while True:
        try:
            await expire(engine, days)
        except Exception as exc:
            log.warning("retention run failed: %s", type(exc).__name__)
        await asyncio.sleep(interval)
