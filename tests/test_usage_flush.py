"""Usage flushes from several processes on the same keys: no deadlock, nothing lost."""

from __future__ import annotations

import asyncio
import time
import uuid

import sqlalchemy as sa

from llm_gateway.db.engine import create_engine
from llm_gateway.db.migrate import run_migrations
from llm_gateway.db.tables import user_keys, utcnow
from llm_gateway.security import SecretBox
from llm_gateway.settings import decode_secret_key, normalise_database_url
from llm_gateway.state.cache import Cache
from llm_gateway.state.usage import UsageLedger
from tests.servers import SECRET_KEY, Postgres

KEYS = 12
ROUNDS = 15


async def _flush_concurrently(url: str) -> tuple[dict[uuid.UUID, int], int, int]:
    engine_url, _ = normalise_database_url(url)
    engine = create_engine(engine_url)
    try:
        await run_migrations(engine)
        ids = [uuid.uuid4() for _ in range(KEYS)]
        now = utcnow()
        async with engine.begin() as conn:
            await conn.execute(
                sa.insert(user_keys),
                [
                    {
                        "id": key_id,
                        "name": f"k{i}",
                        "key_hash": uuid.uuid4().hex + uuid.uuid4().hex,
                        "key_prefix": "sk-test",
                        "is_active": True,
                        "tokens_used": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i, key_id in enumerate(ids)
                ],
            )
        box = SecretBox(decode_secret_key(SECRET_KEY))
        ledgers = []
        for _ in range(4):  # four processes' ledgers
            cache = Cache(box, time.time)
            async with engine.connect() as conn:
                await cache.load_keys(conn, {})
            ledgers.append(UsageLedger(cache))
        failures = 0
        for round_number in range(ROUNDS):
            for index, ledger in enumerate(ledgers):
                # Each process meets the keys in its own order, as its traffic comes.
                order = ids[index:] + ids[:index] if round_number % 2 else ids[::-1]
                for key_id in order:
                    ledger.add(key_id, 1)
            results = await asyncio.gather(
                *(ledger.flush(engine) for ledger in ledgers), return_exceptions=True
            )
            failures += sum(isinstance(result, Exception) for result in results)
        for ledger in ledgers:  # what a failed flush put back
            await ledger.flush(engine)
        async with engine.connect() as conn:
            rows = await conn.execute(sa.select(user_keys.c.id, user_keys.c.tokens_used))
            used = {row.id: row.tokens_used for row in rows}
        return used, failures, 4 * ROUNDS
    finally:
        await engine.dispose()


def test_concurrent_flushes_of_the_same_keys_neither_deadlock_nor_lose_usage(
    postgres_server: Postgres,
) -> None:
    name = postgres_server.create_database()
    try:
        used, failures, charged = asyncio.run(_flush_concurrently(postgres_server.dsn(name)))
    finally:
        postgres_server.drop_database(name)
    assert failures == 0  # no deadlock between the processes' transactions
    assert len(used) == KEYS
    assert set(used.values()) == {charged}  # every charge landed exactly once
