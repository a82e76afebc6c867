"""The async engine, tuned per backend.

The SQLite file holds key digests and encrypted provider keys, so it is private to its owner
(0600, like the key files beside it) before SQLite first writes to it; SQLite gives its `-wal`
and `-shm` files the database file's mode.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from llm_gateway.settings import PRIVATE_FILE_MODE

log = logging.getLogger("llm_gateway.db")


def make_private(path: Path) -> None:
    """Create the SQLite file 0600 if it is missing; take group and other access off if not."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
        return
    except FileExistsError:
        pass
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = file.stat().st_mode & 0o777
            if mode & ~PRIVATE_FILE_MODE:
                file.chmod(mode & PRIVATE_FILE_MODE)
                log.warning("%s was mode %o; now %o", file, mode, mode & PRIVATE_FILE_MODE)
        except FileNotFoundError:
            continue
        except OSError as exc:  # e.g. owned by another user: serve anyway, but say so
            log.warning("could not make %s private: %s", file, type(exc).__name__)


def create_engine(database_url: str) -> AsyncEngine:
    if database_url.startswith("sqlite"):
        database = make_url(database_url).database
        if database and database != ":memory:":
            make_private(Path(database))
        engine = create_async_engine(database_url, pool_size=4, max_overflow=4)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()

        return engine
    return create_async_engine(
        database_url,
        pool_size=10,
        max_overflow=10,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"timeout": 5, "command_timeout": 30},
    )
