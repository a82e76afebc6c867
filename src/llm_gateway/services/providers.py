"""Provider CRUD. Provider API keys are encrypted at rest and only ever shown masked."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from llm_gateway.db.tables import model_deployments, providers, utcnow
from llm_gateway.errors import BadRequest, Conflict, NotFound
from llm_gateway.security import mask_secret
from llm_gateway.services.common import parse_id
from llm_gateway.state.store import Store
from llm_gateway.upstream.kinds import KINDS


def _info(store: Store, row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "kind": row.kind,
        "base_url": row.base_url,
        "api_key_preview": mask_secret(store.box.decrypt(row.api_key)),
        "is_active": row.is_active,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


async def list_providers(store: Store) -> list[dict[str, Any]]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(sa.select(providers).order_by(providers.c.created_at))
        return [_info(store, row) for row in rows]


async def create_provider(
    store: Store, *, name: str, kind: str, api_key: str, base_url: str | None, is_active: bool
) -> dict[str, Any]:
    now = utcnow()
    provider_id = uuid.uuid4()
    values = {
        "id": provider_id,
        "name": name,
        "kind": kind,
        "base_url": base_url or _default_url(kind),
        "api_key": store.box.encrypt(api_key),
        "is_active": is_active,
        "created_at": now,
        "updated_at": now,
    }
    try:
        async with store.engine.begin() as conn:
            await conn.execute(sa.insert(providers).values(**values))
    except IntegrityError:
        raise Conflict(f"a provider named {name!r} already exists") from None
    await _after_change(store, provider_id)
    return _info(store, SimpleNamespace(**values))


async def update_provider(store: Store, ident: str, changes: dict[str, Any]) -> dict[str, Any]:
    provider_id = parse_id(ident, "provider")
    async with store.engine.begin() as conn:
        current = (
            await conn.execute(sa.select(providers).where(providers.c.id == provider_id))
        ).first()
        if current is None:
            raise NotFound(f"provider {ident!r} not found")
        values = dict(changes)
        if "api_key" in values:
            values["api_key"] = store.box.encrypt(values["api_key"])
        new_kind = values.get("kind")
        # A kind change follows the new kind's default URL unless the old URL was a custom one.
        if (
            new_kind
            and new_kind != current.kind
            and "base_url" not in values
            and current.base_url == KINDS[current.kind].default_base_url
        ):
            values["base_url"] = _default_url(new_kind)
        if values.get("base_url", "missing") is None:
            values["base_url"] = _default_url(new_kind or current.kind)
        values["updated_at"] = utcnow()
        try:
            await conn.execute(
                sa.update(providers).where(providers.c.id == provider_id).values(**values)
            )
        except IntegrityError:
            raise Conflict(f"a provider named {values.get('name')!r} already exists") from None
        row = (await conn.execute(sa.select(providers).where(providers.c.id == provider_id))).one()
    await _after_change(store, provider_id)
    return _info(store, row)


async def delete_provider(store: Store, ident: str) -> None:
    provider_id = parse_id(ident, "provider")
    async with store.engine.begin() as conn:
        in_use = await conn.scalar(
            sa.select(sa.func.count(sa.distinct(model_deployments.c.model_id))).where(
                model_deployments.c.provider_id == provider_id
            )
        )
        if in_use:
            raise Conflict(
                f"provider is still used by deployments of {in_use} model(s); "
                "remove those deployments first"
            )
        try:
            result = await conn.execute(sa.delete(providers).where(providers.c.id == provider_id))
        except IntegrityError:  # a model was added concurrently
            raise Conflict("provider is still used by deployments of models") from None
        if result.rowcount == 0:
            raise NotFound(f"provider {ident!r} not found")
    await _after_change(store, provider_id)


async def _after_change(store: Store, provider_id: uuid.UUID) -> None:
    await store.reload_routes()
    await store.changed("routes", str(provider_id))


def _default_url(kind: str) -> str:
    url = KINDS[kind].default_base_url
    if url is None:
        raise BadRequest(f"providers of kind {kind!r} need a 'base_url'", param="base_url")
    return url
