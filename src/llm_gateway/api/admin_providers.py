"""`/admin/providers`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response

from llm_gateway.api.deps import StoreDep, require_admin
from llm_gateway.api.schemas import (
    ERROR_RESPONSES,
    ProviderCreate,
    ProviderInfo,
    ProviderUpdate,
    not_null_changes,
)
from llm_gateway.services import providers

router = APIRouter(
    prefix="/admin/providers",
    tags=["providers"],
    dependencies=[Depends(require_admin)],
    responses=ERROR_RESPONSES,
)


@router.post("", status_code=201, response_model=ProviderInfo)
async def create_provider(body: ProviderCreate, store: StoreDep) -> dict[str, Any]:
    return await providers.create_provider(
        store,
        name=body.name,
        kind=body.kind,
        api_key=body.api_key,
        base_url=body.base_url,
        is_active=body.is_active,
    )


@router.get("", response_model=list[ProviderInfo])
async def list_providers(store: StoreDep) -> list[dict[str, Any]]:
    return await providers.list_providers(store)


@router.put("/{provider_id}", response_model=ProviderInfo)
async def update_provider(
    provider_id: str, body: ProviderUpdate, store: StoreDep
) -> dict[str, Any]:
    changes = not_null_changes(body, nullable=frozenset({"base_url"}))
    return await providers.update_provider(store, provider_id, changes)


@router.delete("/{provider_id}", status_code=204)
async def delete_provider(provider_id: str, store: StoreDep) -> Response:
    await providers.delete_provider(store, provider_id)
    return Response(status_code=204)
