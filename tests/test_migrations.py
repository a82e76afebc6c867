from __future__ import annotations

import asyncio
import subprocess
import sys

import sqlalchemy as sa

from llm_gateway.db.engine import create_engine
from llm_gateway.db.migrate import run_migrations
from llm_gateway.settings import normalise_database_url
from tests.servers import Postgres

EXPECTED_TABLES = {"providers", "models", "user_keys", "request_logs", "alembic_version"}


async def _migrate_and_inspect(url: str) -> tuple[set[str], list[str], set[str]]:
    engine_url, sqlite_path = normalise_database_url(url)
    engine = create_engine(engine_url)
    try:
        await run_migrations(engine, sqlite_path)
        await run_migrations(engine, sqlite_path)  # idempotent
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
            versions = list(
                (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalars()
            )
            indexes = await conn.run_sync(
                lambda c: {i["name"] for i in sa.inspect(c).get_indexes("request_logs")}
            )
        return tables, versions, indexes
    finally:
        await engine.dispose()


def test_migrations_run_twice_in_a_row(database_url: str) -> None:
    tables, versions, indexes = asyncio.run(_migrate_and_inspect(database_url))
    assert tables >= EXPECTED_TABLES
    assert versions == ["0007"]
    assert {
        "ix_request_logs_created_at",
        "ix_request_logs_user_key_created_at",
        "ix_request_logs_model_created_at",
    } <= indexes


MIGRATE_SCRIPT = """
import asyncio, sys
from llm_gateway.db.engine import create_engine
from llm_gateway.db.migrate import run_migrations
from llm_gateway.settings import normalise_database_url
url, path = normalise_database_url(sys.argv[1])
async def main():
    engine = create_engine(url)
    await run_migrations(engine, path)
    await engine.dispose()
asyncio.run(main())
"""


def test_processes_migrating_at_once_on_postgres(postgres_server: Postgres) -> None:
    name = postgres_server.create_database()
    try:
        url = postgres_server.dsn(name)
        processes = [
            subprocess.Popen([sys.executable, "-c", MIGRATE_SCRIPT, url], stderr=subprocess.PIPE)
            for _ in range(4)
        ]
        results = [(p.wait(timeout=60), p.stderr.read() if p.stderr else b"") for p in processes]
        for process in processes:
            if process.stderr:
                process.stderr.close()
        assert [code for code, _ in results] == [0, 0, 0, 0], results
        tables, versions, _ = asyncio.run(_migrate_and_inspect(url))
        assert tables >= EXPECTED_TABLES
        assert versions == ["0007"]
    finally:
        postgres_server.drop_database(name)
