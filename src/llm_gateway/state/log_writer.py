"""Request-log rows, written off the hot path in batches.

Rows wait in a bounded in-process buffer and are inserted every `interval` seconds (or sooner
when a batch fills). While the database is unreachable they stay in the buffer and are retried;
when the buffer is full the oldest rows are dropped, counted and logged. `close` writes what is
left, so a clean stop loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from llm_gateway.db.tables import request_logs

log = logging.getLogger("llm_gateway.request_logs")


class LogWriter:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_buffered: int = 100_000,
        batch_size: int = 200,
        interval: float = 0.5,
    ) -> None:
        self._engine = engine
        self._rows: deque[dict[str, Any]] = deque()
        self._max = max_buffered
        self._batch_size = batch_size
        self._interval = interval
        self._wake = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self.dropped = 0
        self.written = 0
        self.healthy = True
        self._insert, self._encode = _insert_for(engine.dialect.name)

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
        if len(self._rows) >= self._batch_size:
            self._wake.set()

    async def write_pending(self) -> None:
        """Insert everything buffered, batch by batch; stop at the first failure."""
        async with self._write_lock:
            while self._rows:
                batch = [self._rows[i] for i in range(min(self._batch_size, len(self._rows)))]
                # Encoding a batch takes milliseconds: off the event loop, so no request waits.
                encoded = await asyncio.to_thread(_encode_all, self._encode, batch)
                async with self._engine.begin() as conn:
                    await conn.exec_driver_sql(self._insert, encoded)
                for _ in batch:
                    self._rows.popleft()
                self.written += len(batch)

    async def run(self) -> None:
        backoff = self._interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
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


def _encode_all(encode: Encoder, batch: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [encode(row) for row in batch]


Encoder = Callable[[dict[str, Any]], tuple[Any, ...]]


def _insert_for(dialect: str) -> tuple[str, Encoder]:
    """A plain INSERT and a row encoder for the driver: rows skip SQLAlchemy's per-value type
    processing (about 29 µs a row on SQLite), since request logs are the one high-volume write.
    The encodings are SQLAlchemy's own storage formats, so reads through the tables agree."""
    # Built only from the table's own column names; values always travel as parameters.
    names = ", ".join(_COLUMNS)
    if dialect == "postgresql":
        marks = ", ".join(f"${n}" for n in range(1, len(_COLUMNS) + 1))
        return f"INSERT INTO request_logs ({names}) VALUES ({marks})", _encode_native  # noqa: S608
    marks = ", ".join("?" for _ in _COLUMNS)
    return f"INSERT INTO request_logs ({names}) VALUES ({marks})", _encode_sqlite  # noqa: S608


def _encode_native(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[name] for name in _COLUMNS)


def _encode_sqlite(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(_sqlite_value(row[name]) for name in _COLUMNS)


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return value
