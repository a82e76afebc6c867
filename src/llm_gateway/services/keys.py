"""User keys: `sk-` + UUIDv4, stored only as SHA-256, plaintext returned on create and rotate.

Every change updates this process's key cache before returning, so a rotated or revoked key is
refused by the next request; `Store.changed` tells the other processes.

Policies (allowed models, expiry, rate limits, budget period, cost budget) are columns of the
key. With a budget period, `tokens_used` and `cost_used_usd` are the current period's: counts
stored for an older period read as zero, and `budget_resets_at` is when the period ends.
Choosing another period keeps the counts made so far, as the new period's.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from llm_gateway.db.tables import user_keys, utcnow
from llm_gateway.errors import NotFound
from llm_gateway.limits.periods import bounds, next_start
from llm_gateway.limits.policy import nano_to_usd, usd_to_nano
from llm_gateway.security import display_prefix, generate_user_key, hash_key
from llm_gateway.services.common import parse_id
from llm_gateway.state.store import Store

POLICY_FIELDS = (
    "allowed_models",
    "expires_at",
    "rpm_limit",
    "tpm_limit",
    "budget_period",
    "cost_budget_usd",
)


def _info(row: Any, now: datetime) -> dict[str, Any]:
    tokens, cost = row.tokens_used, row.cost_used_nanousd
    resets_at = None
    if row.budget_period is not None:
        start, resets_at = bounds(row.budget_period, now)
        stored = row.period_started_at
        if stored is None or stored < start:
            tokens = cost = 0
        elif stored > start:  # charged by a process whose clock is ahead of this one
            resets_at = next_start(row.budget_period, stored)
    budget = row.cost_budget_nanousd
    return {
        "id": row.id,
        "name": row.name,
        "key_prefix": row.key_prefix,
        "is_active": row.is_active,
        "token_budget": row.token_budget,
        "tokens_used": tokens,
        "allowed_models": row.allowed_models,
        "expires_at": row.expires_at,
        "rpm_limit": row.rpm_limit,
        "tpm_limit": row.tpm_limit,
        "budget_period": row.budget_period,
        "budget_resets_at": resets_at,
        "cost_budget_usd": None if budget is None else nano_to_usd(budget),
        "cost_used_usd": nano_to_usd(cost),
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def _policy_values(fields: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Column values for the policy fields given (an API field name to its value)."""
    values = {name: fields[name] for name in POLICY_FIELDS if name in fields}
    if "cost_budget_usd" in values:
        budget = values.pop("cost_budget_usd")
        values["cost_budget_nanousd"] = None if budget is None else usd_to_nano(budget)
    if "allowed_models" in values and values["allowed_models"] is not None:
        values["allowed_models"] = list(dict.fromkeys(values["allowed_models"]))
    if "budget_period" in values:
        period = values["budget_period"]
        values["period_started_at"] = None if period is None else bounds(period, now)[0]
    return values


async def list_keys(store: Store) -> list[dict[str, Any]]:
    await store.ledger.flush(store.engine)  # show usage counted up to now
    now = store.clock.now()
    async with store.engine.connect() as conn:
        rows = await conn.execute(sa.select(user_keys).order_by(user_keys.c.created_at))
        return [_info(row, now) for row in rows]


async def create_key(store: Store, fields: dict[str, Any]) -> dict[str, Any]:
    """A new key from its `name`, `token_budget` and policy fields (as the API names them)."""
    plaintext = generate_user_key()
    now = utcnow()
    values = {
        "id": uuid.uuid4(),
        "name": fields["name"],
        "key_hash": hash_key(plaintext),
        "key_prefix": display_prefix(plaintext),
        "is_active": True,
        "token_budget": fields.get("token_budget"),
        "tokens_used": 0,
        "cost_used_nanousd": 0,
        **_policy_values(fields, store.clock.now()),
        "created_at": now,
        "updated_at": now,
    }
    async with store.engine.begin() as conn:
        await conn.execute(sa.insert(user_keys).values(**values))
        row = (await conn.execute(sa.select(user_keys).where(user_keys.c.id == values["id"]))).one()
    store.cache.put_key(row)
    await store.changed("key", str(row.id))
    return {**_info(row, store.clock.now()), "key": plaintext}


async def update_key(store: Store, ident: str, changes: dict[str, Any]) -> dict[str, Any]:
    key_id = parse_id(ident, "key")
    reset = bool(changes.pop("reset_usage", False))
    now = store.clock.now()
    values = {name: value for name, value in changes.items() if name not in POLICY_FIELDS}
    values.update(_policy_values(changes, now))
    if reset:
        values["tokens_used"] = 0
        values["cost_used_nanousd"] = 0
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
        store.cache.put_key(row, store.ledger.pending.get(key_id))
    await store.changed("key_reset" if reset else "key", str(key_id))
    return _info(row, store.clock.now())


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
    store.cache.put_key(row, store.ledger.pending.get(key_id))
    await store.changed("key", str(key_id))
    return {**_info(row, store.clock.now()), "key": plaintext}


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
