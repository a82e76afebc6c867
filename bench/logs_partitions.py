"""Request logs before and after daily partitioning, on 10 million rows of PostgreSQL.

Run: python bench/logs_partitions.py [--rows 10000000] [--days 30] [--repeat 5]. Starts its own
PostgreSQL (temporary folder, free port), migrates to 0005 (one table), fills it server-side
with generate_series (rows spread evenly over the last `--days` days), then times what
`/admin/logs` runs (the service functions themselves, no HTTP), retention of one day by DELETE,
the migration to partitions (0006), the migration that sums the rows into the hourly stats
rollup (0007), and the same again on the partitioned table with `/admin/stats` (which reads the
rollup), and retention of one day by dropping its partition. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, event
from sqlalchemy.ext.asyncio import AsyncEngine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.servers import run_postgres

from llm_gateway.db.engine import create_engine
from llm_gateway.db.migrate import MIGRATIONS_DIR, run_migrations
from llm_gateway.services import logs, stats
from llm_gateway.services.logs import LogFilter
from llm_gateway.services.partitions import drop_expired_partitions, list_partitions
from llm_gateway.services.retention import BATCH_SIZE, delete_expired
from llm_gateway.settings import normalise_database_url
from llm_gateway.state.store import Store

# Rows as the 0005 table has them: 1000 keys, 20 models, 2% errors, four endpoints.
FILL = """
INSERT INTO request_logs (gateway_request_id, request_id, endpoint, user_key_id,
    model_requested, model_sent, model_served, provider_id, provider_kind, status_code, is_error,
    prompt_tokens, completion_tokens, total_tokens, weighted_total_tokens, cached_tokens,
    cost_usd, latency_ms, ttfb_ms, is_stream, attempts, created_at)
SELECT md5(i::text), 'req-' || i, (ARRAY['chat', 'responses', 'messages', 'embeddings'])[i % 4 + 1],
    ('00000000-0000-4000-8000-' || lpad((i % 1000)::text, 12, '0'))::uuid,
    'model-' || (i % 20), 'model-' || (i % 20), 'model-' || (i % 20), NULL, 'openai',
    CASE WHEN i % 50 = 0 THEN 500 ELSE 200 END, i % 50 = 0, 10, 5, 15, 15, 0, 0.00001,
    100 + i % 400, 50, i % 3 = 0, 1,
    CAST(:now AS timestamptz) - make_interval(secs => i * CAST(:step AS float8))
FROM generate_series(CAST(:first AS int), CAST(:last AS int)) AS i
"""
FILL_CHUNK = 250_000
KEY = "00000000-0000-4000-8000-000000000007"


@dataclass
class _Database:
    """What the log and stats services use of the Store: its engine."""

    engine: AsyncEngine


def _upgrade(connection: Connection, revision: str) -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def _median_ms(call: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = await call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


def _shapes(now: datetime) -> dict[str, tuple[LogFilter, int]]:
    day = now - timedelta(days=3)
    return {
        "newest page": (LogFilter(), 1),
        "page 100": (LogFilter(), 100),
        "by key": (LogFilter(key_id=uuid.UUID(KEY)), 1),
        "by model": (LogFilter(model="model-3"), 1),
        "errors only": (LogFilter(is_error=True), 1),
        "one day, 3 days ago (since+until)": (LogFilter(since=day, until=day + timedelta(1)), 1),
        "by model, last hour": (LogFilter(model="model-3", since=now - timedelta(hours=1)), 1),
    }


async def _time_queries(
    engine: AsyncEngine, label: str, now: datetime, repeat: int, with_stats: bool
) -> None:
    store = cast(Store, _Database(engine))
    print(f"\n### {label}\n\n| query | median ms | total (estimate?) |\n|---|---|---|")
    for name, (filters, page) in _shapes(now).items():

        def listing(f: LogFilter = filters, p: int = page) -> Awaitable[dict[str, Any]]:
            return logs.list_logs(store, f, p, 50)

        ms, result = await _median_ms(listing, repeat)
        total = f"{result['total']:,} ({'yes' if result['total_is_estimate'] else 'no'})"
        print(f"| /admin/logs {name} | {ms:.1f} | {total} |")

    async def exact_count() -> int:
        async with engine.connect() as conn:
            return int(await conn.scalar(sa.text("SELECT count(*) FROM request_logs")) or 0)

    ms, counted = await _median_ms(exact_count, repeat)
    print(f"| exact count(*), the total before capping | {ms:.1f} | {counted:,} (no) |")
    ms, _ = await _median_ms(lambda: logs.get_log(store, counted // 2), repeat)
    print(f"| /admin/logs/{{id}} | {ms:.1f} | |")
    if not with_stats:
        return
    ms, _ = await _median_ms(lambda: stats.dashboard(store), repeat)
    print(f"| /admin/stats (dashboard) | {ms:.1f} | |")
    with _statement_times(engine) as spent:
        await stats.dashboard(store)
    print("\n| /admin/stats, statement by statement | ms |\n|---|---|")
    for statement, seconds in spent:
        print(f"| {_label(statement)} | {seconds * 1000:.1f} |")


@contextlib.contextmanager
def _statement_times(engine: AsyncEngine) -> Iterator[list[tuple[str, float]]]:
    """Each statement the engine runs meanwhile, with how long the driver took."""
    spent: list[tuple[str, float]] = []

    def before(conn: Connection, *_: Any) -> None:
        conn.info["started"] = time.perf_counter()

    def after(conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
        spent.append((statement, time.perf_counter() - conn.info.pop("started")))

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    event.listen(engine.sync_engine, "after_cursor_execute", after)
    try:
        yield spent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", before)
        event.remove(engine.sync_engine, "after_cursor_execute", after)


def _label(statement: str) -> str:
    flat = " ".join(statement.split())
    for marker in ("GROUP BY", "WHERE"):
        if marker in flat:
            return "... " + flat[flat.index(marker) :][:80].replace("|", "/")
    return flat[:80]


async def _bench(dsn: str, rows: int, days: int, repeat: int) -> None:
    engine = create_engine(normalise_database_url(dsn)[0])
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade, "0005")
        now = datetime.now(UTC)
        started = time.monotonic()
        step = days * 86400 / rows
        for first in range(1, rows + 1, FILL_CHUNK):  # statements time out after 30 s
            async with engine.begin() as conn:
                last = min(first + FILL_CHUNK - 1, rows)
                values = {"now": now, "step": step, "first": first, "last": last}
                await conn.execute(sa.text(FILL), values)
        async with engine.begin() as conn:
            await conn.execute(sa.text("ANALYZE request_logs"))
        print(f"filled {rows:,} rows over {days} days in {time.monotonic() - started:.0f} s")

        # /admin/stats reads the rollup migration 0007 adds: timed on the partitioned table.
        await _time_queries(engine, "one table (0005)", now, repeat, with_stats=False)
        started = time.monotonic()  # the retention job before: the oldest day, by DELETE
        deleted = await delete_expired(engine, days - 1)
        spent = time.monotonic() - started
        pauses = deleted // BATCH_SIZE * 0.05
        print(
            f"\nretention by DELETE of the oldest day ({deleted:,} rows, batches of {BATCH_SIZE}):"
            f" {spent:.1f} s, of which {pauses:.1f} s pauses between batches"
        )

        started = time.monotonic()
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade, "0006")
        spent = time.monotonic() - started
        left = rows - deleted
        print(
            f"migration 0006 ({left:,} rows into {len(await list_partitions(engine))} partitions):"
            f" {spent:.0f} s, {left / spent:,.0f} rows/s"
        )
        started = time.monotonic()
        await run_migrations(engine)  # 0007: the hourly rollup, summed from the rows
        spent = time.monotonic() - started
        summed = {}
        async with engine.begin() as conn:
            for table in ("request_stats_hourly", "request_stats_daily"):
                await conn.execute(sa.text(f"ANALYZE {table}"))
                count = sa.text(f"SELECT count(*) FROM {table}")  # noqa: S608
                summed[table] = int(await conn.scalar(count) or 0)
        print(
            f"migration 0007 ({left:,} rows summed into {summed['request_stats_hourly']:,} hourly"
            f" and {summed['request_stats_daily']:,} daily rollup rows): {spent:.0f} s,"
            f" {left / spent:,.0f} rows/s"
        )

        label = "partitioned by day (0006), stats rollup (0007)"
        await _time_queries(engine, label, now, repeat, with_stats=True)
        oldest = (await list_partitions(engine))[0].name
        async with engine.connect() as conn:
            count = await conn.scalar(sa.text(f'SELECT count(*) FROM "{oldest}"'))  # noqa: S608
        started = time.monotonic()
        dropped = await drop_expired_partitions(engine, days - 2)
        print(
            f"\nretention by dropping the oldest day's partition ({', '.join(dropped)},"
            f" {count:,} rows): {(time.monotonic() - started) * 1000:.0f} ms"
        )
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with run_postgres() as pg:
        asyncio.run(_bench(pg.dsn(), args.rows, args.days, args.repeat))


if __name__ == "__main__":
    main()
