"""Daily partitions of the request logs on PostgreSQL: made ahead, emptied out of the default
partition, dropped whole once expired. SQLite keeps one table: every function here is a no-op.

`request_logs` (partitioned by migration 0006) has one partition per UTC day,
`request_logs_pYYYYMMDD`, and a DEFAULT partition that takes rows no daily partition covers, so
an insert never fails for want of one. Rows land there only when the partitions ahead ran out
(the job stopped for longer than `days_ahead` days) or carry a timestamp far from now;
`ensure_partitions` moves them into their day's partition when it makes it, for every day up
to `days_ahead` days from now (later days wait in the default until then).

A new partition is made as a plain table and attached: ATTACH locks request_logs only against
schema changes and VACUUM, so inserts and reads go on (CREATE TABLE ... PARTITION OF would block
them); the default partition, which ATTACH scans for rows of the new day, is locked for that
moment, its rows of that day moved in first. Detaching an expired day does block request_logs,
for an instant. Every change runs under one advisory lock, so processes starting at once make
each partition once, and under `lock_timeout`: a change waiting behind a long query would hold
up every query queued after it, so it gives up after 5 s and the next run retries.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from llm_gateway.db.tables import utcnow

log = logging.getLogger("llm_gateway.partitions")
PARTITION_LOCK_ID = 0x6C6C6D69
LOCK_TIMEOUT = "5s"
DAYS_AHEAD = 3
BUSY = {"55P03", "40P01"}  # lock_not_available (lock_timeout), deadlock_detected
_RANGE = re.compile(r"FOR VALUES FROM \((.+)\) TO \((.+)\)")


@dataclass(frozen=True)
class Partition:
    name: str
    lower: datetime | None  # None: the default partition, or MINVALUE
    upper: datetime | None  # None: the default partition, or MAXVALUE
    is_default: bool = False

    def overlaps(self, lower: datetime, upper: datetime) -> bool:
        if self.is_default:
            return False
        return (self.lower is None or self.lower < upper) and (
            self.upper is None or lower < self.upper
        )


def partition_name(day: date) -> str:
    return f"request_logs_p{day:%Y%m%d}"


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


async def is_partitioned(engine: AsyncEngine) -> bool:
    if engine.dialect.name != "postgresql":
        return False
    async with engine.connect() as conn:
        return await _is_partitioned(conn)


async def list_partitions(engine: AsyncEngine) -> list[Partition]:
    """The partitions of request_logs, oldest first, the default last ([] when unpartitioned)."""
    if engine.dialect.name != "postgresql":
        return []
    async with engine.connect() as conn:
        return await _partitions(conn)


async def ensure_partitions(engine: AsyncEngine, days_ahead: int = DAYS_AHEAD) -> list[str]:
    """Make today's partition and the next `days_ahead` days', and those for days the default
    partition holds rows of (up to the same day); returns the names made. Idempotent."""
    if not await is_partitioned(engine):
        return []
    today = utcnow().date()
    last = today + timedelta(days=days_ahead)
    wanted = {today + timedelta(days=n) for n in range(days_ahead + 1)}
    wanted |= {day for day in await _days_in_default(engine) if day <= last}
    made = []
    for day in sorted(wanted):
        try:
            if await _make_partition(engine, day):
                made.append(partition_name(day))
        except DBAPIError as exc:
            if _sqlstate(exc) not in BUSY:
                raise
            log.warning("partition for %s not made: request_logs is busy; retried later", day)
    if made:
        log.info("request-log partitions made: %s", ", ".join(made))
    return made


async def drop_expired_partitions(engine: AsyncEngine, days: int) -> list[str]:
    """Detach and drop the daily partitions whose every row is older than `days` days (rows
    are kept for the retention and up to one day more); returns the names dropped."""
    if not await is_partitioned(engine):
        return []
    cutoff = utcnow() - timedelta(days=days)
    expired = [
        p
        for p in await list_partitions(engine)
        if not p.is_default and p.upper is not None and p.upper <= cutoff
    ]
    dropped = []
    for partition in expired:
        try:
            async with engine.begin() as conn:
                await _lock(conn)
                if partition.name not in {p.name for p in await _partitions(conn)}:
                    continue  # another process dropped it meanwhile
                await _ddl(conn, f'ALTER TABLE request_logs DETACH PARTITION "{partition.name}"')
                await _ddl(conn, f'DROP TABLE "{partition.name}"')
            dropped.append(partition.name)
        except DBAPIError as exc:
            if _sqlstate(exc) not in BUSY:
                raise
            log.warning("partition %s not dropped: request_logs is busy", partition.name)
    return dropped


async def _make_partition(engine: AsyncEngine, day: date) -> bool:
    lower, upper = _day_start(day), _day_start(day + timedelta(days=1))
    name = partition_name(day)
    async with engine.begin() as conn:
        await _lock(conn)
        partitions = await _partitions(conn)
        if any(p.overlaps(lower, upper) for p in partitions):
            return False
        # Locks in the order a migration takes them (the table, then its partitions): ATTACH's
        # own, then the default partition's, which ATTACH scans for rows of the new day.
        await _ddl(conn, "LOCK TABLE ONLY request_logs IN SHARE UPDATE EXCLUSIVE MODE")
        default = next((p for p in partitions if p.is_default), None)
        if default is not None:
            await _ddl(conn, f'LOCK TABLE "{default.name}" IN ACCESS EXCLUSIVE MODE')
        await _ddl(
            conn,
            f'CREATE TABLE "{name}" (LIKE request_logs INCLUDING DEFAULTS'
            " INCLUDING CONSTRAINTS INCLUDING STORAGE)",
        )
        if default is not None:
            moved = await conn.execute(
                sa.text(
                    f'WITH moved AS (DELETE FROM "{default.name}"'  # noqa: S608
                    " WHERE created_at >= :lower AND created_at < :upper RETURNING *)"
                    f' INSERT INTO "{name}" SELECT * FROM moved'
                ),
                {"lower": lower, "upper": upper},
            )
            if moved.rowcount:
                log.warning(
                    "moved %d request-log rows of %s out of the default", moved.rowcount, day
                )
        await _ddl(
            conn,
            f'ALTER TABLE request_logs ATTACH PARTITION "{name}"'
            f" FOR VALUES FROM ('{lower.isoformat()}') TO ('{upper.isoformat()}')",
        )
    return True


async def _days_in_default(engine: AsyncEngine) -> list[date]:
    default = next((p for p in await list_partitions(engine) if p.is_default), None)
    if default is None:
        return []
    async with engine.connect() as conn:
        found = await conn.scalars(
            sa.text(
                "SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date"  # noqa: S608
                f' FROM "{default.name}"'
            )
        )
        return list(found)


async def _is_partitioned(conn: AsyncConnection) -> bool:
    partitioned = await conn.scalar(
        sa.text("SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass('request_logs')")
    )
    return bool(partitioned)


async def _partitions(conn: AsyncConnection) -> list[Partition]:
    rows = await conn.execute(
        sa.text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = to_regclass('request_logs')"
        )
    )
    found = [_parsed(name, bound) for name, bound in rows]
    return sorted(found, key=lambda p: (p.is_default, p.lower or datetime.min.replace(tzinfo=UTC)))


def _parsed(name: str, bound: str) -> Partition:
    match = _RANGE.fullmatch(bound)
    if match is None:  # DEFAULT
        return Partition(name, None, None, is_default=True)
    return Partition(name, _instant(match[1]), _instant(match[2]))


def _instant(value: str) -> datetime | None:
    if value in ("MINVALUE", "MAXVALUE"):
        return None
    return datetime.fromisoformat(value.strip("'")).astimezone(UTC)


async def _lock(conn: AsyncConnection) -> None:
    await conn.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": PARTITION_LOCK_ID})


async def _ddl(conn: AsyncConnection, statement: str) -> None:
    # Built only from partition names and bounds made here from dates, never from input.
    await conn.exec_driver_sql(statement)


def _sqlstate(exc: DBAPIError) -> str | None:
    code = getattr(exc.orig, "sqlstate", None)
    return code if isinstance(code, str) else None
