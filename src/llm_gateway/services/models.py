"""Model CRUD: a public model name served by one or more deployments, with fallback models.

A deployment is a provider, the provider's name for the model, a weight and a priority. The
seed's one-provider form (`provider_id` + `provider_model_name`) is one deployment, and the
top-level `provider_*` fields of model info describe the first deployment (lowest priority
number, then list order). Deployment ids survive an update that keeps the same provider and
provider-side name, so the deployment keeps its health.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from llm_gateway.db.tables import model_deployments, model_fallbacks, models, providers, utcnow
from llm_gateway.errors import BadRequest, Conflict, NotFound
from llm_gateway.routing.health import Health
from llm_gateway.services.common import parse_id
from llm_gateway.state.store import Store

PRICE_FIELDS = (
    "input_price_per_million",
    "cached_input_price_per_million",
    "output_price_per_million",
)
_DEPLOYMENTS = (
    sa.select(model_deployments, providers.c.name.label("provider_name"))
    .join(providers, model_deployments.c.provider_id == providers.c.id)
    .order_by(model_deployments.c.priority, model_deployments.c.position)
)
_MODEL_FIELDS = (
    "name",
    "is_active",
    "input_token_coefficient",
    "output_token_coefficient",
    "max_output_tokens",
    *PRICE_FIELDS,
)


async def list_models(store: Store) -> list[dict[str, Any]]:
    async with store.engine.connect() as conn:
        return await _infos(conn, store.health, None)


async def create_model(store: Store, fields: dict[str, Any]) -> dict[str, Any]:
    deployments = _requested_deployments(fields, current=None)
    if deployments is None:
        raise BadRequest("give either 'provider_id' or 'deployments'", param="deployments")
    now = utcnow()
    model_id = uuid.uuid4()
    values = {key: fields[key] for key in _MODEL_FIELDS if key in fields}
    async with store.engine.begin() as conn:
        try:
            await conn.execute(
                sa.insert(models).values(id=model_id, created_at=now, updated_at=now, **values)
            )
        except IntegrityError:
            raise Conflict(f"a model named {fields['name']!r} already exists") from None
        await _write_deployments(conn, model_id, deployments, now)
        await _write_fallbacks(conn, model_id, fields["name"], fields.get("fallbacks") or [])
        info = (await _infos(conn, store.health, model_id))[0]
    await _after_change(store, model_id)
    return info


async def update_model(store: Store, ident: str, changes: dict[str, Any]) -> dict[str, Any]:
    model_id = parse_id(ident, "model")
    now = utcnow()
    async with store.engine.begin() as conn:
        name = await conn.scalar(sa.select(models.c.name).where(models.c.id == model_id))
        if name is None:
            raise NotFound(f"model {ident!r} not found")
        current = list(
            await conn.execute(_DEPLOYMENTS.where(model_deployments.c.model_id == model_id))
        )
        deployments = _requested_deployments(changes, current)
        values = {key: changes[key] for key in _MODEL_FIELDS if key in changes}
        try:
            await conn.execute(
                sa.update(models).where(models.c.id == model_id).values(**values, updated_at=now)
            )
        except IntegrityError:
            raise Conflict(f"a model named {changes.get('name')!r} already exists") from None
        if deployments is not None:
            await _write_deployments(conn, model_id, deployments, now, current)
        if "fallbacks" in changes:
            await _write_fallbacks(conn, model_id, values.get("name", name), changes["fallbacks"])
        info = (await _infos(conn, store.health, model_id))[0]
    await _after_change(store, model_id)
    return info


async def delete_model(store: Store, ident: str) -> None:
    model_id = parse_id(ident, "model")
    async with store.engine.begin() as conn:
        users = list(
            await conn.scalars(
                sa.select(models.c.name)
                .join(model_fallbacks, model_fallbacks.c.model_id == models.c.id)
                .where(model_fallbacks.c.fallback_id == model_id)
                .order_by(models.c.name)
            )
        )
        if users:
            raise Conflict(
                f"model is a fallback of {', '.join(repr(u) for u in users)}; "
                "remove it from their fallbacks first"
            )
        try:
            result = await conn.execute(sa.delete(models).where(models.c.id == model_id))
        except IntegrityError:  # named as a fallback concurrently
            raise Conflict("model is a fallback of another model") from None
        if result.rowcount == 0:
            raise NotFound(f"model {ident!r} not found")
    await _after_change(store, model_id)


# deployments and fallbacks ----------------------------------------------------------------------
def _requested_deployments(
    fields: dict[str, Any], current: list[Any] | None
) -> list[dict[str, Any]] | None:
    """The deployment list a create or update asks for; None when it leaves them as they are.

    `provider_id` means one deployment; `provider_model_name` alone renames the deployment of
    a model that has exactly one.
    """
    given = fields.get("deployments")
    if given is not None:
        if fields.get("provider_id") is not None or "provider_model_name" in fields:
            raise BadRequest(
                "give either 'provider_id' (and 'provider_model_name') or 'deployments', not both",
                param="deployments",
            )
        return [dict(item) for item in given]
    if fields.get("provider_id") is not None:
        if "provider_model_name" in fields:
            upstream = fields["provider_model_name"]
        else:  # the seed's partial update: the provider changes, the upstream name stays
            upstream = current[0].provider_model_name if current else None
        return [{"provider_id": fields["provider_id"], "provider_model_name": upstream}]
    if "provider_model_name" in fields and current is not None:
        if len(current) != 1:
            raise BadRequest(
                f"the model has {len(current)} deployments; set each one's "
                "'provider_model_name' in 'deployments'",
                param="provider_model_name",
            )
        only = current[0]
        return [
            {
                "provider_id": only.provider_id,
                "provider_model_name": fields["provider_model_name"],
                "weight": only.weight,
                "priority": only.priority,
            }
        ]
    return None


async def _write_deployments(
    conn: AsyncConnection,
    model_id: uuid.UUID,
    deployments: list[dict[str, Any]],
    now: datetime,
    current: list[Any] | None = None,
) -> None:
    wanted = [(item["provider_id"], item.get("provider_model_name")) for item in deployments]
    if len(set(wanted)) != len(wanted):
        raise BadRequest(
            "the same provider and provider_model_name appear twice", param="deployments"
        )
    provider_ids = {provider_id for provider_id, _ in wanted}
    known = set(
        await conn.scalars(sa.select(providers.c.id).where(providers.c.id.in_(provider_ids)))
    )
    missing = sorted(str(provider_id) for provider_id in provider_ids - known)
    if missing:
        param = "deployments" if len(deployments) > 1 or current is None else "provider_id"
        raise BadRequest(f"provider {', '.join(missing)} does not exist", param=param)
    kept = {(row.provider_id, row.provider_model_name): row.id for row in current or ()}
    await conn.execute(sa.delete(model_deployments).where(model_deployments.c.model_id == model_id))
    await conn.execute(
        sa.insert(model_deployments),
        [
            {
                "id": kept.get(pair) or uuid.uuid4(),
                "model_id": model_id,
                "provider_id": pair[0],
                "provider_model_name": pair[1],
                "weight": item.get("weight", 1),
                "priority": item.get("priority", 0),
                "position": position,
                "created_at": now,
            }
            for position, (pair, item) in enumerate(zip(wanted, deployments, strict=True))
        ],
    )


async def _write_fallbacks(
    conn: AsyncConnection, model_id: uuid.UUID, name: str, fallbacks: list[str]
) -> None:
    if name in fallbacks:
        raise BadRequest("a model cannot be its own fallback", param="fallbacks")
    if len(set(fallbacks)) != len(fallbacks):
        raise BadRequest("a fallback is listed twice", param="fallbacks")
    ids: dict[str, uuid.UUID] = {}
    if fallbacks:
        rows = await conn.execute(
            sa.select(models.c.name, models.c.id).where(models.c.name.in_(fallbacks))
        )
        ids = {row.name: row.id for row in rows}
    unknown = [fallback for fallback in fallbacks if fallback not in ids]
    if unknown:
        raise BadRequest(f"unknown fallback model {unknown[0]!r}", param="fallbacks")
    await conn.execute(sa.delete(model_fallbacks).where(model_fallbacks.c.model_id == model_id))
    if fallbacks:
        await conn.execute(
            sa.insert(model_fallbacks),
            [
                {"model_id": model_id, "position": position, "fallback_id": ids[fallback]}
                for position, fallback in enumerate(fallbacks)
            ],
        )


# model info -----------------------------------------------------------------------------------
async def _infos(
    conn: AsyncConnection, health: Health, model_id: uuid.UUID | None
) -> list[dict[str, Any]]:
    model_query = sa.select(models).order_by(models.c.created_at, models.c.name)
    deployment_query = _DEPLOYMENTS
    fallback_query = (
        sa.select(model_fallbacks.c.model_id, models.c.name)
        .join(models, model_fallbacks.c.fallback_id == models.c.id)
        .order_by(model_fallbacks.c.position)
    )
    if model_id is not None:
        model_query = model_query.where(models.c.id == model_id)
        deployment_query = deployment_query.where(model_deployments.c.model_id == model_id)
        fallback_query = fallback_query.where(model_fallbacks.c.model_id == model_id)
    deployments: dict[uuid.UUID, list[Any]] = {}
    for row in await conn.execute(deployment_query):
        deployments.setdefault(row.model_id, []).append(row)
    fallbacks: dict[uuid.UUID, list[str]] = {}
    for row in await conn.execute(fallback_query):
        fallbacks.setdefault(row.model_id, []).append(row.name)
    now = health.clock()
    infos = []
    for model in await conn.execute(model_query):
        served = [_deployment_info(row, model.name, health, now) for row in deployments[model.id]]
        first = served[0]
        infos.append(
            {
                "id": model.id,
                "name": model.name,
                "provider_id": first["provider_id"],
                "provider_name": first["provider_name"],
                "provider_model_name": first["provider_model_name"],
                "deployments": served,
                "fallbacks": fallbacks.get(model.id, []),
                "is_active": model.is_active,
                "input_token_coefficient": model.input_token_coefficient,
                "output_token_coefficient": model.output_token_coefficient,
                "max_output_tokens": model.max_output_tokens,
                **{name: getattr(model, name) for name in PRICE_FIELDS},
                "created_at": model.created_at,
                "updated_at": model.updated_at,
            }
        )
    return infos


def _deployment_info(row: Any, model_name: str, health: Health, now: float) -> dict[str, Any]:
    state = health.states.get(row.id)
    cooling = state is not None and state.cooling_until > now
    return {
        "id": row.id,
        "provider_id": row.provider_id,
        "provider_name": row.provider_name,
        "provider_model_name": row.provider_model_name or model_name,
        "weight": row.weight,
        "priority": row.priority,
        "status": "cooling" if cooling else "healthy",
        "cooling_until": (
            datetime.fromtimestamp(state.cooling_until, UTC) if state and cooling else None
        ),
        "last_error": state.last_error if state is not None else None,
    }


async def _after_change(store: Store, model_id: uuid.UUID) -> None:
    await store.reload_routes()
    await store.changed("routes", str(model_id))
