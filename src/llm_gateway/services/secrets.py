"""Provider keys at rest: encrypt rows stored in plaintext, re-encrypt under a new secret."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from llm_gateway.db.tables import providers
from llm_gateway.security import SecretBox


async def encrypt_plaintext_keys(engine: AsyncEngine, box: SecretBox) -> int:
    """Encrypt provider keys stored before encryption at rest; returns how many."""
    async with engine.begin() as conn:
        rows = (await conn.execute(sa.select(providers.c.id, providers.c.api_key))).all()
        plain = [row for row in rows if not SecretBox.is_encrypted(row.api_key)]
        for row in plain:
            await conn.execute(
                sa.update(providers)
                .where(providers.c.id == row.id)
                .values(api_key=box.encrypt(row.api_key))
            )
    return len(plain)


async def reencrypt_keys(engine: AsyncEngine, old: SecretBox, new: SecretBox) -> int:
    """Re-encrypt every provider key under `new`, in one transaction (all or nothing)."""
    async with engine.begin() as conn:
        rows = (await conn.execute(sa.select(providers.c.id, providers.c.api_key))).all()
        for row in rows:
            await conn.execute(
                sa.update(providers)
                .where(providers.c.id == row.id)
                .values(api_key=new.encrypt(old.decrypt(row.api_key)))
            )
    return len(rows)
