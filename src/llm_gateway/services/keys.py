"""User keys: `sk-` + UUIDv4, stored only as SHA-256, plaintext returned on create and rotate.

Every change updates this process's key cache before returning, so a rotated or revoked key is
refused by the next request; `Store.changed` tells the other processes.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from llm_gateway.db.tables import user_keys, utcnow
from llm_gateway.errors import NotFound
from llm_gateway.security import display_prefix, generate_user_key, hash_key
from llm_gateway.services.common import parse_id
from llm_gateway.state.store import Store


def _info(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "key_prefix": row.key_prefix,
        "is_active": row.is_active,
        "token_budget": row.token_budget,
        "tokens_used": row.tokens_used,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


async def list_keys(store: Store) -> list[dict[str, Any]]:
    await store.ledger.flush(store.engine)  # show usage counted up to now
    async with store.engine.connect() as conn:
        rows = await conn.execute(sa.select(user_keys).order_by(user_keys.c.created_at))
        return [_info(row) for row in rows]


async def create_key(store: Store, *, name: str, token_budget: int | None) -> dict[str, Any]:
    plaintext = generate_user_key()
    now = utcnow()
    values = {
        "id": uuid.uuid4(),
        "name": name,
        "key_hash": hash_key(plaintext),
        "key_prefix": display_prefix(plaintext),
        "is_active": True,
        "token_budget": token_budget,
        "tokens_used": 0,
        "created_at": now,
        "updated_at": now,
    }
    async with store.engine.begin() as conn:
        await conn.execute(sa.insert(user_keys).values(**values))
        row = (await conn.execute(sa.select(user_keys).where(user_keys.c.id == values["id"]))).one()
    store.cache.put_key(row)
    await store.changed("key", str(row.id))
    return {**_info(row), "key": plaintext}


async def update_key(store: Store, ident: str, changes: dict[str, Any]) -> dict[str, Any]:
    key_id = parse_id(ident, "key")
    reset = bool(changes.pop("reset_usage", False))
    values = dict(changes)
    if reset:
        values["tokens_used"] = 0
        values["usage_reset_at"] = utcnow()  # other processes drop what they counted before
    async with store.ledger.lock:
        if not reset:  # land counted usage first so the row we return is current
            await store.ledger.flush_locked(store.engine)
        async with store.engine.begin() as conn:
            result = await conn.execute(
                sa.update(user_keys)
                .where(user_keys.c.id == key_id)
                .values(**values, updated_at=utcnow())
            )
            if result.rowcount == 0:
                raise NotFound(f"key {ident!r} not found")
            row = (await conn.execute(sa.select(user_keys).where(user_keys.c.id == key_id))).one()
        if reset:
            store.ledger.forget(key_id)
        store.cache.put_key(row, store.ledger.pending.get(key_id, 0))
    await store.changed("key_reset" if reset else "key", str(key_id))
    return _info(row)


async def rotate_key(store: Store, ident: str) -> dict[str, Any]:
    key_id = parse_id(ident, "key")
    plaintext = generate_user_key()
    async with store.engine.begin() as conn:
        result = await conn.execute(
            sa.update(user_keys)
            .where(user_keys.c.id == key_id, user_keys.c.is_active)
            .values(
                key_hash=hash_key(plaintext),
                key_prefix=display_prefix(plaintext),
                updated_at=utcnow(),
            )
        )
        if result.rowcount == 0:
            raise NotFound(f"active key {ident!r} not found")
        row = (await conn.execute(sa.select(user_keys).where(user_keys.c.id == key_id))).one()
    store.cache.put_key(row, store.ledger.pending.get(key_id, 0))
    await store.changed("key", str(key_id))
    return {**_info(row), "key": plaintext}


async def revoke_key(store: Store, ident: str) -> None:
    key_id = parse_id(ident, "key")
    async with store.engine.begin() as conn:
        result = await conn.execute(
            sa.update(user_keys)
            .where(user_keys.c.id == key_id, user_keys.c.is_active)
            .values(is_active=False, updated_at=utcnow())
        )
        if result.rowcount == 0:
            raise NotFound(f"active key {ident!r} not found")
    store.cache.drop_key(key_id)
    await store.changed("key", str(key_id))
