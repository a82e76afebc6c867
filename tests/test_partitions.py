"""Request logs partitioned by day on PostgreSQL: the migration, partitions made ahead, retention
by dropping whole days, the bounded `total` of `/admin/logs`; SQLite keeps one table."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from llm_gateway.db.engine import create_engine
from llm_gateway.db.migrate import MIGRATIONS_DIR, run_migrations
from llm_gateway.db.tables import request_logs
from llm_gateway.services.logs import COUNT_CAP
from llm_gateway.services.partitions import (
    ensure_partitions,
    list_partitions,
    partition_name,
)
from llm_gateway.services.retention import expire
from llm_gateway.settings import normalise_database_url
from llm_gateway.state.log_writer import LogWriter
from tests.conftest import Admin
from tests.servers import Postgres, ThreadedGateway

NOW = datetime.now(UTC)
TODAY = NOW.date()


@pytest.fixture
def pg_url(postgres_server: Postgres) -> Iterator[str]:
    name = postgres_server.create_database()
    try:
        yield normalise_database_url(postgres_server.dsn(name))[0]
    finally:
        postgres_server.drop_database(name)


@pytest.fixture
async def engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(pg_url)
    yield engine
    await engine.dispose()


def _alembic(connection: Connection) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _row(when: datetime, **fields: Any) -> dict[str, Any]:
    """A request-log row as the proxy submits it to the log writer."""
    row = {c.name: getattr(c.default, "arg", None) for c in request_logs.c if c.name != "id"}
    row |= {
        "gateway_request_id": uuid.uuid4().hex,
        "user_key_id": uuid.uuid4(),
        "model_requested": "gpt-4o",
        "status_code": 200,
        "is_error": False,
        "latency_ms": 100,
        "is_stream": False,
        "created_at": when,
    }
    return row | fields


async def _write(engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
    writer = LogWriter(engine)
    for row in rows:
        writer.submit(row)
    await writer.write_pending()


async def _where(engine: AsyncEngine) -> dict[int, str]:
    """Each row's id and the partition it is stored in."""
    async with engine.connect() as conn:
        found = await conn.execute(sa.text("SELECT id, tableoid::regclass::text FROM request_logs"))
        return {int(i): str(table) for i, table in found}


def _on(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


async def test_migration_keeps_every_row_and_id_in_its_days_partition(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: command.upgrade(_alembic(c), "0005"))
        days = [TODAY - timedelta(days=n) for n in (40, 9, 1, 0)]
        for day in days:  # columns as they are at 0005, whatever tables.py says now
            await conn.execute(
                sa.text(
                    "INSERT INTO request_logs (gateway_request_id, user_key_id, status_code,"
                    " is_error, prompt_tokens, completion_tokens, total_tokens,"
                    " weighted_total_tokens, latency_ms, is_stream, created_at)"
                    " SELECT md5(i::text), gen_random_uuid(), 200, false, 1, 2, 3, 3, 10, false,"
                    " CAST(:noon AS timestamptz) + i * interval '1 minute'"
                    " FROM generate_series(1, 5) AS i"
                ),
                {"noon": _on(day)},
            )
        before = {
            int(i): when
            for i, when in await conn.execute(sa.text("SELECT id, created_at FROM request_logs"))
        }
    await run_migrations(engine)
    async with engine.connect() as conn:
        after = {
            int(i): when
            for i, when in await conn.execute(sa.text("SELECT id, created_at FROM request_logs"))
        }
    assert after == before
    stored = await _where(engine)
    assert {stored[i] for i in before} == {partition_name(day) for day in days}
    assert all(stored[i] == partition_name(when.date()) for i, when in before.items())
    names = [p.name for p in await list_partitions(engine)]
    ahead = [partition_name(TODAY + timedelta(days=n)) for n in range(1, 4)]
    assert set(ahead) < set(names) and names[-1] == "request_logs_default"
    # New rows take ids after the old ones, from the same sequence.
    await _write(engine, [_row(NOW)])
    ids = set(await _where(engine))
    assert min(ids - set(before)) > max(before)

    async with engine.begin() as conn:  # and back to one table, every row and id kept
        await conn.run_sync(lambda c: command.downgrade(_alembic(c), "0005"))
        kept = set((await conn.execute(sa.text("SELECT id FROM request_logs"))).scalars())
        kind = await conn.scalar(
            sa.text("SELECT relkind::text FROM pg_class WHERE relname = 'request_logs'")
        )
    assert (kept, kind) == (ids, "r")


async def test_log_writer_rows_land_in_their_days_partitions(engine: AsyncEngine) -> None:
    await run_migrations(engine)
    far = TODAY + timedelta(days=10)
    rows = [_row(NOW), _row(_on(TODAY + timedelta(days=2))), _row(_on(far))]
    await _write(engine, rows)
    stored = sorted((await _where(engine)).items())
    assert [table for _, table in stored] == [
        partition_name(TODAY),
        partition_name(TODAY + timedelta(days=2)),
        "request_logs_default",  # no partition that far ahead yet
    ]
    # Once that day comes within reach, its partition is made and takes the row out of the default.
    assert await ensure_partitions(engine, days_ahead=10) == [
        partition_name(TODAY + timedelta(days=n)) for n in range(4, 11)
    ]
    assert sorted((await _where(engine)).values())[-1] == partition_name(far)
    async with engine.connect() as conn:
        assert await conn.scalar(sa.text("SELECT count(*) FROM request_logs_default")) == 0


async def test_ensure_partitions_is_idempotent_when_processes_race(pg_url: str) -> None:
    engines = [create_engine(pg_url) for _ in range(3)]
    try:
        await run_migrations(engines[0])
        made = await asyncio.gather(*(ensure_partitions(e, days_ahead=8) for e in engines))
        expected = [partition_name(TODAY + timedelta(days=n)) for n in range(4, 9)]
        assert sorted(name for names in made for name in names) == expected
        assert await ensure_partitions(engines[0], days_ahead=8) == []
        names = [p.name for p in await list_partitions(engines[0])]
        assert len(names) == len(set(names)) == 9 + 1  # today, 8 days ahead, the default
    finally:
        for engine in engines:
            await engine.dispose()


async def test_retention_drops_expired_days_whole_and_keeps_recent_ones(
    engine: AsyncEngine,
) -> None:
    await run_migrations(engine)
    ages = [30, 10, 8, 6, 0]
    await _write(engine, [_row(NOW - timedelta(days=age)) for age in ages])
    await ensure_partitions(engine)  # the old rows' days, from the default partition
    await expire(engine, 7)
    kept = sorted((await _where(engine)).values())
    assert kept == sorted(partition_name((NOW - timedelta(days=age)).date()) for age in (6, 0))
    names = {p.name for p in await list_partitions(engine)}
    for age in (30, 10, 8):
        assert partition_name((NOW - timedelta(days=age)).date()) not in names
    async with engine.connect() as conn:  # dropped, not merely detached
        leftover = await conn.scalar(
            sa.text(
                "SELECT count(*) FROM pg_class WHERE relkind = 'r'"
                " AND relname LIKE 'request_logs_p%'"
            )
        )
    assert leftover == len(names) - 1


def test_admin_logs_total_is_exact_up_to_the_cap_then_estimated(
    database_url: str, gateway: ThreadedGateway, admin: Admin
) -> None:
    backend = "sqlite" if database_url.startswith("sqlite") else "postgres"
    engine = gateway.runtime.store.engine
    many = [_row(NOW - timedelta(seconds=i)) for i in range(COUNT_CAP + 2000)]
    gateway.run(_write(engine, [*many, *(_row(NOW, model_requested="rare") for _ in range(7))]))
    if backend == "postgres":
        gateway.run(_analyze(engine))
    page = admin.ok("GET", "/admin/logs", params={"per_page": 5})
    assert len(page["data"]) == 5
    if backend == "postgres":
        assert page["total_is_estimate"] is True
        assert COUNT_CAP < page["total"] < 2 * (COUNT_CAP + 2007)
    else:
        assert (page["total"], page["total_is_estimate"]) == (COUNT_CAP + 2007, False)
    rare = admin.ok("GET", "/admin/logs", params={"model": "rare"})
    assert (rare["total"], rare["total_is_estimate"], len(rare["data"])) == (7, False, 7)
    since = (NOW - timedelta(seconds=99.5)).isoformat()
    recent = admin.ok("GET", "/admin/logs", params={"since": since, "per_page": 200})
    assert (recent["total"], recent["total_is_estimate"]) == (100 + 7, False)


async def _analyze(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.text("ANALYZE request_logs"))


async def test_sqlite_keeps_one_table_and_deletes_expired_rows(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        await run_migrations(engine, path)
        assert await ensure_partitions(engine) == []
        assert await list_partitions(engine) == []
        await _write(engine, [_row(NOW - timedelta(days=age)) for age in (10, 8, 6, 0)])
        await expire(engine, 7)
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
            left = await conn.scalar(sa.select(sa.func.count()).select_from(request_logs))
        assert [t for t in tables if t.startswith("request_logs")] == ["request_logs"]
        assert left == 2
    finally:
        await engine.dispose()
