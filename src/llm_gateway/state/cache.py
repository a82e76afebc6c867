"""The in-process caches the hot path reads: user keys by hash, routes by model name.

Warmed from the database at start and kept current by the admin services (in this process
before the admin call returns; in other processes through change notices). The proxy never
queries the database in steady state.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from llm_gateway.db.tables import models, providers, user_keys
from llm_gateway.security import SecretBox


@dataclass(slots=True)
class KeyEntry:
    id: uuid.UUID
    key_hash: str
    token_budget: int | None
    tokens_used: int  # database value plus usage this process has counted since
    reserved: int = 0  # estimated cost of this process's requests in flight for the key
    usage_generation: int = 0  # the last usage reset, ms since 1970 (0: never reset)

    def exhausted(self) -> bool:
        return (
            self.token_budget is not None and self.tokens_used + self.reserved >= self.token_budget
        )


@dataclass(frozen=True, slots=True)
class Route:
    model_id: uuid.UUID
    model_name: str
    upstream_model: str | None  # None: the provider calls it by the same name
    provider_id: uuid.UUID
    provider_name: str
    provider_kind: str
    url: str
    authorization: str
    input_coefficient: float
    output_coefficient: float
    created: int  # unix seconds, for /v1/models

    def weighted_tokens(self, prompt_tokens: int, completion_tokens: int) -> int:
        return round(
            prompt_tokens * self.input_coefficient + completion_tokens * self.output_coefficient
        )


def _entry(row: Any, pending: int, previous: KeyEntry | None) -> KeyEntry:
    """A cache entry from a database row; reservations of calls in flight carry over."""
    reset_at = row.usage_reset_at
    return KeyEntry(
        id=row.id,
        key_hash=row.key_hash,
        token_budget=row.token_budget,
        tokens_used=row.tokens_used + pending,
        reserved=previous.reserved if previous is not None else 0,
        usage_generation=0 if reset_at is None else int(reset_at.timestamp() * 1000),
    )


def chat_completions_url(base_url: str) -> str:
    return base_url.rstrip("/") + "/chat/completions"


class Cache:
    def __init__(self, box: SecretBox) -> None:
        self._box = box
        self.keys: dict[str, KeyEntry] = {}
        self._hash_by_id: dict[uuid.UUID, str] = {}
        self.routes: dict[str, Route] = {}
        self.hits = 0
        self.misses = 0

    # keys -------------------------------------------------------------------------------
    def lookup_key(self, key_hash: str) -> KeyEntry | None:
        entry = self.keys.get(key_hash)
        if entry is None:
            self.misses += 1
        else:
            self.hits += 1
        return entry

    def key_by_id(self, key_id: uuid.UUID) -> KeyEntry | None:
        key_hash = self._hash_by_id.get(key_id)
        return None if key_hash is None else self.keys.get(key_hash)

    def put_key(self, row: Any, pending: int = 0) -> None:
        """Insert or replace a key from its database row (dropping it when inactive)."""
        old = self.key_by_id(row.id)
        self.drop_key(row.id)
        if not row.is_active:
            return
        self.keys[row.key_hash] = _entry(row, pending, old)
        self._hash_by_id[row.id] = row.key_hash

    def drop_key(self, key_id: uuid.UUID) -> None:
        old_hash = self._hash_by_id.pop(key_id, None)
        if old_hash is not None:
            self.keys.pop(old_hash, None)

    async def load_keys(self, conn: AsyncConnection, pending: dict[uuid.UUID, int]) -> None:
        result = await conn.execute(sa.select(user_keys).where(user_keys.c.is_active))
        keys: dict[str, KeyEntry] = {}
        by_id: dict[uuid.UUID, str] = {}
        for row in result:
            keys[row.key_hash] = _entry(row, pending.get(row.id, 0), self.key_by_id(row.id))
            by_id[row.id] = row.key_hash
        self.keys, self._hash_by_id = keys, by_id

    async def reload_key(self, conn: AsyncConnection, key_id: uuid.UUID, pending: int = 0) -> None:
        row = (await conn.execute(sa.select(user_keys).where(user_keys.c.id == key_id))).first()
        if row is None:
            self.drop_key(key_id)
        else:
            self.put_key(row, pending)

    # routes -----------------------------------------------------------------------------
    async def load_routes(self, conn: AsyncConnection) -> None:
        query = (
            sa.select(
                models.c.id,
                models.c.name,
                models.c.provider_model_name,
                models.c.input_token_coefficient,
                models.c.output_token_coefficient,
                models.c.created_at,
                providers.c.id.label("provider_id"),
                providers.c.name.label("provider_name"),
                providers.c.kind,
                providers.c.base_url,
                providers.c.api_key,
            )
            .join(providers, models.c.provider_id == providers.c.id)
            .where(models.c.is_active, providers.c.is_active)
        )
        routes: dict[str, Route] = {}
        for row in await conn.execute(query):
            upstream = row.provider_model_name
            routes[row.name] = Route(
                model_id=row.id,
                model_name=row.name,
                upstream_model=None if upstream in (None, row.name) else upstream,
                provider_id=row.provider_id,
                provider_name=row.provider_name,
                provider_kind=row.kind,
                url=chat_completions_url(row.base_url),
                authorization="Bearer " + self._box.decrypt(row.api_key),
                input_coefficient=row.input_token_coefficient,
                output_coefficient=row.output_token_coefficient,
                created=int(row.created_at.timestamp()),
            )
        self.routes = routes
