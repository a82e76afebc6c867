"""Request-log rows, written off the hot path in batches.

Rows wait in a bounded in-process buffer and are inserted every `interval` seconds, or as soon
as `wake_at` rows wait. A batch takes everything waiting, up to `batch_size` rows: under full
load the event loop turns slowly (one turn serves every ready connection) and each of a batch's
driver round trips waits for a turn, so batches of a fixed 200 rows fell behind by thousands of
rows a second, and the buffer grew until load eased. While the database is unreachable rows
stay in the buffer and are retried; when the buffer is full the oldest rows are dropped, counted
and logged. `close` writes what is left, so a clean stop loses nothing.

Each batch also adds its sums per hour and per day to `request_stats_hourly` and
`request_stats_daily` (what /admin/stats reads), in the same transaction: they count exactly the
rows written. The upserts go in table then key order, so two instances adding to the same rows
lock them in the same order and never deadlock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from llm_gateway.db.tables import (
    NOT_ROUTED,
    STATS_KEY,
    STATS_MEASURES,
    UTCDateTime,
    request_logs,
    request_stats_daily,
    request_stats_hourly,
)

log = logging.getLogger("llm_gateway.request_logs")


class LogWriter:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_buffered: int = 100_000,
        batch_size: int = 2_000,
        wake_at: int = 200,
        interval: float = 0.5,
    ) -> None:
        self._engine = engine
        self._rows: deque[dict[str, Any]] = deque()
        self._max = max_buffered
        self._batch_size = batch_size
        self._wake_at = wake_at
        self._interval = interval
        self._wake = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self.dropped = 0
        self.written = 0
        self.healthy = True
        self._sql = _statements_for(engine.dialect.name)

    @property
    def depth(self) -> int:
        return len(self._rows)

    def submit(self, row: dict[str, Any]) -> None:
        if len(self._rows) >= self._max:
            self._rows.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("request-log buffer full; %d rows dropped so far", self.dropped)
        self._rows.append(row)
        if len(self._rows) >= self._wake_at:
            self._wake.set()

    async def write_pending(self) -> None:
        """Insert everything buffered, batch by batch; stop at the first failure."""
        async with self._write_lock:
            while self._rows:
                batch = [self._rows[i] for i in range(min(self._batch_size, len(self._rows)))]
                # Encoding a batch takes milliseconds: off the event loop, so no request waits.
                rows, hourly, daily = await asyncio.to_thread(_encode_all, self._sql, batch)
                async with self._engine.begin() as conn:
                    await conn.exec_driver_sql(self._sql.insert, rows)
                    await conn.exec_driver_sql(self._sql.add_hourly, hourly)
                    await conn.exec_driver_sql(self._sql.add_daily, daily)
                for _ in batch:
                    self._rows.popleft()
                self.written += len(batch)

    async def run(self) -> None:
        backoff = self._interval
        while True:
            # Not `wait_for`: on Python 3.11 it returns instead of raising when the task is
            # cancelled just as the event is set, and the writer would then outlive shutdown.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.write_pending()
                if not self.healthy:
                    log.warning("request logs are being written again")
                self.healthy, backoff = True, self._interval
            except Exception as exc:
                if self.healthy:
                    log.error(
                        "request-log write failed (%s); %d rows kept for retry",
                        type(exc).__name__,
                        len(self._rows),
                    )
                self.healthy, backoff = False, min(backoff * 2, 5.0)

    async def close(self, grace: float = 10.0) -> None:
        """Write what is left, retrying for up to `grace` seconds."""
        deadline = asyncio.get_running_loop().time() + grace
        while self._rows:
            try:
                await self.write_pending()
            except Exception as exc:
                if asyncio.get_running_loop().time() >= deadline:
                    log.error(
                        "shutting down with %d request-log rows unwritten (%s)",
                        len(self._rows),
                        type(exc).__name__,
                    )
                    return
                await asyncio.sleep(0.5)


_COLUMNS = tuple(column.name for column in request_logs.c if column.name != "id")
_Sums = dict[tuple[Any, ...], list[Any]]  # key -> requests, errors, tokens, latency, cost


@dataclass(frozen=True)
class _Statements:
    """One backend's driver-level statements, and the encoders of their values."""

    insert: str
    add_hourly: str
    add_daily: str
    encode_row: Callable[[dict[str, Any]], tuple[Any, ...]]
    encode_sums: Callable[[tuple[Any, ...]], tuple[Any, ...]]


def _encode_all(
    sql: _Statements, batch: list[dict[str, Any]]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The batch's log rows, and its sums per hour and per day in key order, as driver values.

    Runs in a worker thread but holds the GIL, so it is written for speed: a few µs a row."""
    hourly: _Sums = {}
    for row in batch:
        key = (
            _hour(row["created_at"]),
            row["user_key_id"],
            row["endpoint"],
            row["model_requested"] or "",
            row["provider_id"] or NOT_ROUTED,
            row["provider_kind"] or "",
        )
        error, cost = 1 if row["is_error"] else 0, row["cost_usd"] or 0.0
        sums = hourly.get(key)
        if sums is None:
            hourly[key] = [1, error, row["total_tokens"], row["latency_ms"], cost]
        else:
            sums[0] += 1
            sums[1] += error
            sums[2] += row["total_tokens"]
            sums[3] += row["latency_ms"]
            sums[4] += cost
    daily: _Sums = {}
    for (hour, *rest), added in hourly.items():
        _add(daily, (hour.replace(hour=0), *rest), added)
    return (
        list(map(sql.encode_row, batch)),
        [sql.encode_sums((*key, *hourly[key])) for key in sorted(hourly)],
        [sql.encode_sums((*key, *daily[key])) for key in sorted(daily)],
    )


def _add(sums: _Sums, key: tuple[Any, ...], values: Sequence[Any]) -> None:
    added = sums.setdefault(key, [0, 0, 0, 0, 0.0])
    for n, value in enumerate(values):
        added[n] += value


def _utc(value: datetime) -> datetime:
    """A log row's time in UTC, timezone-aware (a naive time is UTC, as UTCDateTime takes it)."""
    if value.tzinfo is UTC:
        return value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _hour(created: datetime) -> datetime:
    """The start of the UTC hour of a log row's time."""
    return _utc(created).replace(minute=0, second=0, microsecond=0)


def _statements_for(dialect: str) -> _Statements:
    """Plain INSERTs and row encoders for the driver: rows skip SQLAlchemy's per-value type
    processing (about 29 µs a row on SQLite), since request logs are the one high-volume write.
    The encodings are SQLAlchemy's own storage formats, so reads through the tables agree."""
    native = dialect == "postgresql"

    def marks(count: int) -> str:
        return ", ".join(f"${n}" if native else "?" for n in range(1, count + 1))

    # Built only from the tables' own column names; values always travel as parameters.
    def add(table: sa.Table) -> str:
        key = ", ".join(c.name for c in table.primary_key)
        updates = ", ".join(f"{m} = {table.name}.{m} + excluded.{m}" for m in STATS_MEASURES)
        return (
            f"INSERT INTO {table.name} ({key}, {', '.join(STATS_MEASURES)})"  # noqa: S608
            f" VALUES ({marks(1 + len(STATS_KEY) + len(STATS_MEASURES))})"
            f" ON CONFLICT ({key}) DO UPDATE SET {updates}"
        )

    return _Statements(
        insert=(
            f"INSERT INTO request_logs ({', '.join(_COLUMNS)})"  # noqa: S608
            f" VALUES ({marks(len(_COLUMNS))})"
        ),
        add_hourly=add(request_stats_hourly),
        add_daily=add(request_stats_daily),
        encode_row=_encode_native if native else _encode_sqlite,
        encode_sums=_same if native else _sqlite_values,
    )


_values_of = operator.itemgetter(*_COLUMNS)  # a row's values in column order, in C


def _encode_native(row: dict[str, Any]) -> tuple[Any, ...]:
    values: tuple[Any, ...] = _values_of(row)
    return values


def _positions(kind: type) -> tuple[int, ...]:
    return tuple(
        n for n, name in enumerate(_COLUMNS) if isinstance(request_logs.c[name].type, kind)
    )


# The columns sqlite3 cannot take as they are (it takes bools as the 1 and 0 stored anyway).
_UUIDS, _TIMES = _positions(sa.Uuid), _positions(UTCDateTime)


def _encode_sqlite(row: dict[str, Any]) -> tuple[Any, ...]:
    values = list(_values_of(row))
    for n in _UUIDS:
        value = values[n]
        if value is not None:
            values[n] = value.hex
    for n in _TIMES:
        value = values[n]
        if value is not None:
            values[n] = _sqlite_time(value)
    return tuple(values)


def _sqlite_time(value: datetime) -> str:
    """A timestamp as SQLAlchemy stores one on SQLite: naive UTC with microseconds."""
    return _utc(value).replace(tzinfo=None).isoformat(" ", "microseconds")


def _same(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return values


def _sqlite_values(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(map(_sqlite_value, values))


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, datetime):
        return _sqlite_time(value)
    return value
