"""Apply Alembic migrations at start: idempotent, and safe when several processes start at once.

PostgreSQL serialises migrators with a transaction-scoped advisory lock; SQLite (one host by
definition) with an exclusive lock on a file beside the database.
"""

from __future__ import annotations

import asyncio
import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
ADVISORY_LOCK_ID = 0x6C6C6D67  # "llmg"


def _upgrade(connection: Connection) -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


async def run_migrations(engine: AsyncEngine, sqlite_path: Path | None = None) -> None:
    if engine.dialect.name == "postgresql":
        async with engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": ADVISORY_LOCK_ID})
            await conn.run_sync(_upgrade)
        return
    lock_path = (sqlite_path or Path("llm-gateway.db")).with_suffix(".migrate-lock")
    lock = _file_lock(lock_path)
    await asyncio.to_thread(lock.__enter__)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade)
    finally:
        lock.__exit__(None, None, None)
