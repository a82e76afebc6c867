"""`/admin/models`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response

from llm_gateway.api.deps import StoreDep, require_admin
from llm_gateway.api.schemas import (
    ERROR_RESPONSES,
    ModelCreate,
    ModelInfo,
    ModelUpdate,
    not_null_changes,
)
from llm_gateway.services import models

router = APIRouter(
    prefix="/admin/models",
    tags=["models"],
    dependencies=[Depends(require_admin)],
    responses=ERROR_RESPONSES,
)


@router.post("", status_code=201, response_model=ModelInfo)
async def create_model(body: ModelCreate, store: StoreDep) -> dict[str, Any]:
    return await models.create_model(store, body.model_dump(exclude_unset=True))


@router.get("", response_model=list[ModelInfo])
async def list_models(store: StoreDep) -> list[dict[str, Any]]:
    return await models.list_models(store)


@router.put("/{model_id}", response_model=ModelInfo)
async def update_model(model_id: str, body: ModelUpdate, store: StoreDep) -> dict[str, Any]:
    changes = not_null_changes(
        body, nullable=frozenset({"provider_model_name", "max_output_tokens"})
    )
    return await models.update_model(store, model_id, changes)


@router.delete("/{model_id}", status_code=204)
async def delete_model(model_id: str, store: StoreDep) -> Response:
    await models.delete_model(store, model_id)
    return Response(status_code=204)
