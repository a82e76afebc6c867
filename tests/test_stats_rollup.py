"""The stats rollups (`request_stats_hourly`, `request_stats_daily`): written with the log rows by
the log writer, backfilled by migration 0007, trimmed by retention, read by `/admin/stats`; on
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from llm_gateway.clock import Clock
from llm_gateway.db.engine import create_engine
from llm_gateway.db.migrate import MIGRATIONS_DIR, run_migrations
from llm_gateway.db.tables import (
    NOT_ROUTED,
    models,
    providers,
    request_logs,
    request_stats_daily,
    request_stats_hourly,
    user_keys,
)
from llm_gateway.services import stats
from llm_gateway.services.partitions import ensure_partitions
from llm_gateway.services.retention import expire
from llm_gateway.settings import normalise_database_url
from llm_gateway.state.log_writer import LogWriter
from llm_gateway.state.store import Store
from tests.conftest import BACKENDS
from tests.servers import Postgres

NOW = datetime.now(UTC)
HOUR = NOW.replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)  # then the next one
KEYS = [uuid.UUID(int=n) for n in (11, 12, 13)]
PROVIDER = uuid.UUID(int=21)

Sums = dict[tuple[Any, ...], tuple[int, int, int, int, float]]


@pytest.fixture
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path | None]]:
    """An empty database of either backend: its engine URL and, for SQLite, its file."""
    if request.param == "sqlite":
        path = tmp_path / "gateway.db"
        yield f"sqlite+aiosqlite:///{path}", path
        return
    server: Postgres = request.getfixturevalue("postgres_server")
    name = server.create_database()
    try:
        yield normalise_database_url(server.dsn(name))[0], None
    finally:
        server.drop_database(name)


@pytest.fixture
async def engine(database: tuple[str, Path | None]) -> AsyncIterator[AsyncEngine]:
    """An engine on an empty database, not migrated."""
    engine = create_engine(database[0])
    yield engine
    await engine.dispose()


@pytest.fixture
async def migrated(engine: AsyncEngine, database: tuple[str, Path | None]) -> AsyncEngine:
    await run_migrations(engine, database[1])
    return engine


both = pytest.mark.parametrize("database", BACKENDS, indirect=True)


def _row(when: datetime, **fields: Any) -> dict[str, Any]:
    """A request-log row as the proxy submits it to the log writer."""
    row = {c.name: getattr(c.default, "arg", None) for c in request_logs.c if c.name != "id"}
    row |= {
        "gateway_request_id": uuid.uuid4().hex,
        "user_key_id": KEYS[0],
        "model_requested": "gpt-4o",
        "status_code": 200,
        "is_error": False,
        "total_tokens": 15,
        "latency_ms": 100,
        "is_stream": False,
        "created_at": when,
    }
    return row | fields


def _traffic(count: int, start: datetime = HOUR) -> list[dict[str, Any]]:
    """Mixed rows over two hours: keys, endpoints, models (and none), routed or not, errors,
    priced and unpriced."""
    rows = []
    for i in range(count):
        when = start + timedelta(minutes=(i * 7) % 120, seconds=i % 60, microseconds=i)
        routed = (i // 36) % 2 == 0
        rows.append(
            _row(
                when,
                user_key_id=KEYS[i % len(KEYS)],
                endpoint=("chat", "responses", "messages")[(i // 3) % 3],
                model_requested=("gpt-4o", "qwen", None, "invented")[(i // 9) % 4],
                provider_id=PROVIDER if routed else None,
                provider_kind="openai" if routed else None,
                status_code=500 if i % 7 == 0 else 200,
                is_error=i % 7 == 0,
                total_tokens=i % 50,
                latency_ms=10 + i % 300,
                cost_usd=None if i % 2 else 0.001 * (i % 9),
            )
        )
    return rows


async def _write(engine: AsyncEngine, rows: list[dict[str, Any]], batch_size: int = 200) -> None:
    writer = LogWriter(engine, batch_size=batch_size)
    for row in rows:
        writer.submit(row)
    await writer.write_pending()


async def _expected(engine: AsyncEngine, table: sa.Table) -> Sums:
    """A rollup table as a GROUP BY over request_logs would give it (grouped here, in Python)."""
    c = request_logs.c
    columns = (c.created_at, c.user_key_id, c.endpoint, c.model_requested, c.provider_id)
    measures = (c.provider_kind, c.is_error, c.total_tokens, c.latency_ms, c.cost_usd)
    async with engine.connect() as conn:
        found = (await conn.execute(sa.select(*columns, *measures))).all()
    sums: dict[tuple[Any, ...], list[Any]] = {}
    for when, key, endpoint, model, provider, kind, error, tokens, latency, cost in found:
        start = when.replace(minute=0, second=0, microsecond=0)
        if table is request_stats_daily:
            start = start.replace(hour=0)
        group = (start, key, endpoint, model or "", provider or NOT_ROUTED, kind or "")
        added = sums.setdefault(group, [0, 0, 0, 0, 0.0])
        for n, value in enumerate((1, int(error), tokens, latency, cost or 0.0)):
            added[n] += value
    return {group: (a, b, c_, d, e) for group, (a, b, c_, d, e) in sums.items()}


async def _rollup(engine: AsyncEngine, table: sa.Table = request_stats_hourly) -> Sums:
    async with engine.connect() as conn:
        found = (await conn.execute(sa.select(table))).all()
    rollup = {tuple(row[:6]): tuple(row[6:]) for row in found}
    assert len(rollup) == len(found)  # one row per key: the writer's and backfill's agree
    assert all(group[0].tzinfo is not None for group in rollup)  # read back as UTC instants
    return cast(Sums, rollup)


async def _check(engine: AsyncEngine, *, expired: bool = False) -> Sums:
    """Both rollup tables equal a GROUP BY over the logs; returns the hourly one. After
    retention (`expired`) the daily one lacks the day it expired part of, if any."""
    for table in (request_stats_daily, request_stats_hourly):
        rollup, expected = await _rollup(engine, table), await _expected(engine, table)
        first = min(expected, default=(None,))[0]
        if expired and table is request_stats_daily and first not in {g[0] for g in rollup}:
            expected = {group: sums for group, sums in expected.items() if group[0] != first}
        assert set(rollup) == set(expected)
        for group, (requests, errors, tokens, latency, cost) in expected.items():
            assert rollup[group][:4] == (requests, errors, tokens, latency), group
            assert rollup[group][4] == pytest.approx(cost, abs=1e-12), group
    return rollup


@both
async def test_rollup_equals_a_group_by_over_the_logs_after_mixed_traffic(
    migrated: AsyncEngine,
) -> None:
    rows = _traffic(300)
    # Small batches: most groups are added to by several transactions (the upsert's update).
    await _write(migrated, rows[:200], batch_size=17)
    await _write(migrated, rows[200:])
    hourly = await _check(migrated)
    assert len(hourly) > 50
    assert {group[0] for group in hourly} == {HOUR, HOUR + timedelta(hours=1)}
    assert sum(requests for requests, *_ in hourly.values()) == 300


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_two_writers_adding_to_the_same_rows_at_once_lose_nothing_and_never_deadlock(
    database: tuple[str, Path | None],
) -> None:
    engines = [create_engine(database[0]) for _ in "ab"]  # two instances
    try:
        await run_migrations(engines[0])
        rows = _traffic(2400)
        writers = [LogWriter(engine, batch_size=100) for engine in engines]
        # The same groups, met in opposite orders: without the upserts sorted by key, the two
        # writers' transactions would lock the same rows in opposite orders.
        for row in rows:
            writers[0].submit(row)
        for row in reversed(rows):
            writers[1].submit(row | {"gateway_request_id": uuid.uuid4().hex})
        await asyncio.gather(*(writer.write_pending() for writer in writers))
        assert [writer.written for writer in writers] == [2400, 2400]
        hourly = await _check(engines[0])
        assert sum(requests for requests, *_ in hourly.values()) == 4800
    finally:
        for engine in engines:
            await engine.dispose()


def _alembic(connection: Connection) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


async def _migrate(engine: AsyncEngine, revision: str, *, down: bool = False) -> None:
    move = command.downgrade if down else command.upgrade
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: move(_alembic(c), revision))


@both
async def test_migration_0007_backfills_the_rows_already_logged(engine: AsyncEngine) -> None:
    await _migrate(engine, "0006")
    async with engine.begin() as conn:  # as an older version stored them (no rollup)
        await conn.execute(sa.insert(request_logs), _traffic(150))
    await _migrate(engine, "0007")
    backfilled = await _check(engine)
    assert sum(requests for requests, *_ in backfilled.values()) == 150
    # The writer adds to the backfilled rows (their key values are stored the same way).
    await _write(engine, _traffic(90))
    assert set(await _check(engine)) == set(backfilled)

    await _migrate(engine, "0006", down=True)
    async with engine.connect() as conn:
        tables = set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
    assert "request_logs" in tables
    assert not tables & {"request_stats_hourly", "request_stats_daily"}


@both
async def test_retention_removes_the_rollup_rows_of_expired_hours(migrated: AsyncEngine) -> None:
    ages = [30, 10, 8, 6, 0]
    await _write(migrated, [_row(NOW - timedelta(days=age)) for age in ages])
    await ensure_partitions(migrated)  # PostgreSQL: the old rows' days, out of the default
    await expire(migrated, 0)  # keep for ever: nothing expires
    assert sum(requests for requests, *_ in (await _check(migrated)).values()) == 5
    await expire(migrated, 7)
    kept = [
        (NOW - timedelta(days=age)).replace(minute=0, second=0, microsecond=0) for age in (6, 0)
    ]
    assert {group[0] for group in await _check(migrated, expired=True)} == set(kept)
    days = {group[0] for group in await _rollup(migrated, request_stats_daily)}
    assert days == {hour.replace(hour=0) for hour in kept}


@both
async def test_dashboard_from_the_rollup(migrated: AsyncEngine) -> None:
    this_hour = NOW.replace(minute=0, second=0, microsecond=0)
    kept_provider, gone_provider = uuid.uuid4(), uuid.uuid4()
    async with migrated.begin() as conn:
        await conn.execute(
            sa.insert(providers),
            [
                {
                    "id": kept_provider,
                    "name": "kept",
                    "kind": "openai",
                    "base_url": "http://127.0.0.1:9/v1",
                    "api_key": "x",
                    "is_active": True,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
            ],
        )
        await conn.execute(
            sa.insert(models),
            [{"id": uuid.uuid4(), "name": "configured", "created_at": NOW, "updated_at": NOW}],
        )
        await conn.execute(
            sa.insert(user_keys),
            {
                "id": KEYS[0],
                "name": "first-key",
                "key_hash": "h" * 64,
                "key_prefix": "sk-x",
                "created_at": NOW,
                "updated_at": NOW,
            },
        )
    routed = {"provider_id": kept_provider, "provider_kind": "openai"}
    rows = [
        # This hour: three calls at 100 ms and one at 500 ms, two groups: 200 ms on average.
        *(_row(this_hour, **routed, cost_usd=0.25) for _ in range(3)),
        _row(this_hour, **routed, latency_ms=500, is_error=True, model_requested="configured"),
        # Six hours ago: a provider deleted since (named by its kind), a name not configured
        # and not routed, a call with no model name (no model row).
        _row(this_hour - timedelta(hours=6), provider_id=gone_provider, provider_kind="anthropic"),
        _row(this_hour - timedelta(hours=6), model_requested="nope", user_key_id=KEYS[1]),
        _row(this_hour - timedelta(hours=6), model_requested=None, endpoint="responses"),
        # Three days ago: 7-day figures only; ten days ago: the total only.
        _row(this_hour - timedelta(days=3), **routed, total_tokens=1000),
        _row(this_hour - timedelta(days=10), **routed),
    ]
    await _write(migrated, rows)
    clock = Clock()  # half past this hour, whenever the test runs: no hour turns meanwhile
    clock.set(this_hour + timedelta(minutes=30))
    found = await stats.dashboard(cast(Store, SimpleNamespace(engine=migrated, clock=clock)))
    assert found["total_requests"] == 9
    assert (found["total_requests_24h"], found["total_errors_24h"]) == (7, 1)
    assert found["total_tokens_24h"] == 7 * 15
    assert found["avg_latency_24h"] == round((6 * 100 + 500) / 7, 1)
    assert found["total_cost_usd_24h"] == pytest.approx(0.75)
    hours = found["requests_per_hour"]
    assert len(hours) == 24 and hours[-1]["hour"] == this_hour.isoformat().replace("+00:00", "Z")
    assert hours[-1] == {
        "hour": hours[-1]["hour"],
        "requests": 4,
        "errors": 1,
        "tokens": 60,
        "avg_latency": 200.0,
        "cost_usd": 0.75,
    }
    assert hours[-7]["requests"] == 3 and sum(h["requests"] for h in hours) == 7
    assert {m["model"]: m["requests"] for m in found["model_usage"]} == {
        "gpt-4o": 5,  # routed, so counted as itself
        "configured": 1,
        stats.UNKNOWN_MODEL: 1,
    }
    assert found["provider_usage"] == [
        {"provider": "kept", "requests": 5, "errors": 1, "cost_usd": 0.75},
        {"provider": "anthropic", "requests": 1, "errors": 0, "cost_usd": 0.0},
    ]
    assert {e["endpoint"]: e["requests"] for e in found["endpoint_usage"]} == {
        "chat": 7,
        "responses": 1,
    }
    keys = {k["key_id"]: (k["key_name"], k["requests"]) for k in found["key_usage"]}
    assert keys == {str(KEYS[0]): ("first-key", 7), str(KEYS[1]): (None, 1)}


@both
async def test_dashboard_counts_the_rows_retention_keeps_across_hourly_and_daily_rows(
    migrated: AsyncEngine,
) -> None:
    now = datetime.now(UTC)
    # Every 7 hours over 12 days, none within an hour before a cutoff below (216 h and 48 h),
    # so that the hour of a cutoff has no row that expires while the hour is kept; and one
    # just after each cutoff, on the day the cutoff expires part of.
    ages = [timedelta(hours=3 + 7 * n) for n in range(41)]
    for cutoff in (now - timedelta(hours=216), now - timedelta(hours=48)):
        midnight = cutoff.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        ages.append(now - cutoff - min(timedelta(minutes=30), (midnight - cutoff) / 2))
    rows = [
        _row(now - age, user_key_id=KEYS[n % 3], endpoint=("chat", "responses")[n % 2])
        for n, age in enumerate(ages)
    ]
    await _write(migrated, rows)
    await ensure_partitions(migrated)  # PostgreSQL: the old rows' days, out of the default
    store = cast(Store, SimpleNamespace(engine=migrated, clock=Clock()))
    for days in (0, 9, 2):  # the week then part of it past a partly expired day, then within
        await expire(migrated, days)
        found = await stats.dashboard(store)
        async with migrated.connect() as conn:
            c = request_logs.c
            kept = (await conn.execute(sa.select(c.created_at, c.user_key_id, c.endpoint))).all()
        this_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        week = [row for row in kept if row[0] >= this_hour - timedelta(days=7)]
        assert found["total_requests"] == len(kept) < len(rows) + (days == 0)
        assert found["total_requests_24h"] == sum(
            1 for when, *_ in kept if when >= this_hour - timedelta(hours=23)
        )
        assert {k["key_id"]: k["requests"] for k in found["key_usage"]} == {
            str(key): sum(1 for _, k, _ in week if k == key) for key in {k for _, k, _ in week}
        }
        assert {e["endpoint"]: e["requests"] for e in found["endpoint_usage"]} == {
            name: sum(1 for *_, e in week if e == name) for name in {e for *_, e in week}
        }
        await _check(migrated, expired=True)


@both
async def test_log_rows_read_back_as_they_were_submitted(migrated: AsyncEngine) -> None:
    """The writer encodes rows for the driver itself (not through SQLAlchemy's types): what it
    stores must read back through the table exactly as submitted, times in any zone included."""
    east = timezone(timedelta(hours=8))
    rows = _traffic(40)
    rows[0] |= {"created_at": NOW.astimezone(east), "is_stream": True, "notes": "a note"}
    rows[1] |= {"created_at": NOW.replace(microsecond=0), "cost_usd": 0.5}
    await _write(migrated, rows)
    async with migrated.connect() as conn:
        found = [dict(r._mapping) for r in await conn.execute(sa.select(request_logs))]
    by_id = {row.pop("gateway_request_id"): row for row in found}
    for row in rows:
        stored = by_id[row["gateway_request_id"]]
        stored.pop("id")
        assert stored == {k: v for k, v in row.items() if k != "gateway_request_id"}


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_the_writer_keeps_up_while_the_event_loop_turns_slowly(migrated: AsyncEngine) -> None:
    """Under full load every turn of the event loop serves many connections, and each driver
    round trip of a batch waits for a turn. Fixed batches of 200 rows then fell behind; a batch
    takes what is waiting. Counted in loop turns, each made 2 ms long by a busy task."""
    writer = LogWriter(migrated)
    task = asyncio.create_task(writer.run())
    turns = 0
    try:
        for _ in range(10):  # 2,000 rows arrive during each of 10 turns
            for row in _traffic(2_000):
                writer.submit(row)
            time.sleep(0.002)
            await asyncio.sleep(0)
            turns += 1
        while writer.depth and turns < 5_000:
            time.sleep(0.002)
            await asyncio.sleep(0)
            turns += 1
    finally:
        task.cancel()
        stopped, _ = await asyncio.wait([task], timeout=10)
    assert stopped
    assert writer.depth == 0
    assert writer.written == 20_000
    # 200-row batches took about 2,900 turns here; this took about 250 (and 407 under load)
    assert turns < 1_200, turns


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_the_writer_stops_when_cancelled_as_rows_arrive(migrated: AsyncEngine) -> None:
    """Shutdown cancels the writer; rows may arrive in the same instant. (`asyncio.wait_for`
    returned instead of raising then, and the writer ran on past shutdown.)"""
    writer = LogWriter(migrated, wake_at=1)
    task = asyncio.create_task(writer.run())
    for _ in range(3):  # the writer is waiting for rows
        await asyncio.sleep(0)
    writer.submit(_traffic(1)[0])
    task.cancel()
    stopped, _ = await asyncio.wait([task], timeout=10)
    assert stopped and task.cancelled()
    await writer.close()  # what shutdown does next: the row is written
    assert writer.written == 1
