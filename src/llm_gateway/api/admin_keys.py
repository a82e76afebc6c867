"""`/admin/keys`: plaintext keys appear only in the create and rotate responses."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response

from llm_gateway.api.deps import StoreDep, require_admin
from llm_gateway.api.schemas import (
    ERROR_RESPONSES,
    KeyCreate,
    KeyCreated,
    KeyInfo,
    KeyUpdate,
    not_null_changes,
)
from llm_gateway.services import keys

router = APIRouter(
    prefix="/admin/keys",
    tags=["keys"],
    dependencies=[Depends(require_admin)],
    responses=ERROR_RESPONSES,
)


@router.post("", status_code=201, response_model=KeyCreated)
async def create_key(body: KeyCreate, store: StoreDep) -> dict[str, Any]:
    return await keys.create_key(store, body.model_dump())


@router.get("", response_model=list[KeyInfo])
async def list_keys(store: StoreDep) -> list[dict[str, Any]]:
    return await keys.list_keys(store)


@router.put("/{key_id}", response_model=KeyInfo)
async def update_key(key_id: str, body: KeyUpdate, store: StoreDep) -> dict[str, Any]:
    changes = not_null_changes(body, nullable=frozenset({"token_budget", *keys.POLICY_FIELDS}))
    return await keys.update_key(store, key_id, changes)


@router.post("/{key_id}/rotate", response_model=KeyCreated)
async def rotate_key(key_id: str, store: StoreDep) -> dict[str, Any]:
    return await keys.rotate_key(store, key_id)


@router.delete("/{key_id}", status_code=204)
async def revoke_key(key_id: str, store: StoreDep) -> Response:
    await keys.revoke_key(store, key_id)
    return Response(status_code=204)
