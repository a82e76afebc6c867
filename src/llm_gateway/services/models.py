"""Model CRUD: a public model name mapped to a provider, its upstream name and coefficients."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from llm_gateway.db.tables import models, providers, utcnow
from llm_gateway.errors import BadRequest, Conflict, NotFound
from llm_gateway.services.common import parse_id
from llm_gateway.state.store import Store

_SELECT = sa.select(models, providers.c.name.label("provider_name")).join(
    providers, models.c.provider_id == providers.c.id
)


def _info(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "provider_id": row.provider_id,
        "provider_name": row.provider_name,
        "provider_model_name": row.provider_model_name or row.name,
        "is_active": row.is_active,
        "input_token_coefficient": row.input_token_coefficient,
        "output_token_coefficient": row.output_token_coefficient,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


async def list_models(store: Store) -> list[dict[str, Any]]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(_SELECT.order_by(models.c.created_at))
        return [_info(row) for row in rows]


async def create_model(store: Store, fields: dict[str, Any]) -> dict[str, Any]:
    now = utcnow()
    values = {"id": uuid.uuid4(), "created_at": now, "updated_at": now, **fields}
    async with store.engine.begin() as conn:
        await _require_provider(conn, values["provider_id"])
        try:
            await conn.execute(sa.insert(models).values(**values))
        except IntegrityError:
            raise Conflict(f"a model named {values['name']!r} already exists") from None
        row = (await conn.execute(_SELECT.where(models.c.id == values["id"]))).one()
    await _after_change(store, values["id"])
    return _info(row)


async def update_model(store: Store, ident: str, changes: dict[str, Any]) -> dict[str, Any]:
    model_id = parse_id(ident, "model")
    async with store.engine.begin() as conn:
        exists = await conn.scalar(sa.select(models.c.id).where(models.c.id == model_id))
        if exists is None:
            raise NotFound(f"model {ident!r} not found")
        if "provider_id" in changes:
            await _require_provider(conn, changes["provider_id"])
        try:
            await conn.execute(
                sa.update(models)
                .where(models.c.id == model_id)
                .values(**changes, updated_at=utcnow())
            )
        except IntegrityError:
            raise Conflict(f"a model named {changes.get('name')!r} already exists") from None
        row = (await conn.execute(_SELECT.where(models.c.id == model_id))).one()
    await _after_change(store, model_id)
    return _info(row)


async def delete_model(store: Store, ident: str) -> None:
    model_id = parse_id(ident, "model")
    async with store.engine.begin() as conn:
        result = await conn.execute(sa.delete(models).where(models.c.id == model_id))
        if result.rowcount == 0:
            raise NotFound(f"model {ident!r} not found")
    await _after_change(store, model_id)


async def _require_provider(conn: Any, provider_id: uuid.UUID) -> None:
    found = await conn.scalar(sa.select(providers.c.id).where(providers.c.id == provider_id))
    if found is None:
        raise BadRequest(f"provider {provider_id} does not exist", param="provider_id")


async def _after_change(store: Store, model_id: uuid.UUID) -> None:
    await store.reload_routes()
    await store.changed("routes", str(model_id))
