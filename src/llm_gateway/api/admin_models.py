"""`/admin/models`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Response

from llm_gateway.api.deps import StoreDep, require_admin
from llm_gateway.api.schemas import (
    ERROR_RESPONSES,
    ModelCreate,
    ModelInfo,
    ModelUpdate,
    PriceImportResult,
    not_null_changes,
)
from llm_gateway.services import models, prices
from llm_gateway.services.models import PRICE_FIELDS

router = APIRouter(
    prefix="/admin/models",
    tags=["models"],
    dependencies=[Depends(require_admin)],
    responses=ERROR_RESPONSES,
)


@router.post("", status_code=201, response_model=ModelInfo)
async def create_model(body: ModelCreate, store: StoreDep) -> dict[str, Any]:
    return await models.create_model(store, body.model_dump(exclude_unset=True))


@router.post("/import-prices", response_model=PriceImportResult)
async def import_prices(
    store: StoreDep,
    document: Annotated[
        dict[str, Any],
        Body(description="A price file in LiteLLM's model_prices_and_context_window.json layout."),
    ],
    dry_run: bool = False,
) -> dict[str, Any]:
    """Set the prices of the models the file has entries for (matched by provider model name)."""
    return await prices.import_prices(store, document, dry_run)


@router.get("", response_model=list[ModelInfo])
async def list_models(store: StoreDep) -> list[dict[str, Any]]:
    return await models.list_models(store)


@router.put("/{model_id}", response_model=ModelInfo)
async def update_model(model_id: str, body: ModelUpdate, store: StoreDep) -> dict[str, Any]:
    changes = not_null_changes(
        body, nullable=frozenset({"provider_model_name", "max_output_tokens", *PRICE_FIELDS})
    )
    return await models.update_model(store, model_id, changes)


@router.delete("/{model_id}", status_code=204)
async def delete_model(model_id: str, store: StoreDep) -> Response:
    await models.delete_model(store, model_id)
    return Response(status_code=204)
